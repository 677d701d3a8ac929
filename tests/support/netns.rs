//! Network namespaces made by the tests (root only), and skipping without.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;

use super::*;

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
        self.distccd_with(listen, port, stats, jobs, log, &[])
    }

    /// `distccd`, with more arguments.
    pub fn distccd_with(
        &self,
        listen: &str,
        port: u16,
        stats: u16,
        jobs: u32,
        log: Stdio,
        extra: &[&str],
    ) -> Daemon {
        let mut c = self.cmd("distccd");
        c.args(extra);
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
