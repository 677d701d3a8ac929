//! Asking workers how they are: one thread per worker, blocking sockets,
//! every wait bounded by one deadline for the whole phase.
//!
//! A worker is up when its stats port sends a usable `<distccstats>` reply
//! AND its job port accepts a connection (or, without `--stats`, when its
//! stats port refuses and its job port accepts). The main thread waits for
//! answers until the deadline and then stops waiting: a thread stuck in the
//! resolver (which cannot be interrupted) is left behind and ends with the
//! process. The socket work for one address is in `ask`.

pub mod ask;
pub mod ccache;
pub mod check;
pub mod counters;
pub mod fd_budget;
pub mod one;
pub mod stage;
pub mod through_ssh;
pub mod toolchain;

use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::SshSettings;
use crate::config::hostspec::Host;
use crate::process::signals::Guarded;
use crate::worker::fault::Code;
use crate::worker::found::{Outcome, Probe, Route, Target};
pub use one::{Bounds, secs};
use one::{down, probe_one, target_label, timed_out};
use stage::{Stage, StageCell};

/// How long workers that are not waited for may still answer once the
/// others have: a worker that came back answers in milliseconds.
const NOT_WAITED_GRACE: Duration = Duration::from_millis(100);

/// Where a probe starts: an address needs no resolving.
fn first_stage(r: &Route) -> Stage {
    match r {
        Route::Ssh(_) => Stage::Tunnel,
        Route::Direct(t) => match t.host {
            Host::Name(_) => Stage::Resolving,
            Host::V4(_) | Host::V6(_) => Stage::Connecting,
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

/// What one probing phase asks.
pub struct Phase<'a> {
    pub routes: &'a [Route],
    pub bounds: &'a Bounds,
    pub ssh: &'a SshSettings,
    /// Trace each probe's result.
    pub trace: bool,
    /// The entries' names, for a progress line on a terminal.
    pub progress: Option<&'a [String]>,
    /// For each route: seconds since it last let the deadline pass, when
    /// within the backoff period (it is not waited for).
    pub not_waited: &'a [Option<u64>],
}

type Found = (Target, Probe);

/// Probe every route at once, each in its thread, and collect what they
/// found by the phase's deadline. `_signals` proves that the stopping
/// signals are guarded while tunnels may start.
pub fn probe_all(phase: &Phase, _signals: &Guarded) -> Vec<Found> {
    let routes = phase.routes;
    let (tx, rx) = mpsc::channel::<(usize, Target, Probe)>();
    let stages: Arc<Vec<StageCell>> = Arc::new(
        routes
            .iter()
            .map(|r| StageCell::new(first_stage(r)))
            .collect(),
    );
    let last = phase.bounds.last(routes.iter().any(is_ssh));
    let mut results = start_threads(phase, &stages, &tx, last);
    drop(tx);
    let graced = collect(phase, &stages, &rx, &mut results, last);
    let start = phase.bounds.start;
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                let target = routes[i].target();
                if let (true, Some(age)) = (graced, phase.not_waited.get(i).copied().flatten()) {
                    let why = format!("no answer {age} s ago; not waited for");
                    return (target, down(None, Code::NotWaited, why, start));
                }
                let reason = timed_out(phase.bounds, is_ssh(&routes[i]), stages[i].get());
                (target, down(None, Code::Timeout, reason, start))
            })
        })
        .collect()
}

fn is_ssh(r: &Route) -> bool {
    matches!(r, Route::Ssh(_))
}

