//! A live build's own account (from distcc's state files): exact counts
//! per worker while another client uses the same worker and the same
//! state directory, the timeline as Chrome trace JSON and as SVG, and
//! distccmon still seeing the build. Real distccd workers in a test-made
//! namespace, real make 4.3, every compile a second long (`slowcc`).

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use super::support::*;

/// The per-worker table's row for `name`: (compiles, retried).
fn row(said: &str, name: &str) -> (u64, u64) {
    let prefix = format!("distcc-auto: {name} ");
    let cells: Vec<&str> = said
        .lines()
        .find_map(|l| l.find(&prefix).map(|i| &l[i + prefix.len()..]))
        .unwrap_or_else(|| panic!("no row for {name}:\n{said}"))
        .split_whitespace()
        .collect();
    (cells[0].parse().unwrap(), cells[1].parse().unwrap_or(0))
}

#[test]
#[ignore = "needs root: network namespaces"]
fn the_build_counts_its_own_compiles_exactly_and_draws_its_timeline() {
    need_netns!();
    let ns = Netns::new("account");
    let _workers = two_workers(&ns);
    let p = project();
    let user = TempDir::new("account-user");
    let distcc_dir = user.path().join("distcc");
    let trace = user.path().join("build.json");
    let before = [
        stat(Some(&ns), "127.0.9.1", "dcc_compile_ok"),
        stat(Some(&ns), "127.0.8.1", "dcc_compile_ok"),
    ];
    let trace_var = trace.display().to_string();
    let mut b = start_in(
        Some(&ns),
        p.path(),
        "127.0.9.1 127.0.8.1",
        "make",
        "",
        Some(distcc_dir.clone()),
        &[
            ("DISTCC_AUTO_SUMMARY", "1"),
            ("DISTCC_AUTO_TRACE", &trace_var),
            ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "1"),
        ],
    );
    // Another client of the same user on the first worker meanwhile, with
    // the same DISTCC_DIR (its state files beside the build's): four
    // compiles, one after another.
    let other = {
        let mut c = ns.cmd("sh");
        let slowcc = p.path().join("slowcc");
        c.arg("-c")
            .arg(format!(
                "for i in 1 2 3 4; do distcc {} -c f1.c -o other$i.o || exit 1; done",
                slowcc.display()
            ))
            .current_dir(p.path())
            .env("DISTCC_HOSTS", "127.0.9.1/2")
            .env("DISTCC_DIR", &distcc_dir)
            .env_remove("DISTCC_AUTO_HOSTS");
        thread::spawn(move || c.status().unwrap().code())
    };
    // distccmon sees the build as before (the relays' addresses).
    thread::sleep(Duration::from_secs(3));
    let mut mon = ns.cmd("distccmon-text");
    mon.env("DISTCC_DIR", &distcc_dir);
    let mon = run_cmd(mon);
    check!(
        mon,
        mon.stdout.contains(".c") && mon.stdout.contains("127.200.")
    );
    let (rc, _) = b.wait(120);
    let said = b.said();
    assert_eq!(rc, 0, "{said}");
    assert_eq!(other.join().unwrap(), Some(0), "{said}");
    assert_eq!(objects(p.path()), FILES, "{said}");
    assert!(p.path().join("other4.o").exists(), "{said}");
    let delta = [
        stat(Some(&ns), "127.0.9.1", "dcc_compile_ok") - before[0],
        stat(Some(&ns), "127.0.8.1", "dcc_compile_ok") - before[1],
    ];
    // Exactly the daemons' counts, less the other client's four.
    let (w1, _) = row(&said, "127.0.9.1");
    let (w2, _) = row(&said, "127.0.8.1");
    let (here, _) = row(&said, "here");
    assert_eq!((w1, w2), (delta[0] - 4, delta[1]), "{said}");
    assert!(w1 > 0 && w2 > 0 && here > 0, "{said}");
    let line = format!(
        "distcc-auto: {FILES} compiles: {} remote on 2 workers, {here} here; remote slots busy",
        w1 + w2
    );
    assert!(said.contains(&line), "{line}\n{said}");
    assert_eq!(w1 + w2 + here, FILES as u64, "{said}");
    timeline_holds(&trace, &said);
    b.nothing_left();
}

