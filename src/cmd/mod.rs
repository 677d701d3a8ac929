//! One file per command: each reads the configuration, does its I/O
//! through `probe` and `ssh`, and renders through `render`. What they
//! share is here: reading the configuration, probing and planning, writing
//! to stdout. `main` only parses, dispatches and maps errors to exit codes.

pub mod conduct;
pub mod env;
pub mod exec;
pub mod hosts;
pub mod init;
pub mod internal;
pub mod kill;
pub mod tally;

use std::ffi::OsString;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::config::{self, CheckKind, Config};
use crate::error::Error;
use crate::plan::{self, Local, Plan};
use crate::probe;
use crate::process::signals::{self, OnInterrupt};
use crate::render::shell as emit;
use crate::state::unanswered as dead;
use crate::worker::found::Route;
use crate::worker::stats;
use crate::{debug, debugging, set_debug, stderr_is_terminal, sys, trace, warn};

pub(crate) fn cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Read the configuration and say what is worth saying about it.
pub(crate) fn configure(verbose: bool, check: Option<CheckKind>) -> Result<Config, Error> {
    let mut config = Config::read(config::process_env, cpus(), check)?;
    set_debug(verbose || config.debug);
    if config.hosts.zeroconf {
        add_announced(&mut config);
    }
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
pub(crate) fn probe_and_plan(
    config: &Config,
    warn_dropped: bool,
    on_int: OnInterrupt,
) -> Result<Plan, Error> {
    let ssh = config.hosts.specs.iter().any(|s| s.is_ssh());
    let guarded = signals::guard(ssh, on_int);
    probe_with(config, warn_dropped, &guarded, true)
}

/// Probe every worker, decide the slots. `hosts` shows dropped workers in
/// its table; `env` warns about them.
pub(crate) fn probe_with(
    config: &Config,
    warn_dropped: bool,
    guarded: &signals::Guarded,
    progress: bool,
) -> Result<Plan, Error> {
    probe_minus(config, warn_dropped, guarded, progress, &|_| 0)
}

/// `probe_with`, for a live build's rounds: `own(entry)` is how many of
/// this build's compiles run on that worker now, taken off what it reports
/// as busy before the load-aware rule reads it (our own compiles are not
/// another user's load).
pub(crate) fn probe_minus(
    config: &Config,
    warn_dropped: bool,
    guarded: &signals::Guarded,
    progress: bool,
    own: &dyn Fn(&str) -> u32,
) -> Result<Plan, Error> {
    let local = local_machine(config);
    let start = Instant::now();
    let routes: Vec<Route> = config.hosts.specs.iter().map(Route::of).collect();
    let bounds = probe::Bounds::new(config, start);
    // A progress line for a person at a terminal, when not tracing.
    let names: Option<Vec<String>> = (progress && stderr_is_terminal() && !debugging())
        .then(|| config.hosts.specs.iter().map(|s| s.entry.clone()).collect());
    let (store, at, not_waited) = remembered(config);
    let phase = probe::Phase {
        routes: &routes,
        bounds: &bounds,
        ssh: &config.ssh,
        trace: debugging(),
        progress: names.as_deref(),
        not_waited: &not_waited,
    };
    let probes = probe::probe_all(&phase, guarded);
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
        .map(|(spec, (target, mut probe))| {
            if let crate::worker::found::Outcome::Up { stats } = &mut probe.outcome {
                let mine = f64::from(own(&spec.entry));
                stats.load[0] = stats.load[0].map(|l| (l - mine).max(0.0));
                stats.avg_kids1 = stats.avg_kids1.map(|k| (k - mine).max(0.0));
            }
            plan::Probed {
                spec,
                target,
                probe,
            }
        })
        .collect();
    let plan = plan::plan(config, local, workers);
    if let Some(store) = &store
        && let Err(e) = store.update(|now| dead::update(now, &plan, at, config.backoff_period))
    {
        warn(&format!("cannot remember dead workers: {e}"));
    }
    report(&plan, warn_dropped);
    clear_distcc_backoff(&plan);
    Ok(plan)
}

/// This machine, as the plan needs it: its free memory and, for the
/// toolchain check, its own compiler.
fn local_machine(config: &Config) -> Local {
    // The toolchain check compares with this machine's own compiler.
    // When that cannot be done here, the build still goes on: the
    // workers' compile check runs, and their compilers are not compared.
    let compiler = match &config.check {
        Some(c) if c.kind == CheckKind::Toolchain => crate::probe::toolchain::local(&c.compiler)
            .map_err(|e| {
                warn(&format!(
                    "DISTCC_AUTO_CHECK=toolchain: cannot compile the check file here with {} \
                     ({e}); workers' compilers are not compared",
                    c.compiler
                ));
            })
            .ok(),
        _ => None,
    };
    if let Some(c) = &compiler {
        trace!("this machine's compiler: {c}");
    }
    // Workers found by +zeroconf announce their compiler: this machine's.
    let cc = config
        .hosts
        .specs
        .iter()
        .any(|s| s.announced.is_some())
        .then(local_cc)
        .flatten();
    let local = Local {
        mem_available_mib: sys::mem_available_mib(),
        compiler,
        cc,
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
    local
}

/// The memory of unanswered workers: the store (when on), when this run
/// started, and for each entry how many seconds ago it last let the
/// deadline pass, when that is within the backoff period.
fn remembered(config: &Config) -> (Option<dead::Store>, u64, Vec<Option<u64>>) {
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
    // An ssh worker is always waited for: its login never fits the short
    // grace, so once remembered it could never be found back.
    let not_waited: Vec<Option<u64>> = config
        .hosts
        .specs
        .iter()
        .map(|s| match s.is_ssh() {
            true => None,
            false => dead::age(&before, &s.entry, at, config.backoff_period),
        })
        .collect();
    (store, at, not_waited)
}

/// What a person should hear about the plan: every decision when tracing,
/// clamped values, and (for `env`) the workers dropped and why.
fn report(plan: &Plan, warn_dropped: bool) {
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
        if let Some(d) = &w.dropped {
            warn(&format!("worker '{}' dropped: {}", w.spec.entry, d.why));
        }
        if let Some(note) = emit::no_stats_note(w) {
            warn(&format!("worker '{}': {note}", w.spec.entry));
        }
        if let Some(note) = &w.warning {
            warn(&format!("worker '{}': {note}", w.spec.entry));
        }
    }
}

/// A worker found up is not to be avoided by distcc's own backoff.
fn clear_distcc_backoff(plan: &Plan) {
    use crate::state::distcc_backoff;
    if let Some(dir) = distcc_backoff::lock_dir() {
        for name in distcc_backoff::clear(&dir, &distcc_backoff::files(plan)) {
            trace!("removed distcc's backoff file {}", dir.join(name).display());
        }
    }
}

/// The build's argument list as `distcc_build` and `exec` run it: `-j N`
/// placed (saying so when the command's own count is kept), under
/// distcc-pump in pump mode. On an error the run's tunnels are stopped.
pub(crate) fn build_argv(
    config: &Config,
    plan: &Plan,
    command: &[OsString],
) -> Result<Vec<OsString>, Error> {
    let (argv, own) = crate::plan::jobs::place(command, plan.jobs(), config.append_jobs);
    if own {
        crate::say(&crate::plan::jobs::kept_own(plan.jobs()));
    }
    under_pump(config, argv).inspect_err(|_| {
        crate::process::registry::close(&[]);
    })
}

/// The build's argument list as run: with DISTCC_AUTO_PUMP=1, under
/// distcc-pump (found on PATH, as an absolute path), which starts the
/// include server for the build and stops it after.
fn under_pump(config: &Config, argv: Vec<OsString>) -> Result<Vec<OsString>, Error> {
    if !config.pump {
        return Ok(argv);
    }
    let pump = crate::probe::ccache::on_path("distcc-pump").ok_or_else(|| {
        Error::Config(
            "DISTCC_AUTO_PUMP=1: distcc-pump is not on PATH (Debian package distcc-pump)".into(),
        )
    })?;
    Ok(std::iter::once(pump.into_os_string()).chain(argv).collect())
}

/// `+zeroconf`: ask the local links for `_distcc._tcp` for
/// DISTCC_AUTO_ZEROCONF_TIMEOUT, add every worker found that was not
/// listed (a listed one wins: one `dup` row), and leave the probe the rest
/// of the deadline.
fn add_announced(config: &mut Config) {
    use crate::config::hostspec::{Announcement, Duplicate, parse_entry};
    let start = Instant::now();
    let wait = config.zeroconf_timeout.min(config.timeout);
    let found = crate::discover::mdns::discover(start + wait);
    trace!(
        "zeroconf: {} workers announced in {:.1?}",
        found.len(),
        start.elapsed()
    );
    for a in found {
        let entry = match a.addr {
            std::net::IpAddr::V4(ip) => format!("{ip}:{}", a.port),
            std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", a.port),
        };
        let Ok(mut spec) = parse_entry(&entry) else {
            continue;
        };
        let txt = |k: &str| a.txt.get(k).map(|v| crate::worker::shown(v, 64));
        spec.announced = Some(Announcement {
            service: crate::worker::shown(&a.instance, 128),
            jobs: a
                .txt
                .get("jobs")
                .and_then(|j| j.parse::<u32>().ok())
                .filter(|&j| (1..=stats::MAX_KIDS_CEILING).contains(&j)),
            cc_machine: txt("cc_machine"),
            cc_version: txt("cc_version"),
        });
        let listed = config
            .hosts
            .specs
            .iter()
            .find(|s| s.identity() == spec.identity());
        match listed {
            Some(first) => config.hosts.duplicates.push(Duplicate {
                entry: format!(
                    "+zeroconf {}",
                    spec.announced.as_ref().map_or("", |a| &a.service)
                ),
                first: first.entry.clone(),
            }),
            None => config.hosts.specs.push(spec),
        }
    }
    // The wait counts inside the probe's deadline.
    let spent = start.elapsed();
    let floor = Duration::from_millis(100);
    config.timeout = config.timeout.saturating_sub(spent).max(floor);
    config.ssh.timeout = config.ssh.timeout.saturating_sub(spent).max(floor);
}

/// `cc -dumpmachine` and `cc -dumpversion` here, as distccd announces them.
fn local_cc() -> Option<(String, String)> {
    let ask = |arg: &str| -> Option<String> {
        let mut cmd = std::process::Command::new("cc");
        let out = signals::as_started(&mut cmd).arg(arg).output().ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };
    Some((ask("-dumpmachine")?, ask("-dumpversion")?))
}

/// The exit code for how a command ended, having said why it failed.
pub fn exit_code(r: Result<(), Error>) -> u8 {
    match r {
        Ok(()) => 0,
        Err(Error::Exit(code)) => code,
        Err(e) => {
            crate::say(&format!("error: {e}"));
            e.exit_code()
        }
    }
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

pub(crate) fn write_stdout(s: impl AsRef<[u8]>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(s.as_ref()).and_then(|()| out.flush())
}
