//! Asking one worker at one target (its own address, or a tunnel's
//! local ports), within the phase's deadlines (`Bounds`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::probe::ask;
use crate::probe::stage::{Stage, StageCell};
use crate::worker::fault::{Code, Fault};
use crate::worker::found::{Outcome, Probe, Target};

/// The reason for a worker that ran out of time in `stage`.
pub(crate) fn timed_out(bounds: &Bounds, ssh: bool, stage: Stage) -> String {
    format!(
        "timed out after {} ({})",
        secs(bounds.budget(ssh, stage)),
        stage.names().0
    )
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
    pub(crate) fn budget(&self, ssh: bool, stage: Stage) -> Duration {
        let end = match (&self.check, stage, ssh) {
            (Some((_, end)), Stage::Checking, _) => *end,
            (_, _, true) => self.ssh_deadline,
            _ => self.deadline,
        };
        end.saturating_duration_since(self.start)
    }

    /// When the last worker must have answered.
    pub(crate) fn last(&self, any_ssh: bool) -> Instant {
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

pub(crate) fn target_label(t: &Target) -> String {
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
    stage: &StageCell,
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
            ssh,
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
                let reason = timed_out(bounds, ssh, stage.get());
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
