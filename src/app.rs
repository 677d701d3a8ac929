//! One function per command: each reads the configuration, does its I/O
//! through `probe`, `tunnel`, `kill` and `tally`, and renders through
//! `emit`. `main` only parses, dispatches and maps errors to exit codes.

use std::ffi::OsString;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::cli::{Format, Shell};
use crate::config::{self, CheckKind, Config};
use crate::error::Error;
use crate::plan::{self, Local, Plan};
use crate::probe::{self, Route};
use crate::signals::{self, OnInterrupt};
use crate::table::{self, Layout};
use crate::tunnel::TunnelInfo;
use crate::{
    dead, debug, debugging, emit, jobs, json, kill, registry, say, set_debug, stats,
    stderr_is_terminal, sys, tally, trace, warn,
};

/// `env`: probe, then print shell code for `eval`.
pub fn env(verbose: bool, shell: Shell) -> Result<(), Error> {
    let config = configure(verbose, None)?;
    let plan = probe_and_plan(&config, true, OnInterrupt::Die)?;
    if let Err(e) = plan.usable() {
        registry::close(&[]);
        return Err(e);
    }
    // Tunnels of used workers are handed to the shell; the rest stop.
    let keep: Vec<TunnelInfo> = plan.up().filter_map(|w| w.tunnel.clone()).collect();
    let pids: Vec<u32> = keep.iter().map(|t| t.pid).collect();
    say(&emit::summary(&plan));
    // Tunnels are handed over only if their PIDs reach someone: not on a
    // closed pipe, and not on /dev/null (where Rust also puts a closed
    // stdout), or nobody would ever stop them.
    if !keep.is_empty() && sys::stdout_is_dev_null() {
        registry::close(&[]);
        return Err(Error::Other(
            "standard output is /dev/null or closed: nobody would get the PIDs of the \
             ssh tunnels, so they were stopped (use eval \"$(distcc-auto env)\")"
                .into(),
        ));
    }
    let printed = write_stdout(&emit::env_script(
        &plan,
        &keep,
        crate::ccache::prefix_here(),
        shell,
    ));
    registry::close(if printed.is_ok() { &pids } else { &[] });
    printed.map_err(|e| Error::Other(format!("writing to stdout: {e}")))
}

/// `hosts`: probe, then a table (or JSON) for a person.
pub fn hosts(verbose: bool, format: Format, check: Option<CheckKind>) -> Result<(), Error> {
    let config = configure(verbose, check)?;
    let plan = probe_and_plan(&config, false, OnInterrupt::Die)?;
    // A person's look: every tunnel closes before we exit.
    registry::close(&[]);
    print(&render(&plan, &config, format, None))?;
    plan.usable()
}

/// The one place that turns a plan into what `hosts` shows.
fn render(plan: &Plan, config: &Config, format: Format, round: Option<json::Round>) -> String {
    let dups = &config.hosts.duplicates;
    let layout = || match format {
        Format::Wide => Layout::Wide,
        _ => Layout::Fit(table::terminal_width()),
    };
    match (format, round) {
        (Format::Json, round) => json::hosts(plan, dups, config.timeout, round),
        (_, None) => table::hosts(plan, dups, layout()),
        (_, Some(r)) => table::watch(plan, r.previous, layout()),
    }
}

