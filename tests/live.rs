//! Live builds: while a real build runs (GNU make 4.3 from Debian, make
//! 4.4 and ninja 1.13 from PyPI, installed by tests/deps.sh), the workers
//! and the job count follow the cluster. Real distccd workers run in a
//! test-made namespace; a dead worker is an iptables DROP there.
//!
//! Every compile takes a second on purpose (`slowcc`: gcc after a sleep,
//! never for preprocessing), so that compiles are in flight when a worker
//! dies, and a wrapper (`job.sh`) logs when each job starts and ends, so
//! that the test sees how many jobs make or ninja ran at once.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::support::*;

const TOOLS: &str = "/opt/distcc-auto-tools/bin";
const FILES: usize = 40;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A project of `FILES` C files, with a Makefile and a build.ninja whose
/// every job runs `job.sh`, and `slowcc` beside them.
fn project() -> TempDir {
    let t = TempDir::new("live");
    let d = t.path();
    let mut ninja = String::from("rule cc\n  command = ./job.sh $in $out\n");
    for i in 1..=FILES {
        std::fs::write(
            d.join(format!("f{i}.c")),
            format!("int f{i}(int x) {{ return x * {i}; }}\n"),
        )
        .unwrap();
        ninja.push_str(&format!("build f{i}.o: cc f{i}.c\n"));
    }
    std::fs::write(d.join("build.ninja"), ninja).unwrap();
    std::fs::write(
        d.join("Makefile"),
        "OBJS := $(patsubst %.c,%.o,$(wildcard f*.c))\nall: $(OBJS)\n%.o: %.c\n\t@./job.sh $< $@\n",
    )
    .unwrap();
    let slowcc = d.join("slowcc");
    std::fs::write(
        &slowcc,
        "#!/bin/sh\ncase \" $* \" in *\" -E \"*) exec gcc \"$@\" ;; esac\nsleep 1\nexec gcc \"$@\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("job.sh"),
        format!(
            "#!/bin/sh\necho \"start $(date +%s.%N)\" >> jobs.log\n\
             distcc {} -c \"$1\" -o \"$2\"; rc=$?\n\
             echo \"end $(date +%s.%N)\" >> jobs.log\nexit $rc\n",
            slowcc.display()
        ),
    )
    .unwrap();
    sh(&["chmod", "-R", "a+rX", &d.display().to_string()]);
    sh(&["chmod", "755", &d.join("job.sh").display().to_string()]);
    sh(&["chmod", "755", &slowcc.display().to_string()]);
    t
}

/// A real distccd in `ns` on `addr`:3632 (stats 3633) that runs any
/// compiler (`slowcc` is not in its list), for `jobs` jobs at once.
fn worker(ns: &Netns, addr: &str, jobs: u32) -> Daemon {
    let mut c = ns.cmd("distccd");
    c.args(["--daemon", "--no-detach", "--listen", addr])
        .args(["--allow", "127.0.0.0/8", "--enable-tcp-insecure"])
        .args(["--port", "3632", "--stats", "--stats-port", "3633"])
        .args(["--jobs", &jobs.to_string()])
        .stderr(Stdio::null());
    Daemon::spawn(c, "distccd")
}

