//! Warm builds: a worker that let the deadline pass is not waited for by
//! the next runs (but still probed, and used again once it answers), and
//! distcc's own stale backoff file is cleared for a worker found up. Real
//! distccd; the blackhole is an iptables DROP in a test-made namespace.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use support::*;

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
    r.expect(0, format_args!(""));
    assert!(!lock.join(&mine).exists(), "{}", r.show());
    for f in &others {
        assert!(lock.join(f).exists(), "{f} was touched");
    }
    assert!(
        r.stderr.contains("removed distcc's backoff file"),
        "{}",
        r.show()
    );

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
    r.expect(0, format_args!(""));
    assert!(!dir.path().join("lock").join(&mine).exists());
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_dead_worker_is_not_waited_for_until_it_answers_again() {
    need_netns!("a_dead_worker_is_not_waited_for_until_it_answers_again");
    let ns = Netns::new("warm");
    let runtime = TempDir::new("runtime");
    std::fs::set_permissions(runtime.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
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
    assert!(
        first.row("127.0.9.1").contains("timed out after 1 s"),
        "{}",
        first.show()
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
    assert!(
        row.contains(" down ") && row.contains("s ago; not waited for"),
        "{}",
        second.show()
    );
    assert!(
        second.row("127.0.0.1").contains(" up "),
        "{}",
        second.show()
    );

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
    assert!(third.row("127.0.9.1").contains(" up "), "{}", third.show());
    assert!(third.took < Duration::from_millis(500), "{:?}", third.took);
    let state = std::fs::read_to_string(runtime.path().join("distcc-auto/dead")).unwrap();
    assert!(
        !state.contains("127.0.9.1\t") && state.lines().count() == 7,
        "{state}"
    );

    // A corrupt state is ignored, with a warning; so is a foreign one.
    std::fs::write(runtime.path().join("distcc-auto/dead"), "garbage\n").unwrap();
    let r = run_cmd(cmd_in(Some(&ns), &["env"], &vars));
    r.expect(0, format_args!(""));
    assert!(
        r.stderr.contains("ignoring the remembered dead workers"),
        "{}",
        r.show()
    );
    std::os::unix::fs::chown(runtime.path().join("distcc-auto/dead"), Some(65534), None).unwrap();
    let r = run_cmd(cmd_in(Some(&ns), &["env"], &vars));
    assert!(
        r.stderr.contains("not a file of this user's"),
        "{}",
        r.show()
    );
    // A private directory that is not private is not used.
    std::fs::remove_file(runtime.path().join("distcc-auto/dead")).unwrap();
    std::fs::set_permissions(
        runtime.path().join("distcc-auto"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let r = run_cmd(cmd_in(Some(&ns), &["env"], &vars));
    assert!(r.stderr.contains("mode 0700; not used"), "{}", r.show());
}
