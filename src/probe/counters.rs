//! Reading the workers' compile counters after a build (`tally`): every
//! counted worker at once, bounded by one deadline.

use std::time::{Duration, Instant};

use crate::render::tally::Baseline;

/// Read every counted worker's counters again, at once, by `deadline`.
/// distccd records a compile's outcome only after the object is sent
/// back, so a compile the build saw end may not be counted yet: while a
/// daemon has accepted more jobs than it has outcomes for, read again
/// (every 5 ms, for at most SETTLE_FOR: another client's compiles are not
/// waited out). A build after which no job is under way pays one read.
pub fn read(before: &[Baseline], deadline: Instant) -> Vec<Option<(u64, u64)>> {
    let settled_by = deadline.min(Instant::now() + SETTLE_FOR);
    let (mut last, mut busy) = read_once(before, deadline);
    while busy && Instant::now() + SETTLE < settled_by {
        std::thread::sleep(SETTLE);
        let (now, b) = read_once(before, settled_by);
        // A worker that answered once and not in time now keeps its count.
        last = now.iter().zip(&last).map(|(n, l)| n.or(*l)).collect();
        busy = b;
    }
    last
}

const SETTLE: Duration = Duration::from_millis(5);
const SETTLE_FOR: Duration = Duration::from_millis(200);

/// Each counted worker's (ok, failed), and whether any has a job under way.
fn read_once(before: &[Baseline], deadline: Instant) -> (Vec<Option<(u64, u64)>>, bool) {
    std::thread::scope(|s| {
        let handles: Vec<_> = before
            .iter()
            .map(|b| match *b {
                Baseline::Counted { stats, .. } => Some(s.spawn(move || {
                    let st = stats_retried(stats, deadline)?;
                    let busy = st.accepted.is_some_and(|a| a > st.outcomes);
                    Some(((st.compile_ok?, st.compile_error.unwrap_or(0)), busy))
                })),
                Baseline::Uncounted => None,
            })
            .collect();
        let got: Vec<_> = handles
            .into_iter()
            .map(|h| h.and_then(|h| h.join().ok().flatten()))
            .collect();
        let busy = got.iter().flatten().any(|g| g.1);
        (got.into_iter().map(|g| g.map(|g| g.0)).collect(), busy)
    })
}

/// A stats reply by `deadline`, asked again after a failure: a distccd
/// that many builds ask at once refuses or drops some connections.
fn stats_retried(
    addr: std::net::SocketAddr,
    deadline: Instant,
) -> Option<crate::worker::stats::Stats> {
    loop {
        match super::ask::stats_at(addr, deadline) {
            Ok(st) => return Some(st),
            Err(_) if Instant::now() + Duration::from_millis(20) < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => return None,
        }
    }
}