/// A worker's stats counter, asked inside the namespace.
fn stat(ns: &Netns, addr: &str, key: &str) -> u64 {
    let addr = format!("{addr}:3633");
    let key = key.to_string();
    ns.inside(move || {
        use std::io::Read;
        let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1))
        else {
            return 0;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

fn wait_up(ns: &Netns, addr: &str) {
    let probe = format!("{addr}:3632:3633");
    wait_for(10, addr, || {
        run_cmd(cmd_in(Some(ns), &["env"], &[("DISTCC_AUTO_HOSTS", &probe)]))
            .stdout
            .contains("/2,lzo")
    });
}

/// A build running under `distcc_build` in bash, with every line it says
/// on stderr stamped with the time it came.
struct Build {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<(f64, String)>>>,
    started: f64,
    runtime: TempDir,
}

fn start(ns: &Netns, dir: &std::path::Path, hosts: &str, tool: &str, path: &str) -> Build {
    start_in(ns, dir, hosts, tool, path, None, &[])
}

/// `start`, with the user's DISTCC_DIR given (another build's).
fn start_in(
    ns: &Netns,
    dir: &std::path::Path,
    hosts: &str,
    tool: &str,
    path: &str,
    distcc_dir: Option<std::path::PathBuf>,
    vars: &[(&str, &str)],
) -> Build {
    let runtime = TempDir::private("live-rt");
    let distcc_dir = distcc_dir.unwrap_or_else(|| runtime.path().join("distcc"));
    let script = format!(
        "source {}/shell/distcc.sh && cd {} && distcc_build {tool}",
        root().display(),
        dir.display()
    );
    let mut c = ns.cmd("bash");
    c.args(["-c", &script]);
    without_distcc_vars(&mut c);
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    c.env(
        "PATH",
        format!("{path}{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin"),
    )
    .env("DISTCC_AUTO_LIVE", "1")
    .env("DISTCC_AUTO_HOSTS", hosts)
    .env("DISTCC_AUTO_TIMEOUT", "1")
    .env("DISTCC_AUTO_REPROBE", "2")
    .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "2")
    .env("DISTCC_DIR", distcc_dir)
    .env("XDG_RUNTIME_DIR", runtime.path())
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .process_group(0);
    for (k, v) in vars {
        c.env(k, v);
    }
    let started = now();
    let mut child = c.spawn().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let err = child.stderr.take().unwrap();
    let l = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            l.lock().unwrap().push((now(), line));
        }
    });
    Build {
        child,
        lines,
        started,
        runtime,
    }
}

impl Build {
    fn wait(&mut self, secs: u64) -> (i32, f64) {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                thread::sleep(Duration::from_millis(100)); // the last lines
                return (s.code().unwrap_or(-1), now() - self.started);
            }
            if Instant::now() > until {
                signal(-(self.child.id() as i32), libc::SIGKILL);
                panic!("the build did not end in {secs} s:\n{}", self.said());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn said(&self) -> String {
        let l = self.lines.lock().unwrap();
        l.iter()
            .map(|(t, s)| format!("{:6.2} {s}\n", t - self.started))
            .collect()
    }

    /// When a line containing `what` came, if one did.
    fn when(&self, what: &str) -> Option<f64> {
        let l = self.lines.lock().unwrap();
        l.iter().find(|(_, s)| s.contains(what)).map(|(t, _)| *t)
    }

    /// Nothing of ours is left: no process has our run directory in its
    /// environment, and the build's directory is gone.
    fn nothing_left(&self) {
        // The cleanup may still be under way when the shell has exited.
        let until = Instant::now() + Duration::from_secs(10);
        while !self.ours().is_empty() && Instant::now() < until {
            thread::sleep(Duration::from_millis(50));
        }
        let left = self.ours();
        assert!(left.is_empty(), "still running: {left:?}\n{}", self.said());
        let dirs: Vec<_> = std::fs::read_dir(self.runtime.path().join("distcc-auto"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("build."))
            .collect();
        assert!(dirs.is_empty(), "{dirs:?}");
    }

    /// Processes with our run directory in their environment.
    fn ours(&self) -> Vec<String> {
        let needle = self.runtime.path().display().to_string();
        let mut left = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            if !zombie && String::from_utf8_lossy(&env).contains(&needle) {
                left.push(format!(
                    "{} {}",
                    e.file_name().to_string_lossy(),
                    stat.split(' ').nth(1).unwrap_or("")
                ));
            }
        }
        left
    }
}

/// The child of `pid` that is bash too: distcc_build's subshell.
fn subshell_of(pid: i32) -> i32 {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid: i32 = rest
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == pid && comm.ends_with("(bash") {
            return e.file_name().to_string_lossy().parse().unwrap();
        }
    }
    panic!("no subshell of {pid}");
}

/// The most jobs running at once between `from` and `to` (job.sh's log).
fn most_at_once(dir: &std::path::Path, from: f64, to: f64) -> usize {
    let log = std::fs::read_to_string(dir.join("jobs.log")).unwrap_or_default();
    let mut ev: Vec<(f64, i32)> = log
        .lines()
        .filter_map(|l| {
            let (kind, t) = l.split_once(' ')?;
            Some((t.parse().ok()?, if kind == "start" { 1 } else { -1 }))
        })
        .collect();
    ev.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut n, mut most) = (0i32, 0i32);
    for (t, d) in ev {
        n += d;
        if t >= from && t <= to {
            most = most.max(n);
        }
    }
    most as usize
}