/// `hosts --watch`: probe, draw, wait, until Ctrl-C (exit 0, after closing
/// the tunnels of the current round) or until the output cannot be written
/// (`| head`: the tunnels close and it ends). On a terminal each round
/// redraws the screen; otherwise rounds are appended.
pub fn watch(
    verbose: bool,
    format: Format,
    check: Option<CheckKind>,
    every: Duration,
) -> Result<(), Error> {
    use std::io::IsTerminal;
    let config = configure(verbose, check)?;
    let guarded = signals::guard(true, OnInterrupt::ExitZero);
    // One login per ssh worker for the whole watch, not one per round.
    crate::tunnel::keep_between_rounds();
    let tty = io::stdout().is_terminal();
    let mut previous = emit::Counters::new();
    for round in 1.. {
        let started = Instant::now();
        let plan = probe_with(&config, false, &guarded)?;
        let json = format == Format::Json;
        let this = json::Round {
            number: round,
            previous: &previous,
        };
        let body = render(&plan, &config, format, Some(this));
        let body = if json {
            body
        } else {
            format!(
                "distcc-auto hosts --watch: every {}, round {round}, {} of {} workers up\n\n{body}",
                probe::secs(every),
                plan.up().count(),
                plan.workers.len()
            )
        };
        previous = emit::counters(&plan);
        // Clear and home only on a terminal; a pipe gets plain blocks.
        let frame = if tty && !json {
            format!("\x1b[H\x1b[2J{body}")
        } else {
            format!("{body}\n")
        };
        if let Err(e) = write_stdout(&frame) {
            registry::close(&[]);
            return match e.kind() {
                // The reader has seen enough (`| head`): a normal end.
                io::ErrorKind::BrokenPipe => Ok(()),
                _ => Err(Error::Other(format!("writing to stdout: {e}"))),
            };
        }
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
    Ok(())
}

/// `exec`: probe, run the command with -j N and DISTCC_HOSTS (and no
/// DISTCC_AUTO_* variable), wait for it, say how many compiles ran
/// remotely, stop the tunnels, and end as the command did: its exit status,
/// or death by the same signal.
pub fn exec(verbose: bool, command: &[OsString]) -> Result<(), Error> {
    let config = configure(verbose, None)?;
    // Always: a signal while the command runs is passed on to it.
    let guarded = signals::guard(true, OnInterrupt::Die);
    let plan = probe_with(&config, true, &guarded)?;
    if let Err(e) = plan.usable() {
        registry::close(&[]);
        return Err(e);
    }
    say(&emit::summary(&plan));
    let (argv, own) = jobs::place(command, plan.jobs(), config.append_jobs);
    if own {
        say(&format!(
            "the command has its own job count; the probed -j {} is not used",
            plan.jobs()
        ));
    }
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DISTCC_AUTO_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("DISTCC_HOSTS", plan.distcc_hosts());
    if let Some(p) = crate::ccache::prefix_here() {
        cmd.env("CCACHE_PREFIX", p);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            registry::close(&[]);
            let code = if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            say(&format!(
                "exec: cannot run '{}': {e}",
                argv[0].to_string_lossy()
            ));
            return Err(Error::Exit(code));
        }
    };
    signals::set_child(child.id());
    // Wait without reaping, so that the PID stays the command's until no
    // signal can be passed on to it any more; then reap.
    sys::wait_exit(child.id());
    signals::set_child(0);
    let status = child
        .wait()
        .map_err(|e| Error::Other(format!("waiting for the command: {e}")))?;
    if let Some(code) = status.code() {
        say_tally(&tally::baseline(&plan), &config, code == 0);
    }
    let n = registry::close(&[]);
    if n > 0 {
        say(&format!(
            "stopped {n} ssh tunnel{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(Error::Exit(u8::try_from(code).unwrap_or(1))),
        (None, Some(sig)) => signals::die_of(sig),
        (None, None) => Err(Error::Exit(1)),
    }
}

/// `init`: the shell file for `eval` (or `| source`), less the part that
/// re-sources the file by its absolute path: eval'd text is no file, and
/// the file it names would be the caller's.
pub fn init(shell: &str) -> Result<(), Error> {
    let text = match shell {
        "bash" => include_str!("../shell/distcc.sh"),
        "zsh" => include_str!("../shell/distcc.zsh"),
        _ => include_str!("../shell/distcc.fish"),
    };
    print(&without_resourcing(text))
}

/// `text` without its lines from `# Sourced by a relative path` to the
/// `fi` that ends that block (and the blank line after it).
fn without_resourcing(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skipping = false;
    let mut after_fi = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with("# Sourced by a relative path") {
            skipping = true;
        }
        if skipping {
            skipping = line.trim_end() != "fi";
            after_fi = !skipping;
            continue;
        }
        if std::mem::take(&mut after_fi) && line.trim().is_empty() {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// `kill`: stop the tunnels that `env` handed over, print `unset` lines.
pub fn kill(shell: Shell, all: bool) -> Result<(), Error> {
    // Cleanup, often run from a trap while the terminal hangs up or Ctrl-C
    // is pressed again: the same signal must not cut it short.
    signals::ignore();
    let pids = config::process_env("DISTCC_AUTO_TUNNEL_PIDS").unwrap_or_default();
    let ids = config::process_env("DISTCC_AUTO_TUNNEL_IDS").unwrap_or_default();
    let (mut said, mut refused) = kill::stop(&pids, &ids);
    if all {
        let (s, r) = crate::master::stop_all();
        said.extend(s);
        refused.extend(r);
    }
    for line in said {
        say(&line);
    }
    print(&emit::unset_script(shell))?;
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "kill: {} (DISTCC_AUTO_TUNNEL_PIDS='{}')",
            refused.join("; "),
            pids.escape_debug()
        )))
    }
}

