//! Shared test support: the real distccd on free loopback ports, the built
//! binary run with a clean environment, and a fake stats server for the
//! replies a real distccd cannot be made to send.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_distcc-auto");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
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
            let allow = if listen.contains(':') {
                "::1/128"
            } else {
                "127.0.0.1/32"
            };
            let child = Command::new("distccd")
                .args([
                    "--daemon",
                    "--no-detach",
                    "--log-stderr",
                    "--listen",
                    listen,
                    "--allow",
                    allow,
                ])
                .args([
                    "--port",
                    &port.to_string(),
                    "--stats",
                    "--stats-port",
                    &stats_port.to_string(),
                ])
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
            if d.wait_ready(listen) {
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

    fn wait_ready(&mut self, listen: &str) -> bool {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if stats_text(listen, self.stats_port).contains("</distccstats>") {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
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

    /// The DISTCC_AUTO_HOSTS entry for this daemon.
    pub fn entry(&self) -> String {
        format!("127.0.0.1:{}:{}", self.port, self.stats_port)
    }
}

impl Drop for Distccd {
    fn drop(&mut self) {
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

fn stats_text(host: &str, port: u16) -> String {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The binary with every DISTCC_* variable removed, plus `vars`.
pub fn cmd(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("DISTCC") {
            c.env_remove(k);
        }
    }
    c.env("DISTCC_DIR", std::env::temp_dir());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
    pub what: String,
}

impl Run {
    /// A failure message that shows everything.
    pub fn show(&self) -> String {
        format!(
            "{}\nexit {}\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

pub fn run_cmd(mut c: Command) -> Run {
    let what = format!("{c:?}");
    let start = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("run");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        took: start.elapsed(),
        what,
    }
}

pub fn run(args: &[&str], vars: &[(&str, &str)]) -> Run {
    run_cmd(cmd(args, vars))
}

/// What a fake stats server does with each connection.
pub type Behaviour = Arc<dyn Fn(TcpStream) + Send + Sync>;

/// FAKE: a stats server on 127.0.0.1 for replies that a real distccd
/// cannot be made to send (garbage, stalls, trickles, huge or truncated
/// replies, values Debian's 3.4 build never reports such as dcc_free_mem).
/// Each test that uses it says why. It stops when dropped.
pub struct FakeStats {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl FakeStats {
    pub fn new(behaviour: impl Fn(TcpStream) + Send + Sync + 'static) -> FakeStats {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let behaviour: Behaviour = Arc::new(behaviour);
        let s = Arc::clone(&stop);
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let b = Arc::clone(&behaviour);
                        thread::spawn(move || b(conn));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeStats { port, stop }
    }

    /// A server that sends `reply` and closes.
    pub fn replying(reply: impl Into<Vec<u8>>) -> FakeStats {
        let reply = reply.into();
        FakeStats::new(move |mut c| {
            let _ = c.write_all(&reply);
            let _ = c.shutdown(Shutdown::Both);
        })
    }
}

impl Drop for FakeStats {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A stats reply shaped like distccd's, with the given fields.
pub fn stats_reply(fields: &str) -> String {
    format!(
        "HTTP/1.0 200 OK\nContent-Type: text/plain\nConnection: close\n\nargv /distccd\n<distccstats>\ndcc_tcp_accept 0\n{fields}</distccstats>\n"
    )
}

/// A listener that accepts connections and never answers: a job port that
/// is open, for pairing with a fake stats port.
pub struct OpenPort {
    pub port: u16,
    _l: TcpListener,
}

impl OpenPort {
    pub fn new() -> OpenPort {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        OpenPort {
            port: l.local_addr().unwrap().port(),
            _l: l,
        }
    }
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
