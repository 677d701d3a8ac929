//! Shared test support, a module per fixture: `distccd` (the real
//! daemon), `run` (the built binary with a clean environment), `fake_stats`
//! (only for replies a real distccd cannot be made to send), `netns`
//! (test-made namespaces), `ssh_worker` (a real sshd), `shells` (real
//! bash, zsh and fish). Here: what they all use.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

/// `check!(run, condition)`, `check!(run, condition, "context {x}")`: an
/// assertion that shows the command, its exit status, stdout and stderr
/// when it fails.
#[allow(unused_macros)] // the bench shares this file and asserts nothing
macro_rules! check {
    ($run:expr, $cond:expr) => {
        assert!($cond, "{}", $run.show())
    };
    ($run:expr, $cond:expr, $($ctx:tt)+) => {
        assert!($cond, "{}: {}", format_args!($($ctx)+), $run.show())
    };
}

#[macro_use]
mod netns;
mod distccd;
mod fake_stats;
mod run;
mod shells;
mod slow_build;
mod ssh_worker;
mod zeroconf;

pub use distccd::*;
pub use fake_stats::*;
pub use netns::*;
pub use run::*;
pub use shells::*;
pub use slow_build::*;
pub use ssh_worker::*;
pub use zeroconf::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_distcc-auto");

/// The directory of the binary under test, for a PATH.
pub fn bin_dir() -> String {
    Path::new(BIN).parent().unwrap().display().to_string()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn is_root() -> bool {
    euid() == 0
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// kill(2): `pid` may be negative for a process group. The tests only
/// signal processes (and groups) that they started themselves.
pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill touches no memory of ours.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Enter the network namespace at `path` in this thread.
pub fn enter_netns(path: &str) {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(path).unwrap();
    // SAFETY: setns on a descriptor we own; affects this thread only.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}");
}

/// A fresh directory under target/, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("distcc-auto-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A directory as XDG_RUNTIME_DIR is: mode 0700.
    pub fn private(tag: &str) -> TempDir {
        use std::os::unix::fs::PermissionsExt;
        let t = TempDir::new(tag);
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        t
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port where nothing listens (bound, then closed).
pub fn closed_port() -> u16 {
    free_port()
}

/// Lines of `ps` for live processes (zombies excluded) whose command line
/// contains `needle`.
pub fn processes(needle: &str) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "pid=,stat=,args="])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .filter(|l| {
            !l.split_whitespace()
                .nth(1)
                .is_some_and(|s| s.starts_with('Z'))
        })
        .map(String::from)
        .collect()
}

/// Run a command to completion; panic with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A child process killed (with its process group) and reaped on drop.
pub struct Daemon {
    pub child: Child,
}

impl Daemon {
    pub fn spawn(mut c: Command, name: &str) -> Daemon {
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0);
        Daemon {
            child: c.spawn().unwrap_or_else(|e| panic!("{name}: {e}")),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        signal(-(self.child.id() as i32), libc::SIGTERM);
        let _ = self.child.wait();
    }
}

/// A counter read by `read` once it reaches `want`, or what it is after
/// 5 s: distccd counts a compile only after it has replied.
pub fn settled(want: u64, read: impl Fn() -> u64) -> u64 {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let now = read();
        if now >= want || Instant::now() > until {
            return now;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `check` holds, for at most `secs` seconds.
pub fn wait_for(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if check() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}