/// `tally`: after a build, how many compiles ran remotely.
pub fn tally(verbose: bool, status: i32) -> Result<(), Error> {
    // The configuration `env` already read and warned about: read quietly.
    let config = Config::read(config::process_env, cpus(), None)?;
    set_debug(verbose || config.debug);
    let value = config::process_env("DISTCC_AUTO_COUNTERS").unwrap_or_default();
    let before = tally::parse(&value).map_err(|e| {
        Error::Config(format!(
            "DISTCC_AUTO_COUNTERS: {e} (set by distcc-auto env)"
        ))
    })?;
    say_tally(&before, &config, status == 0);
    Ok(())
}

/// Read the counters again and say how many compiles ran remotely.
fn say_tally(before: &[tally::Baseline], config: &Config, build_ok: bool) {
    let after = tally::read(before, Instant::now() + config.timeout);
    for line in tally::summarize(before, &after, build_ok) {
        say(&line);
    }
}

fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Read the configuration and say what is worth saying about it.
fn configure(verbose: bool, check: Option<CheckKind>) -> Result<Config, Error> {
    let config = Config::read(config::process_env, cpus(), check)?;
    set_debug(verbose || config.debug);
    for d in &config.hosts.duplicates {
        warn(&format!(
            "DISTCC_AUTO_HOSTS: entry '{}' names the same worker as '{}'; counted once",
            d.entry, d.first
        ));
    }
    if debugging() {
        for s in &config.hosts.specs {
            let via = s
                .ssh_destination()
                .map_or(String::new(), |d| format!(" via ssh to {d}"));
            debug(&format!(
                "entry '{}': host {} job port {} stats port {}{via}",
                s.entry, s.host, s.distcc_port, s.stats_port
            ));
        }
    }
    Ok(config)
}

/// Guard the signals when tunnels may start, then probe and plan.
fn probe_and_plan(config: &Config, warn_dropped: bool, on_int: OnInterrupt) -> Result<Plan, Error> {
    let ssh = config.hosts.specs.iter().any(|s| s.is_ssh());
    let guarded = signals::guard(ssh, on_int);
    probe_with(config, warn_dropped, &guarded)
}

