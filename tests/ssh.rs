//! ssh:// workers against a real OpenSSH server and real distccd in a
//! test-made network namespace. The worker's distccd listens only on the
//! worker's own 127.0.0.1, so it is reachable only through the tunnel.
//! These tests need root (network namespaces) and skip elsewhere.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

/// A client-side command in the client namespace with the ssh settings.
fn client(w: &SshWorker, sh: &str, script: &str, hosts: &str) -> Command {
    let mut c = shell(sh, Some(&w.lan.client), script);
    c.env("DISTCC_AUTO_HOSTS", hosts)
        .env("DISTCC_AUTO_SSH_COMMAND", w.ssh_command());
    c.env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1");
    c
}

#[test]
#[ignore = "needs root: network namespaces"]
fn distcc_build_through_ssh_in_bash_and_zsh() {
    need_netns!();
    let w = SshWorker::start();
    for sh in ["bash", "zsh"] {
        let src = demo_copy(sh);
        let before = w.compile_ok(3633);
        let mut c = client(&w, sh, "distcc_build make", "ssh://worker");
        c.current_dir(src.path())
            .env("DISTCC_DIR", src.path().join(".distcc"));
        let r = run_cmd(c);
        r.expect(0, format_args!("{sh}: "));
        assert_eq!(
            w.compiled(3633, before, 4),
            4,
            "{sh}: compiled through the tunnel\n{}",
            r.show()
        );
        let flags = std::fs::read_to_string(src.path().join("makeflags.txt")).unwrap();
        assert!(
            flags.split_whitespace().any(|f| f == "-j4"),
            "{sh}: 3 remote + 1 preprocessor: {flags}"
        );
        check!(
            r,
            r.stderr.contains("distcc-auto: stopped ssh tunnel"),
            "{sh}"
        );
        w.assert_no_ssh_left(sh);
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn failing_and_interrupted_builds_leave_no_ssh() {
    need_netns!();
    let w = SshWorker::start();
    for sh in ["bash", "zsh"] {
        let r = run_cmd(client(
            &w,
            sh,
            "distcc_build sh -c 'exit 3' sh",
            "ssh://worker",
        ));
        r.expect(3, format_args!("{sh}: "));
        w.assert_no_ssh_left(&format!("{sh}: failed build"));

        // A signal to the whole process group, as a terminal's Ctrl-C
        // (SIGINT) does, or SIGTERM/SIGHUP, while the build runs.
        for (sig, code) in [
            (libc::SIGINT, 130),
            (libc::SIGTERM, 143),
            (libc::SIGHUP, 129),
            (libc::SIGQUIT, 131),
        ] {
            let t = TempDir::new("int");
            let marker = t.path().join("started");
            // The outer shell survives the signal, as an interactive one does.
            let script = format!(
                "trap : INT TERM HUP QUIT; distcc_build sh -c 'echo > {}; sleep 30' sh; echo \"rc=$?\"",
                marker.display()
            );
            let mut c = client(&w, sh, &script, "ssh://worker");
            c.stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
            let child = c.spawn().unwrap();
            wait_for(15, "the build to start", || marker.exists());
            assert_eq!(
                w.ssh_processes().len(),
                1,
                "{sh}: one tunnel while building"
            );
            signal(-(child.id() as i32), sig);
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                stdout,
                format!("rc={code}\n"),
                "{sh}: signal {sig}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            w.assert_no_ssh_left(&format!("{sh}: build interrupted by signal {sig}"));
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn eval_env_then_kill() {
    need_netns!();
    let w = SshWorker::start();
    let script = r#"
        eval "$(distcc-auto env)" || exit
        echo "pids=$DISTCC_AUTO_TUNNEL_PIDS"
        echo "hosts=$DISTCC_HOSTS"
        eval "$(distcc-auto kill)" || exit
        echo "after=${DISTCC_AUTO_TUNNEL_PIDS-unset}"
    "#;
    let r = run_cmd(client(
        &w,
        "bash",
        script,
        "ssh://worker ssh://root@worker:2222/3632/3633",
    ));
    r.ok();
    let pids: Vec<&str> = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("pids="))
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(pids.len(), 2, "two tunnels: {}", r.show());
    let hosts = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("hosts="))
        .unwrap();
    check!(
        r,
        hosts.starts_with("--localslots_cpp=1 127.0.0.1:") && hosts.matches("/3,lzo").count() == 2
    );
    check!(r, r.stdout.contains("after=unset"));
    assert_eq!(
        r.stderr.matches("stopped ssh tunnel").count(),
        2,
        "{}",
        r.show()
    );
    w.assert_no_ssh_left("env then kill");
}

#[test]
fn kill_refuses_a_process_that_is_not_our_tunnel() {
    // Needs no namespace: the refusal happens before any signal.
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = victim.id().to_string();
    for pids in [pid.as_str(), "1", "0", "-1", "abc"] {
        let r = run(&["kill"], &[("DISTCC_AUTO_TUNNEL_PIDS", pids)]);
        r.expect(1, format_args!(""));
        assert_eq!(
            r.stdout,
            "unset DISTCC_HOSTS DISTCC_AUTO_JOBS DISTCC_AUTO_TUNNEL_PIDS DISTCC_AUTO_TUNNEL_IDS \
             DISTCC_AUTO_COUNTERS DISTCC_AUTO_CCACHE_PREFIX;\n"
        );
        check!(
            r,
            r.stderr
                .contains("no identity recorded for it in DISTCC_AUTO_TUNNEL_IDS")
                || r.stderr.contains("is not a process ID")
        );
    }
    // With an identity that matches in owner and start time: the process
    // still does not lead its own session, so it is no tunnel of ours.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_string();
    let ids = format!("{pid}:{}:{start}", euid());
    let r = run(
        &["kill"],
        &[
            ("DISTCC_AUTO_TUNNEL_PIDS", &pid),
            ("DISTCC_AUTO_TUNNEL_IDS", &ids),
        ],
    );
    r.expect(1, format_args!(""));
    check!(
        r,
        r.stderr
            .contains("is not the ssh tunnel that distcc-auto started")
    );
    assert!(
        victim.try_wait().unwrap().is_none(),
        "the process was not touched"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
    let r = run(&["kill"], &[]);
    r.expect(0, format_args!("nothing to kill is fine: "));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn broken_tunnels_are_dropped_with_ssh_reason() {
    need_netns!();
    let w = SshWorker::start();
    // A known_hosts entry with another key for the worker: a changed host key.
    let other = std::fs::read_to_string(w.path("otherhostkey.pub")).unwrap();
    let fake_known = w.path("changed_known_hosts");
    std::fs::write(&fake_known, format!("[{WORKER_IP}]:{SSH_PORT} {other}")).unwrap();
    let cases = [
        ("ssh://worker:2223", "Connection refused"),
        ("ssh://nobody-has-this-key@worker", "Permission denied"),
        (
            "ssh://worker/3632/3699",
            "nothing listens on the worker's localhost:3699",
        ),
    ];
    for (entry, want) in cases {
        let start = Instant::now();
        let mut c = client(&w, "bash", "distcc-auto hosts", entry);
        if entry.contains("nobody") {
            c.env(
                "DISTCC_AUTO_SSH_COMMAND",
                format!(
                    "{} -i {} -o IdentityFile=none",
                    w.ssh_command(),
                    w.path("otherkey")
                ),
            );
        }
        let r = run_cmd(c);
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{entry}: bounded by the ssh deadline: {:?}",
            start.elapsed()
        );
        r.expect(0, format_args!("{entry}: falls back to local jobs: "));
        let row = r.row(entry);
        check!(
            r,
            row.contains(" down ") && row.contains(want),
            "{entry}: want {want:?}\n"
        );
        w.assert_no_ssh_left(entry);
    }
    let mut c = client(&w, "bash", "distcc-auto hosts", "ssh://worker");
    c.env(
        "DISTCC_AUTO_SSH_COMMAND",
        format!(
            "{} -o UserKnownHostsFile={fake_known} -o StrictHostKeyChecking=yes",
            w.ssh_command()
        ),
    );
    let r = run_cmd(c);
    check!(
        r,
        r.stdout.contains("Host key verification failed"),
        "changed host key"
    );
    w.assert_no_ssh_left("changed host key");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn mixed_tcp_and_ssh_workers() {
    need_netns!();
    let w = SshWorker::start();
    let hosts = format!("{WORKER_IP}:4632:4633 ssh://worker");
    let src = demo_copy("mixed");
    let (tcp_before, ssh_before) = (w.compile_ok(4633), w.compile_ok(3633));
    let mut c = client(&w, "bash", "distcc-auto hosts && distcc_build make", &hosts);
    c.current_dir(src.path())
        .env("DISTCC_DIR", src.path().join(".distcc"));
    let r = run_cmd(c);
    r.ok();
    let ssh_row = r.row("ssh://worker");
    check!(
        r,
        ssh_row.contains("worker via 127.0.0.1:") && ssh_row.contains(" up ")
    );
    check!(
        r,
        r.stderr
            .contains("-j 7: 0 local, 1 preprocessor, 6 remote on 2 workers")
    );
    // distccd counts a compile only after it has replied: poll the sum.
    let sum = || (w.compile_ok(4633) - tcp_before) + (w.compile_ok(3633) - ssh_before);
    let until = Instant::now() + Duration::from_secs(5);
    while sum() < 4 && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
    }
    let compiled = sum();
    assert_eq!(compiled, 4, "every file compiled on a worker: {}", r.show());
    w.assert_no_ssh_left("mixed");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn interrupted_env_stops_the_tunnels_it_started() {
    need_netns!();
    let w = SshWorker::start();
    // One tunnel comes up at once; the other waits on a port that accepts
    // TCP but never speaks SSH, so env is still probing when interrupted.
    let _mute = w.lan.worker.listen(&format!("{WORKER_IP}:2299"));
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        let mut c = client(
            &w,
            "bash",
            "exec distcc-auto env",
            "ssh://worker ssh://worker:2299",
        );
        c.env("DISTCC_AUTO_SSH_TIMEOUT", "20")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        // Both tunnels exist: env is waiting for them, its signals guarded.
        wait_for(10, "both ssh processes", || w.ssh_processes().len() == 2);
        signal(child.id() as i32, sig);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // It dies of the signal itself, as the shell expects of a child.
        assert_eq!(out.status.signal(), Some(sig), "signal {sig}: {err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "nothing for eval");
        assert!(err.contains("interrupted: stopped 2 ssh tunnels"), "{err}");
        w.assert_no_ssh_left(&format!("env interrupted by signal {sig}"));
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn closing_the_terminal_stops_the_build_and_its_tunnels() {
    need_netns!();
    let w = SshWorker::start();
    let t = TempDir::new("tty");
    let marker = t.path().join("started");
    // A real interactive bash on a real terminal (tmux), running a build
    // through an ssh worker; then the terminal goes away.
    let session = format!("dauto{}", std::process::id());
    let rc = t.path().join("rc");
    std::fs::write(
        &rc,
        format!(
            ". '{}'\nexport DISTCC_AUTO_HOSTS=ssh://worker DISTCC_AUTO_SSH_COMMAND='{}' PATH='{}':$PATH\n",
            shell_file("bash"),
            w.ssh_command(),
            std::path::Path::new(BIN).parent().unwrap().display()
        ),
    )
    .unwrap();
    let inner = format!(
        "ip netns exec {} bash --rcfile {} -i",
        w.lan.client.name,
        rc.display()
    );
    let r = run_cmd({
        let mut c = Command::new("tmux");
        c.args([
            "-L",
            &session,
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "120",
            "-y",
            "30",
            &inner,
        ]);
        c
    });
    r.ok();
    let keys = format!(
        "distcc_build sh -c 'echo > {}; sleep 60' sh",
        marker.display()
    );
    sh(&[
        "tmux",
        "-L",
        &session,
        "send-keys",
        "-t",
        &session,
        &keys,
        "Enter",
    ]);
    wait_for(20, "the build to start in the terminal", || marker.exists());
    assert_eq!(w.ssh_processes().len(), 1, "one tunnel while building");
    sh(&["tmux", "-L", &session, "kill-server"]);
    w.assert_no_ssh_left("terminal closed");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn sixteen_concurrent_builds_through_ssh() {
    need_netns!();
    let w = SshWorker::start();
    let dirs: Vec<TempDir> = (0..16).map(|i| demo_copy(&format!("c{i}"))).collect();
    let before = w.compile_ok(3633);
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            let mut c = client(&w, "bash", "distcc_build make", "ssh://worker");
            c.current_dir(d.path())
                .env("DISTCC_DIR", d.path().join(".distcc"));
            c.env("DISTCC_AUTO_SSH_TIMEOUT", "20");
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "build {i}: {err}");
        assert!(
            err.contains("3 remote on 1 worker"),
            "build {i} used its own tunnel: {err}"
        );
    }
    for d in &dirs {
        assert!(d.path().join("hello").exists());
    }
    // Each build had its own tunnel; distcc falls back to local compiles
    // when the worker's 3 slots are busy, so only some went remote.
    assert!(
        w.compile_ok(3633) > before,
        "compiles went through the tunnels"
    );
    w.assert_no_ssh_left("16 concurrent builds");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn watch_closes_its_tunnels_on_ctrl_c() {
    need_netns!();
    let w = SshWorker::start();
    let mut c = client(
        &w,
        "bash",
        "exec distcc-auto hosts --watch 2",
        "ssh://worker",
    );
    let before = w.logins();
    let t = TempDir::new("watch");
    let out_file = t.path().join("out");
    c.stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    // The tunnel stays open between rounds: three rounds, one login.
    let rounds = || {
        std::fs::read_to_string(&out_file)
            .unwrap_or_default()
            .matches("distcc-auto hosts --watch:")
            .count()
    };
    wait_for(15, "three rounds", || rounds() >= 3);
    assert_eq!(w.ssh_processes().len(), 1, "one tunnel for the whole watch");
    assert_eq!(w.logins() - before, 1, "one login for three rounds");
    signal(child.id() as i32, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = std::fs::read_to_string(&out_file).unwrap();
    assert!(shown.contains("worker via 127.0.0.1:"), "{shown}");
    w.assert_no_ssh_left("watch interrupted");
    // Ctrl-\ (SIGQUIT) ends it too, by that signal, after its tunnels.
    let mut c = client(
        &w,
        "bash",
        "exec distcc-auto hosts --watch 2",
        "ssh://worker",
    );
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for(15, "the tunnel", || w.ssh_processes().len() == 1);
    signal(child.id() as i32, libc::SIGQUIT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGQUIT));
    w.assert_no_ssh_left("watch quit");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn env_whose_output_nobody_reads_stops_its_tunnels() {
    need_netns!();
    let w = SshWorker::start();
    // `distcc-auto env | true`: the PIDs cannot reach anyone who would stop
    // the tunnels, so they must not be left running.
    let mut c = client(&w, "bash", "exec distcc-auto env", "ssh://worker");
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("writing to stdout"), "{err}");
    w.assert_no_ssh_left("unread env");
}

#[test]
fn a_missing_ssh_client_is_named() {
    // Needs no namespace: the client cannot even start.
    let r = run(
        &["hosts", "--wide"],
        &[
            ("DISTCC_AUTO_HOSTS", "ssh://ci@w1"),
            ("DISTCC_AUTO_SSH_COMMAND", "no-such-ssh-client -v"),
        ],
    );
    r.ok();
    let row = r.stdout.lines().nth(1).unwrap();
    check!(r, row.starts_with("ssh://ci@w1  ci@w1 via ssh  down"));
    check!(
        r,
        row.ends_with("cannot run DISTCC_AUTO_SSH_COMMAND: exec: no-such-ssh-client: not found")
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn an_empty_reply_through_a_tunnel_names_its_likely_cause() {
    need_netns!();
    let w = SshWorker::start();
    // A distccd on the worker's loopback whose --allow lacks 127.0.0.1.
    let mut c = w.lan.worker.cmd("distccd");
    c.args([
        "--daemon",
        "--no-detach",
        "--log-stderr",
        "--listen",
        "127.0.0.1",
    ])
    .args(["--allow", "10.0.0.0/8", "--port", "5632", "--stats"])
    .args(["--stats-port", "5633"])
    .stderr(Stdio::null());
    let _strict = Daemon::spawn(c, "distccd");
    wait_for(10, "the strict distccd", || {
        w.lan
            .worker
            .cmd("bash")
            .args(["-c", "exec 3<>/dev/tcp/127.0.0.1/5633"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    let r = run_cmd(client(
        &w,
        "bash",
        "distcc-auto hosts",
        "ssh://worker/5999/5998 ssh://worker/5632/5633",
    ));
    let nothing = r.row("ssh://worker/5999/5998");
    check!(
        r,
        nothing.contains("down")
            && nothing.contains("nothing listens on the worker's localhost:5998")
            && nothing.contains("open failed")
    );
    let strict = r.row("ssh://worker/5632/5633");
    check!(
        r,
        strict.contains("down") && strict.contains("its --allow probably lacks 127.0.0.1")
    );
    w.assert_no_ssh_left("hosts");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn hosts_fits_80_columns_with_mixed_workers() {
    need_netns!();
    let w = SshWorker::start();
    // Names resolve from the client namespace's own files only.
    w.lan.client.etc("nsswitch.conf", "hosts: files\n");
    w.lan.client.etc("hosts", "127.0.0.1 localhost\n");
    // An ssh worker, a TCP worker, a dead one with a long reason, a long
    // name that does not resolve, and one more ssh entry that fails.
    let hosts = format!(
        "ssh://worker {WORKER_IP}:4632:4633 {WORKER_IP}:9:9 \
         a-rather-long-worker-name-that-does-not-resolve.build.example.invalid ssh://worker:22/3632"
    );
    for watch in [false, true] {
        let script = if watch {
            "timeout -s INT 3 distcc-auto hosts --watch 2; true"
        } else {
            "distcc-auto hosts"
        };
        let mut c = client(&w, "bash", script, &hosts);
        c.env("COLUMNS", "80");
        let r = run_cmd(c);
        let long: Vec<&str> = r
            .stdout
            .lines()
            .filter(|l| l.chars().count() > 80 && !l.starts_with("DISTCC_HOSTS="))
            .collect();
        check!(
            r,
            long.is_empty(),
            "watch={watch}: lines over 80: {long:?}\n"
        );
        check!(r, r.row("ssh://worker").contains(" up "));
        check!(r, r.stdout.contains("via 127.0.0.1:"));
        w.assert_no_ssh_left("hosts");
    }
}
