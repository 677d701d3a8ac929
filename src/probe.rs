//! Asking workers how they are: one thread per worker, blocking sockets,
//! every wait bounded by one deadline for the whole phase.
//!
//! A worker is up when its stats port sends a usable `<distccstats>` reply
//! AND its job port accepts a connection (or, without `--stats`, when its
//! stats port refuses and its job port accepts). The main thread waits for
//! answers until the deadline and then stops waiting: a thread stuck in the
//! resolver (which cannot be interrupted) is left behind and ends with the
//! process. The socket work for one address is in `ask`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::ask;
use crate::config::SshSettings;
use crate::fault::{Code, Fault};
use crate::hostspec::{Host, HostSpec, Transport};
use crate::signals::Guarded;
use crate::stats::Stats;
use crate::tunnel::{self, TunnelInfo};

/// Where to ask: for a TCP worker its own address, for an ssh worker the
/// local ends of its tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub distcc_port: u16,
    pub stats_port: u16,
}

impl Target {
    /// The worker's own address and ports, as configured.
    pub fn of(spec: &HostSpec) -> Target {
        Target {
            host: spec.host.clone(),
            distcc_port: spec.distcc_port,
            stats_port: spec.stats_port,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Up {
        stats: Stats,
    },
    /// The job port accepts but the stats port refused the connection: a
    /// distccd started without `--stats` (Debian's default). `why` is what
    /// the stats port said.
    NoStats {
        why: String,
    },
    Down {
        reason: String,
        code: Code,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The stats address last tried (the one that answered, when up).
    pub address: Option<SocketAddr>,
    pub outcome: Outcome,
    pub elapsed: Duration,
    /// The ssh tunnel the worker was reached through, while it runs.
    pub tunnel: Option<TunnelInfo>,
    /// The worker's compiler, as the compile check's object shows it.
    pub compiler: Option<String>,
}

/// How to reach a worker.
#[derive(Debug, Clone)]
pub enum Route {
    Direct(Target),
    /// Through an ssh tunnel, set up and probed by `ssh_deadline`.
    Ssh(HostSpec),
}

impl Route {
    pub fn of(spec: &HostSpec) -> Route {
        // A new transport makes the compiler list every place to update.
        match spec.transport {
            Transport::Ssh { .. } => Route::Ssh(spec.clone()),
            Transport::Tcp => Route::Direct(Target::of(spec)),
        }
    }

    /// Where the worker is asked before any tunnel exists.
    pub fn target(&self) -> Target {
        match self {
            Route::Direct(t) => t.clone(),
            Route::Ssh(s) => Target::of(s),
        }
    }
}

// What a probe thread is doing, so that a timeout can say where it hung.
pub(crate) const RESOLVING: u8 = 0;
pub(crate) const CONNECTING: u8 = 1;
pub(crate) const READING: u8 = 2;
pub(crate) const JOB_PORT: u8 = 3;
pub(crate) const TUNNEL: u8 = 4;
pub(crate) const CHECKING: u8 = 5;
pub(crate) const WAITING: u8 = 6;

/// A stage as a reason says it, and in a word or two for the progress line.
fn stage_names(s: u8) -> (&'static str, &'static str) {
    match s {
        RESOLVING => ("resolving the name", "resolving"),
        CONNECTING => ("connecting to the stats port", "connecting"),
        READING => ("waiting for the stats reply", "stats reply"),
        JOB_PORT => ("connecting to the job port", "job port"),
        TUNNEL => ("starting the ssh tunnel", "ssh login"),
        WAITING => (
            "waiting for a free file descriptor: raise ulimit -n",
            "file limit",
        ),
        _ => ("compiling the check file", "compile check"),
    }
}

/// The reason for a worker that ran out of time in `stage`.
fn timed_out(bounds: &Bounds, ssh: bool, stage: u8) -> String {
    format!(
        "timed out after {} ({})",
        secs(bounds.budget(ssh, stage)),
        stage_names(stage).0
    )
}

/// How long workers that are not waited for may still answer once the
/// others have: a worker that came back answers in milliseconds.
const NOT_WAITED_GRACE: Duration = Duration::from_millis(100);

/// Where a probe starts: an address needs no resolving.
fn first_stage(r: &Route) -> u8 {
    match r {
        Route::Ssh(_) => TUNNEL,
        Route::Direct(t) => match t.host {
            Host::Name(_) => RESOLVING,
            Host::V4(_) | Host::V6(_) => CONNECTING,
        },
    }
}

/// A probe thread's stack: the resolver is the deepest thing it runs.
/// Small, so that a thousand of them fit an address-space limit.
const PROBE_STACK: usize = 256 * 1024;

/// What one probe found, for the trace: numbers, not Rust's debug form.
fn describe(outcome: &Outcome) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    match outcome {
        Outcome::Up { stats } => format!(
            "up, dcc_max_kids {}, load {}, free memory {}{}",
            stats.max_kids,
            opt(stats.mean_load().map(|l| format!("{l:.2}"))),
            opt(stats.free_mem_mib.map(|m| format!("{m} MiB"))),
            if stats.truncated {
                ", reply cut short (distccd 3.4 bug)"
            } else {
                ""
            }
        ),
        Outcome::NoStats { why } => format!("up without stats ({why})"),
        Outcome::Down { reason, .. } => format!("down: {reason}"),
    }
}

/// The deadlines of one probing phase.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub start: Instant,
    /// Direct workers answer by this.
    pub deadline: Instant,
    /// ssh workers set up their tunnel and answer by this.
    pub ssh_deadline: Instant,
    /// With the compile check: the compiler, and when the check must end.
    pub check: Option<(String, Instant)>,
}

impl Bounds {
    /// The bounds of a probing phase that starts at `start`.
    pub fn new(config: &crate::config::Config, start: Instant) -> Bounds {
        Bounds {
            start,
            deadline: start + config.timeout,
            ssh_deadline: start + config.timeout.max(config.ssh.timeout),
            check: config
                .check
                .as_ref()
                .map(|c| (c.compiler.clone(), start + config.timeout.max(c.timeout))),
        }
    }

