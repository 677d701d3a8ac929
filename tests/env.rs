//! `distcc-auto env` and `hosts` against the real Debian distccd (and, where
//! marked, a fake stats server for what a real daemon cannot send).

use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use crate::support::*;

fn cpus() -> u32 {
    thread::available_parallelism().unwrap().get() as u32
}

/// Every stdout line must be one of the fixed `export NAME=...;` lines.
fn assert_eval_only(r: &Run) {
    let names: Vec<&str> = r
        .stdout
        .lines()
        .map(|l| {
            check!(
                r,
                l.starts_with("export ") && l.ends_with(';'),
                "not shell for eval: {l:?}\n"
            );
            l["export ".len()..].split('=').next().unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "DISTCC_HOSTS",
            "DISTCC_AUTO_JOBS",
            "DISTCC_AUTO_TUNNEL_PIDS",
            "DISTCC_AUTO_TUNNEL_IDS",
            "DISTCC_AUTO_COUNTERS",
            "DISTCC_AUTO_CCACHE_PREFIX"
        ],
        "{}",
        r.show()
    );
}

fn var(r: &Run, name: &str) -> String {
    r.export(name)
}

#[test]
fn live_worker_and_dead_port() {
    let d = Distccd::start(3);
    let dead = closed_port();
    let hosts = format!("{} 127.0.0.1:{dead}:{dead}", d.entry());
    let r = run(&["env"], &[("DISTCC_AUTO_HOSTS", &hosts)]);
    r.ok();
    assert_eval_only(&r);
    let cpp = cpus();
    assert_eq!(
        var(&r, "DISTCC_HOSTS"),
        format!("--localslots_cpp={cpp} 127.0.0.1:{}/3,lzo", d.port)
    );
    assert_eq!(var(&r, "DISTCC_AUTO_JOBS"), (3 + cpp).to_string());
    check!(
        r,
        r.stderr.contains(&format!(
            "worker '127.0.0.1:{dead}:{dead}' dropped: stats port {dead}: connection refused"
        ))
    );
    check!(
        r,
        r.stderr.contains(&format!(
            "-j {}: 0 local, {cpp} preprocessor, 3 remote on 1 worker",
            3 + cpp
        ))
    );
}

#[test]
fn job_count_adds_local_and_preprocessor_slots() {
    let (a, b) = (Distccd::start(2), Distccd::start(5));
    let hosts = format!("{} {}", a.entry(), b.entry());
    let vars = [
        ("DISTCC_AUTO_HOSTS", hosts.as_str()),
        ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "1"),
        ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "3"),
        ("DISTCC_AUTO_COMPILER_MEMORY", "0"),
    ];
    let r = run(&["env"], &vars);
    r.ok();
    // The bigger worker comes first.
    assert_eq!(
        var(&r, "DISTCC_HOSTS"),
        format!(
            "localhost/1 --localslots=1 --localslots_cpp=3 127.0.0.1:{}/5,lzo 127.0.0.1:{}/2,lzo",
            b.port, a.port
        )
    );
    assert_eq!(var(&r, "DISTCC_AUTO_JOBS"), "11");
}

#[test]
fn job_port_closed_means_no_jobs() {
    // A real daemon's stats port, paired with a job port where nothing listens.
    let d = Distccd::start(4);
    let closed = closed_port();
    let hosts = format!("127.0.0.1:{closed}:{} {}", d.stats_port, d.entry());
    let r = run(&["env"], &[("DISTCC_AUTO_HOSTS", &hosts)]);
    r.ok();
    check!(r, !var(&r, "DISTCC_HOSTS").contains(&format!(":{closed}/")));
    check!(
        r,
        r.stderr
            .contains(&format!("job port {closed} closed: connection refused"))
    );
}

#[test]
fn ipv6_worker() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        skip("no IPv6 loopback on this machine");
        return;
    }
    let d = Distccd::start_on("::1", 2);
    let hosts = format!("[::1]:{}:{}", d.port, d.stats_port);
    let r = run(&["env"], &[("DISTCC_AUTO_HOSTS", &hosts)]);
    r.ok();
    check!(
        r,
        var(&r, "DISTCC_HOSTS").ends_with(&format!(" [::1]:{}/2,lzo", d.port))
    );
}

