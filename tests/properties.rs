//! Property tests over random input for the host grammar and the stats
//! parser: they never panic, and whatever they accept is well formed.
//! 10,000 cases per property and run.

use std::net::Ipv6Addr;
use std::process::Command;

use distcc_auto::config::hostspec::{Host, Transport, parse_entry, parse_hosts};
use distcc_auto::worker::stats::{self, MAX_KIDS_CEILING};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// distcc's own TCP host grammar (src/hosts.c): HOST[:PORT][/LIMIT][,lzo],
/// HOST a name of [A-Za-z0-9._-] or a bracketed IPv6 address. Returns the
/// host, port and limit it would use.
fn distcc_reads(entry: &str) -> Option<(String, u16, u32)> {
    let (host, rest) = if let Some(inner) = entry.strip_prefix('[') {
        let close = inner.find(']')?;
        inner[..close].parse::<Ipv6Addr>().ok()?;
        (entry[..close + 2].to_string(), &inner[close + 1..])
    } else {
        let end = entry.find([':', '/', ','])?;
        let host = &entry[..end];
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return None;
        }
        (host.to_string(), &entry[end..])
    };
    let rest = rest.strip_suffix(",lzo")?;
    let (port, limit) = rest.strip_prefix(':')?.split_once('/')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let limit: u32 = limit.parse().ok().filter(|l| *l > 0)?;
    Some((host, port, limit))
}

