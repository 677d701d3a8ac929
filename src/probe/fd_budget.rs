//! How many probes may hold sockets at once, so that a file limit costs
//! time, never workers.

use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// How many probes may hold sockets at once: what the file limit allows,
/// each probe counted at three descriptors (a socket, the resolver's, a
/// tunnel's log). The rest wait their turn within the deadline.
pub struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    pub fn for_file_limit() -> Slots {
        let limit = crate::sys::file_limit();
        let used = std::fs::read_dir("/proc/self/fd").map_or(16, |d| d.count() as u64);
        let n = (limit.saturating_sub(used + 16) / 3).max(1);
        Slots {
            free: Mutex::new(usize::try_from(n).unwrap_or(usize::MAX)),
            freed: Condvar::new(),
        }
    }

    /// Take a slot, waiting until `until` at most.
    pub fn acquire(&self, until: Instant) -> bool {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            free = self
                .freed
                .wait_timeout(free, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *free -= 1;
        true
    }

    pub fn release(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.freed.notify_one();
    }
}
