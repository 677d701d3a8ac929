//! Live builds: while a real build runs (GNU make 4.3 from Debian, make
//! 4.4 and ninja 1.13 from PyPI, installed by tests/deps.sh), the workers
//! and the job count follow the cluster. Real distccd workers run in a
//! test-made namespace; a dead worker is an iptables DROP there.
//!
//! Every compile takes a second on purpose (`slowcc`: gcc after a sleep,
//! never for preprocessing), so that compiles are in flight when a worker
//! dies, and a wrapper (`job.sh`) logs when each job starts and ends, so
//! that the test sees how many jobs make or ninja ran at once.

use std::thread;
use std::time::Duration;

use super::support::*;

const TOOLS: &str = "/opt/distcc-auto-tools/bin";

#[test]
#[ignore = "needs root: network namespaces"]
fn a_worker_that_dies_mid_compile_does_not_hold_the_build() {
    need_netns!();
    let ns = Netns::new("live-dies");
    let _workers = two_workers(&ns);
    let p = project();
    let mut b = start(Some(&ns), p.path(), "127.0.9.1 127.0.8.1", "make", "");
    // Both workers busy (2 compiles each, a second apiece): cut one off.
    wait_for(20, "compiles on the first worker", || {
        stat(Some(&ns), "127.0.9.1", "dcc_compile_ok") >= 2
    });
    let cut = now();
    blackhole(Some(&ns), "127.0.9.1", "-A");
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
    // The account says the ended compiles were done again (distcc picks
    // a host again: the other worker or this machine).
    let n = |after: &str, before: &str| -> u64 {
        let at = said
            .find(after)
            .unwrap_or_else(|| panic!("no '{after}':\n{said}"));
        said[..at]
            .rsplit(before)
            .next()
            .and_then(|w| w.split_whitespace().next())
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("no count before '{after}':\n{said}"))
    };
    let ended_n = n(" in flight on '127.0.9.1'", "distcc-auto: ended");
    let retried = n(" redone after '127.0.9.1' stopped answering", "(");
    assert!(retried >= ended_n && ended_n > 0, "{said}");
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
    let _w1 = worker(Some(&ns), "127.0.9.1", 2);
    wait_up(&ns, "127.0.9.1");
    let p = project();
    let mut b = start(Some(&ns), p.path(), "127.0.9.1 127.0.8.1", tool, path);
    thread::sleep(Duration::from_secs(3));
    let _w2 = worker(Some(&ns), "127.0.8.1", 2);
    let (rc, _) = b.wait(120);
    let said = b.said();
    assert_eq!(rc, 0, "{said}");
    assert_eq!(objects(p.path()), FILES, "{said}");
    let joined = b.when("worker '127.0.8.1' joined the build").expect(&said);
    assert!(b.when("jobs: 6 (was 4)").is_some(), "{said}");
    let compiled = stat(Some(&ns), "127.0.8.1", "dcc_compile_ok");
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
    let _w1 = worker(Some(&ns), "127.0.9.1", 2);
    wait_up(&ns, "127.0.9.1");
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let p = project();
        let mut b = start(Some(&ns), p.path(), "127.0.9.1", "make", "");
        wait_for(20, "jobs running", || {
            std::fs::read_to_string(p.path().join("jobs.log")).is_ok_and(|l| l.lines().count() >= 3)
        });
        // Ctrl-C reaches the whole foreground group, and so does `kill`
        // of the job (`kill %1`: its process group).
        signal(-(b.child.id() as i32), sig);
        let (rc, _) = b.wait(60);
        assert_ne!(rc, 0, "{}", b.said());
        b.nothing_left();
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn two_builds_at_once_share_the_slot_locks() {
    need_netns!();
    let ns = Netns::new("live-two");
    let _w1 = worker(Some(&ns), "127.0.9.1", 2);
    wait_up(&ns, "127.0.9.1");
    let (p1, p2) = (project(), project());
    let mut b1 = start(Some(&ns), p1.path(), "127.0.9.1", "make", "");
    let shared = b1.runtime.path().join("distcc");
    // The second build: the same user's DISTCC_DIR, another run directory.
    let mut b2 = start_in(
        Some(&ns),
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
    // Each build counts its own compiles, not the other's, though their
    // state files share one directory and their compiles one worker.
    // (A compile the busy worker fails is redone here, and still one.)
    for b in [&b1, &b2] {
        let said = b.said();
        let line = format!("distcc-auto: {FILES} compiles: ");
        assert!(said.contains(&line), "{said}");
    }
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
        Some(&w.lan.client),
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

#[test]
#[ignore = "needs root: network namespaces"]
fn exec_runs_a_live_build_with_make_4_3_and_fish_too() {
    need_netns!();
    let ns = Netns::new("live-exec");
    let _w1 = worker(Some(&ns), "127.0.9.1", 2);
    wait_up(&ns, "127.0.9.1");
    let runtime = TempDir::private("live-exec-rt");
    let rt = runtime.path().display().to_string();
    let fish_file = root().join("shell/distcc.fish").display().to_string();
    let source = format!("source {fish_file}; distcc_build make");
    let trace = runtime.path().join("exec.json");
    let trace_arg = trace.display().to_string();
    for how in [
        vec!["-v", "exec", "--trace", &trace_arg, "make"],
        vec!["fish", "--no-config", "-c", &source],
    ] {
        let p = project();
        let before = stat(Some(&ns), "127.0.9.1", "dcc_compile_ok");
        let mut c = if how[0] == "fish" {
            let mut c = ns.cmd("fish");
            c.args(&how[1..]);
            without_distcc_vars(&mut c);
            let bin_dir = bin_dir();
            c.env("PATH", format!("{bin_dir}:/usr/bin:/bin"));
            c
        } else {
            cmd_in(Some(&ns), &how, &[])
        };
        c.current_dir(p.path())
            .env("DISTCC_AUTO_LIVE", "1")
            .env("DISTCC_AUTO_HOSTS", "127.0.9.1")
            .env("DISTCC_AUTO_REPROBE", "2")
            .env("XDG_RUNTIME_DIR", &rt)
            .env("DISTCC_DIR", runtime.path().join("distcc"));
        let r = run_cmd(c);
        check!(r, r.code == 0, "{}", how[0]);
        assert_eq!(objects(p.path()), FILES, "{}", r.show());
        check!(r, !r.stderr.contains("jobserver unavailable"));
        // The build's own account: every file, on the one worker.
        check!(
            r,
            r.stderr.contains(&format!(
                "distcc-auto: {FILES} compiles: {FILES} remote on 1 worker, 0 here"
            ))
        );
        if how[0] == "-v" {
            check!(
                r,
                r.stderr.contains("jobserver through inherited descriptors")
            );
            // -v: the table; --trace: the timeline, as JSON and SVG.
            check!(r, r.stderr.contains("distcc-auto: worker "));
            let json = std::fs::read_to_string(&trace).unwrap_or_default();
            let doc: serde_json::Value = serde_json::from_str(&json).expect("trace JSON");
            assert!(
                doc["traceEvents"]
                    .as_array()
                    .is_some_and(|e| e.len() > FILES)
            );
            assert!(std::path::Path::new(&format!("{trace_arg}.svg")).exists());
        }
        let after = stat(Some(&ns), "127.0.9.1", "dcc_compile_ok");
        check!(
            r,
            after >= before + 10,
            "{} remote compiles",
            after - before
        );
        let left = build_dirs(runtime.path());
        assert!(left.is_empty(), "{left:?}");
    }
}

/// A conductor killed outright during the build (SIGKILL: nothing of it
/// runs): `distcc_build` does not wait for its answer, says so, returns
/// the build's status, and nothing of it is left, its directory included;
/// in bash and zsh, also with a function and an alias named `exec` (the
/// shell file closes its end of the FIFO with `exec` itself) and errexit.
#[test]
fn a_conductor_killed_outright_does_not_hold_the_shell() {
    let d = Distccd::start(2);
    // The build's DISTCC_DIR is build.PID, PID the conductor's.
    let kill = r#"distcc_build bash -c 'kill -KILL "${DISTCC_DIR##*build.}"; exit 3'"#;
    let hostile = "exec() { echo HIJACK; }; alias exec='echo HIJACK'; set -e";
    for sh in SHELLS {
        for state in ["", hostile] {
            let runtime = TempDir::private("live-killed");
            let script = format!("{state}\n{kill} || echo \"rc $?\"");
            let mut c = shell(sh, None, &script);
            c.env("DISTCC_AUTO_LIVE", "1")
                .env("DISTCC_AUTO_HOSTS", d.entry())
                .env("DISTCC_DIR", runtime.path().join("distcc"))
                .env("XDG_RUNTIME_DIR", runtime.path());
            let started = std::time::Instant::now();
            let r = run_cmd(c);
            let what = format!("{sh} '{state}'");
            check!(r, r.stdout.contains("rc 3"), "{what}");
            check!(r, started.elapsed() < Duration::from_secs(10), "{what}");
            check!(
                r,
                r.stderr
                    .contains("the live build's conductor did not answer"),
                "{what}"
            );
            check!(r, !r.stdout.contains("HIJACK"), "{what}");
            let dirs = build_dirs(runtime.path());
            assert!(dirs.is_empty(), "{what}: {dirs:?}");
        }
    }
}

#[test]
fn a_conductor_is_not_started_when_nobody_would_stop_it() {
    let d = Distccd::start(2);
    let mut c = cmd(&["env", "--", "make"], &[("DISTCC_AUTO_LIVE", "1")]);
    c.env("DISTCC_AUTO_HOSTS", d.entry())
        .stdout(std::fs::File::create("/dev/null").unwrap());
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("standard output is /dev/null"), "{err}");
    // Refused before anything started: no probe, no conductor.
    assert!(!err.contains("-j "), "{err}");
}

#[test]
fn without_a_private_directory_the_build_is_a_snapshot() {
    let d = Distccd::start(2);
    let r = run(
        &["env", "--", "make"],
        &[
            ("DISTCC_AUTO_LIVE", "1"),
            ("DISTCC_AUTO_HOSTS", &d.entry()),
            ("TMPDIR", "/nonexistent/dir"),
            ("XDG_RUNTIME_DIR", ""),
        ],
    );
    r.ok();
    check!(r, r.stderr.contains("warning: not a live build"));
    check!(r, r.stdout.contains("\\builtin export DISTCC_HOSTS="));
    check!(r, !r.stdout.contains("DISTCC_AUTO_DISTCC_DIR"));
    check!(r, r.stdout.contains("'make' '-j'"));
}
