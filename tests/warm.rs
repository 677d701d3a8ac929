//! Warm builds: a worker that let the deadline pass is not waited for by
//! the next runs (but still probed, and used again once it answers), and
//! distcc's own stale backoff file is cleared for a worker found up. Real
//! distccd; the blackhole is an iptables DROP in a test-made namespace.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;

use crate::support::*;

#[test]
fn distccs_backoff_file_is_cleared_for_a_worker_found_up_and_no_other() {
    let d = Distccd::start(2);
    let home = TempDir::new("home");
    let lock = home.path().join(".distcc/lock");
    std::fs::create_dir_all(&lock).unwrap();
    let mine = format!("backoff_tcp_127.0.0.1_{}_0", d.port);
    let others = [
        format!("backoff_tcp_127.0.0.1_{}_0", d.port + 1),
        format!("backoff_tcp_127.0.0.2_{}_0", d.port),
        format!("cpu_tcp_127.0.0.1_{}_0", d.port),
    ];
    for f in std::iter::once(&mine).chain(&others) {
        std::fs::write(lock.join(f), "").unwrap();
    }
    // DISTCC_DIR unset: distcc's default, ~/.distcc.
    let mut c = cmd(&["-v", "env"], &[("DISTCC_AUTO_HOSTS", &d.entry())]);
    c.env_remove("DISTCC_DIR").env("HOME", home.path());
    let r = run_cmd(c);
    r.ok();
    check!(r, !lock.join(&mine).exists());
    for f in &others {
        assert!(lock.join(f).exists(), "{f} was touched");
    }
    check!(r, r.stderr.contains("removed distcc's backoff file"));

    // With DISTCC_DIR set, there.
    let dir = TempDir::new("distcc-dir");
    std::fs::create_dir_all(dir.path().join("lock")).unwrap();
    std::fs::write(dir.path().join("lock").join(&mine), "").unwrap();
    let r = run(
        &["env"],
        &[
            ("DISTCC_AUTO_HOSTS", &d.entry()),
            ("DISTCC_DIR", &dir.path().display().to_string()),
        ],
    );
    r.ok();
    assert!(!dir.path().join("lock").join(&mine).exists());
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_dead_worker_is_not_waited_for_until_it_answers_again() {
    need_netns!();
    let ns = Netns::new("warm");
    let runtime = TempDir::private("runtime");
    let _live = ns.distccd("127.0.0.1", 3632, 3633, 2, Stdio::null());
    // 8 blackholed workers; the first has a real distccd behind the wall.
    let _behind = ns.distccd("127.0.9.1", 3632, 3633, 2, Stdio::null());
    sh(&[
        "ip",
        "netns",
        "exec",
        &ns.name,
        "iptables",
        "-A",
        "INPUT",
        "-d",
        "127.0.9.0/24",
        "-j",
        "DROP",
    ]);
    let dead: Vec<String> = (1..=8).map(|i| format!("127.0.9.{i}")).collect();
    let hosts = format!("127.0.0.1 {}", dead.join(" "));
    let rt = runtime.path().display().to_string();
    let vars = [
        ("DISTCC_AUTO_HOSTS", hosts.as_str()),
        ("DISTCC_AUTO_TIMEOUT", "1"),
        ("DISTCC_AUTO_BACKOFF_PERIOD", "60"),
        ("XDG_RUNTIME_DIR", rt.as_str()),
        ("COLUMNS", "200"),
    ];
    wait_for(10, "the live distccd", || {
        run_cmd(cmd_in(
            Some(&ns),
            &["env"],
            &[("DISTCC_AUTO_HOSTS", "127.0.0.1")],
        ))
        .stdout
        .contains("127.0.0.1:3632/2,lzo")
    });

    // First run: the deadline, once.
    let first = run_cmd(cmd_in(Some(&ns), &["hosts"], &vars));
    assert!(first.took >= Duration::from_millis(950), "{:?}", first.took);
    check!(
        first,
        first.row("127.0.9.1").contains("timed out after 1 s")
    );
    let state = std::fs::read_to_string(runtime.path().join("distcc-auto/dead")).unwrap();
    assert_eq!(state.lines().count(), 8, "{state}");

    // Second run: the dead are not waited for.
    let second = run_cmd(cmd_in(Some(&ns), &["hosts"], &vars));
    assert!(
        second.took < Duration::from_millis(300),
        "{:?}: {}",
        second.took,
        second.show()
    );
    let row = second.row("127.0.9.1");
    check!(
        second,
        row.contains(" down ") && row.contains("s ago; not waited for")
    );
    check!(second, second.row("127.0.0.1").contains(" up "));

    // The first dead worker comes back: the next run uses it, and forgets it.
    sh(&[
        "ip",
        "netns",
        "exec",
        &ns.name,
        "iptables",
        "-I",
        "INPUT",
        "-d",
        "127.0.9.1",
        "-j",
        "ACCEPT",
    ]);
    let third = run_cmd(cmd_in(Some(&ns), &["hosts"], &vars));
    check!(third, third.row("127.0.9.1").contains(" up "));
    assert!(third.took < Duration::from_millis(500), "{:?}", third.took);
    let state = std::fs::read_to_string(runtime.path().join("distcc-auto/dead")).unwrap();
    assert!(
        !state.contains("127.0.9.1\t") && state.lines().count() == 7,
        "{state}"
    );

    // A corrupt state is ignored, with a warning; so is a foreign one.
    std::fs::write(runtime.path().join("distcc-auto/dead"), "garbage\n").unwrap();
    let r = run_cmd(cmd_in(Some(&ns), &["env"], &vars));
    r.ok();
    check!(r, r.stderr.contains("ignoring the remembered dead workers"));
    std::os::unix::fs::chown(runtime.path().join("distcc-auto/dead"), Some(65534), None).unwrap();
    let r = run_cmd(cmd_in(Some(&ns), &["env"], &vars));
    check!(r, r.stderr.contains("not a file of this user's"));
    // A private directory that is not private is not used.
    std::fs::remove_file(runtime.path().join("distcc-auto/dead")).unwrap();
    std::fs::set_permissions(
        runtime.path().join("distcc-auto"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let r = run_cmd(cmd_in(Some(&ns), &["env"], &vars));
    check!(r, r.stderr.contains("mode 0700; not used"));
}

/// A shell in the client namespace with `w` as the ssh worker(s), a
/// private directory of the test's own, and DISTCC_AUTO_SSH_PERSIST.
fn persisting(w: &SshWorker, rt: &TempDir, persist: &str, hosts: &str, script: &str) -> Command {
    in_shell("bash", w, rt, persist, hosts, script)
}

fn in_shell(
    sh: &str,
    w: &SshWorker,
    rt: &TempDir,
    persist: &str,
    hosts: &str,
    script: &str,
) -> Command {
    let mut c = shell(sh, Some(&w.lan.client), script);
    c.env("DISTCC_AUTO_HOSTS", hosts)
        .env("DISTCC_AUTO_SSH_COMMAND", w.ssh_command())
        .env("DISTCC_AUTO_SSH_PERSIST", persist)
        .env("XDG_RUNTIME_DIR", rt.path())
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1");
    c
}

/// `c` (a shell that runs `distcc_build make`) in a fresh copy of demo/,
/// and how many of its 4 compiles the worker's distccd did.
fn build_demo(w: &SshWorker, mut c: Command) -> (Run, u64) {
    let src = demo_copy("build");
    let before = w.compile_ok(3633);
    c.current_dir(src.path())
        .env("DISTCC_DIR", src.path().join(".distcc"));
    let r = run_cmd(c);
    let remote = w.compiled(3633, before, 4);
    (r, remote)
}

/// The `distcc-auto __hold` processes started with this private
/// directory (other tests' are not ours to count).
fn holders(rt: &TempDir) -> Vec<String> {
    ours(rt, "distcc-auto __hold")
}

/// The worker's ssh masters (their keepers' command lines hold the same
/// config path).
fn masters(w: &SshWorker) -> Vec<String> {
    w.ssh_processes()
        .into_iter()
        .filter(|l| l.contains(" ssh ") && l.contains(" -M -S ") && !l.contains("__keep"))
        .collect()
}

/// The processes whose command line holds `needle` and which were started
/// with this private directory.
fn ours(rt: &TempDir, needle: &str) -> Vec<String> {
    let mark = format!("XDG_RUNTIME_DIR={}", rt.path().display());
    processes(needle)
        .into_iter()
        .filter(|l| {
            let pid = l.split_whitespace().next().unwrap_or("0");
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|e| e.split(|&b| b == 0).any(|v| v == mark.as_bytes()))
        })
        .collect()
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_second_build_reuses_the_ssh_master_and_nothing_outlives_the_persist_time() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    let first_login = w.logins();
    // The second build in the other shell: the master is the user's, not
    // the shell's.
    for (round, sh) in [(1, "bash"), (2, "zsh")] {
        let c = in_shell(sh, &w, &rt, "3", "ssh://worker", "distcc_build make");
        let (r, remote) = build_demo(&w, c);
        r.expect(0, format_args!("build {round}: "));
        assert_eq!(
            remote,
            4,
            "build {round} compiled through the master\n{}",
            r.show()
        );
        // One login for both builds.
        assert_eq!(w.logins() - first_login, 1, "build {round}: {}", r.show());
        // Between builds: the master waits, the build's holder is gone.
        assert_eq!(masters(&w).len(), 1, "build {round}: the master");
        assert_eq!(holders(&rt), Vec::<String>::new(), "build {round}");
    }
    // Nothing survives the persist time (3 s) after the last use; the
    // check allows 3 s more for OpenSSH's one-second timer and this VM.
    std::thread::sleep(Duration::from_secs(3));
    w.assert_no_ssh_left("3 s after the last build, with DISTCC_AUTO_SSH_PERSIST=3");
    assert_eq!(
        ours(&rt, "distcc-auto __"),
        Vec::<String>::new(),
        "keeper or holder left"
    );
    let left = std::fs::read_dir(rt.path().join("distcc-auto"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_socket())
        .count();
    assert_eq!(left, 0, "the master removed its control socket");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_build_that_pauses_longer_than_the_persist_time_keeps_its_master() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    let src = demo_copy("pause");
    let before = w.compile_ok(3633);
    // One compile, a pause of 2.5 s with nothing sent to the worker, then
    // another: the master (ControlPersist=1) must still carry it.
    let mut c = persisting(
        &w,
        &rt,
        "1",
        "ssh://worker",
        "distcc_build sh -c 'make main.o && sleep 2.5 && make greet.o'",
    );
    c.current_dir(src.path())
        .env("DISTCC_DIR", src.path().join(".distcc"))
        .env("DISTCC_AUTO_APPEND_JOBS", "0");
    let r = run_cmd(c);
    r.ok();
    let logs = || {
        let dir = rt.path().join("distcc-auto");
        let master: String = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let distccd = std::fs::read_to_string(w.path("distccd-3632.log")).unwrap_or_default();
        format!("master's log:\n{master}\nworker's distccd:\n{distccd}")
    };
    assert_eq!(
        w.compiled(3633, before, 2),
        2,
        "both compiles remote\n{}\n{}",
        r.show(),
        logs()
    );
    w.assert_no_ssh_left("1 s after the build");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn kill_stops_a_runs_forwards_and_kill_all_ends_every_master() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    let before = w.logins();
    // Two runs at once, two destinations (two masters): each destination
    // is logged in to once.
    let hosts = "ssh://worker ssh://root@worker";
    let script = "distcc-auto env > \"$1\"";
    let outs: Vec<std::path::PathBuf> = (0..2).map(|i| rt.path().join(format!("env{i}"))).collect();
    let children: Vec<_> = outs
        .iter()
        .map(|out| {
            let mut c = persisting(&w, &rt, "60", hosts, script);
            c.arg("sh").arg(out).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(w.logins() - before, 2, "one login per master, not per run");
    assert_eq!(masters(&w).len(), 2, "two masters");
    assert_eq!(ours(&rt, "distcc-auto __keep").len(), 2, "a keeper each");
    assert_eq!(holders(&rt).len(), 4, "a holder per worker per run");

    // `kill` of the first run: its holders end and its ports close; the
    // masters and the second run's forwards stay.
    let env0 = std::fs::read_to_string(&outs[0]).unwrap();
    let env1 = std::fs::read_to_string(&outs[1]).unwrap();
    let port = |env: &str| -> String {
        let hosts = env.lines().next().unwrap();
        let at = hosts.find("127.0.0.1:").unwrap() + "127.0.0.1:".len();
        hosts[at..].split('/').next().unwrap().to_string()
    };
    let connects = |p: &str| {
        run_cmd({
            let mut c = w.lan.client.cmd("bash");
            c.args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{p}")])
                .stderr(Stdio::null());
            c
        })
        .code
            == 0
    };
    assert!(connects(&port(&env0)) && connects(&port(&env1)));
    let r = run_cmd(persisting(
        &w,
        &rt,
        "60",
        hosts,
        &format!("{env0}\ndistcc-auto kill"),
    ));
    r.ok();
    assert!(!connects(&port(&env0)), "run 1's forward cancelled");
    assert!(connects(&port(&env1)), "run 2's forward kept");
    assert_eq!(masters(&w).len(), 2, "the masters stay");
    assert_eq!(holders(&rt).len(), 2);

    // `kill --all`: every master now, and with them the second run's
    // holders; the next run logs in again.
    let r = run_cmd(persisting(&w, &rt, "60", hosts, "distcc-auto kill --all"));
    r.ok();
    assert_eq!(
        r.stderr.matches("stopped ssh master").count(),
        2,
        "{}",
        r.show()
    );
    check!(r, r.stderr.contains("of root@worker"));
    assert_eq!(masters(&w), Vec::<String>::new(), "at once, not after 60 s");
    wait_for(3, "the holders and keepers to see their master go", || {
        ours(&rt, "distcc-auto __").is_empty()
    });

    // A master killed outright leaves a socket nothing listens on: the
    // next run starts a new one.
    let r = run_cmd(persisting(&w, &rt, "60", "ssh://worker", "distcc-auto env"));
    r.ok();
    for line in masters(&w) {
        let pid: i32 = line.split_whitespace().next().unwrap().parse().unwrap();
        signal(pid, libc::SIGKILL);
    }
    wait_for(
        3,
        "the holder and keeper to see their master killed",
        || ours(&rt, "distcc-auto __").is_empty(),
    );
    let r = run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto hosts",
    ));
    r.ok();
    check!(r, r.row("ssh://worker").contains(" up "));
    let r = run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto kill --all",
    ));
    r.ok();
    w.assert_no_ssh_left("kill --all");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_jump_hosts_own_lasting_master_ends_with_ours() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    // The user's ssh_config shares connections for ever (ControlMaster
    // auto, ControlPersist yes), and the worker is reached through a jump
    // host: the jump's ssh gets none of our options and leaves a lasting
    // master of its own, outside every process group of ours.
    let shared = TempDir::private("user-mux");
    let script = "eval \"$(distcc-auto env)\" || exit; echo \"hosts=$DISTCC_HOSTS\"; \
                  eval \"$(distcc-auto kill)\"";
    let mut c = persisting(&w, &rt, "2", "ssh://worker", script);
    c.env(
        "DISTCC_AUTO_SSH_COMMAND",
        w.jump_with_lasting_masters(shared.path()),
    );
    let r = run_cmd(c);
    r.ok();
    check!(
        r,
        r.stdout.starts_with("hosts=") && r.stdout.contains(" 127.0.0.1:")
    );
    let jump_master = shared.path().display().to_string();
    assert_eq!(
        processes(&jump_master).len(),
        1,
        "the jump's own master runs"
    );
    // Our master's persist time (2 s) after the run: everything ssh
    // started for it is gone, the jump's master included.
    std::thread::sleep(Duration::from_secs(2));
    w.assert_no_ssh_left("2 s after the run");
    wait_for(3, "the jump's lasting master to end with ours", || {
        processes(&jump_master).is_empty() && ours(&rt, "distcc-auto __").is_empty()
    });
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_watch_holds_the_master_and_the_next_build_reuses_it() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    let before = w.logins();
    let t = TempDir::new("watch");
    let out = t.path().join("out");
    let mut c = persisting(
        &w,
        &rt,
        "30",
        "ssh://worker",
        "exec distcc-auto hosts --watch 2",
    );
    c.stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    wait_for(15, "two rounds", || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .matches("distcc-auto hosts --watch:")
            .count()
            >= 2
    });
    assert_eq!(holders(&rt).len(), 1, "one holder for the whole watch");
    assert_eq!(masters(&w).len(), 1);
    assert_eq!(w.logins() - before, 1);
    signal(child.id() as i32, libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    wait_for(3, "the watch's holder to end", || holders(&rt).is_empty());
    assert_eq!(
        masters(&w).len(),
        1,
        "the master stays for its persist time"
    );

    // The build after the watch logs in no more.
    let c = persisting(&w, &rt, "30", "ssh://worker", "distcc_build make");
    let (r, remote) = build_demo(&w, c);
    r.ok();
    assert_eq!(remote, 4, "{}", r.show());
    assert_eq!(
        w.logins() - before,
        1,
        "one login for the watch and the build"
    );
    run_cmd(persisting(
        &w,
        &rt,
        "30",
        "ssh://worker",
        "distcc-auto kill --all",
    ))
    .ok();
    w.assert_no_ssh_left("kill --all");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_master_login_past_the_deadline_leaves_nothing() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    // A ProxyCommand that never connects, and an ssh that would wait 30 s
    // for it (the user's ConnectTimeout comes first and wins): the keeper,
    // its login and the proxy are stopped at our 1 s deadline, and no
    // master is left.
    let slow = format!(
        "{} -o ConnectTimeout=30 -o ProxyCommand='sleep 30.75'",
        w.ssh_command()
    );
    let mut c = persisting(&w, &rt, "30", "ssh://worker", "distcc-auto hosts");
    c.env("DISTCC_AUTO_SSH_COMMAND", &slow)
        .env("DISTCC_AUTO_SSH_TIMEOUT", "1")
        .env("DISTCC_AUTO_TIMEOUT", "1");
    let r = run_cmd(c);
    let row = r.row("ssh://worker");
    check!(
        r,
        row.contains(" down ") && row.contains("(starting the ssh tunnel)")
    );
    wait_for(3, "nothing of the login left", || {
        processes("sleep 30.75").is_empty() && ours(&rt, "distcc-auto __").is_empty()
    });
    w.assert_no_ssh_left("a login past the deadline");
}

#[test]
fn persistence_names_what_is_wrong_with_its_directory_and_command() {
    // The user's own ControlPersist could outlive ours: refused.
    let r = run(
        &["env"],
        &[
            ("DISTCC_AUTO_HOSTS", "ssh://ci@w1"),
            ("DISTCC_AUTO_SSH_PERSIST", "30"),
            ("DISTCC_AUTO_SSH_COMMAND", "ssh -o ControlPersist=yes"),
        ],
    );
    r.expect(96, format_args!(""));
    check!(
        r,
        r.stderr.contains("DISTCC_AUTO_SSH_COMMAND=")
            && r.stderr.contains("DISTCC_AUTO_SSH_PERSIST is set")
    );
    // A relative XDG_RUNTIME_DIR or TMPDIR is not used (a keeper that
    // changes to / would lose it): said, and the worker gets a tunnel of
    // its own.
    for var in ["XDG_RUNTIME_DIR", "TMPDIR"] {
        let mut vars = vec![
            ("DISTCC_AUTO_HOSTS", "ssh://ci@127.0.0.1:1"),
            ("DISTCC_AUTO_SSH_PERSIST", "30"),
            (var, "rel/dir"),
        ];
        if var == "TMPDIR" {
            vars.push(("XDG_RUNTIME_DIR", ""));
        }
        let r = run(&["hosts", "--wide"], &vars);
        check!(
            r,
            r.stderr
                .contains(&format!("{var} 'rel/dir' is not an absolute path"))
                && r.stderr.contains("ssh workers get a tunnel of their own"),
            "{var}"
        );
    }
    // A private directory where no control socket can be (a path too long
    // for a socket, or one ssh would expand): a warning, and the worker
    // gets a tunnel of its own (here refused: nothing listens on port 1).
    for (tag, why) in [
        (
            "d".repeat(90),
            "set XDG_RUNTIME_DIR or TMPDIR to a shorter directory",
        ),
        ("a${HOME}b".to_string(), "contains '${'"),
    ] {
        let dir = TempDir::private(&tag);
        let rt = dir.path().display().to_string();
        let r = run(
            &["hosts", "--wide"],
            &[
                (
                    "DISTCC_AUTO_HOSTS",
                    "ssh://ci@127.0.0.1:1 ssh://ci@127.0.0.2:1",
                ),
                ("DISTCC_AUTO_SSH_PERSIST", "30"),
                ("XDG_RUNTIME_DIR", &rt),
            ],
        );
        assert_eq!(
            r.stderr.matches(why).count(),
            1,
            "one warning: {}",
            r.show()
        );
        check!(
            r,
            r.stderr.contains("ssh workers get a tunnel of their own")
        );
        check!(
            r,
            r.row("ssh://ci@127.0.0.1:1")
                .contains("port 1: Connection refused")
        );
    }
}

/// Nothing of another user's is trusted with persistence: a private
/// directory under a directory another user owns (root after `sudo -E`
/// keeps the user's XDG_RUNTIME_DIR) is not used at all, and a control
/// socket served by another user is never spoken to.
#[test]
#[ignore = "needs root: network namespaces, another user"]
fn no_directory_or_socket_of_another_user_is_trusted() {
    need_netns!();
    let w = SshWorker::start();
    // XDG_RUNTIME_DIR owned by nobody, as /run/user/1000 is by its user.
    let theirs = TempDir::private("theirs");
    std::os::unix::fs::chown(theirs.path(), Some(65534), Some(65534)).unwrap();
    let r = run_cmd(persisting(
        &w,
        &theirs,
        "60",
        "ssh://worker",
        "distcc-auto hosts",
    ));
    r.ok();
    check!(
        r,
        r.stderr.contains("belongs to uid 65534") && r.stdout.contains("  up")
    );
    assert_eq!(masters(&w), Vec::<String>::new(), "no master there");
    assert!(
        std::fs::read_dir(theirs.path()).unwrap().next().is_none(),
        "nothing made in their directory"
    );

    // A socket at our master's very path, but listened on by another user
    // (a small Python listener: a real master cannot be put there by
    // anyone else, which is the point).
    let rt = TempDir::private("runtime");
    let dir = rt.path().join("distcc-auto");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let spec = distcc_auto::config::hostspec::parse_entry("ssh://worker").unwrap();
    let sock = dir.join(distcc_auto::ssh::master::name(&w.ssh_command(), &spec, 60));
    let listener = Daemon::spawn(
        {
            let mut c = w.lan.client.cmd("python3");
            c.arg("-c").arg(format!(
                "import socket, os, time\n\
                 s = socket.socket(socket.AF_UNIX)\n\
                 s.bind({:?})\n\
                 os.setuid(65534)\n\
                 s.listen()\n\
                 while True:\n    c, _ = s.accept(); c.sendall(b'\\0\\0\\0\\x08\\0\\0\\0\\x01\\0\\0\\0\\x04')\n",
                sock.display().to_string()
            ));
            c
        },
        "another user's listener",
    );
    wait_for(5, "the listener", || sock.exists());
    let r = run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto hosts",
    ));
    drop(listener);
    check!(
        r,
        r.stdout.contains("served by uid 65534"),
        "the worker is not reached through it"
    );
}

