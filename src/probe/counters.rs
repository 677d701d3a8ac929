//! Reading the workers' compile counters after a build (`tally`): every
//! counted worker at once, bounded by one deadline.

use std::time::{Duration, Instant};

use crate::render::tally::Baseline;

/// Read every counted worker's counters again, at once, by `deadline`;
/// then again 25 ms later until two reads agree (distccd counts a compile
/// only after it has sent the object back, so the last ones may still be
/// on the way), but for at most SETTLE_FOR: counters that keep changing
/// (another client's compiles) are not waited out.
pub fn read(before: &[Baseline], deadline: Instant) -> Vec<Option<(u64, u64)>> {
    let mut last = read_once(before, deadline);
    let settled_by = deadline.min(Instant::now() + SETTLE_FOR);
    while Instant::now() + SETTLE < settled_by {
        std::thread::sleep(SETTLE);
        let now = read_once(before, settled_by);
        // A worker that answered once and not in time now keeps its count.
        let now: Vec<_> = now.iter().zip(&last).map(|(n, l)| n.or(*l)).collect();
        if now == last {
            break;
        }
        last = now;
    }
    last
}

const SETTLE: Duration = Duration::from_millis(25);
const SETTLE_FOR: Duration = Duration::from_millis(200);

fn read_once(before: &[Baseline], deadline: Instant) -> Vec<Option<(u64, u64)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = before
            .iter()
            .map(|b| match *b {
                Baseline::Counted { stats, .. } => Some(s.spawn(move || {
                    let st = stats_retried(stats, deadline)?;
                    Some((st.compile_ok?, st.compile_error.unwrap_or(0)))
                })),
                Baseline::Uncounted => None,
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.and_then(|h| h.join().ok().flatten()))
            .collect()
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
