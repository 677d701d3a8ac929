//! distcc-auto: probe distcc workers and size DISTCC_HOSTS and -j.
//!
//! `main` wraps `run`; every failure is an `Error` whose category picks the
//! exit code. I/O happens here and in `probe` and `tunnel`; parsing,
//! planning and rendering are pure.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use distcc_auto::cli::{self, Command};
use distcc_auto::config::{self, Config};
use distcc_auto::error::Error;
use distcc_auto::plan::{self, Local, Plan};
use distcc_auto::probe::{self, Route};
use distcc_auto::{debug, debugging, emit, say, set_debug, stats, tally, trace, tunnel, warn};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}

fn run() -> Result<(), Error> {
    let args = cli::parse(std::env::args_os().skip(1))?;
    match args.command {
        Command::Help => print(cli::USAGE),
        Command::Version => print(&format!("distcc-auto {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Kill => kill(),
        Command::Tally { status } => {
            let config = configure(args.verbose, false)?;
            let value = config::process_env("DISTCC_AUTO_COUNTERS").unwrap_or_default();
            let before = tally::parse(&value).map_err(|e| {
                Error::Config(format!(
                    "DISTCC_AUTO_COUNTERS: {e} (set by distcc-auto env)"
                ))
            })?;
            let after = tally::read(&before, Instant::now() + config.timeout);
            for line in tally::summarize(&before, &after, status == 0) {
                say(&line);
            }
            Ok(())
        }
        Command::Env => {
            let config = configure(args.verbose, false)?;
            guard_tunnels(&config);
            let plan = probe_and_plan(&config, true);
            if let Err(e) = plan.usable() {
                tunnel::registry::close(&[]);
                return Err(e);
            }
            // Tunnels of used workers are handed to the shell; the rest stop.
            let keep = plan.tunnel_pids();
            say(&emit::summary(&plan));
            // Tunnels are handed over only if their PIDs were delivered: a
            // closed pipe means nobody will ever stop them.
            let prefix = distcc_auto::ccache::prefix(
                std::env::var_os("PATH").as_deref(),
                std::env::var_os("CCACHE_PREFIX").is_some(),
            );
            let printed = write_stdout(&emit::env_script(&plan, &keep, prefix));
            tunnel::registry::close(if printed.is_ok() { &keep } else { &[] });
            printed.map_err(|e| Error::Other(format!("writing to stdout: {e}")))
        }
        Command::Hosts {
            json,
            check,
            watch: None,
        } => {
            let config = configure(args.verbose, check)?;
            guard_tunnels(&config);
            let plan = probe_and_plan(&config, false);
            // A person's look: every tunnel closes before we exit.
            tunnel::registry::close(&[]);
            print(&if json {
                emit::hosts_json(&plan, &config.hosts.duplicates, config.timeout)
            } else {
                emit::hosts_table(&plan, &config.hosts.duplicates)
            })?;
            plan.usable()
        }
        Command::Hosts {
            json,
            check,
            watch: Some(every),
        } => {
            tunnel::registry::watching();
            tunnel::registry::guard_signals();
            let config = configure(args.verbose, check)?;
            watch(&config, every, json)
        }
    }
}

/// With ssh workers, a signal must stop the tunnels before we exit; this
/// must run before any probe thread starts (they inherit the signal mask).
fn guard_tunnels(config: &Config) {
    if config.hosts.specs.iter().any(|s| s.is_ssh()) {
        tunnel::registry::guard_signals();
    }
}

/// `hosts --watch`: probe, draw, wait, forever; Ctrl-C ends it (exit 0)
/// after closing the tunnels of the current round. On a terminal each
/// round redraws the screen; otherwise rounds are appended.
fn watch(config: &Config, every: Duration, json: bool) -> Result<(), Error> {
    let tty = unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1;
    let mut previous = emit::Counters::new();
    for round in 1.. {
        let started = Instant::now();
        let plan = probe_and_plan(config, false);
        // Each round opens and closes its own tunnels.
        tunnel::registry::stop_all();
        let body = if json {
            emit::hosts_json(&plan, &config.hosts.duplicates, config.timeout)
        } else {
            let header = format!(
                "distcc-auto hosts --watch: every {}, round {round}, {} of {} workers up\n\n",
                probe::secs(every),
                plan.up().count(),
                plan.workers.len()
            );
            header + &emit::watch_table(&plan, &previous)
        };
        previous = emit::counters(&plan);
        // Clear and home only on a terminal; a pipe gets plain blocks.
        print(&if tty && !json {
            format!("\x1b[H\x1b[2J{body}")
        } else {
            format!("{body}\n")
        })?;
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
    Ok(())
}

/// Read the configuration; `check` turns the compile check on (hosts
/// --check) when DISTCC_AUTO_CHECK did not.
fn configure(verbose: bool, check: bool) -> Result<Config, Error> {
    let cpus = cpus();
    let mut config = Config::from_lookup(config::process_env, cpus)?;
    if check && config.check.is_none() {
        config = Config::from_lookup(
            |name| match name {
                "DISTCC_AUTO_CHECK" => Some("compile".into()),
                _ => config::process_env(name),
            },
            cpus,
        )?;
    }
    set_debug(verbose || config.debug);
    for (entry, first) in &config.hosts.duplicates {
        warn(&format!(
            "DISTCC_AUTO_HOSTS: entry '{entry}' names the same worker as '{first}'; counted once"
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

fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Probe every worker, decide the slots. `hosts` shows dropped workers in
/// its table; `env` warns about them.
fn probe_and_plan(config: &Config, warn_dropped: bool) -> Plan {
    let cpus = config.cpus;
    let local = Local {
        cpus,
        mem_available_mib: mem_available_mib(),
    };
    trace!(
        "{cpus} CPUs, MemAvailable {:?} MiB, deadline {}, ssh deadline {}",
        local.mem_available_mib,
        probe::secs(config.timeout),
        probe::secs(config.timeout.max(config.ssh.timeout))
    );

    let start = Instant::now();
    let specs = config.hosts.specs.clone();
    let routes: Vec<Route> = specs.iter().map(Route::of).collect();
    let bounds = probe::Bounds {
        start,
        deadline: start + config.timeout,
        ssh_deadline: start + config.timeout.max(config.ssh.timeout),
        check: config
            .check
            .as_ref()
            .map(|c| (c.compiler.clone(), start + config.timeout.max(c.timeout))),
    };
    let probes = probe::probe_all(&routes, &bounds, &config.ssh, debugging());
    trace!(
        "probing took {:.1?}, peak memory {} KiB",
        start.elapsed(),
        peak_memory_kib().unwrap_or(0)
    );
    let plan = plan::plan(
        config,
        local,
        specs
            .into_iter()
            .zip(probes)
            .map(|(s, (t, p))| (s, t, p))
            .collect(),
    );
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
        if let (true, Some(why)) = (warn_dropped, &w.dropped) {
            warn(&format!("worker '{}' dropped: {why}", w.spec.entry));
        }
        if let (true, Some(note)) = (warn_dropped, emit::no_stats_note(w)) {
            warn(&format!("worker '{}': {note}", w.spec.entry));
        }
    }
    plan
}

/// `distcc-auto kill`: stop the tunnels named in DISTCC_AUTO_TUNNEL_PIDS
/// (only processes that are still our ssh tunnels) and print `unset` lines.
fn kill() -> Result<(), Error> {
    // This is cleanup, often run from a trap while the terminal hangs up or
    // Ctrl-C is pressed again: the same signal must not cut it short.
    for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM] {
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    let pids = config::process_env("DISTCC_AUTO_TUNNEL_PIDS").unwrap_or_default();
    let mut refused = Vec::new();
    for word in pids.split_whitespace() {
        let pid = match word.parse::<u32>() {
            // 0 and 1 would signal a process group or init: never.
            Ok(p) if p > 1 && p <= i32::MAX as u32 => p,
            _ => {
                refused.push(format!("'{}' is not a process ID", word.escape_debug()));
                continue;
            }
        };
        if !tunnel::alive(pid) {
            trace!("tunnel {pid} already gone");
            continue;
        }
        match tunnel::is_our_tunnel(pid) {
            None => refused.push(format!("process {pid} is not an ssh tunnel of distcc-auto")),
            Some(dest) => {
                if tunnel::terminate(pid, std::time::Duration::from_secs(2)) {
                    say(&format!("stopped ssh tunnel {pid} ({dest})"));
                } else {
                    refused.push(format!("ssh tunnel {pid} ({dest}) did not stop"));
                }
            }
        }
    }
    print(emit::UNSET_SCRIPT)?;
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

/// This process's peak resident memory (VmHWM), for the trace.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// MemAvailable from /proc/meminfo, in MiB.
fn mem_available_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print(s: &str) -> Result<(), Error> {
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