/// `kill --all` says which master it could not stop, and leaves it where a
/// later `kill --all` reaches it.
#[test]
#[ignore = "needs root: network namespaces"]
fn kill_all_names_a_master_that_does_not_answer_and_reaches_it_later() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto hosts",
    ))
    .ok();
    let pid: i32 = masters(&w)[0]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    signal(pid, libc::SIGSTOP);
    let r = run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto kill --all",
    ));
    check!(
        r,
        r.code != 0 && r.stderr.contains("does not answer") && r.stderr.contains("left running")
    );
    assert_eq!(masters(&w).len(), 1, "still there");
    signal(pid, libc::SIGCONT);
    let r = run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto kill --all",
    ));
    r.ok();
    check!(r, r.stderr.contains("stopped ssh master"));
    assert_eq!(masters(&w), Vec::<String>::new());
}

/// A control socket path that fits `sun_path` but not ssh's temporary name
/// for it (17 bytes longer) gets one warning and a tunnel of its own, not
/// a dropped worker.
#[test]
#[ignore = "needs root: network namespaces"]
fn a_socket_path_ssh_cannot_bind_falls_back_to_a_tunnel_of_its_own() {
    need_netns!();
    let w = SshWorker::start();
    let probe = TempDir::private("x");
    // `RT/distcc-auto/ssh-` and 16 hex digits: 33 bytes after RT.
    let pad = 100 - 33 - probe.path().display().to_string().len();
    let rt = TempDir::private(&format!("x{}", "d".repeat(pad)));
    let socket_len = rt.path().display().to_string().len() + 33;
    assert!((91..=107).contains(&socket_len), "{socket_len}");
    let r = run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto hosts",
    ));
    r.ok();
    check!(r, r.stdout.contains("  up"));
    assert_eq!(
        r.stderr.matches("shorter directory").count(),
        1,
        "{}",
        r.show()
    );
    assert_eq!(masters(&w), Vec::<String>::new());
}

