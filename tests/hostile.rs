//! Hostile networks and hostile input, as a threat model a reviewer can
//! read: every probe is bounded, nothing from the environment or the network
//! is executed by `eval`, and memory stays small whatever a worker sends.

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::*;

/// Evaluate `distcc-auto env` in `sh` as a user would; report its exit
/// code and the resulting DISTCC_HOSTS.
fn eval_in(sh: &str, hosts: &std::ffi::OsStr, extra: &[(&str, &str)]) -> Run {
    let script = r#"out=$(distcc-auto env); rc=$?; eval "$out"; echo "rc=$rc"; printf '%s' "${DISTCC_HOSTS-unset}""#;
    let mut c = Command::new(sh);
    if sh == "zsh" {
        c.arg("-f");
    }
    c.args(["-c", script]);
    without_distcc_vars(&mut c);
    c.env(
        "PATH",
        format!(
            "{}:{}",
            std::path::Path::new(BIN).parent().unwrap().display(),
            std::env::var("PATH").unwrap()
        ),
    );
    c.env("DISTCC_AUTO_HOSTS", hosts)
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0");
    for (k, v) in extra {
        c.env(k, v);
    }
    run_cmd(c)
}

#[test]
fn hostile_host_lists_never_execute() {
    let d = Distccd::start(2);
    let t = TempDir::new("marker");
    let m = t.path().join("pwned");
    let m = m.display();
    let live = d.entry();
    let mut corpus: Vec<Vec<u8>> = [
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("w;touch {m}"),
        format!("w&&touch {m}"),
        format!("w||touch${{IFS}}{m}"),
        format!("w|touch {m}"),
        format!("'$(touch {m})'"),
        format!("\"$(touch {m})\""),
        format!("w'; touch {m}; '"),
        format!("{live}\n$(touch {m})"),
        format!("ssh://$(touch {m})@w"),
        format!("ssh://w/$(touch {m})"),
        format!("[::1]$(touch {m})"),
        format!("{live}:$(touch {m})"),
        "*".into(),
        "w?".into(),
        "[a-z]".into(),
        "~root".into(),
        "${HOME}".into(),
        "w\\".into(),
        "wörker".into(),
        "ẁ".into(),
        "a".repeat(100_000),
        format!("{}:1", "b.".repeat(200)),
        "-oProxyCommand=touch".into(),
        "ssh://-oProxyCommand=sh".into(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    // NUL-free binary junk.
    corpus.push((1u8..=255).filter(|b| !b.is_ascii_whitespace()).collect());
    corpus.push(vec![0xff, 0xfe, b'w', 0x80]);

    for value in &corpus {
        let value = std::ffi::OsStr::from_bytes(value);
        for sh in EVAL_SHELLS {
            let r = eval_in(sh, value, &[]);
            check!(
                r,
                !t.path().join("pwned").exists(),
                "{sh} executed something for {value:?}\n"
            );
            let rc = r
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("rc="))
                .unwrap_or_else(|| panic!("{}", r.show()));
            assert_eq!(rc, "96", "{sh}: {value:?} must be rejected\n{}", r.show());
            check!(
                r,
                r.stdout.ends_with("unset"),
                "{sh}: nothing set for {value:?}\n"
            );
            check!(
                r,
                r.stderr.contains("DISTCC_AUTO_HOSTS: bad entry"),
                "{sh}: names the entry\n"
            );
        }
    }

    // Accepted values are inert text: the variable holds exactly what we
    // meant, in every shell.
    let value = format!("tcp://localhost:{}:{} {live}", d.port, d.stats_port);
    for sh in EVAL_SHELLS {
        let r = eval_in(sh, value.as_ref(), &[]);
        check!(
            r,
            r.stdout
                .ends_with(&format!("rc=0\n127.0.0.1:{}/2,lzo", d.port)),
            "{sh}\n"
        );
    }
}

#[test]
fn hostile_environment_values_are_rejected_by_name() {
    let t = TempDir::new("marker");
    let m = t.path().join("pwned");
    for var in [
        "DISTCC_AUTO_TIMEOUT",
        "DISTCC_AUTO_SSH_TIMEOUT",
        "DISTCC_AUTO_COMPILER_MEMORY",
        "DISTCC_AUTO_EARLY_LOCAL_JOBS",
        "DISTCC_AUTO_FALLBACK_LOCAL_JOBS",
        "DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS",
    ] {
        let bad = format!("$(touch {})", m.display());
        for sh in EVAL_SHELLS {
            let r = eval_in(sh, "127.0.0.1:9".as_ref(), &[(var, &bad)]);
            check!(r, !m.exists(), "{sh}: {var}\n");
            check!(r, r.stdout.starts_with("rc=96"), "{sh}: {var}\n");
            check!(
                r,
                r.stderr.contains(&format!("{var}='$(touch")),
                "{sh}: names {var}\n"
            );
        }
    }
}

#[test]
fn hostile_stats_values_are_never_trusted() {
    // FAKE: a real distccd only sends the numbers it computed; these are
    // what a broken or hostile server (or anyone on the path) could send.
    let t = TempDir::new("marker");
    let m = t.path().join("pwned");
    let cases: Vec<(String, &str)> = vec![
        (format!("dcc_max_kids a[$(touch {})]\n", m.display()), "is not a number"),
        ("dcc_max_kids 0\n".into(), "dcc_max_kids is 0"),
        ("dcc_max_kids -5\n".into(), "is not a number"),
        ("dcc_max_kids 16abc\n".into(), "is not a number"),
        ("dcc_max_kids 1e3\n".into(), "is not a number"),
        ("dcc_load1 1\n".into(), "no dcc_max_kids"),
        ("dcc_max_kids 99999999999999999999\ndcc_load1 NaN\ndcc_load2 -4\ndcc_load3 inf\ndcc_free_mem 12 GB\n".into(), ""),
    ];
    for (fields, why) in &cases {
        let fake = FakeStats::replying(stats_reply(fields));
        let hosts = fake.entry();
        for sh in EVAL_SHELLS {
            let r = eval_in(
                sh,
                hosts.as_ref(),
                &[
                    ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "1"),
                    ("DISTCC_AUTO_COMPILER_MEMORY", "0"),
                ],
            );
            check!(r, !m.exists(), "{sh}: {fields:?}\n");
            check!(r, r.stdout.starts_with("rc=0\n"), "{sh}");
            if why.is_empty() {
                // Absurd: clamped to the ceiling, with a warning; odd loads
                // and memory count as not reported.
                check!(
                    r,
                    r.stdout
                        .ends_with(&format!("127.0.0.1:{}/4096,lzo", fake.job_port)),
                    "{sh}"
                );
                check!(
                    r,
                    r.stderr
                        .contains("reports dcc_max_kids 99999999999999999999; using 4096")
                );
            } else {
                check!(
                    r,
                    r.stdout.ends_with("localhost/1 --localslots=1"),
                    "{sh}: dropped"
                );
                check!(r, r.stderr.contains(why), "{sh}: want {why:?}");
            }
        }
    }
    // The table shows the odd values as not reported.
    let fake = FakeStats::replying(stats_reply(&cases[6].0));
    let r = run(
        &["hosts", "--wide"],
        &[("DISTCC_AUTO_HOSTS", &fake.entry())],
    );
    let row = r.cells(1);
    assert_eq!(
        &row[2..7],
        &["up", "4096", "-", "-", "4096"],
        "{}",
        r.show()
    );
}

