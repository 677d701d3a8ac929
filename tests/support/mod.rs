//! Shared test support: the real distccd on free loopback ports, the built
//! binary run with a clean environment, and a fake stats server for the
//! replies a real distccd cannot be made to send.

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

/// No DISTCC_* variable of the test runner's reaches `c`, and every run
/// waits for every worker unless a test asks otherwise: the memory of dead
/// workers would make one test's timeout the next one's.
pub fn without_distcc_vars(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("DISTCC") {
            c.env_remove(k);
        }
    }
    c.env("DISTCC_AUTO_BACKOFF_PERIOD", "0");
}

/// The binary with every DISTCC_* variable removed, plus `vars`.
pub fn cmd(args: &[&str], vars: &[(&str, &str)]) -> Command {
    cmd_in(None, args, vars)
}

/// The same, inside a network namespace when one is given.
pub fn cmd_in(ns: Option<&Netns>, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut c = match ns {
        Some(ns) => ns.cmd(BIN),
        None => Command::new(BIN),
    };
    c.args(args);
    without_distcc_vars(&mut c);
    c.env("DISTCC_DIR", std::env::temp_dir());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

/// `cmd` as another user (`nobody`) runs it: from a copy of the binary in
/// a directory that user can enter (the checkout may be in one it cannot,
/// such as under /root or a mode-0700 directory). Keep the `TempDir`.
pub fn cmd_as_nobody(args: &[&str], vars: &[(&str, &str)]) -> (Command, TempDir) {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let t = TempDir::new("nobody");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = t.path().join("distcc-auto");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = Command::new(&bin);
    c.args(args);
    without_distcc_vars(&mut c);
    c.env("DISTCC_DIR", t.path()).current_dir(t.path());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).uid(65534).gid(65534);
    (c, t)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
    pub what: String,
}

impl Run {
    /// The cells of line `n` of stdout (0 is a table's header).
    pub fn cells(&self, n: usize) -> Vec<&str> {
        self.stdout
            .lines()
            .nth(n)
            .unwrap_or_else(|| panic!("no line {n}: {}", self.show()))
            .split_whitespace()
            .collect()
    }

    /// The `hosts` table row of `entry` (the first stdout line it starts),
    /// with the indented lines below it (address, reason), joined by
    /// spaces: what a person reads as that worker's row.
    pub fn row(&self, entry: &str) -> String {
        let mut lines = self.stdout.lines().skip_while(|l| !l.starts_with(entry));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("no row {entry}: {}", self.show()));
        let mut row = format!("{first} ");
        for more in lines.take_while(|l| l.starts_with("    ")) {
            row.push_str(more.trim());
            row.push(' ');
        }
        row
    }

    /// Assert the exit status; on failure show `what` and the whole run.
    #[track_caller]
    pub fn expect(&self, code: i32, what: std::fmt::Arguments) -> &Run {
        assert_eq!(self.code, code, "{what}{}", self.show());
        self
    }

    /// The value `env` exports for `name` (unquoted: the values tests
    /// read have no quotes inside).
    #[track_caller]
    pub fn export(&self, name: &str) -> String {
        let prefix = format!("export {name}=");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name}\n{}", self.show()))
            .trim_end_matches(';')
            .trim_matches('\'')
            .to_string()
    }

    /// The peak memory (VmHWM, KiB) that `-v` traces: the binary's own, where
    /// a parent's wait4 rusage would count the process it was forked from.
    #[track_caller]
    pub fn peak_kib(&self) -> u64 {
        self.stderr
            .split("peak memory ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no peak memory in trace: {}", self.show()))
    }

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
    /// A job port that accepts and never answers, to pair with it.
    pub job_port: u16,
    _job: TcpListener,
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
        let job = TcpListener::bind("127.0.0.1:0").unwrap();
        let job_port = job.local_addr().unwrap().port();
        FakeStats {
            port,
            job_port,
            _job: job,
            stop,
        }
    }

    /// The DISTCC_AUTO_HOSTS entry of this fake worker.
    pub fn entry(&self) -> String {
        format!("127.0.0.1:{}:{}", self.job_port, self.port)
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

/// Why namespace tests cannot run here, if they cannot.
pub fn netns_unavailable() -> Option<String> {
    if !is_root() {
        return Some("needs root to create network namespaces (ip netns add)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2 (ip)".into());
    }
    None
}

/// Say that a test is skipped and why, on the real stderr: the test
/// harness captures `eprintln!`, but not a direct write.
/// The test is named by its thread: the harness names each test's thread
/// after the test.
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = std::io::stderr().write_all(format!("SKIP {test}: {why}\n").as_bytes());
}