fn objects(dir: &std::path::Path) -> usize {
    (1..=FILES)
        .filter(|i| dir.join(format!("f{i}.o")).exists())
        .count()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_worker_that_dies_mid_compile_does_not_hold_the_build() {
    need_netns!();
    let ns = Netns::new("live-dies");
    let _w1 = worker(&ns, "127.0.9.1", 2);
    let _w2 = worker(&ns, "127.0.8.1", 2);
    wait_up(&ns, "127.0.9.1");
    wait_up(&ns, "127.0.8.1");
    let p = project();
    let mut b = start(&ns, p.path(), "127.0.9.1 127.0.8.1", "make", "");
    // Both workers busy (2 compiles each, a second apiece): cut one off.
    wait_for(20, "compiles on the first worker", || {
        stat(&ns, "127.0.9.1", "dcc_compile_ok") >= 2
    });
    let cut = now();
    for way in ["-d", "-s"] {
        let mut drop_it = ns.cmd("iptables");
        drop_it.args(["-A", "INPUT", way, "127.0.9.1", "-j", "DROP"]);
        assert!(drop_it.status().unwrap().success());
    }
    let (rc, took) = b.wait(120);
    let said = b.said();
    assert_eq!(rc, 0, "{said}");
    assert_eq!(objects(p.path()), FILES, "{said}");
    // Not distcc's 300 s: the compiles in flight ended at the second
    // silent re-probe and were compiled here.
    assert!(took < 60.0, "{took:.1} s\n{said}");
    let ended = b
        .when("compiles in flight on '127.0.9.1'")
        .or(b.when("compile in flight on '127.0.9.1'"))
        .unwrap_or_else(|| panic!("no compile was ended:\n{said}"));
    assert!(
        ended - cut < 8.0,
        "{:.1} s after the cut\n{said}",
        ended - cut
    );
    let left = b.when("worker '127.0.9.1' left the build").expect(&said);
    let fewer = b.when("jobs: 4 (was 6)").expect(&said);
    assert!(fewer >= left - 0.5, "{said}");
    // make ran 6 jobs at once with both workers, and at most 4 once the
    // jobs that held the dead worker's tokens were done.
    assert_eq!(most_at_once(p.path(), b.started, cut), 6, "{said}");
    let after = most_at_once(p.path(), fewer + 3.0, f64::MAX);
    assert!(after <= 4, "{after} jobs at once after the drop\n{said}");
    assert!(!said.contains("jobserver"), "{said}");
    assert!(!said.contains("tokens"), "{said}");
    b.nothing_left();
}

/// A worker that starts 3 s into the build gets compiles, and the build
/// runs more jobs at once from then on, with `tool` from `path`.
fn a_worker_that_joins_is_used(tag: &str, tool: &str, path: &str) {
    need_netns!();
    let ns = Netns::new(tag);
    let _w1 = worker(&ns, "127.0.9.1", 2);
    wait_up(&ns, "127.0.9.1");
    let p = project();
    let mut b = start(&ns, p.path(), "127.0.9.1 127.0.8.1", tool, path);
    thread::sleep(Duration::from_secs(3));
    let _w2 = worker(&ns, "127.0.8.1", 2);
    let (rc, _) = b.wait(120);
    let said = b.said();
    assert_eq!(rc, 0, "{said}");
    assert_eq!(objects(p.path()), FILES, "{said}");
    let joined = b.when("worker '127.0.8.1' joined the build").expect(&said);
    assert!(b.when("jobs: 6 (was 4)").is_some(), "{said}");
    let compiled = stat(&ns, "127.0.8.1", "dcc_compile_ok");
    assert!(
        compiled >= 4,
        "{compiled} compiles on the new worker\n{said}"
    );
    assert!(most_at_once(p.path(), b.started, joined) <= 4, "{said}");
    let after = most_at_once(p.path(), joined + 1.5, f64::MAX);
    assert!(after >= 5, "{after} jobs at once after the join\n{said}");
    assert!(!said.contains("jobserver"), "{said}");
    assert!(!said.contains("tokens"), "{said}");
    b.nothing_left();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_worker_that_joins_is_used_by_make_4_3() {
    a_worker_that_joins_is_used("live-make43", "make", "");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_worker_that_joins_is_used_by_make_4_4() {
    a_worker_that_joins_is_used("live-make44", "make", &format!("{TOOLS}:"));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_worker_that_joins_is_used_by_ninja_1_13() {
    a_worker_that_joins_is_used("live-ninja", "ninja", &format!("{TOOLS}:"));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ctrl_c_and_kill_leave_nothing_running() {
    need_netns!();
    let ns = Netns::new("live-stop");
    let _w1 = worker(&ns, "127.0.9.1", 2);
    wait_up(&ns, "127.0.9.1");
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let p = project();
        let mut b = start(&ns, p.path(), "127.0.9.1", "make", "");
        wait_for(20, "jobs running", || {
            std::fs::read_to_string(p.path().join("jobs.log")).is_ok_and(|l| l.lines().count() >= 3)
        });
        // Ctrl-C reaches the whole foreground group; `kill` reaches the
        // shell that runs distcc_build (the subshell with its traps).
        let pid = b.child.id() as i32;
        if sig == libc::SIGINT {
            signal(-pid, sig);
        } else {
            signal(subshell_of(pid), sig);
        }
        let (rc, _) = b.wait(30);
        assert_ne!(rc, 0, "{}", b.said());
        b.nothing_left();
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn two_builds_at_once_share_the_slot_locks() {
    need_netns!();
    let ns = Netns::new("live-two");
    let _w1 = worker(&ns, "127.0.9.1", 2);
    wait_up(&ns, "127.0.9.1");
    let (p1, p2) = (project(), project());
    let mut b1 = start(&ns, p1.path(), "127.0.9.1", "make", "");
    let shared = b1.runtime.path().join("distcc");
    // The second build: the same user's DISTCC_DIR, another run directory.
    let mut b2 = start_in(
        &ns,
        p2.path(),
        "127.0.9.1",
        "make",
        "",
        Some(shared.clone()),
        &[],
    );
    let (rc1, _) = b1.wait(120);
    let (rc2, _) = b2.wait(120);
    assert_eq!(rc1, 0, "{}", b1.said());
    assert_eq!(rc2, 0, "{}", b2.said());
    // One worker, one relay address for both builds: the same lock files.
    let locks: std::collections::BTreeSet<String> = std::fs::read_dir(shared.join("lock"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cpu_tcp_"))
        .map(|n| n.rsplit_once('_').unwrap().0.to_string())
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    b1.nothing_left();
    b2.nothing_left();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn an_ssh_worker_that_dies_is_dropped_and_gets_its_tunnel_back() {
    need_netns!();
    let w = SshWorker::start_with(&["--enable-tcp-insecure"]);
    let p = project();
    let ssh = w.ssh_command();
    let vars = [
        ("DISTCC_AUTO_SSH_COMMAND", ssh.as_str()),
        ("DISTCC_AUTO_SSH_TIMEOUT", "3"),
        ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "2"),
    ];
    let mut b = start_in(
        &w.lan.client,
        p.path(),
        "ssh://worker",
        "make",
        "",
        None,
        &vars,
    );
    wait_for(20, "compiles through the tunnel", || {
        w.compile_ok(3633) >= 2
    });
    // The worker's sshd goes silent both ways, with compiles in flight.
    let rules = |op: &str| {
        for (chain, way) in [("INPUT", "--dport"), ("OUTPUT", "--sport")] {
            let mut c = w.lan.worker.cmd("iptables");
            c.args([op, chain, "-p", "tcp", way, "2222", "-j", "DROP"]);
            assert!(c.status().unwrap().success());
        }
    };
    let cut = now();
    rules("-A");
    wait_for(20, "the worker to leave", || {
        b.when("worker 'ssh://worker' left the build").is_some()
    });
    let left = b.when("worker 'ssh://worker' left the build").unwrap();
    assert!(
        left - cut < 8.0,
        "{:.1} s after the cut\n{}",
        left - cut,
        b.said()
    );
    rules("-D");
    let before = w.compile_ok(3633);
    let (rc, took) = b.wait(120);
    let said = b.said();
    assert_eq!(rc, 0, "{said}");
    assert_eq!(objects(p.path()), FILES, "{said}");
    assert!(took < 60.0, "{took:.1} s\n{said}");
    let joined = b
        .when("worker 'ssh://worker' joined the build")
        .expect(&said);
    assert!(joined > left, "{said}");
    let after = w.compile_ok(3633);
    assert!(
        after > before,
        "no compile after its return ({before} -> {after})\n{said}"
    );
    b.nothing_left();
    w.assert_no_ssh_left("after the build");
}