#[test]
fn memory_scaling_on_and_off() {
    // FAKE: Debian's distccd 3.4 never sends dcc_free_mem; newer daemons do.
    let fake = FakeStats::replying(stats_reply(
        "dcc_max_kids 16\ndcc_load1 0.1\ndcc_free_mem 3000 MB\n",
    ));
    let hosts = fake.entry();
    let go = |mem| {
        run(
            &["env"],
            &[
                ("DISTCC_AUTO_HOSTS", &hosts),
                ("DISTCC_AUTO_COMPILER_MEMORY", mem),
                ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0"),
            ],
        )
    };
    let on = go("1024");
    assert_eq!(
        var(&on, "DISTCC_HOSTS"),
        format!("127.0.0.1:{}/2,lzo", fake.job_port),
        "{}",
        on.show()
    );
    let off = go("0");
    assert_eq!(
        var(&off, "DISTCC_HOSTS"),
        format!("127.0.0.1:{}/16,lzo", fake.job_port),
        "{}",
        off.show()
    );
    let starved = go("4000");
    assert_eq!(
        starved.code,
        0,
        "falls back to local jobs: {}",
        starved.show()
    );
    check!(
        starved,
        starved
            .stderr
            .contains("not enough free memory (3000 MiB free, 4000 MiB per compiler)")
    );
}

#[test]
fn nothing_to_build_on_is_97_with_empty_stdout() {
    let dead = closed_port();
    let hosts = format!("127.0.0.1:{dead}:{dead}");
    let r = run(
        &["env"],
        &[
            ("DISTCC_AUTO_HOSTS", &hosts),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "0"),
        ],
    );
    r.expect(97, format_args!(""));
    assert_eq!(r.stdout, "");
    check!(
        r,
        r.stderr
            .contains("no worker is up (1 configured) and DISTCC_AUTO_FALLBACK_LOCAL_JOBS is 0")
    );

    // With local fallback, the build runs here.
    let r = run(
        &["env"],
        &[
            ("DISTCC_AUTO_HOSTS", &hosts),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "3"),
            ("DISTCC_AUTO_COMPILER_MEMORY", "0"),
        ],
    );
    r.ok();
    assert_eq!(var(&r, "DISTCC_HOSTS"), "localhost/3 --localslots=3");
    assert_eq!(var(&r, "DISTCC_AUTO_JOBS"), "3");
}

#[test]
fn configuration_errors_are_96_and_name_the_culprit() {
    for (vars, want) in [
        (vec![], "DISTCC_AUTO_HOSTS is not set"),
        (
            vec![("DISTCC_AUTO_HOSTS", " ")],
            "DISTCC_AUTO_HOSTS is empty",
        ),
        (
            vec![("DISTCC_AUTO_HOSTS", "w1 localhost:99999")],
            "bad entry 'localhost:99999': distcc port '99999' is not a number from 1 to 65535",
        ),
        (
            vec![("DISTCC_AUTO_HOSTS", "w1 http://w2")],
            "bad entry 'http://w2': unknown scheme 'http://'",
        ),
        (
            vec![("DISTCC_AUTO_HOSTS", "w1 $(reboot)")],
            "bad entry '$(reboot)': '$' cannot be part of a host name",
        ),
        (
            vec![("DISTCC_AUTO_HOSTS", "w1"), ("DISTCC_AUTO_TIMEOUT", "soon")],
            "DISTCC_AUTO_TIMEOUT='soon' is not valid",
        ),
        (
            vec![
                ("DISTCC_AUTO_HOSTS", "w1"),
                ("DISTCC_AUTO_COMPILER_MEMORY", "-1"),
            ],
            "DISTCC_AUTO_COMPILER_MEMORY='-1' is not valid",
        ),
    ] {
        let r = run(&["env"], &vars);
        r.expect(96, format_args!(""));
        assert_eq!(r.stdout, "", "{}", r.show());
        check!(r, r.stderr.contains(want), "want {want:?}\n");
    }
}