/// A holder killed outright (SIGKILL: no handler runs) leaves its forwards
/// in the master; the next run that uses the master cancels them, so that
/// forwards do not outlive their runs.
#[test]
#[ignore = "needs root: network namespaces"]
fn the_forwards_of_a_holder_killed_outright_are_cancelled_by_the_next_run() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    let out = rt.path().join("env");
    let mut c = persisting(&w, &rt, "60", "ssh://worker", "distcc-auto env > \"$1\"");
    c.arg("sh").arg(&out);
    run_cmd(c).ok();
    let env = std::fs::read_to_string(&out).unwrap();
    let hosts = env.lines().next().unwrap();
    let at = hosts.find("127.0.0.1:").unwrap() + "127.0.0.1:".len();
    let port = hosts[at..].split('/').next().unwrap().to_string();
    let listening = || {
        run_cmd({
            let mut c = w.lan.client.cmd("bash");
            c.args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
                .stderr(Stdio::null());
            c
        })
        .code
            == 0
    };
    assert!(listening(), "the run's forward");
    for h in holders(&rt) {
        let pid: i32 = h.split_whitespace().next().unwrap().parse().unwrap();
        signal(pid, libc::SIGKILL);
    }
    wait_for(3, "the holder gone", || holders(&rt).is_empty());
    assert!(listening(), "the master still forwards for the dead holder");
    let r = run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto hosts",
    ));
    r.ok();
    // (The next run may take the same stable port again and close it as it
    // ends: under load its holder may take a moment.)
    wait_for(3, "the next run to have cancelled it", || !listening());
    let left: Vec<_> = std::fs::read_dir(rt.path().join("distcc-auto"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".fwd."))
        .collect();
    assert!(left.is_empty(), "records left: {left:?}");
    run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto kill --all",
    ))
    .ok();
}

