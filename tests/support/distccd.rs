//! The real Debian distccd on free loopback ports.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

/// The real Debian distccd, with --stats, on free loopback ports. Dropping
/// it stops the daemon and its children.
pub struct Distccd {
    pub port: u16,
    pub stats_port: u16,
    child: Child,
    pub log: PathBuf,
    _dir: TempDir,
}

impl Distccd {
    pub fn start(jobs: u32) -> Distccd {
        Self::start_on("127.0.0.1", jobs)
    }

    pub fn start_on(listen: &str, jobs: u32) -> Distccd {
        let allow = if listen.contains(':') {
            "::1/128"
        } else {
            "127.0.0.1/32"
        };
        Self::start_with(listen, jobs, true, allow)
    }

    /// A daemon as Debian's init script starts it: no `--stats`. Its
    /// `stats_port` is a port where nothing listens.
    pub fn without_stats(jobs: u32) -> Distccd {
        Self::start_with("127.0.0.1", jobs, false, "127.0.0.1/32")
    }

    /// Any daemon: `stats` adds --stats; `allow` is its --allow list.
    pub fn start_with(listen: &str, jobs: u32, stats: bool, allow: &str) -> Distccd {
        assert!(
            Command::new("distccd").arg("--version").output().is_ok(),
            "distccd not found: run `sh tests/deps.sh` (Debian package distcc)"
        );
        let dir = TempDir::new("distccd");
        let log = dir.path().join("distccd.log");
        for _ in 0..20 {
            let (port, stats_port) = (free_port(), free_port());
            if port == stats_port {
                continue;
            }
            let logf = std::fs::File::create(&log).unwrap();
            let mut c = Command::new("distccd");
            if stats {
                c.args(["--stats", "--stats-port", &stats_port.to_string()]);
            }
            let child = c
                .args([
                    "--daemon",
                    "--no-detach",
                    "--log-stderr",
                    "--listen",
                    listen,
                    "--allow",
                    allow,
                ])
                .args(["--port", &port.to_string()])
                .args(["--jobs", &jobs.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(logf)
                .process_group(0)
                .spawn()
                .expect("start distccd");
            let mut d = Distccd {
                port,
                stats_port,
                child,
                log: log.clone(),
                _dir: TempDir(PathBuf::new()),
            };
            if d.wait_ready(listen, stats) {
                d._dir = dir;
                return d;
            }
            drop(d);
        }
        panic!(
            "distccd did not start; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Ready when its ports accept (a daemon whose --allow excludes us
    /// accepts, then closes).
    fn wait_ready(&mut self, listen: &str, stats: bool) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            // Listening sockets are enough: the daemon serves connections
            // made before its main loop starts.
            if self.accepts(listen) && (!stats || self.accepts_stats(listen)) {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn accepts(&self, listen: &str) -> bool {
        TcpStream::connect(sock_addr(listen, self.port)).is_ok()
    }

    fn accepts_stats(&self, listen: &str) -> bool {
        TcpStream::connect(sock_addr(listen, self.stats_port)).is_ok()
    }

    /// The daemon's own stats reply, read with a plain socket.
    pub fn stats(&self) -> String {
        stats_text("127.0.0.1", self.stats_port)
    }

    pub fn stat(&self, key: &str) -> u64 {
        let s = self.stats();
        s.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {key} in {s}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// How far `key` has grown from `before`, once it stops growing toward
    /// `want`: distccd counts a compile only after it has replied, so a
    /// single read right after a build can come too early.
    pub fn grown(&self, key: &str, before: u64, want: u64) -> u64 {
        settled(want, || self.stat(key) - before)
    }

    /// The DISTCC_AUTO_HOSTS entry for this daemon.
    pub fn entry(&self) -> String {
        format!("127.0.0.1:{}:{}", self.port, self.stats_port)
    }
}

impl Drop for Distccd {
    fn drop(&mut self) {
        signal(-(self.child.id() as i32), libc::SIGTERM);
        let _ = self.child.wait();
    }
}

fn sock_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn stats_text(host: &str, port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(sock_addr(host, port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