#[test]
fn hosts_table_and_json() {
    let d = Distccd::start(3);
    let dead = closed_port();
    let hosts = format!("127.0.0.1:{dead}:{dead} {}", d.entry());
    let r = run(
        &["hosts", "--wide"],
        &[
            ("DISTCC_AUTO_HOSTS", &hosts),
            ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "2"),
        ],
    );
    r.ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    check!(r, lines[0].starts_with("ENTRY"));
    // Priority order: the live worker first, with what it reported.
    let up: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &up[..4],
        &[
            d.entry().as_str(),
            &format!("127.0.0.1:{}", d.stats_port),
            "up",
            "3"
        ],
        "{}",
        r.show()
    );
    check!(
        r,
        lines[2].starts_with(&format!("127.0.0.1:{dead}:{dead}"))
            && lines[2].contains("down")
            && lines[2].ends_with("connection refused")
    );
    check!(
        r,
        r.stdout
            .contains("-j 5: 0 local, 2 preprocessor, 3 remote slots; 1 of 2 workers up")
    );

    // By default the table fits the terminal: the reason on its own line.
    let r = run(
        &["hosts"],
        &[
            ("DISTCC_AUTO_HOSTS", &hosts),
            ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "2"),
            ("COLUMNS", "60"),
        ],
    );
    r.ok();
    check!(r, r.stdout.starts_with("WORKER"));
    check!(
        r,
        r.stdout
            .lines()
            .take_while(|l| !l.is_empty())
            .all(|l| l.chars().count() <= 60)
    );
    check!(
        r,
        r.stdout
            .contains(&format!("\n    stats port {dead}: connection refused"))
    );

    let j = run(
        &["hosts", "--json"],
        &[
            ("DISTCC_AUTO_HOSTS", &hosts),
            ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "2"),
        ],
    );
    j.ok();
    assert_eq!(j.stdout.lines().count(), 1);
    check!(j, j.stdout.starts_with(&format!("{{\"schema\":1,\"workers\":[{{\"entry\":\"{}\",\"transport\":\"tcp\",\"address\":\"127.0.0.1:{}\",\"host\":\"127.0.0.1\",\"port\":{},\"up\":true,\"reason\":null,\"reason_code\":null,", d.entry(), d.stats_port, d.stats_port)));
    check!(j, j.stdout.contains("\"reason_code\":\"refused\""));
    check!(j, j.stdout.contains("\"jobs\":5,"));
}

#[test]
fn hosts_shows_entries_that_name_the_same_worker() {
    let d = Distccd::start(2);
    let hosts = format!("{} tcp://localhost:{}:{}", d.entry(), d.port, d.stats_port);
    let r = run(&["hosts", "--wide"], &[("DISTCC_AUTO_HOSTS", &hosts)]);
    r.ok();
    assert_eq!(
        r.cells(2)[..3],
        [
            format!("tcp://localhost:{}:{}", d.port, d.stats_port).as_str(),
            "-",
            "dup"
        ],
        "{}",
        r.show()
    );
    check!(
        r,
        r.stdout
            .lines()
            .nth(2)
            .unwrap()
            .ends_with(&format!("same worker as '{}'", d.entry()))
    );
    check!(r, r.stderr.contains("names the same worker as"));
    check!(
        r,
        r.stdout.contains("2 remote slots; 1 of 1 workers up"),
        "counted once"
    );
}

#[test]
fn verbose_traces_each_step() {
    let d = Distccd::start(2);
    for (args, vars) in [
        (vec!["-v", "env"], vec![]),
        (vec!["env"], vec![("DISTCC_AUTO_DEBUG", "1")]),
    ] {
        let mut vars = vars;
        let hosts = d.entry();
        vars.push(("DISTCC_AUTO_HOSTS", hosts.as_str()));
        let r = run(&args, &vars);
        r.ok();
        assert_eval_only(&r);
        for want in [
            format!("debug: entry '{}'", d.entry()),
            format!(
                "debug: probe 127.0.0.1:{}: up, dcc_max_kids 2",
                d.stats_port
            ),
            "debug: 1 of 1 workers up".into(),
        ] {
            check!(r, r.stderr.contains(&want), "want {want}\n");
        }
    }
}

