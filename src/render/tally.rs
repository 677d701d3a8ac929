//! After a build: how many compiles the workers did meanwhile.
//!
//! `env` records each used worker's compile counters in
//! `DISTCC_AUTO_COUNTERS`; `distcc-auto tally STATUS` (run by `distcc_build`
//! and `exec` after the build, while the tunnels are still up) reads them
//! again and says how many compiles ran remotely, or warns when a build
//! that succeeded sent none. The counters are the daemon's own, so they
//! include other clients' compiles in the same time.

use std::net::SocketAddr;

use crate::config::whole;
use crate::plan::Plan;
use crate::render::summary::plural;

/// One used worker as `env` saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// Its stats address and its (ok, failed) compile counters then.
    Counted {
        stats: SocketAddr,
        ok: u64,
        failed: u64,
    },
    /// A worker without a stats port (or without counters): not counted.
    Uncounted,
}

/// Each used worker's counters as the plan found them.
pub fn baseline(plan: &Plan) -> Vec<Baseline> {
    plan.up()
        .map(|w| match (w.address, compiles(w)) {
            (Some(stats), Some((ok, failed))) => Baseline::Counted { stats, ok, failed },
            _ => Baseline::Uncounted,
        })
        .collect()
}

/// The value of `DISTCC_AUTO_COUNTERS` for a plan: `ADDRESS=OK,FAILED` per
/// used worker with counters, `-` for one without.
pub fn render(plan: &Plan) -> String {
    let items: Vec<String> = baseline(plan)
        .into_iter()
        .map(|b| match b {
            Baseline::Counted { stats, ok, failed } => format!("{stats}={ok},{failed}"),
            Baseline::Uncounted => "-".into(),
        })
        .collect();
    items.join(" ")
}

/// Parse `DISTCC_AUTO_COUNTERS`; it comes from the environment, so
/// anything but the exact form is refused.
pub fn parse(value: &str) -> Result<Vec<Baseline>, String> {
    value
        .split_whitespace()
        .map(|item| {
            if item == "-" {
                return Ok(Baseline::Uncounted);
            }
            let bad = || format!("'{}' is not ADDRESS=OK,FAILED", item.escape_debug());
            let (addr, counts) = item.split_once('=').ok_or_else(bad)?;
            let (ok, failed) = counts.split_once(',').ok_or_else(bad)?;
            let number = |s: &str| whole::<u64>(s).ok_or_else(bad);
            Ok(Baseline::Counted {
                stats: addr.parse().map_err(|_| bad())?,
                ok: number(ok)?,
                failed: number(failed)?,
            })
        })
        .collect()
}

/// A worker's compile counters: (ok, failed).
pub fn compiles(w: &crate::plan::Worker) -> Option<(u64, u64)> {
    let s = w.stats.as_ref()?;
    Some((s.compile_ok?, s.compile_error.unwrap_or(0)))
}

/// Compiles between two readings of a daemon's (ok, failed) counters. A
/// restarted daemon counts from 0 again: then all of a count is new. The
/// one rule for the post-build line and `hosts --watch`.
pub fn delta(now: (u64, u64), before: (u64, u64)) -> (u64, u64) {
    let one = |n: u64, b: u64| if n >= b { n - b } else { n };
    (one(now.0, before.0), one(now.1, before.1))
}

/// Said after a build that succeeded and sent nothing to the workers
/// (the counters' line and the live build's account alike).
pub const NONE_REMOTE: &str = "warning: no remote compile ran: is the compiler going through distcc? \
     (CC=\"distcc gcc\", or /usr/lib/distcc first on PATH)";

