//! Following distcc's state files while the build runs (inotify, so that
//! no compile is missed however short), and keeping those of this build
//! only: a client is ours when its environment names this build's
//! DISTCC_DIR (read once, when its file appears). Other builds, and
//! distccmon, see the same files untouched: we only read them.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::account::binstate;
use crate::account::ledger::{Ledger, Micros};
use crate::trace;

/// One inotify event: its mask and the file's name.
pub fn events(buf: &[u8]) -> Vec<(u32, &[u8])> {
    // struct inotify_event: int wd; u32 mask, cookie, len; char name[len].
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let word = |i: usize| u32::from_ne_bytes(buf[i..i + 4].try_into().unwrap_or_default());
        let (mask, len) = (word(at + 4), word(at + 12) as usize);
        let Some(name) = buf.get(at + 16..at + 16 + len) else {
            break;
        };
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        out.push((mask, &name[..end]));
        at += 16 + len;
    }
    out
}

pub struct Inner {
    /// Clock ticks since boot at the build's time 0.
    boot: Option<u64>,
    dir: PathBuf,
    pub ledger: Ledger,
    /// `DISTCC_DIR=<this build's>` and its NUL: what our clients carry.
    needle: Vec<u8>,
    /// Clients seen, and whether they are this build's.
    ours: HashMap<u32, bool>,
    /// The kernel's queue overflowed: some records were lost.
    lost: bool,
}

/// The follower: a thread that reads the events as they come, and
/// `drain` for whoever needs the ledger up to now.
pub struct Follow {
    /// The inotify descriptor: polled without the lock, read under it.
    fd: OwnedFd,
    inner: Mutex<Inner>,
    t0: Instant,
    stop: AtomicBool,
}

impl Follow {
    /// Follow `state` (the user's distcc state directory) for the clients
    /// of the build whose DISTCC_DIR is `build_dir`.
    pub fn start(state: &Path, build_dir: &Path) -> Result<Arc<Follow>, String> {
        let fd = crate::sys::watch_dir(state)
            .map_err(|e| format!("cannot follow {}: {e}", state.display()))?;
        let mut needle = b"DISTCC_DIR=".to_vec();
        needle.extend_from_slice(build_dir.as_os_str().as_encoded_bytes());
        needle.push(0);
        let f = Arc::new(Follow {
            fd,
            inner: Mutex::new(Inner {
                boot: ticks_since_boot(),
                dir: state.to_path_buf(),
                needle,
                ours: HashMap::new(),
                ledger: Ledger::new(),
                lost: false,
            }),
            t0: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let bg = Arc::clone(&f);
        std::thread::Builder::new()
            .name("follow".into())
            .stack_size(256 * 1024)
            .spawn(move || bg.run())
            .map_err(|e| format!("cannot start following the build: {e}"))?;
        Ok(f)
    }

    /// The ledger as it is (nothing queued taken in).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Microseconds since the follower started (the build's time 0).
    pub fn now(&self) -> Micros {
        Micros::try_from(self.t0.elapsed().as_micros()).unwrap_or(Micros::MAX)
    }

    fn run(&self) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.stop.load(Ordering::Relaxed) {
            let idle = i32::try_from(IDLE.as_millis()).unwrap_or(200);
            if crate::sys::readable([self.fd.as_raw_fd()], idle)[0] {
                // A moment for more to queue: one wake-up takes in many
                // changes, and wake-ups are most of what following costs
                // (1 ms: 1.25% of a core on 400 tiny compiles, 5 ms: 1.0%,
                // 10 ms: 0.7%). A client lives longer than this (it
                // preprocesses and compiles), so it is still seen and told
                // ours; one over before a record named its worker counts
                // as remote all the same (`Placement::Unseen`).
                std::thread::sleep(BATCH);
                drop(self.drain_with(&mut buf));
            }
        }
    }

    /// Take in every event queued now; then the ledger holds everything
    /// every client that has ended did (it removed its file before it
    /// ended, and so before the build did). Returns the ledger.
    fn drain(&self) -> MutexGuard<'_, Inner> {
        self.drain_with(&mut vec![0u8; 64 * 1024])
    }

    fn drain_with(&self, buf: &mut [u8]) -> MutexGuard<'_, Inner> {
        let mut g = self.lock();
        loop {
            let n = match crate::sys::read_now(&self.fd, buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let t = self.now();
            // Read each file once per batch: reads made now all see the
            // same, latest record.
            let mut read = Vec::new();
            for (mask, name) in events(&buf[..n]) {
                g.take(t, mask, name, &mut read);
            }
        }
        g
    }