/// Strings built mostly from the grammar's own characters, and the ones a
/// shell would act on, so that the interesting paths are hit often.
fn entryish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("tcp://".to_string()),
        Just("ssh://".to_string()),
        Just("localhost".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("::".to_string()),
        "[a-z0-9]{1,8}",
        "[0-9]{1,6}",
        "[:/@.\\-_]",
        "[$;'`()\\\\\"*?&|<> \t\n]",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn host_grammar_never_panics_and_accepts_only_clean_entries(s in entryish()) {
        if let Ok(parsed) = parse_hosts(&s) {
            for spec in &parsed.specs {
                // Nothing a shell or ssh would read as syntax gets through.
                let host = spec.host.to_string();
                prop_assert!(!host.starts_with('-'));
                prop_assert!(host.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:[]".contains(&b)), "{host}");
                prop_assert!(spec.distcc_port > 0 && spec.stats_port > 0);
                if let Transport::Ssh { user: Some(u), .. } = &spec.transport {
                    prop_assert!(!u.starts_with('-') && u.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
                }
                // The DISTCC_HOSTS entry reads back, in distcc's grammar, as
                // the same host and port.
                let entry = format!("{host}:{}/7,lzo", spec.distcc_port);
                prop_assert_eq!(distcc_reads(&entry), Some((host.clone(), spec.distcc_port, 7)), "{}", entry);
                // Writing the spec out again gives the same spec.
                let again = parse_entry(&format!("{host}:{}:{}", spec.distcc_port, spec.stats_port));
                if spec.transport == Transport::Tcp {
                    let again = again.unwrap();
                    prop_assert_eq!((&again.host, again.distcc_port, again.stats_port), (&spec.host, spec.distcc_port, spec.stats_port));
                }
            }
        }
    }

    #[test]
    fn valid_entries_are_always_accepted(
        name in "[a-z][a-z0-9-]{0,20}(\\.[a-z0-9][a-z0-9_-]{0,10}){0,3}",
        v6 in any::<u128>(),
        d in 1u16..,
        s in 1u16..,
        user in proptest::option::of("[a-z_][a-z0-9._-]{0,15}"),
        sshp in proptest::option::of(1u16..),
        pick in 0..4,
    ) {
        let host = if pick == 0 { format!("[{}]", Ipv6Addr::from(v6)) } else { name.clone() };
        let (entry, want_ssh) = match pick {
            0 | 1 => (format!("{host}:{d}:{s}"), false),
            2 => (format!("tcp://{host}:{d}:{s}"), false),
            _ => {
                let u = user.clone().map_or(String::new(), |u| format!("{u}@"));
                let p = sshp.map_or(String::new(), |p| format!(":{p}"));
                (format!("ssh://{u}{host}{p}/{d}/{s}"), true)
            }
        };
        let spec = parse_entry(&entry).map_err(|e| TestCaseError::fail(format!("{entry}: {e}")))?;
        prop_assert_eq!((spec.distcc_port, spec.stats_port, spec.is_ssh()), (d, s, want_ssh));
        if pick == 0 {
            prop_assert_eq!(spec.host, Host::V6(Ipv6Addr::from(v6)));
        }
    }

    #[test]
    fn dns_parser_never_panics_and_stays_bounded(
        bytes in prop::collection::vec(any::<u8>(), 0..1500),
        flip in any::<bool>(),
    ) {
        // Half of the cases look like a response with records, so that the
        // parser gets past the header.
        let mut m = bytes;
        if flip && m.len() >= 12 {
            m[2] |= 0x80;
            m[4] = 0;
            m[5] = 0;
        }
        if let Ok((_, recs)) = distcc_auto::discover::dns::parse(&m) {
            prop_assert!(recs.len() <= distcc_auto::discover::dns::MAX_RECORDS);
        }
    }

    #[test]
    fn stats_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check_stats(&bytes)?;
    }

    #[test]
    fn stats_parser_never_panics_on_reply_shapes(
        fields in prop::collection::vec((
            prop_oneof![Just("dcc_max_kids".to_string()), Just("dcc_load1".to_string()), Just("dcc_load2".to_string()),
                        Just("dcc_load3".to_string()), Just("dcc_free_mem".to_string()), Just("dcc_current_load".to_string()),
                        Just("dcc_compile_ok".to_string()), "[a-z_]{1,12}"],
            prop_oneof!["-?[0-9]{1,25}", "-?[0-9]{1,5}\\.[0-9]{1,5}", Just("NaN".to_string()), Just("inf".to_string()),
                        "[0-9]{1,6} MB", ".{0,12}"],
        ), 0..12),
        close in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut reply = String::from("HTTP/1.0 200 OK\n\n<distccstats>\n");
        for (k, v) in &fields {
            reply.push_str(&format!("{k} {v}\n"));
        }
        if close {
            reply.push_str("</distccstats>\n");
        }
        let bytes = reply.as_bytes();
        check_stats(bytes)?;
        check_stats(&bytes[..cut.index(bytes.len() + 1)])?;
        // The first dcc_max_kids decides, by the documented rule.
        if let (true, Some((_, v))) = (close, fields.iter().find(|(k, _)| *k == "dcc_max_kids")) {
            let got = stats::parse(bytes);
            let v = v.trim();
            let digits = v.bytes().all(|b| b.is_ascii_digit());
            let n = v.trim_start_matches('0');
            match got {
                Ok(s) if digits && !n.is_empty() => {
                    let want = n.parse::<u32>().ok().filter(|n| *n <= MAX_KIDS_CEILING).unwrap_or(MAX_KIDS_CEILING);
                    prop_assert_eq!(s.max_kids, want);
                }
                Ok(s) => prop_assert!(false, "accepted dcc_max_kids {:?} as {}", v, s.max_kids),
                Err(_) => prop_assert!(!digits || n.is_empty(), "rejected dcc_max_kids {:?}", v),
            }
        }
    }
}

fn check_stats(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(s) = stats::parse(bytes) {
        prop_assert!((1..=MAX_KIDS_CEILING).contains(&s.max_kids));
        for l in s.load.iter().flatten() {
            prop_assert!(l.is_finite() && *l >= 0.0);
        }
        if let Some(m) = s.mean_load() {
            prop_assert!(m.is_finite());
        }
    }
    Ok(())
}

/// The real distcc client reads what we write: a few hundred generated
/// entries in one DISTCC_HOSTS, checked with `distcc --show-hosts`.
#[test]
fn real_distcc_reads_our_entries() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 1,
        ..ProptestConfig::default()
    });
    let mut entries = Vec::new();
    let strategy = (
        "[a-z][a-z0-9-]{0,12}(\\.[a-z0-9_-]{1,8}){0,2}",
        any::<u128>(),
        1u16..,
        1u32..4096,
        any::<bool>(),
    );
    for _ in 0..300 {
        let (name, v6, port, slots, six) = strategy.new_tree(&mut runner).unwrap().current();
        let spec = parse_entry(&if six {
            format!("[{}]:{port}", Ipv6Addr::from(v6))
        } else {
            format!("{name}:{port}")
        })
        .unwrap();
        entries.push(format!("{}:{}/{slots},lzo", spec.host, spec.distcc_port));
    }
    let out = Command::new("distcc")
        .arg("--show-hosts")
        .env("DISTCC_HOSTS", entries.join(" "))
        .output();
    let Ok(out) = out else {
        panic!("distcc not found: run `sh tests/deps.sh` (Debian package distcc)");
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(shown, entries);
}
