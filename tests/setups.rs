//! Clusters as users run them: stock distccd without --stats, an --allow
//! list that excludes us, a name whose first address is dead, ccache in
//! front of the masquerade, the user's own -j, and a build that never
//! reached distcc. Real distccd, real make, real ccache, real bash and zsh.

use crate::support::*;

fn var(r: &Run, name: &str) -> String {
    r.export(name)
}

/// `script` run in `sh` in a fresh copy of demo/, with `hosts`.
fn in_demo(sh: &str, hosts: &str, script: &str) -> (TempDir, Run) {
    let src = demo_copy(sh);
    let mut c = shell(sh, None, script);
    c.current_dir(src.path())
        .env("DISTCC_DIR", src.path().join(".distcc"))
        .env("DISTCC_AUTO_HOSTS", hosts);
    let r = run_cmd(c);
    (src, r)
}

#[test]
fn a_worker_without_stats_is_used_with_default_slots() {
    let (plain, stats) = (Distccd::without_stats(6), Distccd::start(2));
    let hosts = format!("{} {}", plain.entry(), stats.entry());
    let vars = [
        ("DISTCC_AUTO_HOSTS", hosts.as_str()),
        ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0"),
    ];
    let r = run(&["env"], &vars);
    r.ok();
    // Up with distcc's default of 4 slots, after the worker that reported
    // (even though 4 > 2).
    assert_eq!(
        var(&r, "DISTCC_HOSTS"),
        format!(
            "127.0.0.1:{}/2,lzo 127.0.0.1:{}/4,lzo",
            stats.port, plain.port
        ),
        "{}",
        r.show()
    );
    assert_eq!(var(&r, "DISTCC_AUTO_JOBS"), "6");
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("no stats port"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per worker: {}", r.show());
    check!(
        r,
        warnings[0].contains(&plain.entry())
            && warnings[0].contains("connection refused")
            && warnings[0].contains("--stats")
            && warnings[0].contains("/etc/default/distcc")
    );

    let r = run(&["hosts"], &vars);
    let row = r.row(&plain.entry());
    check!(
        r,
        row.contains(" up ") && row.contains("DISTCC_AUTO_NO_STATS_SLOTS")
    );

    // A variant: its own slot count, and 0 drops such workers.
    let r = run(
        &["env"],
        &[vars[0], vars[1], ("DISTCC_AUTO_NO_STATS_SLOTS", "1")],
    );
    check!(
        r,
        var(&r, "DISTCC_HOSTS").ends_with(&format!("127.0.0.1:{}/1,lzo", plain.port))
    );
    let r = run(
        &["env"],
        &[vars[0], vars[1], ("DISTCC_AUTO_NO_STATS_SLOTS", "0")],
    );
    assert_eq!(
        var(&r, "DISTCC_HOSTS"),
        format!("127.0.0.1:{}/2,lzo", stats.port),
        "{}",
        r.show()
    );
    check!(r, r.stderr.contains("DISTCC_AUTO_NO_STATS_SLOTS is 0"));
    let r = run(&["env"], &[vars[0], ("DISTCC_AUTO_NO_STATS_SLOTS", "four")]);
    r.expect(96, format_args!(""));
    check!(r, r.stderr.contains("DISTCC_AUTO_NO_STATS_SLOTS='four'"));
}

#[test]
fn a_build_through_a_worker_without_stats_compiles_there() {
    let plain = Distccd::without_stats(3);
    for sh in SHELLS {
        let (_src, r) = in_demo(sh, &plain.entry(), "distcc_build make");
        r.expect(0, format_args!("{sh}: "));
        // No counters to read: the tally says so instead of counting.
        check!(
            r,
            r.stderr
                .contains("remote compiles not counted: no worker used has a stats port"),
            "{sh}"
        );
        // The daemon's log shows the four compiles.
        let log = std::fs::read_to_string(&plain.log).unwrap();
        let done = log.lines().filter(|l| l.contains("COMPILE_OK")).count();
        assert!(done >= 4, "{sh}: {done} compiles in the log\n{log}");
    }
}

#[test]
fn an_allow_list_that_excludes_us_is_named() {
    // distccd accepts and closes at once when --allow does not admit the
    // client: here it admits only 127.0.0.2, and we come from 127.0.0.1.
    let d = Distccd::start_with("127.0.0.1", 2, true, "127.0.0.2/32");
    let r = run(&["hosts"], &[("DISTCC_AUTO_HOSTS", &d.entry())]);
    let row = r.row(&d.entry());
    check!(
        r,
        row.contains("down")
            && row.contains("closed the connection without a reply")
            && row.contains("--allow probably excludes this machine")
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_address_that_answered_goes_into_distcc_hosts() {
    need_netns!();
    // A name with two addresses, the first one dead (SYNs dropped), as a
    // dual-stack name with a broken route is: resolved through the client
    // namespace's own hosts file, never the machine's resolver.
    let lan = Lan::new();
    let dead = "10.231.0.3";
    lan.client.etc("nsswitch.conf", "hosts: files\n");
    lan.client.etc(
        "hosts",
        &format!("127.0.0.1 localhost\n{dead} dual.test\n{WORKER_IP} dual.test\n"),
    );
    sh(&[
        "ip",
        "netns",
        "exec",
        &lan.client.name,
        "iptables",
        "-A",
        "OUTPUT",
        "-d",
        dead,
        "-j",
        "DROP",
    ]);
    let _d = lan
        .worker
        .distccd(WORKER_IP, 3632, 3633, 2, std::process::Stdio::null());
    wait_for(10, "distccd in the worker namespace", || {
        lan.worker
            .cmd("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/{WORKER_IP}/3633")])
            .status()
            .is_ok_and(|s| s.success())
    });
    // The dead address comes first, as distcc would try it.
    let order = String::from_utf8(
        lan.client
            .cmd("getent")
            .args(["ahostsv4", "dual.test"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(order.starts_with(dead), "getaddrinfo order: {order}");

    let t = TempDir::new("dual");
    std::fs::write(t.path().join("x.c"), "int x(void) { return 42; }\n").unwrap();
    let script = "eval \"$(distcc-auto env)\" && echo \"hosts=$DISTCC_HOSTS\" && \
                  start=$(date +%s%N) && distcc cc -c x.c -o x.o && \
                  echo \"compile_ms=$(( ($(date +%s%N) - start) / 1000000 ))\"";
    let mut c = shell("bash", Some(&lan.client), script);
    c.current_dir(t.path())
        .env("DISTCC_DIR", t.path())
        .env("DISTCC_AUTO_HOSTS", "dual.test")
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0")
        .env("DISTCC_FALLBACK", "0");
    let before = stat_in(&lan.worker, "dcc_compile_ok");
    let r = run_cmd(c);
    r.ok();
    check!(
        r,
        r.stdout
            .contains(&format!("hosts={WORKER_IP}:3632/2,lzo\n"))
    );
    // Remote, and without distcc's connect timeout on the dead address.
    assert_eq!(
        stat_in(&lan.worker, "dcc_compile_ok") - before,
        1,
        "{}",
        r.show()
    );
    let ms: u64 = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("compile_ms="))
        .unwrap()
        .parse()
        .unwrap();
    check!(r, ms < 2000, "compile took {ms} ms");
    // `hosts` shows the entry as written beside the address used.
    let r = run_cmd(cmd_in(
        Some(&lan.client),
        &["hosts"],
        &[("DISTCC_AUTO_HOSTS", "dual.test")],
    ));
    check!(r, r.row("dual.test").contains(&format!("{WORKER_IP}:3633")));
}

/// A stats counter of the distccd on the worker's veth address.
fn stat_in(ns: &Netns, key: &str) -> u64 {
    let out = ns
        .cmd("timeout")
        .args([
            "2",
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{WORKER_IP}/3633 && cat <&3"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {key} in {text:?}"))
        .trim()
        .parse()
        .unwrap()
}

/// `sh` after sourcing our file, in `dir`, with `path` as PATH (our binary
/// first) and a private ccache directory.
fn build_with_path(sh: &str, dir: &std::path::Path, hosts: &str, path: &str, script: &str) -> Run {
    let mut c = shell(sh, None, script);
    let bin_dir = std::path::Path::new(BIN).parent().unwrap();
    c.current_dir(dir)
        .env("PATH", format!("{}:{path}", bin_dir.display()))
        .env("DISTCC_DIR", dir.join(".distcc"))
        .env("CCACHE_DIR", dir.join(".ccache"))
        .env("DISTCC_AUTO_HOSTS", hosts)
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1")
        .env_remove("CCACHE_PREFIX");
    run_cmd(c)
}

#[test]
fn ccache_in_front_of_distcc_in_both_set_ups() {
    let d = Distccd::start(3);
    for sh in SHELLS {
        for (setup, path, build) in [
            // /usr/lib/distcc first, and a build that asks for `ccache cc`
            // (as meson does when ccache is installed): ccache finds the
            // masquerade, so no prefix may be added.
            (
                "distcc first",
                "/usr/lib/distcc:/usr/bin:/bin",
                "distcc_build make 'CC=ccache cc'",
            ),
            // /usr/lib/ccache first and the plain compiler: the prefix sends
            // ccache's misses through distcc.
            (
                "ccache first",
                "/usr/lib/ccache:/usr/bin:/bin",
                "distcc_build make CC=cc",
            ),
        ] {
            let src = demo_copy(sh);
            let before = d.stat("dcc_compile_ok");
            let r = build_with_path(sh, src.path(), &d.entry(), path, build);
            r.expect(0, format_args!("{sh}, {setup}: "));
            assert_eq!(
                d.grown("dcc_compile_ok", before, 4),
                4,
                "{sh}, {setup}: {}",
                r.show()
            );
            check!(
                r,
                r.stderr
                    .contains("4 remote compiles on 1 worker (0 failed)"),
                "{sh}, {setup}"
            );
        }

        // What the build sees in each set-up, and a prefix of the user's own.
        let t = TempDir::new("ccache-env");
        let show = "distcc_build sh -c 'echo \"prefix=${CCACHE_PREFIX-unset}\"' sh";
        for (path, pre, want) in [
            (
                "/usr/lib/distcc:/usr/lib/ccache:/usr/bin:/bin",
                "",
                "prefix=unset",
            ),
            (
                "/usr/lib/ccache:/usr/lib/distcc:/usr/bin:/bin",
                "",
                "prefix=unset",
            ),
            ("/usr/lib/ccache:/usr/bin:/bin", "", "prefix=distcc"),
            (
                "/usr/lib/ccache:/usr/bin:/bin",
                "export CCACHE_PREFIX=mywrapper; ",
                "prefix=mywrapper",
            ),
        ] {
            let r = build_with_path(sh, t.path(), &d.entry(), path, &format!("{pre}{show}"));
            assert_eq!(r.stdout.trim(), want, "{sh} PATH={path}: {}", r.show());
        }
    }
}

#[test]
fn the_job_count_goes_where_the_command_reads_it() {
    let d = Distccd::start(2);
    let t = TempDir::new("jobs");
    let base = [
        ("DISTCC_AUTO_HOSTS", d.entry()),
        ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1".into()),
    ];
    for sh in SHELLS {
        for (args, append, want, note) in [
            // Before the first `--`: the rest belongs to the program.
            ("a -- --nocapture", "", "[a][-j][3][--][--nocapture]", false),
            // A `-j` after `--` is the program's, not a job count.
            ("a -- -j 9", "", "[a][-j][3][--][-j][9]", false),
            ("-j 7 all", "", "[-j][7][all]", true),
            ("-j7", "", "[-j7]", true),
            ("-j", "", "[-j]", true),
            ("--jobs 5", "", "[--jobs][5]", true),
            ("--jobs=5 -- x", "", "[--jobs=5][--][x]", true),
            ("a b", "0", "[a][b]", false),
            ("a b", "1", "[a][b][-j][3]", false),
        ] {
            let mut c = shell(sh, None, &format!("distcc_build printf '[%s]' {args}"));
            c.current_dir(t.path()).env("DISTCC_DIR", t.path());
            for (k, v) in &base {
                c.env(k, v);
            }
            if !append.is_empty() {
                c.env("DISTCC_AUTO_APPEND_JOBS", append);
            }
            let r = run_cmd(c);
            r.expect(0, format_args!("{sh} {args}: "));
            assert_eq!(r.stdout, want, "{sh} {args}: {}", r.show());
            assert_eq!(
                r.stderr
                    .contains("has its own job count; the probed -j 3 is not used"),
                note,
                "{sh} {args}: {}",
                r.show()
            );
        }
        let mut c = shell(sh, None, "distcc_build true");
        c.env("DISTCC_AUTO_HOSTS", d.entry())
            .env("DISTCC_AUTO_APPEND_JOBS", "no");
        let r = run_cmd(c);
        r.expect(96, format_args!("{sh}: "));
        check!(r, r.stderr.contains("DISTCC_AUTO_APPEND_JOBS='no'"), "{sh}");
    }
}

#[test]
fn after_the_build_it_says_how_many_compiles_ran_remotely() {
    let d = Distccd::start(3);
    for sh in SHELLS {
        let (_src, r) = in_demo(sh, &d.entry(), "distcc_build make; echo \"rc=$?\"");
        check!(r, r.stdout.ends_with("rc=0\n"), "{sh}");
        check!(
            r,
            r.stderr
                .contains("distcc-auto: 4 remote compiles on 1 worker (0 failed)"),
            "{sh}"
        );
        check!(r, !r.stderr.contains("no remote compile ran"), "{sh}");

        // The compiler bypasses distcc: the build succeeds, with a warning.
        let (_src, r) = in_demo(sh, &d.entry(), "distcc_build make CC=gcc; echo \"rc=$?\"");
        check!(r, r.stdout.ends_with("rc=0\n"), "{sh}");
        check!(r, r.stderr.contains("distcc-auto: 0 remote compiles on 1 worker")
                && r.stderr.contains(
                    "distcc-auto: warning: no remote compile ran: is the compiler going through distcc?"
                ), "{sh}");

        // A failing build: its status stands, and no warning about distcc.
        let t = TempDir::new("fail");
        let mut c = shell(sh, None, "distcc_build sh -c 'exit 4' sh; echo \"rc=$?\"");
        c.current_dir(t.path())
            .env("DISTCC_DIR", t.path())
            .env("DISTCC_AUTO_HOSTS", d.entry());
        let r = run_cmd(c);
        check!(r, r.stdout.ends_with("rc=4\n"), "{sh}");
        check!(r, !r.stderr.contains("no remote compile ran"), "{sh}");
    }
}

#[test]
fn tally_refuses_counters_that_are_not_its_own() {
    let d = Distccd::start(1);
    let r = run(
        &["tally"],
        &[
            ("DISTCC_AUTO_HOSTS", &d.entry()),
            ("DISTCC_AUTO_COUNTERS", "$(touch /tmp/x)=1,1"),
        ],
    );
    r.expect(96, format_args!(""));
    check!(r, r.stderr.contains("DISTCC_AUTO_COUNTERS"));
    let r = run(&["tally", "x"], &[("DISTCC_AUTO_HOSTS", &d.entry())]);
    r.expect(2, format_args!(""));
}

#[test]
fn pasted_distcc_hosts_entries_get_a_hint() {
    for (entry, hint) in [
        ("ci@build-1", "ssh://ci@build-1"),
        ("build-2/8,lzo", "write 'build-2'"),
        ("localhost/2", "DISTCC_AUTO_EARLY_LOCAL_JOBS"),
    ] {
        let r = run(&["env"], &[("DISTCC_AUTO_HOSTS", entry)]);
        r.expect(96, format_args!(""));
        check!(r, r.stdout.is_empty());
        check!(
            r,
            r.stderr.contains(&format!("bad entry '{entry}'")) && r.stderr.contains(hint)
        );
    }
}

/// A client compiling in a loop on a worker, until dropped: another
/// user's builds on a shared worker.
struct Busy(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    Option<std::thread::JoinHandle<()>>,
);

impl Busy {
    fn on(d: &Distccd) -> Busy {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let t = TempDir::new("busy");
        std::fs::write(t.path().join("x.c"), "int x(void) { return 1; }\n").unwrap();
        let hosts = format!("127.0.0.1:{}/4", d.port);
        let s = stop.clone();
        let h = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::process::Command::new("distcc")
                    .args(["gcc", "-c", "x.c", "-o", "x.o"])
                    .current_dir(t.path())
                    .env("DISTCC_HOSTS", &hosts)
                    .env("DISTCC_DIR", t.path())
                    .output();
            }
        });
        Busy(stop, Some(h))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.1.take().map(std::thread::JoinHandle::join);
    }
}