/// Probe every worker, decide the slots. `hosts` shows dropped workers in
/// its table; `env` warns about them.
fn probe_with(
    config: &Config,
    warn_dropped: bool,
    guarded: &signals::Guarded,
) -> Result<Plan, Error> {
    // The toolchain check compares with this machine's own compiler.
    let compiler = match &config.check {
        Some(c) if c.kind == CheckKind::Toolchain => {
            Some(crate::toolchain::local(&c.compiler).map_err(|e| {
                Error::Other(format!(
                    "the toolchain check needs this machine's {}: {e}",
                    c.compiler
                ))
            })?)
        }
        _ => None,
    };
    if let Some(c) = &compiler {
        trace!("this machine's compiler: {c}");
    }
    let local = Local {
        mem_available_mib: sys::mem_available_mib(),
        compiler,
    };
    trace!(
        "{} CPUs, MemAvailable {} MiB, deadline {}, ssh deadline {}",
        config.cpus,
        local
            .mem_available_mib
            .map_or("unknown".into(), |m| m.to_string()),
        probe::secs(config.timeout),
        probe::secs(config.timeout.max(config.ssh.timeout))
    );
    let start = Instant::now();
    let routes: Vec<Route> = config.hosts.specs.iter().map(Route::of).collect();
    let bounds = probe::Bounds::new(config, start);
    // A progress line for a person at a terminal, when not tracing.
    let names: Option<Vec<String>> = (stderr_is_terminal() && !debugging())
        .then(|| config.hosts.specs.iter().map(|s| s.entry.clone()).collect());
    // Workers that let the deadline pass within the backoff period.
    let store = (config.backoff_period > 0)
        .then(|| {
            dead::Store::open().map_err(|e| warn(&format!("not remembering dead workers: {e}")))
        })
        .and_then(Result::ok);
    let before = store.as_ref().map_or_else(dead::Dead::new, |s| {
        s.load().unwrap_or_else(|e| {
            warn(&format!("ignoring the remembered dead workers: {e}"));
            dead::Dead::new()
        })
    });
    let at = dead::now();
    let not_waited: Vec<Option<u64>> = config
        .hosts
        .specs
        .iter()
        .map(|s| {
            let age = at.saturating_sub(*before.get(&s.entry)?);
            (age < config.backoff_period).then_some(age)
        })
        .collect();
    let probes = probe::probe_all(
        &routes,
        &bounds,
        &config.ssh,
        debugging(),
        names.as_deref(),
        &not_waited,
        guarded,
    );
    trace!(
        "probing took {:.1?}, peak memory {} KiB",
        start.elapsed(),
        sys::peak_memory_kib().unwrap_or(0)
    );
    let workers = config
        .hosts
        .specs
        .iter()
        .cloned()
        .zip(probes)
        .map(|(spec, (target, probe))| plan::Probed {
            spec,
            target,
            probe,
        })
        .collect();
    let plan = plan::plan(config, local, workers);
    if let Some(store) = &store
        && let Err(e) = store.update(|now| dead::update(now, &plan, at, config.backoff_period))
    {
        warn(&format!("cannot remember dead workers: {e}"));
    }
    for d in &plan.decisions {
        debug(d);
    }
    for w in &plan.workers {
        if let Some(from) = w
            .stats
            .as_ref()
            .and_then(|s| s.max_kids_clamped_from.as_ref())
        {
            warn(&format!(
                "worker '{}' reports dcc_max_kids {from}; using {}",
                w.spec.entry,
                stats::MAX_KIDS_CEILING
            ));
        }
        if !warn_dropped {
            continue;
        }
        if let Some(why) = &w.dropped {
            warn(&format!("worker '{}' dropped: {why}", w.spec.entry));
        }
        if let Some(note) = emit::no_stats_note(w) {
            warn(&format!("worker '{}': {note}", w.spec.entry));
        }
        if let Some(note) = &w.warning {
            warn(&format!("worker '{}': {note}", w.spec.entry));
        }
    }
    // A worker found up is not to be avoided by distcc's own backoff.
    if let Some(dir) = crate::backoff::lock_dir() {
        for name in crate::backoff::clear(&dir, &crate::backoff::files(&plan)) {
            trace!("removed distcc's backoff file {}", dir.join(name).display());
        }
    }
    Ok(plan)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub fn print(s: &str) -> Result<(), Error> {
    match write_stdout(s) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Error::Other(format!("writing to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn write_stdout(s: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_bytes()).and_then(|()| out.flush())
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_leaves_out_the_re_sourcing() {
        for file in [
            include_str!("../shell/distcc.sh"),
            include_str!("../shell/distcc.zsh"),
        ] {
            assert!(file.contains("# Sourced by a relative path"));
            let text = super::without_resourcing(file);
            assert!(!text.contains("Sourced by a relative path"), "{text}");
            assert!(!text.contains("builtin source"), "{text}");
            assert!(text.contains("distcc_build() {"));
            assert_eq!(text.lines().count(), file.lines().count() - 7);
        }
        let fish = include_str!("../shell/distcc.fish");
        assert_eq!(super::without_resourcing(fish), fish);
    }
}