/// An ssh worker that let the deadline pass is still waited for on the
/// next run (its login never fits the short grace of remembered workers),
/// so it is used again as soon as it is back.
#[test]
#[ignore = "needs root: network namespaces"]
fn a_remembered_ssh_worker_is_used_again_when_it_is_back() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    let wall = |op: &str| {
        sh(&[
            "ip",
            "netns",
            "exec",
            &w.lan.worker.name,
            "iptables",
            op,
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &SSH_PORT.to_string(),
            "-j",
            "DROP",
        ]);
    };
    let hosts = |rt: &TempDir, ssh_timeout: &str| {
        let mut c = persisting(&w, rt, "0", "ssh://worker", "distcc-auto hosts");
        c.env("DISTCC_AUTO_BACKOFF_PERIOD", "60")
            .env("DISTCC_AUTO_SSH_TIMEOUT", ssh_timeout)
            .env("DISTCC_AUTO_TIMEOUT", "1");
        run_cmd(c)
    };
    wall("-A");
    let r = hosts(&rt, "1");
    check!(r, r.stdout.contains("timed out"));
    wall("-D");
    // Remembered: a worker reached directly would now get 100 ms.
    let r = hosts(&rt, "10");
    r.ok();
    check!(r, r.stdout.contains("  up"), "back, and used");
}

