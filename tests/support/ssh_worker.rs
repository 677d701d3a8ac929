//! A worker behind a real sshd, in a namespace of its own.

use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use super::*;

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
        SshWorker::start_with(&[])
    }

    /// `start`, with more arguments for its distccds (the live-build
    /// tests' `--enable-tcp-insecure`, for their slow compiler).
    pub fn start_with(distccd_args: &[&str]) -> SshWorker {
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
            daemons.push(
                lan.worker
                    .distccd_with(listen, port, stats, 3, log.into(), distccd_args),
            );
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
