//! A build whose every compile takes a second (`slowcc`: gcc after a
//! sleep, never when preprocessing), so that compiles are in flight when a
//! worker dies, with a wrapper (`job.sh`) that logs when each job starts
//! and ends; and the real distccd workers that run it. The live-build
//! tests and the bench share them.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::*;

/// Seconds since the epoch, as `date +%s.%N` writes them in job.sh's log.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

pub const FILES: usize = 40;

/// A project of `FILES` C files, with a Makefile and a build.ninja whose
/// every job runs `job.sh`, and `slowcc` beside them.
pub fn project() -> TempDir {
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

/// A real distccd in `ns` (None: here) on `addr`:3632 (stats 3633) that
/// runs any compiler (`slowcc` is not in its list), for `jobs` at once.
pub fn worker(ns: Option<&Netns>, addr: &str, jobs: u32) -> Daemon {
    let mut c = ns.map_or_else(|| Command::new("distccd"), |ns| ns.cmd("distccd"));
    c.args(["--daemon", "--no-detach", "--listen", addr])
        .args(["--allow", "127.0.0.0/8", "--enable-tcp-insecure"])
        .args(["--port", "3632", "--stats", "--stats-port", "3633"])
        .args(["--jobs", &jobs.to_string()])
        .stderr(Stdio::null());
    Daemon::spawn(c, "distccd")
}

/// Wait until the 2-slot worker on `addr` in `ns` answers a probe.
pub fn wait_up(ns: &Netns, addr: &str) {
    let probe = format!("{addr}:3632:3633");
    wait_for(10, addr, || {
        run_cmd(cmd_in(Some(ns), &["env"], &[("DISTCC_AUTO_HOSTS", &probe)]))
            .stdout
            .contains("/2,lzo")
    });
}

/// The two workers most live tests build on, 127.0.9.1 and 127.0.8.1 in
/// `ns`, 2 slots each, answering.
pub fn two_workers(ns: &Netns) -> [Daemon; 2] {
    let w = [
        worker(Some(ns), "127.0.9.1", 2),
        worker(Some(ns), "127.0.8.1", 2),
    ];
    wait_up(ns, "127.0.9.1");
    wait_up(ns, "127.0.8.1");
    w
}

/// The blackhole for `addr` in `ns` (None: here), both ways: on (`-A`)
/// or off (`-D`).
pub fn blackhole(ns: Option<&Netns>, addr: &str, op: &str) {
    for way in ["-d", "-s"] {
        let mut c = ns.map_or_else(|| Command::new("iptables"), |ns| ns.cmd("iptables"));
        c.args([op, "INPUT", way, addr, "-j", "DROP"]);
        assert!(
            c.status().is_ok_and(|s| s.success()),
            "iptables {op} {way} {addr}"
        );
    }
}

/// A worker's stats counter, asked inside the namespace (None: here).
pub fn stat(ns: Option<&Netns>, addr: &str, key: &str) -> u64 {
    let addr = format!("{addr}:3633");
    let key = key.to_string();
    let ask = move || {
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
    };
    match ns {
        Some(ns) => ns.inside(ask),
        None => ask(),
    }
}

/// The most jobs running at once between `from` and `to` (job.sh's log).
pub fn most_at_once(dir: &std::path::Path, from: f64, to: f64) -> usize {
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

pub fn objects(dir: &std::path::Path) -> usize {
    (1..=FILES)
        .filter(|i| dir.join(format!("f{i}.o")).exists())
        .count()
}

/// A build running under `distcc_build` in bash, with every line it says
/// on stderr stamped with the time it came.
pub struct Build {
    pub child: std::process::Child,
    lines: Arc<Mutex<Vec<(f64, String)>>>,
    pub started: f64,
    pub runtime: TempDir,
}

pub fn start(
    ns: Option<&Netns>,
    dir: &std::path::Path,
    hosts: &str,
    tool: &str,
    path: &str,
) -> Build {
    start_in(ns, dir, hosts, tool, path, None, &[])
}

/// `start`, with the user's DISTCC_DIR given (another build's).
pub fn start_in(
    ns: Option<&Netns>,
    dir: &std::path::Path,
    hosts: &str,
    tool: &str,
    path: &str,
    distcc_dir: Option<std::path::PathBuf>,
    vars: &[(&str, &str)],
) -> Build {
    let runtime = TempDir::private("live-rt");
    let distcc_dir = distcc_dir.unwrap_or_else(|| runtime.path().join("distcc"));
    // As ~/.distcc is: distcc makes what is inside, not the directory.
    std::fs::create_dir_all(&distcc_dir).unwrap();
    let script = format!(
        "source {}/shell/distcc.sh && cd {} && distcc_build {tool}",
        root().display(),
        dir.display()
    );
    let mut c = ns.map_or_else(|| Command::new("bash"), |ns| ns.cmd("bash"));
    c.args(["-c", &script]);
    without_distcc_vars(&mut c);
    let bin_dir = bin_dir();
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
    pub fn wait(&mut self, secs: u64) -> (i32, f64) {
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

    pub fn said(&self) -> String {
        let l = self.lines.lock().unwrap();
        l.iter()
            .map(|(t, s)| format!("{:6.2} {s}\n", t - self.started))
            .collect()
    }

    /// When a line containing `what` came, if one did.
    pub fn when(&self, what: &str) -> Option<f64> {
        let l = self.lines.lock().unwrap();
        l.iter().find(|(_, s)| s.contains(what)).map(|(t, _)| *t)
    }

    /// Nothing of ours is left: no process has our run directory in its
    /// environment, and the build's directory is gone.
    pub fn nothing_left(&self) {
        // The cleanup may still be under way when the shell has exited.
        let until = Instant::now() + Duration::from_secs(10);
        while !self.ours().is_empty() && Instant::now() < until {
            thread::sleep(Duration::from_millis(50));
        }
        let left = self.ours();
        assert!(left.is_empty(), "still running: {left:?}\n{}", self.said());
        let dirs = build_dirs(self.runtime.path());
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

/// The live builds' directories (`build.PID`) in the private directory
/// under `runtime` (an XDG_RUNTIME_DIR).
pub fn build_dirs(runtime: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(runtime.join("distcc-auto"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("build."))
        .collect()
}