    /// The ledger, with everything queued taken in (see `drain`).
    pub fn with<R>(&self, f: impl FnOnce(&mut Ledger, Micros, bool) -> R) -> R {
        let mut g = self.drain();
        let t = self.now();
        let lost = g.lost;
        f(&mut g.ledger, t, lost)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Inner {
    fn take(&mut self, t: Micros, mask: u32, name: &[u8], read: &mut Vec<u32>) {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            self.lost = true;
            return;
        }
        let Some(pid) = binstate::pid_of(name) else {
            return;
        };
        if mask & libc::IN_DELETE != 0 {
            if self.ours.remove(&pid) == Some(true) {
                self.ledger.end(t, pid);
            }
            return;
        }
        let ours = match self.ours.get(&pid) {
            Some(&o) => o,
            None => {
                let o = carries(pid, &self.needle);
                trace!(
                    "distcc client {pid}: {}",
                    if o { "ours" } else { "not ours" }
                );
                if let Some(s) = o.then(|| started(pid, self.boot)).flatten() {
                    self.ledger.started(s, pid);
                }
                self.ours.insert(pid, o);
                o
            }
        };
        if ours && mask & libc::IN_CLOSE_WRITE != 0 && !read.contains(&pid) {
            read.push(pid);
            use std::os::unix::ffi::OsStrExt;
            let path = self.dir.join(std::ffi::OsStr::from_bytes(name));
            if let Some(task) = read_record(&path).filter(|t| t.pid == pid) {
                self.ledger.note(t, &task);
            }
        }
    }
}

/// The kernel's clock ticks per second (USER_HZ).
fn hz() -> u64 {
    // SAFETY: sysconf reads a constant.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&h| h > 0)
        .unwrap_or(100)
}

/// Now, in clock ticks since boot (/proc/uptime).
fn ticks_since_boot() -> Option<u64> {
    let up = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = up.split_whitespace().next()?.parse().ok()?;
    Some((secs * hz() as f64) as u64)
}

/// When process `pid` started, on the build's clock (`boot`: the ticks
/// at its time 0): to the tick (10 ms), 0 if before.
fn started(pid: u32, boot: Option<u64>) -> Option<Micros> {
    let start = crate::sys::stat(pid)?.start;
    Some(start.saturating_sub(boot?) * 1_000_000 / hz())
}

/// Whether process `pid`'s environment holds `needle` as a whole entry.
fn carries(pid: u32, needle: &[u8]) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    env.starts_with(needle)
        || env
            .windows(needle.len() + 1)
            .any(|w| w[0] == 0 && &w[1..] == needle)
}

/// One state file's record, if it holds one whole now.
fn read_record(path: &Path) -> Option<binstate::Task> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let mut b = [0u8; binstate::SIZE + 1];
    let mut n = 0;
    while n < b.len() {
        match f.read(&mut b[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    binstate::parse(&b[..n])
}

/// Poll interval of the follower thread when nothing comes (it wakes on
/// events at once; this only bounds how late it sees `stop`).
const IDLE: Duration = Duration::from_millis(200);

/// How long the follower lets changes gather after the first one.
const BATCH: Duration = Duration::from_millis(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inotify_events_read_with_their_names() {
        let mut b = Vec::new();
        for (mask, name) in [
            (libc::IN_CREATE, &b"binstate_12"[..]),
            (libc::IN_DELETE, b"x"),
        ] {
            b.extend_from_slice(&1i32.to_ne_bytes());
            b.extend_from_slice(&mask.to_ne_bytes());
            b.extend_from_slice(&0u32.to_ne_bytes());
            let len = (name.len() + 1).next_multiple_of(4);
            b.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
            let mut padded = name.to_vec();
            padded.resize(len, 0);
            b.extend_from_slice(&padded);
        }
        let got = events(&b);
        assert_eq!(
            got,
            vec![
                (libc::IN_CREATE, &b"binstate_12"[..]),
                (libc::IN_DELETE, &b"x"[..])
            ]
        );
        // A cut-off event is not read past the buffer.
        assert_eq!(events(&b[..20]).len(), 0);
    }

    #[test]
    fn only_a_whole_environment_entry_counts() {
        let me = std::process::id();
        let path = std::env::var("PATH").unwrap_or_default();
        assert!(carries(me, format!("PATH={path}\0").as_bytes()));
        assert!(!carries(me, format!("ATH={path}\0").as_bytes()));
    }
}
