//! The build's jobserver, owned by us: a FIFO of tokens (one byte each)
//! that GNU make and ninja read before starting a job and write back
//! after. Every client also runs one job without a token, so a build of
//! N jobs gets N − 1 tokens. Capacity that grows adds tokens; capacity
//! that shrinks is taken back by reading tokens as they come back and
//! holding them: a running job is never interrupted.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// How the client is told where the jobserver is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// GNU make 4.2 and 4.3: `--jobserver-auth=R,W`, descriptors it
    /// inherits (the shell opens the FIFO for it).
    Pipe,
    /// GNU make 4.4 and later, ninja 1.13 and later:
    /// `--jobserver-auth=fifo:PATH`.
    Fifo,
}

pub struct Jobserver {
    pub path: PathBuf,
    pub style: Style,
    fd: Arc<OwnedFd>,
    state: Arc<(Mutex<Counts>, Condvar)>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Tokens written, in all.
    issued: u32,
    /// Tokens read back and held (capacity taken back).
    held: u32,
    /// Tokens wanted in circulation now.
    want: u32,
    /// The taker is in a blocking read.
    reading: bool,
}

impl Counts {
    fn circulating(&self) -> u32 {
        self.issued - self.held
    }
}

fn lock(m: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open the FIFO at `c` with `flags` (never following a link); ours, so
/// close-on-exec unless `flags` is for the build (see `for_command`).
fn open(c: &CString, flags: libc::c_int) -> Result<OwnedFd, String> {
    // SAFETY: opens a NUL-terminated path; the descriptor is owned here.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_NOFOLLOW) };
    if fd < 0 {
        return Err(format!(
            "cannot open the jobserver FIFO: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: a descriptor we just opened.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The FIFO at `path` opened for a command to inherit (make 4.3 takes
/// descriptors, not a path): read-write, so that opening cannot block,
/// and not close-on-exec.
pub fn for_command(path: &str) -> Result<OwnedFd, String> {
    let c = CString::new(path).map_err(|_| "a jobserver path with a NUL byte".to_string())?;
    open(&c, libc::O_RDWR)
}

impl Jobserver {
    /// Make the FIFO at `path` with `tokens` in it.
    pub fn create(path: &Path, style: Style, tokens: u32) -> Result<Jobserver, String> {
        let c = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| "a jobserver path with a NUL byte".to_string())?;
        let fd = Arc::new(OwnedFd::from(crate::sys::fifo(path).map_err(|e| {
            format!("cannot make the jobserver FIFO {}: {e}", path.display())
        })?));
        let blocking = open(&c, libc::O_RDWR | libc::O_CLOEXEC)?;
        let state = Arc::new((Mutex::new(Counts::default()), Condvar::new()));
        let (st, w) = (Arc::clone(&state), Arc::clone(&fd));
        // The taker: a token that make or ninja returns is taken the
        // moment it is written, while capacity is owed back. A poll
        // between rounds would lose nearly every race to the client,
        // which reads its next token right after writing one back.
        std::thread::Builder::new()
            .name("tokens".into())
            .stack_size(64 * 1024)
            .spawn(move || take(&st, &blocking, &w))
            .map_err(|e| format!("cannot start the jobserver's thread: {e}"))?;
        let js = Jobserver {
            path: path.to_path_buf(),
            style,
            fd,
            state,
        };
        js.set(tokens);
        Ok(js)
    }

    /// Tokens out there now: in the FIFO or held by the build's jobs.
    pub fn circulating(&self) -> u32 {
        lock(&self.state.0).circulating()
    }

    /// Aim for `tokens` in circulation: release held ones or write new
    /// ones now; what is over is taken back as it comes free.
    pub fn set(&self, tokens: u32) {
        let mut c = lock(&self.state.0);
        c.want = tokens;
        while c.circulating() < c.want && write_one(&self.fd) {
            if c.held > 0 {
                c.held -= 1;
            } else {
                c.issued += 1;
            }
        }
        while c.circulating() > c.want && read_one(&self.fd) {
            c.held += 1;
        }
        self.state.1.notify_all();
    }

    /// At the end of the build: read every token back. Returns (tokens
    /// returned, tokens that should have been).
    pub fn count_back(&self) -> (u32, u32) {
        let mut c = lock(&self.state.0);
        c.want = u32::MAX; // the taker takes no more
        if c.reading {
            // Wake it with a token of its own, which it gives back.
            if write_one(&self.fd) {
                c.issued += 1;
            }
            drop(c);
            std::thread::sleep(std::time::Duration::from_millis(20));
            c = lock(&self.state.0);
        }
        let expected = c.circulating();
        let mut got = 0;
        while read_one(&self.fd) {
            got += 1;
        }
        (got.min(expected), expected)
    }
}

/// The taker's loop: while more tokens circulate than wanted, block in a
/// read; hold what it gets, or give it back when no longer owed.
fn take(state: &(Mutex<Counts>, Condvar), blocking: &OwnedFd, nonblocking: &OwnedFd) {
    loop {
        let mut c = lock(&state.0);
        while c.circulating() <= c.want {
            c = state.1.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        c.reading = true;
        drop(c);
        let got = read_one(blocking);
        let mut c = lock(&state.0);
        c.reading = false;
        if got {
            if c.circulating() > c.want {
                c.held += 1;
            } else {
                let _ = write_one(nonblocking);
            }
        }
    }
}

fn write_one(fd: &OwnedFd) -> bool {
    // SAFETY: writes one byte from a static to our descriptor.
    unsafe { libc::write(fd.as_raw_fd(), b"+".as_ptr().cast(), 1) == 1 }
}

fn read_one(fd: &OwnedFd) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: reads at most one byte into a local buffer.
    unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) == 1 }
}

impl Drop for Jobserver {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The client a build command is, when it is one: GNU make from 4.2 (the
/// first with `--jobserver-auth`) or ninja from 1.13, told by what
/// `PROGRAM --version` printed, not by the name alone.
pub fn style_of(version_output: &str) -> Option<Style> {
    let first = version_output.lines().next()?.trim();
    let number = |s: &str| -> Option<(u32, u32)> {
        let mut it = s.split(|c: char| !c.is_ascii_digit());
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    if let Some(v) = first.strip_prefix("GNU Make ") {
        return match number(v)? {
            (4, 4..) | (5.., _) => Some(Style::Fifo),
            (4, 2..=3) => Some(Style::Pipe),
            _ => None,
        };
    }
    // ninja prints its version alone: "1.13.1", "1.13.2.git.kitware...".
    if first.starts_with(|c: char| c.is_ascii_digit()) && !first.contains(' ') {
        return match number(first)? {
            (1, 13..) | (2.., _) => Some(Style::Fifo),
            _ => None,
        };
    }
    None
}

/// MAKEFLAGS for the build: the user's flags with `-j` (and, for a FIFO,
/// the auth) added; `None` when the user's MAKEFLAGS already names a
/// jobserver or a job count (we are inside someone's make: theirs rules).
pub fn makeflags(user: &str, js: &Jobserver) -> Option<String> {
    let has_j = user.split_whitespace().any(|w| {
        w.starts_with("--jobserver")
            || (w.starts_with('-') && !w.starts_with("--") && {
                // Single-letter flags, as make writes them: "-j", "-kj4", "j".
                w[1..].contains('j')
            })
    }) || user
        .split_whitespace()
        .next()
        .is_some_and(|w| !w.starts_with('-') && w.contains('j'));
    if has_j {
        return None;
    }
    let lead = if user.trim().is_empty() {
        String::new()
    } else {
        format!("{} ", user.trim())
    };
    Some(match js.style {
        Style::Pipe => format!("{lead}-j"),
        Style::Fifo => format!("{lead}-j --jobserver-auth=fifo:{}", js.path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_told_by_their_version() {
        assert_eq!(
            style_of("GNU Make 4.3\nBuilt for x86_64"),
            Some(Style::Pipe)
        );
        assert_eq!(style_of("GNU Make 4.4.1\n"), Some(Style::Fifo));
        assert_eq!(style_of("GNU Make 4.1\n"), None);
        assert_eq!(
            style_of("1.13.2.git.kitware.jobserver-pipe-1\n"),
            Some(Style::Fifo)
        );
        assert_eq!(style_of("1.11.1\n"), None);
        assert_eq!(style_of("cargo 1.95.0\n"), None);
        assert_eq!(style_of(""), None);
    }

    #[test]
    fn tokens_follow_the_capacity_and_come_back() {
        let dir = std::env::temp_dir().join(format!("js-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        let js = Jobserver::create(&dir, Style::Fifo, 5).unwrap();
        assert_eq!(js.circulating(), 5);
        js.set(2); // all free: taken back at once
        assert_eq!(js.circulating(), 2);
        js.set(7);
        assert_eq!(js.circulating(), 7);
        assert_eq!(js.count_back(), (7, 7));
        assert_eq!(
            makeflags("-k", &js).as_deref(),
            Some(format!("-k -j --jobserver-auth=fifo:{}", dir.display()).as_str())
        );
        assert_eq!(makeflags(" -j4 --jobserver-auth=3,4", &js), None);
        assert_eq!(makeflags("kj", &js), None);
        drop(js);
        assert!(!dir.exists());
    }
}