#[test]
fn distccd_34_truncated_reply_is_still_used() {
    // FAKE: distccd 3.4 builds its reply in a 2 KiB buffer but writes its
    // full length, so a long dcc_longest_job cuts the reply (the closing tag
    // and the last fields are lost) and appends stray bytes. Reproducing
    // that with the real daemon needs a compile with a >2 KiB path.
    let long = format!("/{}", "very-long-directory-name/".repeat(100));
    let mut reply = stats_reply(&format!(
        "dcc_max_kids 6\ndcc_load1 0.5\ndcc_longest_job {long}main.c\ndcc_free_mem 9000 MB\n"
    ))
    .into_bytes();
    reply.truncate(2048);
    reply.extend_from_slice(&[0, 0, 0x7f, 0xfe, b'\n', b'x']);
    let fake = FakeStats::replying(reply);
    let r = run(
        &["-v", "env"],
        &[
            ("DISTCC_AUTO_HOSTS", &fake.entry()),
            ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0"),
        ],
    );
    r.ok();
    // dcc_free_mem was cut off: slots are dcc_max_kids.
    check!(
        r,
        r.stdout.contains(&format!(
            "export DISTCC_HOSTS='127.0.0.1:{}/6,lzo';",
            fake.job_port
        ))
    );
    check!(r, r.stderr.contains("reply cut short (distccd 3.4 bug)"));

    // A reply without the closing tag from a server that then stalls is not
    // a reply: the worker is dropped by the deadline.
    let stall = FakeStats::new(|mut c| {
        let _ = c.write_all(
            stats_reply("dcc_max_kids 6\n")
                .trim_end_matches("</distccstats>\n")
                .as_bytes(),
        );
        thread::sleep(Duration::from_secs(20));
    });
    let r = run(
        &["hosts", "--wide"],
        &[
            ("DISTCC_AUTO_HOSTS", &stall.entry()),
            ("DISTCC_AUTO_TIMEOUT", "0.5"),
        ],
    );
    check!(
        r,
        r.stdout
            .contains("timed out after 0.5 s (waiting for the stats reply)")
    );
    assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
}

