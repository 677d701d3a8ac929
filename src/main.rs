//! distcc-auto: probe distcc workers and size DISTCC_HOSTS and -j.
//!
//! `main` wraps `run`; every failure is an `Error` whose category picks the
//! exit code. I/O happens here and in `probe`; parsing, planning and
//! rendering are pure.

mod cli;
mod config;
mod emit;
mod error;
mod hostspec;
mod plan;
mod probe;
mod stats;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cli::Command;
use config::Config;
use error::Error;
use plan::{Local, Plan};
use probe::{Outcome, Probe, Target};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// A trace line on stderr, when -v or DISTCC_AUTO_DEBUG=1.
pub fn debug(msg: &str) {
    if DEBUG.load(Ordering::Relaxed) {
        eprintln!("distcc-auto: debug: {msg}");
    }
}

pub fn warn(msg: &str) {
    eprintln!("distcc-auto: warning: {msg}");
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("distcc-auto: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run() -> Result<(), Error> {
    let args = cli::parse(std::env::args_os().skip(1))?;
    match args.command {
        Command::Help => print(cli::USAGE),
        Command::Version => print(&format!("distcc-auto {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Kill => Err(Error::Other("kill: not implemented yet".into())),
        Command::Env => {
            let (_, plan) = probe_and_plan(args.verbose, true)?;
            plan.usable()?;
            eprintln!("distcc-auto: {}", emit::summary(&plan));
            print(&emit::env_script(&plan, &[]))
        }
        Command::Hosts { json } => {
            let (config, plan) = probe_and_plan(args.verbose, false)?;
            print(&if json {
                emit::hosts_json(&plan, config.timeout)
            } else {
                emit::hosts_table(&plan)
            })?;
            plan.usable()
        }
    }
}

/// Read the configuration, probe every worker, decide the slots. `hosts`
/// shows dropped workers in its table; `env` warns about them.
fn probe_and_plan(verbose: bool, warn_dropped: bool) -> Result<(Config, Plan), Error> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let config = Config::from_lookup(config::process_env, cpus)?;
    DEBUG.store(verbose || config.debug, Ordering::Relaxed);
    for d in &config.hosts.duplicates {
        warn(d);
    }
    for s in &config.hosts.specs {
        let via = s
            .ssh_destination()
            .map_or(String::new(), |d| format!(" via ssh to {d}"));
        debug(&format!(
            "entry '{}': host {} job port {} stats port {}{via}",
            s.entry, s.host, s.distcc_port, s.stats_port
        ));
    }
    let local = Local {
        cpus,
        mem_available_mib: mem_available_mib(),
    };
    debug(&format!(
        "{cpus} CPUs, MemAvailable {:?} MiB, deadline {}",
        local.mem_available_mib,
        probe::secs(config.timeout)
    ));

    let start = Instant::now();
    let deadline = start + config.timeout;
    let specs = config.hosts.specs.clone();
    let targets: Vec<Target> = specs
        .iter()
        .map(|s| Target {
            host: s.host.clone(),
            distcc_port: s.distcc_port,
            stats_port: s.stats_port,
        })
        .collect();
    let mut probes = probe::probe_all(&targets, deadline, DEBUG.load(Ordering::Relaxed));
    for (s, p) in specs.iter().zip(probes.iter_mut()) {
        if s.is_ssh() {
            *p = Probe {
                address: None,
                outcome: Outcome::Down {
                    reason: "ssh:// workers are not supported yet".into(),
                },
                elapsed: p.elapsed,
            };
        }
    }
    debug(&format!("probing took {:.1?}", start.elapsed()));
    let plan = plan::plan(
        &config,
        local,
        specs
            .into_iter()
            .zip(targets)
            .zip(probes)
            .map(|((s, t), p)| (s, t, p))
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
    }
    Ok((config, plan))
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
    let mut out = io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Error::Other(format!("writing to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