/// The lines to print, from the counters before and after (`None` where a
/// worker did not answer the second time). `build_ok`: the build exited 0.
pub fn summarize(before: &[Baseline], after: &[Option<(u64, u64)>], build_ok: bool) -> Vec<String> {
    let (mut ok, mut failed) = (0u64, 0u64);
    let (mut counted, mut silent, mut uncounted) = (0u64, 0u64, 0u64);
    for (b, a) in before.iter().zip(after) {
        match (b, a) {
            (Baseline::Uncounted, _) => uncounted += 1,
            (Baseline::Counted { .. }, None) => silent += 1,
            (
                Baseline::Counted {
                    ok: ok0,
                    failed: failed0,
                    ..
                },
                Some((ok1, failed1)),
            ) => {
                counted += 1;
                // A restarted daemon counts from 0 again: all of it is new.
                // Saturating: the values come from the network (and from
                // DISTCC_AUTO_COUNTERS), whatever the parsers allow.
                let (o, f) = delta((*ok1, *failed1), (*ok0, *failed0));
                ok = ok.saturating_add(o);
                failed = failed.saturating_add(f);
            }
        }
    }
    if before.is_empty() {
        return vec![];
    }
    if counted == 0 {
        let why = if silent > 0 {
            "the workers did not answer after the build"
        } else {
            "no worker used has a stats port (distccd --stats)"
        };
        return vec![format!("remote compiles not counted: {why}")];
    }
    let mut line = format!(
        "{} on {} ({failed} failed)",
        plural(
            ok.saturating_add(failed),
            "remote compile",
            "remote compiles"
        ),
        plural(counted, "worker", "workers")
    );
    if silent > 0 {
        line.push_str(&format!(
            "; {} did not answer",
            plural(silent, "worker", "workers")
        ));
    }
    if uncounted > 0 {
        line.push_str(&format!(
            "; {} without stats not counted",
            plural(uncounted, "worker", "workers")
        ));
    }
    let mut lines = vec![line];
    if ok.saturating_add(failed) == 0 && build_ok {
        lines.push(NONE_REMOTE.into());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(ok: u64, failed: u64) -> Baseline {
        Baseline::Counted {
            stats: "127.0.0.1:3633".parse().unwrap(),
            ok,
            failed,
        }
    }

    #[test]
    fn counters_round_trip_and_refuse_anything_else() {
        assert_eq!(
            parse("127.0.0.1:3633=4,1 - [::1]:40=0,0").unwrap(),
            [
                counted(4, 1),
                Baseline::Uncounted,
                Baseline::Counted {
                    stats: "[::1]:40".parse().unwrap(),
                    ok: 0,
                    failed: 0
                }
            ]
        );
        assert_eq!(parse("").unwrap(), []);
        for bad in [
            "127.0.0.1:3633",
            "127.0.0.1:3633=4",
            "127.0.0.1:3633=+4,0",
            "host:1=1,1",
            "127.0.0.1:3633=1,1;x",
            "$(reboot)",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_is_said_after_a_build() {
        assert_eq!(
            summarize(
                &[counted(10, 1), counted(0, 0)],
                &[Some((30, 1)), Some((5, 0))],
                true
            ),
            ["25 remote compiles on 2 workers (0 failed)"]
        );
        // A restarted daemon (counters lower than before) counts from 0.
        assert_eq!(
            summarize(&[counted(10, 0)], &[Some((1, 1))], false),
            ["2 remote compiles on 1 worker (1 failed)"]
        );
        // Nothing ran remotely: a warning, only when the build succeeded.
        let none = summarize(&[counted(3, 0)], &[Some((3, 0))], true);
        assert_eq!(none[0], "0 remote compiles on 1 worker (0 failed)");
        assert!(none[1].starts_with("warning: no remote compile ran"));
        assert_eq!(summarize(&[counted(3, 0)], &[Some((3, 0))], false).len(), 1);
        assert_eq!(
            summarize(
                &[counted(0, 0), Baseline::Uncounted, counted(0, 0)],
                &[Some((1, 0)), None, None],
                true
            ),
            [
                "1 remote compile on 1 worker (0 failed); 1 worker did not answer; \
              1 worker without stats not counted"
            ]
        );
        assert_eq!(
            summarize(&[Baseline::Uncounted], &[None], true),
            ["remote compiles not counted: no worker used has a stats port (distccd --stats)"]
        );
        assert!(summarize(&[], &[], true).is_empty());
    }
}