#[test]
fn help_and_version() {
    let r = run(&["--help"], &[]);
    assert_eq!(r.code, 0);
    check!(r, r.stdout.starts_with("Usage: distcc-auto"));
    let r = run(&["--version"], &[]);
    assert_eq!(
        r.stdout,
        format!("distcc-auto {}\n", env!("CARGO_PKG_VERSION"))
    );
    let r = run(&["bogus"], &[]);
    r.expect(2, format_args!(""));
}

#[test]
fn help_options_and_variables_are_in_the_man_page() {
    let man = std::fs::read_to_string(root().join("man/distcc-auto.1")).unwrap();
    let help = run(&["--help"], &[]).stdout;
    for word in
        help.split(|c: char| c.is_whitespace() || c == ',' || c == '|' || c == '[' || c == ']')
    {
        let word = word
            .split('=')
            .next()
            .unwrap()
            .trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_');
        // In mdoc, `--json` is written `Fl \-json` and `-v` is `Fl v`.
        let roff = if let Some(long) = word.strip_prefix("--") {
            format!("Fl \\-{long}")
        } else if let Some(short) = word.strip_prefix('-') {
            format!("Fl {short}")
        } else if word.starts_with("DISTCC_AUTO_") {
            format!("Ev {word}")
        } else {
            continue;
        };
        assert!(
            man.contains(&roff),
            "{word} is in --help but not in the man page (as {roff:?})"
        );
    }
}

#[test]
fn stalled_and_oversized_replies_are_bounded() {
    // FAKE: a real distccd always answers promptly with a small reply; these
    // servers stall, trickle, or send far more than any reply.
    let silent = FakeStats::new(|c| {
        thread::sleep(Duration::from_secs(30));
        drop(c);
    });
    let trickle = FakeStats::new(|mut c| {
        for b in stats_reply("dcc_max_kids 4\n").bytes() {
            if c.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_secs(1)); // one byte a second
        }
    });
    let flood = FakeStats::new(|mut c| {
        let junk = vec![b'x'; 1 << 20];
        let _ = c.write_all(b"<distccstats>\n");
        for _ in 0..100 {
            if c.write_all(&junk).is_err() {
                return;
            }
        }
    });
    let half = FakeStats::new(|mut c| {
        let _ = c.write_all(b"HTTP/1.0 200 OK\n\n<distccstats>\ndcc_tcp_accept 0\ndcc_max_k");
        let _ = c.shutdown(Shutdown::Both);
    });
    let good = FakeStats::replying(stats_reply("dcc_max_kids 5\n"));
    // Each fake has its own job port: entries sharing one would be one daemon.
    let fakes = [&silent, &trickle, &flood, &half, &good];
    let entries: Vec<String> = fakes.iter().map(|f| f.entry()).collect();
    let r = run(
        &["hosts"],
        &[
            ("DISTCC_AUTO_HOSTS", &entries.join(" ")),
            ("DISTCC_AUTO_TIMEOUT", "1"),
        ],
    );
    r.ok();
    assert!(
        r.took < Duration::from_millis(2500),
        "took {:?}: {}",
        r.took,
        r.show()
    );
    let row = |i: usize| r.row(&entries[i]);
    check!(
        r,
        row(0).contains("down")
            && row(0).contains("timed out after 1 s (waiting for the stats reply)")
    );
    check!(
        r,
        row(1).contains("down")
            && row(1).contains("timed out after 1 s (waiting for the stats reply)")
    );
    check!(
        r,
        row(2).contains("down") && row(2).contains("stats reply larger than 64 KiB")
    );
    check!(
        r,
        row(3).contains("down") && row(3).contains("incomplete stats reply")
    );
    check!(
        r,
        row(4).contains(" up ")
            && r.stdout
                .contains(&format!("127.0.0.1:{}/5,lzo", good.job_port))
    );
}