    /// The time a worker had, for a timeout message: by its route, or the
    /// check's when it was compiling.
    fn budget(&self, ssh: bool, stage: u8) -> Duration {
        let end = match (&self.check, stage, ssh) {
            (Some((_, end)), CHECKING, _) => *end,
            (_, _, true) => self.ssh_deadline,
            _ => self.deadline,
        };
        end.saturating_duration_since(self.start)
    }

    /// When the last worker must have answered.
    fn last(&self, any_ssh: bool) -> Instant {
        let mut last = self.deadline;
        if any_ssh {
            last = last.max(self.ssh_deadline);
        }
        if let Some((_, end)) = &self.check {
            last = last.max(*end);
        }
        last
    }
}

/// Probe every worker at once; the answer for each comes back in order,
/// with the target finally asked (for ssh workers, the tunnel's local end).
/// This returns by the last of the bounds, whatever the workers do.
pub fn probe_all(
    routes: &[Route],
    bounds: &Bounds,
    ssh: &SshSettings,
    trace: bool,
    progress: Option<&[String]>,
    not_waited: &[Option<u64>],
    _signals: &Guarded,
) -> Vec<(Target, Probe)> {
    let start = bounds.start;
    let (tx, rx) = mpsc::channel::<(usize, Target, Probe)>();
    let stages: Arc<Vec<AtomicU8>> = Arc::new(
        routes
            .iter()
            .map(|r| AtomicU8::new(first_stage(r)))
            .collect(),
    );
    let mut results: Vec<Option<(Target, Probe)>> = vec![None; routes.len()];
    let is_ssh = |r: &Route| matches!(r, Route::Ssh(_));
    let last = bounds.last(routes.iter().any(is_ssh));
    let slots = Arc::new(crate::slots::Slots::for_file_limit());
    // A fresh closure per attempt: a failed spawn consumes it.
    let job = |i: usize| {
        let (tx, stages, route, ssh, bounds, slots) = (
            tx.clone(),
            Arc::clone(&stages),
            routes[i].clone(),
            ssh.clone(),
            bounds.clone(),
            Arc::clone(&slots),
        );
        move || {
            let stage = &stages[i];
            let until = match route {
                Route::Direct(_) => bounds.deadline,
                Route::Ssh(_) => bounds.ssh_deadline,
            };
            let first = stage.swap(WAITING, Ordering::Relaxed);
            let (target, probe) = if !slots.acquire(until) {
                let why = timed_out(&bounds, matches!(route, Route::Ssh(_)), WAITING);
                (route.target(), down(None, Code::Local, why, bounds.start))
            } else {
                stage.store(first, Ordering::Relaxed);
                let answer = match &route {
                    Route::Direct(t) => (
                        t.clone(),
                        probe_one(t, bounds.deadline, &bounds, false, stage),
                    ),
                    Route::Ssh(spec) => tunnel::probe_through(spec, &ssh, &bounds, stage),
                };
                slots.release();
                answer
            };
            if trace {
                crate::trace!(
                    "probe {}: {} ({:.1?})",
                    target_label(&target),
                    describe(&probe.outcome),
                    probe.elapsed
                );
            }
            let _ = tx.send((i, target, probe));
        }
    };
    for i in 0..routes.len() {
        // Threads that cannot start (an address-space or process limit)
        // are retried until the deadline: a limit costs time, not workers.
        loop {
            let spawned = thread::Builder::new()
                .name(format!("probe-{i}"))
                .stack_size(PROBE_STACK)
                .spawn(job(i));
            match spawned {
                Ok(_) => break,
                Err(_) if Instant::now() + Duration::from_millis(5) < last => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    results[i] = Some((
                        routes[i].target(),
                        down(
                            None,
                            Code::Local,
                            format!("could not start a probe thread: {e}"),
                            start,
                        ),
                    ));
                    break;
                }
            }
        }
    }
    drop(tx);
    let mut missing = results.iter().filter(|r| r.is_none()).count();
    let mut shown = false;
    // Workers that let the deadline pass a moment ago are not waited for:
    // once every other one has answered, a short grace, then the end.
    let needed = |results: &[Option<(Target, Probe)>]| {
        (0..routes.len())
            .filter(|&i| results[i].is_none() && not_waited.get(i).copied().flatten().is_none())
            .count()
    };
    let mut last = last;
    let mut graced = false;
    while missing > 0 {
        if !graced && needed(&results) == 0 {
            last = last.min(Instant::now() + NOT_WAITED_GRACE);
            graced = true;
        }
        let left = last.saturating_duration_since(Instant::now());
        // With a person watching, look up now and then to say what is
        // still awaited.
        let wait = match progress {
            Some(_) => left.min(Duration::from_millis(250)),
            None => left,
        };
        match rx.recv_timeout(wait) {
            Ok((i, t, p)) => {
                results[i] = Some((t, p));
                missing -= 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
            Err(_) => break,
        }
        if let Some(names) = progress
            && start.elapsed() >= Duration::from_secs(1)
            && missing > 0
        {
            let waiting: Vec<String> = (0..routes.len())
                .filter(|&i| results[i].is_none())
                .map(|i| {
                    format!(
                        "{} ({})",
                        names[i],
                        stage_names(stages[i].load(Ordering::Relaxed)).1
                    )
                })
                .collect();
            crate::progress(&format!(
                "waiting for {missing} of {} workers: {}",
                routes.len(),
                waiting.join(", ")
            ));
            shown = true;
        }
    }
    if shown {
        crate::progress("");
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                if let (true, Some(age)) = (graced, not_waited.get(i).copied().flatten()) {
                    let why = format!("no answer {age} s ago; not waited for");
                    return (routes[i].target(), down(None, Code::NotWaited, why, start));
                }
                let stage = stages[i].load(Ordering::Relaxed);
                let reason = timed_out(bounds, is_ssh(&routes[i]), stage);
                (routes[i].target(), down(None, Code::Timeout, reason, start))
            })
        })
        .collect()
}

