//! `+zeroconf` with real parts: avahi-daemon and `distccd --zeroconf` per
//! worker (each with its own D-Bus, mount and UTS namespaces), the client
//! on the same link with no Avahi at all.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

fn client(link: &Link, args: &[&str], hosts: &str) -> Command {
    let mut c = link.client.cmd(BIN);
    c.args(args)
        .env("DISTCC_AUTO_HOSTS", hosts)
        .env("DISTCC_AUTO_BACKOFF_PERIOD", "0")
        .env("DISTCC_AUTO_ZEROCONF_TIMEOUT", "1")
        .env("DISTCC_AUTO_TIMEOUT", "3")
        .env("COLUMNS", "200");
    c
}

/// Wait until the client hears all `n` announced.
fn announced(link: &Link, n: usize) {
    wait_for(20, "the workers' announcements", || {
        let r = run_cmd(client(link, &["hosts", "--json"], "+zeroconf"));
        r.stdout.matches("\"found_by\":\"zeroconf\"").count() >= n
    });
}

#[test]
#[ignore = "needs root: network, mount and UTS namespaces"]
fn announced_workers_are_found_sized_filtered_and_used_in_a_real_build() {
    need_netns!();
    let mut link = Link::new();
    let w1 = AnnouncedWorker::start(
        &mut link,
        "zw1",
        Announcing {
            jobs: 2,
            stats: true,
            gcc11: false,
        },
    );
    let w2 = AnnouncedWorker::start(
        &mut link,
        "zw2",
        Announcing {
            jobs: 3,
            stats: false,
            gcc11: false,
        },
    );
    let w3 = AnnouncedWorker::start(
        &mut link,
        "zw3",
        Announcing {
            jobs: 2,
            stats: true,
            gcc11: true,
        },
    );
    announced(&link, 3);
    let r = run_cmd(client(&link, &["hosts"], "+zeroconf"));
    check!(
        r,
        r.stdout
            .contains("found by zeroconf: distcc@zw1._distcc._tcp.local")
    );
    let r = run_cmd(client(&link, &["hosts", "--wide"], "+zeroconf"));
    r.ok();
    let row = |w: &AnnouncedWorker| r.row(&format!("{}:3632", w.ip));
    check!(r, row(&w1).contains(" up "));
    check!(r, row(&w2).contains("3 slots as it announced"));
    // Without --stats: sized by its TXT jobs, not DISTCC_AUTO_NO_STATS_SLOTS.
    check!(
        r,
        row(&w2).contains(" up ") && r.stdout.contains(&format!("{}:3632/3,lzo", w2.ip))
    );
    // Another compiler: dropped, both named.
    check!(
        r,
        row(&w3).contains(" down ")
            && row(&w3).contains("announced compiler x86_64-linux-gnu 11 differs from this machine's x86_64-linux-gnu 12")
    );
    // DISTCC_AUTO_ZEROCONF_ANY=1 keeps it, with a warning.
    let mut c = client(&link, &["hosts", "--wide"], "+zeroconf");
    c.env("DISTCC_AUTO_ZEROCONF_ANY", "1");
    let r = run_cmd(c);
    check!(
        r,
        r.row(&format!("{}:3632", w3.ip)).contains(" up ")
            && r.stdout.contains("kept: DISTCC_AUTO_ZEROCONF_ANY=1")
    );

    // A real build through the two usable workers.
    let src = demo_copy("zc");
    let mut c = link.client.cmd("bash");
    c.args([
        "--norc",
        "-c",
        &format!(
            ". '{}/shell/distcc.sh'; distcc_build make",
            root().display()
        ),
    ])
    .current_dir(src.path())
    .env(
        "PATH",
        format!(
            "{}:/usr/bin:/bin",
            std::path::Path::new(BIN).parent().unwrap().display()
        ),
    )
    .env("DISTCC_DIR", src.path().join(".distcc"))
    .env("DISTCC_AUTO_HOSTS", "+zeroconf")
    .env("DISTCC_AUTO_ZEROCONF_TIMEOUT", "1")
    .env("DISTCC_AUTO_TIMEOUT", "3");
    let r = run_cmd(c);
    r.ok();
    wait_for(5, "the compiles logged", || {
        w1.compiled() + w2.compiled() >= 4
    });
    assert_eq!(w1.compiled() + w2.compiled(), 4, "{}", r.show());
    assert_eq!(w3.compiled(), 0, "the dropped worker got nothing");

    // Listed and announced: counted once, one dup row.
    let r = run_cmd(client(
        &link,
        &["hosts", "--wide"],
        &format!("{}:3632 +zeroconf", w1.ip),
    ));
    r.ok();
    check!(r, r.stdout.matches(&format!("{}:3632", w1.ip)).count() >= 1);
    check!(
        r,
        r.stdout.contains("+zeroconf distcc@zw1") && r.stdout.contains("dup")
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn no_answer_costs_at_most_the_zeroconf_timeout() {
    need_netns!();
    let link = Link::new();
    let mut c = client(&link, &["env"], "+zeroconf");
    c.env("DISTCC_AUTO_ZEROCONF_TIMEOUT", "0.5");
    let start = Instant::now();
    let r = run_cmd(c);
    let took = start.elapsed();
    r.ok();
    assert!(took < Duration::from_millis(1200), "{took:?}: {}", r.show());
    check!(r, r.stdout.contains("export DISTCC_HOSTS='localhost/"));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_hostile_responder_is_bounded_and_nothing_it_sends_runs() {
    need_netns!();
    // FAKE: a Python responder (tests/data/hostile_mdns.py) for what no
    // real Avahi sends.
    let mut link = Link::new();
    let (ns, ip) = link.host("evil");
    let t = TempDir::new("mdns-marker");
    let marker = t.path().join("pwned");
    let mut c = ns.cmd("python3");
    c.arg(root().join("tests/data/hostile_mdns.py"))
        .arg(&marker)
        .arg(&ip);
    let _fake = Daemon::spawn(c, "the hostile responder");
    std::thread::sleep(Duration::from_millis(500));
    let mut c = link.client.cmd("bash");
    c.args([
        "--norc",
        "-c",
        &format!("out=$('{BIN}' -v env) && eval \"$out\"; echo \"hosts=$DISTCC_HOSTS\""),
    ])
    .env("DISTCC_AUTO_HOSTS", "+zeroconf")
    .env("DISTCC_AUTO_ZEROCONF_TIMEOUT", "0.5")
    .env("DISTCC_AUTO_TIMEOUT", "1")
    .env("DISTCC_AUTO_BACKOFF_PERIOD", "0");
    let start = Instant::now();
    let r = run_cmd(c);
    let took = start.elapsed();
    r.ok();
    assert!(took < Duration::from_secs(3), "{took:?}: {}", r.show());
    assert!(!marker.exists(), "something it sent ran: {}", r.show());
    check!(
        r,
        !r.stdout.contains("8.8.8.8") && !r.stderr.contains("probe 8.8.8.8"),
        "an address outside the link was used"
    );
    check!(r, !r.stderr.contains("goodbye"), "a TTL 0 service was used");
    let kib: u64 = r
        .stderr
        .split("peak memory ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(kib < 64 * 1024, "peak memory {kib} KiB: {}", r.show());
    // The services kept are bounded (1024).
    check!(
        r,
        r.stderr.contains("zeroconf: 1024 workers announced") || r.stderr.contains("zeroconf: 10")
    );
}