/// The trace is JSON whose every compile lies inside the build and whose
/// slots are held by one compile at a time; the SVG renders, with one
/// labelled lane per slot.
fn timeline_holds(trace: &std::path::Path, said: &str) {
    let text = std::fs::read_to_string(trace).unwrap_or_else(|e| panic!("{e}\n{said}"));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the trace is JSON");
    let events = doc["traceEvents"].as_array().unwrap();
    let build = events
        .iter()
        .find(|e| e["cat"] == "build")
        .expect("a build event");
    let span = build["dur"].as_u64().unwrap();
    let mut tracks: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    let mut names = BTreeMap::new();
    for e in events {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        if e["name"] == "thread_name" {
            names.insert(key, e["args"]["name"].as_str().unwrap().to_string());
        }
        if ["remote", "here", "preprocess"].contains(&e["cat"].as_str().unwrap_or("")) {
            let (ts, dur) = (e["ts"].as_u64().unwrap(), e["dur"].as_u64().unwrap());
            assert!(ts + dur <= span, "{e} outside the build's {span} µs");
            tracks.entry(key).or_default().push((ts, ts + dur));
        }
    }
    let compiles: usize = events
        .iter()
        .filter(|e| e["cat"] == "remote" || e["cat"] == "here")
        .count();
    assert!(compiles >= FILES, "{compiles} compile slices");
    for (key, slices) in &mut tracks {
        slices.sort_unstable();
        for w in slices.windows(2) {
            assert!(w[0].1 <= w[1].0, "{key:?}: {w:?} overlap");
        }
        assert!(names.contains_key(key), "track {key:?} has no name");
    }
    // Both workers' two slots and this machine's.
    for lane in [
        "127.0.9.1 slot 0",
        "127.0.9.1 slot 1",
        "127.0.8.1 slot 1",
        "here slot 0",
    ] {
        assert!(
            names.values().any(|n| n == lane),
            "no lane {lane}: {names:?}"
        );
    }
    let svg_path = trace.with_file_name("build.json.svg");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert_eq!(svg.matches("class=\"lane\"").count(), tracks.len());
    for name in names.values().filter(|n| n.contains(" slot ")) {
        assert!(svg.contains(&format!(">{name}</text>")), "no label {name}");
    }
    let png = trace.with_file_name("build.png");
    let r = run_cmd({
        let mut c = std::process::Command::new("rsvg-convert");
        c.arg("-o").arg(&png).arg(&svg_path);
        c
    });
    r.ok();
    let head = std::fs::read(&png).unwrap();
    assert_eq!(&head[1..4], b"PNG");
    // The PNG's width (big-endian, after the IHDR tag) is the SVG's.
    assert_eq!(u32::from_be_bytes(head[16..20].try_into().unwrap()), 1200);
}

#[test]
fn a_timeline_nowhere_to_go_is_a_configuration_error_and_a_snapshot_has_none() {
    let d = Distccd::start(2);
    let r = run(
        &["env", "--", "make"],
        &[
            ("DISTCC_AUTO_LIVE", "1"),
            ("DISTCC_AUTO_HOSTS", &d.entry()),
            ("DISTCC_AUTO_TRACE", "/nonexistent/dir/build.json"),
        ],
    );
    check!(r, r.code == 96);
    check!(
        r,
        r.stderr
            .contains("DISTCC_AUTO_TRACE=/nonexistent/dir/build.json")
    );
    check!(r, r.stdout.is_empty());
    let r = run(
        &["env", "--", "make"],
        &[
            ("DISTCC_AUTO_LIVE", "0"),
            ("DISTCC_AUTO_HOSTS", &d.entry()),
            ("DISTCC_AUTO_TRACE", "/tmp/never.json"),
        ],
    );
    r.ok();
    check!(r, r.stderr.contains("DISTCC_AUTO_TRACE is passed over"));
}