#[test]
fn tally_does_not_wait_out_a_worker_that_others_keep_busy() {
    let d = Distccd::start(4);
    let busy = Busy::on(&d);
    wait_for(10, "the other client's compiles", || {
        d.stat("dcc_compile_ok") >= 2
    });
    let counters = format!("127.0.0.1:{}={},0", d.stats_port, d.stat("dcc_compile_ok"));
    let started = std::time::Instant::now();
    let r = run(
        &["tally", "0"],
        &[
            ("DISTCC_AUTO_HOSTS", &d.entry()),
            ("DISTCC_AUTO_COUNTERS", &counters),
            ("DISTCC_AUTO_TIMEOUT", "10"),
        ],
    );
    let took = started.elapsed();
    r.ok();
    check!(r, r.stderr.contains("remote compile"));
    // Not the 10 s of DISTCC_AUTO_TIMEOUT: a few reads, then done.
    check!(r, took < std::time::Duration::from_secs(3), "{took:?}");
    // Many builds' tallies at once: every one of them gets its answer.
    let children: Vec<_> = (0..24)
        .map(|_| {
            let mut c = cmd(
                &["tally", "0"],
                &[
                    ("DISTCC_AUTO_HOSTS", &d.entry()),
                    ("DISTCC_AUTO_COUNTERS", &counters),
                ],
            );
            c.stderr(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("did not answer"), "{err}");
    }
    drop(busy);
}