fn target_label(t: &Target) -> String {
    format!("{}:{}", t.host, t.stats_port)
}

pub(crate) fn down(
    address: Option<SocketAddr>,
    code: Code,
    reason: String,
    start: Instant,
) -> Probe {
    Probe {
        address,
        outcome: Outcome::Down { reason, code },
        elapsed: start.elapsed(),
        tunnel: None,
        compiler: None,
    }
}

/// One worker, start to end: its stats by `deadline`, the compile check
/// (when asked for) by the check's own deadline.
pub(crate) fn probe_one(
    t: &Target,
    deadline: Instant,
    bounds: &Bounds,
    ssh: bool,
    stage: &AtomicU8,
) -> Probe {
    let start = Instant::now();
    let addrs = match ask::resolve(&t.host, t.stats_port) {
        Ok(a) => a,
        Err(why) => return down(None, Code::Unresolved, why, start),
    };
    let mut last = None;
    for (n, addr) in addrs.iter().enumerate() {
        // Share what is left between the addresses still to try, so that
        // one blackholed address does not use up the others' time.
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / (addrs.len() - n) as u32;
        match ask::ask(
            *addr,
            t.distcc_port,
            Instant::now() + share,
            &bounds.check,
            stage,
        ) {
            Ok((answer, compiler)) => {
                // The address that answered is the one distcc will use.
                let (address, outcome) = match answer {
                    ask::Answer::Stats(stats) => (*addr, Outcome::Up { stats }),
                    ask::Answer::NoStats { job, why } => (job, Outcome::NoStats { why }),
                };
                return Probe {
                    address: Some(address),
                    outcome,
                    elapsed: start.elapsed(),
                    tunnel: None,
                    compiler,
                };
            }
            Err(Fault::Timeout) => {
                let reason = timed_out(bounds, ssh, stage.load(Ordering::Relaxed));
                last = Some(down(Some(*addr), Code::Timeout, reason, start));
            }
            Err(fault) => {
                last = Some(down(Some(*addr), fault.code(), fault.to_string(), start));
            }
        }
    }
    let mut p = last.expect("at least one address");
    p.elapsed = start.elapsed();
    p
}

/// A duration as a person reads it: "2 s", "0.5 s".
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 0.0005 {
        format!("{} s", s.round())
    } else {
        format!("{} s", (s * 1000.0).round() / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_for_people() {
        assert_eq!(secs(Duration::from_secs(2)), "2 s");
        assert_eq!(secs(Duration::from_millis(500)), "0.5 s");
        assert_eq!(secs(Duration::from_millis(1250)), "1.25 s");
        assert_eq!(secs(Duration::ZERO), "0 s");
    }
}
