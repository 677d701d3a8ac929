//! Reading the workers' compile counters after a build (`tally`): every
//! counted worker at once, bounded by one deadline.

use std::time::Instant;

use crate::render::tally::Baseline;

/// Read every counted worker's counters again, at once, by `deadline`,
/// until two reads 25 ms apart agree: distccd counts a compile only after
/// it has sent the object back, so the last ones may still be on the way.
pub fn read(before: &[Baseline], deadline: Instant) -> Vec<Option<(u64, u64)>> {
    let mut last = read_once(before, deadline);
    while Instant::now() + SETTLE < deadline {
        std::thread::sleep(SETTLE);
        let now = read_once(before, deadline);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

const SETTLE: std::time::Duration = std::time::Duration::from_millis(25);

fn read_once(before: &[Baseline], deadline: Instant) -> Vec<Option<(u64, u64)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = before
            .iter()
            .map(|b| match *b {
                Baseline::Counted { stats, .. } => Some(s.spawn(move || {
                    let st = super::ask::stats_at(stats, deadline).ok()?;
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