/// One thread per route. Threads that cannot start (an address-space or
/// process limit) are retried until `last`: a limit costs time, not
/// workers. A route whose thread never started has its result already.
fn start_threads(
    phase: &Phase,
    stages: &Arc<Vec<StageCell>>,
    tx: &mpsc::Sender<(usize, Target, Probe)>,
    last: Instant,
) -> Vec<Option<Found>> {
    let slots = Arc::new(fd_budget::Slots::for_file_limit());
    let mut results: Vec<Option<Found>> = vec![None; phase.routes.len()];
    for (i, route) in phase.routes.iter().enumerate() {
        // A fresh closure per attempt: a failed spawn consumes it.
        let job = || {
            let (tx, stages, route, ssh, bounds, slots) = (
                tx.clone(),
                Arc::clone(stages),
                route.clone(),
                phase.ssh.clone(),
                phase.bounds.clone(),
                Arc::clone(&slots),
            );
            let trace = phase.trace;
            move || {
                let (target, probe) = probe_route(&route, &ssh, &bounds, &stages[i], &slots);
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
        loop {
            let spawned = crate::sys::spawn_detached(PROBE_STACK, Box::new(job()));
            match spawned {
                Ok(()) => break,
                Err(_) if Instant::now() + Duration::from_millis(5) < last => {
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    let why = format!("could not start a probe thread: {e}");
                    let start = phase.bounds.start;
                    results[i] = Some((route.target(), down(None, Code::Local, why, start)));
                    break;
                }
            }
        }
    }
    results
}

/// A probe thread's work: a file descriptor from the budget, then the
/// probe by the route's deadline.
fn probe_route(
    route: &Route,
    ssh: &SshSettings,
    bounds: &Bounds,
    stage: &StageCell,
    slots: &fd_budget::Slots,
) -> Found {
    let until = match route {
        Route::Direct(_) => bounds.deadline,
        Route::Ssh(_) => bounds.ssh_deadline,
    };
    let first = stage.swap(Stage::Waiting);
    if !slots.acquire(until) {
        let why = timed_out(bounds, is_ssh(route), Stage::Waiting);
        return (route.target(), down(None, Code::Local, why, bounds.start));
    }
    stage.set(first);
    let answer = match route {
        Route::Direct(t) => (
            t.clone(),
            probe_one(t, bounds.deadline, bounds, false, stage),
        ),
        Route::Ssh(spec) => through_ssh::probe(spec, ssh, bounds, stage),
    };
    slots.release();
    answer
}

/// Wait for the threads' answers until `last`. Workers that let the
/// deadline pass a moment ago are not waited for: once every other one
/// has answered, a short grace, then the end (returns whether that grace
/// was given).
fn collect(
    phase: &Phase,
    stages: &[StageCell],
    rx: &mpsc::Receiver<(usize, Target, Probe)>,
    results: &mut [Option<Found>],
    mut last: Instant,
) -> bool {
    let waited = |i: usize| phase.not_waited.get(i).copied().flatten().is_none();
    let mut missing = results.iter().filter(|r| r.is_none()).count();
    // Counted down as answers come (a count per answer would be
    // quadratic in the number of workers).
    let mut needed = (0..results.len())
        .filter(|&i| results[i].is_none() && waited(i))
        .count();
    let (mut shown, mut graced) = (false, false);
    while missing > 0 {
        if !graced && needed == 0 {
            last = last.min(Instant::now() + NOT_WAITED_GRACE);
            graced = true;
        }
        let left = last.saturating_duration_since(Instant::now());
        // With a person watching, look up now and then to say what is
        // still awaited.
        let wait = match phase.progress {
            Some(_) => left.min(Duration::from_millis(250)),
            None => left,
        };
        match rx.recv_timeout(wait) {
            Ok((i, t, p)) => {
                results[i] = Some((t, p));
                missing -= 1;
                needed -= usize::from(waited(i));
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
            Err(_) => break,
        }
        if let Some(names) = phase.progress
            && phase.bounds.start.elapsed() >= Duration::from_secs(1)
            && missing > 0
        {
            show_waiting(names, stages, results, missing);
            shown = true;
        }
    }
    if shown {
        crate::progress("");
    }
    graced
}

/// The progress line: which workers are still awaited, and for what.
fn show_waiting(names: &[String], stages: &[StageCell], results: &[Option<Found>], missing: usize) {
    let waiting: Vec<String> = (0..names.len())
        .filter(|&i| results[i].is_none())
        .map(|i| format!("{} ({})", names[i], stages[i].get().names().1))
        .collect();
    crate::progress(&format!(
        "waiting for {missing} of {} workers: {}",
        names.len(),
        waiting.join(", ")
    ));
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