/// What a master leaves in the private directory (socket, log, lock, the
/// holders' records) goes with it, after a failed login too; and distcc's
/// own lock files for the tunnels' ports do not grow run after run.
#[test]
#[ignore = "needs root: network namespaces"]
fn nothing_of_ours_piles_up() {
    need_netns!();
    let w = SshWorker::start();
    let rt = TempDir::private("runtime");
    let ours = || -> Vec<String> {
        std::fs::read_dir(rt.path().join("distcc-auto"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("ssh-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Failed logins: nothing listens there.
    for port in ["1", "2", "3"] {
        let r = run_cmd(persisting(
            &w,
            &rt,
            "60",
            &format!("ssh://ci@127.0.0.1:{port}"),
            "distcc-auto hosts",
        ));
        check!(r, r.stdout.contains("down"));
    }
    wait_for(3, "the failed masters' files to go", || ours().is_empty());
    // A master that ran, then ended by kill --all.
    run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto hosts",
    ))
    .ok();
    assert!(!ours().is_empty(), "the master's files while it runs");
    run_cmd(persisting(
        &w,
        &rt,
        "60",
        "ssh://worker",
        "distcc-auto kill --all",
    ))
    .ok();
    wait_for(3, "the master's files to go", || ours().is_empty());

    // Three builds through a tunnel of its own, one DISTCC_DIR: distcc's
    // lock files are those of one pair of ports, not of three.
    let distcc_dir = TempDir::new("distcc-dir");
    for _ in 0..3 {
        let src = demo_copy("piles");
        let mut c = persisting(&w, &rt, "0", "ssh://worker", "distcc_build make");
        c.current_dir(src.path())
            .env("DISTCC_DIR", distcc_dir.path());
        run_cmd(c).ok();
    }
    let locks: std::collections::BTreeSet<String> =
        std::fs::read_dir(distcc_dir.path().join("lock"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("cpu_tcp_127.0.0.1_"))
            .map(|n| n.rsplit_once('_').unwrap().0.to_string())
            .collect();
    assert_eq!(locks.len(), 1, "one host:port for three runs: {locks:?}");
}