#[test]
fn memory_stays_small_whatever_workers_send() {
    // FAKE: floods of 100 MB; a real distccd sends about 1 KiB.
    let flood = || {
        FakeStats::new(|mut c| {
            let junk = vec![b'x'; 1 << 20];
            let _ = c.write_all(b"<distccstats>\n");
            for _ in 0..100 {
                if c.write_all(&junk).is_err() {
                    return;
                }
            }
            let _ = c.shutdown(Shutdown::Both);
        })
    };
    let floods: Vec<FakeStats> = (0..16).map(|_| flood()).collect();
    let hosts: Vec<String> = floods.iter().map(FakeStats::entry).collect();
    // The binary's own high-water mark (VmHWM), from its trace: a parent's
    // wait4 rusage would count the test process it was forked from.
    let r = run(
        &["-v", "env"],
        &[
            ("DISTCC_AUTO_HOSTS", &hosts.join(" ")),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "1"),
        ],
    );
    r.ok();
    assert_eq!(
        r.stderr
            .matches("dropped: stats reply larger than 64 KiB")
            .count(),
        16,
        "{}",
        r.show()
    );
    let kib = r.peak_kib();
    assert!(
        kib > 0 && kib < 16 * 1024,
        "peak RSS {kib} KiB with 16 workers sending 100 MB each"
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn blackholed_workers_cost_one_deadline_not_one_each() {
    need_netns!();
    // A namespace whose loopback drops every SYN except to 127.0.0.1,
    // where a real distccd runs.
    let ns = Netns::new("bh");
    for rule in [
        [
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.1",
            "-j",
            "ACCEPT",
        ],
        [
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "-d",
            "127.0.0.0/24",
            "-j",
            "DROP",
        ],
    ] {
        let mut c = ns.cmd("iptables");
        c.args(rule);
        let r = run_cmd(c);
        r.expect(0, format_args!("iptables: "));
    }
    let _d = ns.distccd("127.0.0.1", 3632, 3633, 2, Stdio::null());
    wait_for(10, "distccd", || {
        let r = run_cmd(cmd_in(
            Some(&ns),
            &["env"],
            &[("DISTCC_AUTO_HOSTS", "127.0.0.1")],
        ));
        r.stdout.contains("127.0.0.1:3632/2,lzo")
    });
    for n in [1, 8, 64] {
        let mut hosts: Vec<String> = (2..2 + n).map(|i| format!("127.0.0.{i}")).collect();
        hosts.push("127.0.0.1".into());
        let r = run_cmd(cmd_in(
            Some(&ns),
            &["hosts", "--wide"],
            &[
                ("DISTCC_AUTO_HOSTS", &hosts.join(" ")),
                ("DISTCC_AUTO_TIMEOUT", "1"),
            ],
        ));
        r.ok();
        assert!(
            r.took < Duration::from_millis(1800),
            "{n} blackholed workers took {:?}",
            r.took
        );
        assert_eq!(
            r.stdout
                .matches("timed out after 1 s (connecting to the stats port)")
                .count(),
            n,
            "{}",
            r.show()
        );
        check!(r, r.stdout.contains("DISTCC_HOSTS='--localslots_cpp="));
        check!(
            r,
            r.stdout.contains(" 127.0.0.1:3632/2,lzo'"),
            "the live worker is used"
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn names_that_fail_or_hang_in_the_resolver() {
    need_netns!();
    // Resolution inside namespaces only: their own hosts file, and a
    // resolver on their own loopback that is absent or never answers.
    let d_ns = Netns::new("dns");
    d_ns.etc("nsswitch.conf", "hosts: files dns\n");
    d_ns.etc("hosts", "127.0.0.1 localhost\n127.0.0.1 worker-a.test\n");
    d_ns.etc(
        "resolv.conf",
        "nameserver 127.0.0.53\noptions timeout:5 attempts:2\n",
    );
    let _d = d_ns.distccd("127.0.0.1", 3632, 3633, 3, Stdio::null());
    let vars = |hosts: &'static str| [("DISTCC_AUTO_HOSTS", hosts), ("DISTCC_AUTO_TIMEOUT", "1")];
    wait_for(10, "distccd", || {
        run_cmd(cmd_in(Some(&d_ns), &["env"], &vars("worker-a.test")))
            .stdout
            .contains("127.0.0.1:3632/3,lzo")
    });

    // No resolver listening: the name fails at once.
    let r = run_cmd(cmd_in(
        Some(&d_ns),
        &["hosts", "--wide"],
        &vars("worker-a.test nowhere.test"),
    ));
    let row = r.row("nowhere.test");
    check!(
        r,
        row.contains("down") && row.contains("name did not resolve")
    );
    assert!(r.took < Duration::from_millis(1500), "{:?}", r.took);

    // A resolver that never answers: the probe gives up at the deadline.
    let _mute = d_ns.mute_udp("127.0.0.53:53");
    let r = run_cmd(cmd_in(
        Some(&d_ns),
        &["hosts", "--wide"],
        &vars("worker-a.test slow.test"),
    ));
    let row = r.row("slow.test");
    check!(r, row.contains("timed out after 1 s (resolving the name)"));
    check!(
        r,
        r.row("worker-a.test").contains("up") && r.stdout.contains("127.0.0.1:3632/3,lzo"),
        "the resolvable worker is used, at the address that answered"
    );
    assert!(r.took < Duration::from_millis(1800), "{:?}", r.took);
}

#[test]
fn concurrent_runs_agree() {
    let (a, b) = (Distccd::start(2), Distccd::start(5));
    let hosts = format!("{} {} 127.0.0.1:{}", a.entry(), b.entry(), closed_port());
    let runs: Vec<_> = (0..64)
        .map(|_| {
            let mut c = cmd(
                &["env"],
                &[("DISTCC_AUTO_HOSTS", &hosts), ("DISTCC_AUTO_TIMEOUT", "3")],
            );
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let outs: Vec<String> = runs
        .into_iter()
        .map(|c| String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap())
        .collect();
    let want = format!(
        "export DISTCC_HOSTS='--localslots_cpp={} 127.0.0.1:{}/5,lzo 127.0.0.1:{}/2,lzo';",
        thread::available_parallelism().unwrap(),
        b.port,
        a.port
    );
    for o in &outs {
        assert!(o.starts_with(&want), "{o}");
    }
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn hostile_counters_and_loads_stay_small_and_sane() {
    // FAKE: no real distccd reports a load of 1e308 or counters near
    // 2^64 (it keeps them in a C int); a hostile server may.
    let fake = FakeStats::replying(stats_reply(
        "dcc_max_kids 4\ndcc_load1 1e308\ndcc_load2 1e300\ndcc_load3 9e307\n\
         dcc_compile_ok 18446744073709551614\ndcc_compile_error 18446744073709551615\n",
    ));
    let r = run(
        &["hosts"],
        &[("DISTCC_AUTO_HOSTS", &fake.entry()), ("COLUMNS", "80")],
    );
    r.ok();
    for line in r.stdout.lines() {
        assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
    }
    let r = run(
        &["hosts", "--wide"],
        &[("DISTCC_AUTO_HOSTS", &fake.entry())],
    );
    for line in r.stdout.lines() {
        assert!(
            line.chars().count() <= 160,
            "{} columns: {line}",
            line.len()
        );
    }
    // After a build, no wrapped or absurd count, and no false warning.
    let r = run(
        &["exec", "true"],
        &[
            ("DISTCC_AUTO_HOSTS", &fake.entry()),
            ("DISTCC_AUTO_APPEND_JOBS", "0"),
        ],
    );
    r.ok();
    check!(r, !r.stderr.contains("1844674407370955161"));
    check!(r, !r.stderr.contains("warning: no remote compile"));
    check!(r, r.stderr.contains("not counted"));
}