/// Skip a test, saying why, when namespaces (root, iproute2) are not
/// available. Such tests are also `#[ignore = "needs root: ..."]`, so that
/// a run without root reports them as ignored with the reason.
#[macro_export]
macro_rules! need_netns {
    () => {
        if let Some(why) = $crate::support::netns_unavailable() {
            $crate::support::skip(&why);
            return;
        }
    };
}

/// A network namespace made by the test, with its loopback up; deleted on
/// drop. Its name is unique to this process.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = format!("dauto-{}-{n}-{tag}", std::process::id());
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// A TCP listener inside the namespace that accepts and never speaks.
    pub fn listen(&self, addr: &str) -> TcpListener {
        let addr = addr.to_string();
        self.inside(move || TcpListener::bind(addr).unwrap())
    }

    /// The real distccd inside the namespace, with --stats.
    pub fn distccd(&self, listen: &str, port: u16, stats: u16, jobs: u32, log: Stdio) -> Daemon {
        let mut c = self.cmd("distccd");
        c.args([
            "--daemon",
            "--no-detach",
            "--log-stderr",
            "--listen",
            listen,
        ])
        .args(["--allow", "127.0.0.1/32", "--allow", "10.231.0.0/24"])
        .args([
            "--port",
            &port.to_string(),
            "--stats",
            "--stats-port",
            &stats.to_string(),
        ])
        .args(["--jobs", &jobs.to_string()])
        .stderr(log);
        Daemon::spawn(c, "distccd")
    }

    /// A command that runs inside the namespace.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Netns {
    /// A file that `ip netns exec` puts over /etc/FILE inside this
    /// namespace only (resolv.conf, hosts, nsswitch.conf).
    pub fn etc(&self, file: &str, text: &str) {
        let dir = format!("/etc/netns/{}", self.name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{file}"), text).unwrap();
    }

    /// A UDP socket inside the namespace that reads and never answers: a
    /// resolver that hangs.
    pub fn mute_udp(&self, addr: &str) -> std::net::UdpSocket {
        let addr = addr.to_string();
        self.inside(move || std::net::UdpSocket::bind(addr).unwrap())
    }

    /// Run `f` in a thread that has entered the namespace: a socket keeps
    /// the namespace it was made in.
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        thread::spawn(move || {
            enter_netns(&path);
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
    }
}

/// Two namespaces joined by a veth pair: `client` (10.231.0.1) and
/// `worker` (10.231.0.2). The addresses exist only inside them.
pub struct Lan {
    pub client: Netns,
    pub worker: Netns,
}

pub const CLIENT_IP: &str = "10.231.0.1";
pub const WORKER_IP: &str = "10.231.0.2";

impl Lan {
    pub fn new() -> Lan {
        let (client, worker) = (Netns::new("c"), Netns::new("w"));
        // veth names are at most 15 characters and live in the root
        // namespace for a moment, so make them unique.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (
            format!("dac{}x{n}", std::process::id() % 100000),
            format!("daw{}x{n}", std::process::id() % 100000),
        );
        sh(&[
            "ip",
            "link",
            "add",
            &a,
            "netns",
            &client.name,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            &worker.name,
        ]);
        for (ns, dev, ip) in [(&client, &a, CLIENT_IP), (&worker, &b, WORKER_IP)] {
            sh(&[
                "ip",
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                dev,
            ]);
            sh(&["ip", "-n", &ns.name, "link", "set", dev, "up"]);
        }
        Lan { client, worker }
    }
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

/// Listeners on loopback that accept and never speak: FAKE job ports for
/// many workers (a real distccd listens on one port), each paired in
/// `entries` with the real stats port `stats`.
pub fn fake_job_ports(n: usize, stats: u16) -> (Vec<TcpListener>, String) {
    let jobs: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let entries: Vec<String> = jobs
        .iter()
        .map(|l| format!("127.0.0.1:{}:{stats}", l.local_addr().unwrap().port()))
        .collect();
    (jobs, entries.join(" "))
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

/// A worker in its own namespace: a real sshd on WORKER_IP:2222 and a real
/// distccd with --stats listening only on the worker's 127.0.0.1 (reachable
/// only through a tunnel), plus a second distccd on WORKER_IP:4632/4633 for
/// plain TCP. The client side gets an ssh config (`ssh_command()`), a key,
/// and a known_hosts file.
pub struct SshWorker {
    pub lan: Lan,
    pub dir: TempDir,
    _daemons: Vec<Daemon>,
}

pub const SSH_PORT: u16 = 2222;

impl SshWorker {
    pub fn start() -> SshWorker {
        let lan = Lan::new();
        let dir = TempDir::new("ssh");
        let d = dir.path().display().to_string();
        for key in ["hostkey", "userkey", "otherkey", "otherhostkey"] {
            sh(&[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                key,
                "-f",
                &format!("{d}/{key}"),
            ]);
        }
        std::fs::copy(format!("{d}/userkey.pub"), format!("{d}/authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap(); // sshd's privilege separation directory
        std::fs::write(
            format!("{d}/sshd_config"),
            format!(
                "ListenAddress {WORKER_IP}:{SSH_PORT}\nHostKey {d}/hostkey\nAuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nAllowTcpForwarding yes\nPidFile none\nMaxStartups 100:30:200\n"
            ),
        )
        .unwrap();
        std::fs::write(
            format!("{d}/ssh_config"),
            format!(
                "Host worker\n  HostName {WORKER_IP}\n  Port {SSH_PORT}\n  User root\n  IdentityFile {d}/userkey\n\
                 Host *\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n"
            ),
        )
        .unwrap();
        let mut daemons = Vec::new();
        let mut c = lan.worker.cmd("/usr/sbin/sshd");
        c.args(["-D", "-e", "-f", &format!("{d}/sshd_config")])
            .stderr(std::fs::File::create(format!("{d}/sshd.log")).unwrap());
        daemons.push(Daemon::spawn(c, "sshd"));
        for (listen, port, stats) in [("127.0.0.1", 3632, 3633), (WORKER_IP, 4632, 4633)] {
            let log = std::fs::File::create(format!("{d}/distccd-{port}.log")).unwrap();
            daemons.push(lan.worker.distccd(listen, port, stats, 3, log.into()));
        }
        let w = SshWorker {
            lan,
            dir,
            _daemons: daemons,
        };
        wait_for(10, "sshd and distccd in the worker namespace", || {
            w.stats(3633).contains("</distccstats>")
                && w.stats(4633).contains("</distccstats>")
                && w.ssh_port_open()
        });
        w
    }

    fn ssh_port_open(&self) -> bool {
        self.lan
            .worker
            .cmd("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/{WORKER_IP}/{SSH_PORT}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The worker's distccd stats, read inside its namespace: 3633 on its
    /// loopback, 4633 (the TCP daemon) on its veth address.
    pub fn stats(&self, port: u16) -> String {
        let host = if port == 4633 { WORKER_IP } else { "127.0.0.1" };
        let script = format!("exec 3<>/dev/tcp/{host}/{port} && cat <&3");
        let out = self
            .lan
            .worker
            .cmd("timeout")
            .args(["2", "bash", "-c", &script])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn compile_ok(&self, port: u16) -> u64 {
        let s = self.stats(port);
        s.lines()
            .find_map(|l| l.strip_prefix("dcc_compile_ok "))
            .unwrap_or_else(|| panic!("no stats: {s:?}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// How many compiles the daemon on `port` has done since `before`,
    /// once that reaches `want` or stops: distccd counts a compile only
    /// after it has replied.
    pub fn compiled(&self, port: u16, before: u64, want: u64) -> u64 {
        settled(want, || self.compile_ok(port) - before)
    }

    /// Wait (at most 3 s) until no ssh process of this worker is left;
    /// fail naming `what` if one is.
    #[track_caller]
    pub fn assert_no_ssh_left(&self, what: &str) {
        let until = Instant::now() + Duration::from_secs(3);
        while !self.ssh_processes().is_empty() && Instant::now() < until {
            thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            self.ssh_processes(),
            Vec::<String>::new(),
            "{what}: ssh processes left behind"
        );
    }

    /// How many logins the worker's sshd has accepted.
    pub fn logins(&self) -> usize {
        std::fs::read_to_string(self.path("sshd.log"))
            .unwrap()
            .matches("Accepted publickey")
            .count()
    }

    /// An ssh_config of a user who shares connections for ever
    /// (`ControlMaster auto`, `ControlPersist yes`, sockets in `sockets`)
    /// on top of this worker's, and DISTCC_AUTO_SSH_COMMAND that reaches
    /// the worker through itself as a jump host with it. The jump's ssh
    /// gets none of distcc-auto's options (hence `accept-new` here).
    pub fn jump_with_lasting_masters(&self, sockets: &Path) -> String {
        let own = self.dir.path().join("ssh_config_shared");
        std::fs::write(
            &own,
            format!(
                "Host *\n  ControlMaster auto\n  ControlPath {}/%C\n  ControlPersist yes\n  \
                 StrictHostKeyChecking accept-new\n{}",
                sockets.display(),
                std::fs::read_to_string(self.path("ssh_config")).unwrap()
            ),
        )
        .unwrap();
        format!("ssh -F {} -o ProxyJump=worker", own.display())
    }

    /// DISTCC_AUTO_SSH_COMMAND for the client.
    pub fn ssh_command(&self) -> String {
        format!("ssh -F {}/ssh_config", self.dir.path().display())
    }

    /// Live ssh processes that use this worker's config: ours to clean up.
    pub fn ssh_processes(&self) -> Vec<String> {
        processes(&format!("{}/ssh_config", self.dir.path().display()))
            .into_iter()
            .filter(|l| !l.contains(" ps "))
            .collect()
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }
}

impl Drop for SshWorker {
    /// A safety net for a test or bench that panicked half-way: no ssh
    /// client of this worker outlives it. Passing tests have none left.
    fn drop(&mut self) {
        for line in self.ssh_processes() {
            if let Some(pid) = line
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<i32>().ok())
            {
                signal(pid, libc::SIGTERM);
            }
        }
    }
}

/// Our shell file for `sh` ("bash" or "zsh").
pub fn shell_file(sh: &str) -> String {
    root()
        .join(if sh == "bash" {
            "shell/distcc.sh"
        } else {
            "shell/distcc.zsh"
        })
        .display()
        .to_string()
}

/// `sh` (no rc files, `set -u`) that sources our shell file and then runs
/// `script`, with the test binary first on PATH and no DISTCC_* variable
/// from outside; inside `ns` when given.
pub fn shell(sh: &str, ns: Option<&Netns>, script: &str) -> Command {
    let mut c = match ns {
        Some(ns) => ns.cmd(sh),
        None => Command::new(sh),
    };
    c.args(
        if sh == "bash" {
            ["--noprofile", "--norc", "-u", "-c"]
        } else {
            ["-f", "-u", "-c", ""]
        }
        .iter()
        .filter(|a| !a.is_empty()),
    );
    c.arg(format!(". '{}'\n{script}", shell_file(sh)));
    without_distcc_vars(&mut c);
    let bin_dir = Path::new(BIN).parent().unwrap();
    c.env(
        "PATH",
        format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    c.stdin(Stdio::null());
    c
}

/// A copy of demo/ (the small C program) in a fresh directory.
pub fn demo_copy(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    for f in std::fs::read_dir(root().join("demo")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, t.path().join(f.file_name().unwrap())).unwrap();
    }
    std::fs::create_dir_all(t.path().join(".distcc")).unwrap();
    t
}
