//! The reply of `distccd --stats`: an HTTP/1.0 response whose body holds
//! `name value` lines between `<distccstats>` and `</distccstats>`.
//!
//! Nothing here is trusted: numbers are parsed as numbers, absurd values are
//! clamped or treated as absent, and no text from the reply goes anywhere
//! near a shell.

use crate::worker::fault::Fault;

/// At most this many bytes of a reply are read (a real one is about 1 KiB).
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// `dcc_max_kids` above this is clamped: no machine runs more compilers, and
/// an unchecked value once became a 19-digit `-j` that hung make.
pub const MAX_KIDS_CEILING: u32 = 4096;

/// What an empty reply means: distccd accepts, then closes at once, when
/// its `--allow` list does not admit the client.
pub const EMPTY_REPLY: &str = "the stats port closed the connection without a reply \
     (distccd's --allow probably excludes this machine)";

const OPEN: &[u8] = b"<distccstats>";
const CLOSE: &[u8] = b"</distccstats>";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stats {
    /// How many compilers the daemon runs at once; always in 1..=ceiling.
    pub max_kids: u32,
    /// The value as sent, when it had to be clamped.
    pub max_kids_clamped_from: Option<String>,
    /// `dcc_load1..3`: the worker's load averages (absent if unusable).
    pub load: [Option<f64>; 3],
    pub current_load: Option<u64>,
    /// `dcc_free_mem N MB`, in MiB; only newer daemons send it.
    pub free_mem_mib: Option<u64>,
    pub avg_kids1: Option<f64>,
    pub compile_ok: Option<u64>,
    pub compile_error: Option<u64>,
    pub rej_overload: Option<u64>,
    /// `dcc_tcp_accept`: job connections the daemon has accepted.
    pub accepted: Option<u64>,
    /// Of those, how many it has recorded an outcome for (every
    /// `dcc_rej_*`, `dcc_compile_*`, `dcc_cli_disconnect`, `dcc_other`).
    pub outcomes: u64,
    /// The closing tag was missing but the connection ended after a usable
    /// `dcc_max_kids` (distccd 3.4 cuts replies with a long job path).
    pub truncated: bool,
}

impl Stats {
    /// Mean of the load averages that were reported.
    pub fn mean_load(&self) -> Option<f64> {
        let l: Vec<f64> = self.load.iter().flatten().copied().collect();
        (!l.is_empty()).then(|| l.iter().sum::<f64>() / l.len() as f64)
    }
}

/// Whether a prober has read enough: the closing tag has arrived.
pub fn is_complete(buf: &[u8]) -> bool {
    find(buf, CLOSE).is_some()
}

/// Parse a reply. `buf` is everything read; the caller reads until the
/// closing tag, the end of the stream, or the size cap.
pub fn parse(buf: &[u8]) -> Result<Stats, Fault> {
    let Some(start) = find(buf, OPEN) else {
        return Err(if buf.is_empty() {
            Fault::NotAllowed(EMPTY_REPLY.into())
        } else {
            Fault::Protocol("not a distccd stats reply (no <distccstats>)".into())
        });
    };
    let body = &buf[start + OPEN.len()..];
    let (body, truncated) = match find(body, CLOSE) {
        Some(end) => (&body[..end], false),
        None => (body, true),
    };

    let mut stats = Stats {
        truncated,
        ..Stats::default()
    };
    let mut max_kids: Option<&str> = None;
    // A line counts only when its newline arrived: in a cut reply the last
    // line may be a prefix of the real value ("dcc_max_kids 1" of "16").
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if truncated {
        lines.pop();
    }
    for line in lines {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let line = line.trim_end_matches('\r');
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let value = value.trim();
        // The first occurrence of a key wins.
        match key {
            "dcc_max_kids" if max_kids.is_none() => max_kids = Some(value),
            "dcc_load1" if stats.load[0].is_none() => stats.load[0] = load(value),
            "dcc_load2" if stats.load[1].is_none() => stats.load[1] = load(value),
            "dcc_load3" if stats.load[2].is_none() => stats.load[2] = load(value),
            "dcc_current_load" => stats.current_load = stats.current_load.or(count(value)),
            "dcc_free_mem" => stats.free_mem_mib = stats.free_mem_mib.or(mebibytes(value)),
            "dcc_avg_kids1" => stats.avg_kids1 = stats.avg_kids1.or(load(value)),
            "dcc_compile_ok" => stats.compile_ok = stats.compile_ok.or(count(value)),
            "dcc_compile_error" => stats.compile_error = stats.compile_error.or(count(value)),
            "dcc_rej_overload" => stats.rej_overload = stats.rej_overload.or(count(value)),
            "dcc_tcp_accept" => stats.accepted = stats.accepted.or(count(value)),
            _ => {}
        }
        if matches!(
            key,
            "dcc_rej_bad_req"
                | "dcc_rej_overload"
                | "dcc_compile_ok"
                | "dcc_compile_error"
                | "dcc_compile_timeout"
                | "dcc_cli_disconnect"
                | "dcc_other"
        ) {
            stats.outcomes = stats.outcomes.saturating_add(count(value).unwrap_or(0));
        }
    }

    let Some(raw) = max_kids else {
        return Err(Fault::Protocol(if truncated {
            "incomplete stats reply (no </distccstats> and no dcc_max_kids)".into()
        } else {
            "stats reply has no dcc_max_kids".into()
        }));
    };
    let (kids, clamped) = max_kids_value(raw).map_err(Fault::Protocol)?;
    stats.max_kids = kids;
    stats.max_kids_clamped_from = clamped.then(|| printable(raw));
    Ok(stats)
}

/// `dcc_max_kids`: a positive whole number; beyond the ceiling it is clamped.
fn max_kids_value(raw: &str) -> Result<(u32, bool), String> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("dcc_max_kids '{}' is not a number", printable(raw)));
    }
    let digits = raw.trim_start_matches('0');
    if digits.is_empty() {
        return Err("dcc_max_kids is 0".into());
    }
    match digits.parse::<u32>() {
        Ok(n) if n <= MAX_KIDS_CEILING => Ok((n, false)),
        _ => Ok((MAX_KIDS_CEILING, true)),
    }
}

/// Loads above this are no machine's: absent (a `1e308` would make a
/// table line hundreds of columns wide).
pub const MAX_LOAD: f64 = 1e6;

/// A load figure: finite, non-negative and at most MAX_LOAD, else absent.
fn load(v: &str) -> Option<f64> {
    v.parse::<f64>()
        .ok()
        .filter(|l| l.is_finite() && (0.0..=MAX_LOAD).contains(l))
}

/// distccd keeps its counters in a C `int`: a larger one is no distccd's,
/// and absent (sums of counters can then never overflow).
pub const MAX_COUNT: u64 = i32::MAX as u64;

fn count(v: &str) -> Option<u64> {
    v.parse().ok().filter(|&n| n <= MAX_COUNT)
}

/// `N MB` (or a bare `N`), as distccd writes it.
fn mebibytes(v: &str) -> Option<u64> {
    let n = v.strip_suffix("MB").map_or(v, str::trim_end);
    count(n)
}

/// A value for a message: short, without control characters.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(40).flat_map(char::escape_debug).collect();
    if s.chars().count() > 40 {
        out.push_str("...");
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/stats");

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!("{SAMPLES}/{name}")).unwrap()
    }

    fn reply(body: &str) -> Vec<u8> {
        format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n<distccstats>\n{body}</distccstats>\n").into_bytes()
    }

    #[test]
    fn reference_samples() {
        let s = parse(&sample("8_threads.txt")).unwrap();
        assert_eq!(s.max_kids, 8);
        assert_eq!(s.load, [Some(2.0), Some(1.0), Some(3.0)]);
        assert_eq!(s.mean_load(), Some(2.0));
        assert_eq!(s.current_load, Some(4));
        assert_eq!(s.free_mem_mib, None);
        assert!(!s.truncated);

        let s = parse(&sample("single_thread.txt")).unwrap();
        assert_eq!((s.max_kids, s.current_load), (1, Some(64)));
        assert_eq!(s.load, [Some(8.5), Some(12.0), Some(2.0)]);

        let s = parse(&sample("with_dcc_free_mem.txt")).unwrap();
        assert_eq!((s.max_kids, s.free_mem_mib), (8, Some(16384)));

        let e = parse(&sample("invalid_response.txt")).unwrap_err();
        assert!(e.to_string().contains("not a distccd stats reply"), "{e}");
    }

    #[test]
    fn real_daemon_reply() {
        // Captured from Debian's distccd 3.4 (`--stats`), headers included.
        let s = parse(&sample("distccd-3.4-debian.txt")).unwrap();
        assert_eq!(s.max_kids, 3);
        assert_eq!(s.compile_ok, Some(0));
        assert_eq!(s.load, [Some(0.04), Some(0.05), Some(0.01)]);
    }

    #[test]
    fn max_kids_rules() {
        for (v, want) in [
            ("16", Ok((16, false))),
            ("0016", Ok((16, false))),
            ("4096", Ok((4096, false))),
        ] {
            assert_eq!(max_kids_value(v), want);
        }
        for v in ["4097", "99999999999999999999", "184467440737095516160000"] {
            assert_eq!(max_kids_value(v), Ok((MAX_KIDS_CEILING, true)), "{v}");
        }
        for (v, why) in [
            ("0", "is 0"),
            ("000", "is 0"),
            ("-5", "not a number"),
            ("+5", "not a number"),
            ("16abc", "not a number"),
            ("a[$(touch /tmp/x)]", "not a number"),
            ("1.5", "not a number"),
            ("", "not a number"),
        ] {
            let e = max_kids_value(v).unwrap_err();
            assert!(e.contains(why), "{v}: {e}");
        }
        let s = parse(&reply("dcc_max_kids 99999999999999999999\n")).unwrap();
        assert_eq!(s.max_kids, MAX_KIDS_CEILING);
        assert_eq!(
            s.max_kids_clamped_from.as_deref(),
            Some("99999999999999999999")
        );
        assert!(
            parse(&reply("dcc_load1 1\n"))
                .unwrap_err()
                .to_string()
                .contains("no dcc_max_kids")
        );
    }

    #[test]
    fn odd_loads_and_memory_are_absent() {
        let s = parse(&reply(
            "dcc_max_kids 4\ndcc_load1 NaN\ndcc_load2 -1\ndcc_load3 inf\ndcc_free_mem lots\ndcc_current_load -3\n",
        ))
        .unwrap();
        assert_eq!(s.load, [None, None, None]);
        assert_eq!(
            (s.mean_load(), s.free_mem_mib, s.current_load),
            (None, None, None)
        );
        for (v, want) in [
            ("512 MB", Some(512)),
            ("512", Some(512)),
            ("512MB", Some(512)),
            ("5 GB", None),
            ("-1 MB", None),
        ] {
            assert_eq!(mebibytes(v), want, "{v}");
        }
    }

    #[test]
    fn truncated_reply_keeps_complete_lines() {
        // distccd 3.4 builds the reply in a 2 KiB buffer but writes its full
        // length: a long dcc_longest_job cuts the tail and adds stray bytes.
        let mut buf = b"HTTP/1.0 200 OK\r\n\r\n<distccstats>\ndcc_max_kids 16\ndcc_load1 0.5\ndcc_longest_job /very/long/"
            .to_vec();
        buf.extend_from_slice(&[0, 0, 0xff, b'x']);
        let s = parse(&buf).unwrap();
        assert!(s.truncated);
        assert_eq!(
            (s.max_kids, s.load[0], s.free_mem_mib),
            (16, Some(0.5), None)
        );

        // The cut falls inside the dcc_max_kids value: the line is unusable.
        let e = parse(b"<distccstats>\ndcc_max_kids 1").unwrap_err();
        assert!(e.to_string().contains("incomplete stats reply"), "{e}");
        assert!(!is_complete(b"<distccstats>\ndcc_max_kids 1\n"));
        assert!(is_complete(&reply("")));
    }

    #[test]
    fn empty_and_garbage() {
        assert!(
            parse(b"")
                .unwrap_err()
                .to_string()
                .contains("--allow probably excludes")
        );
        assert!(
            parse(b"SSH-2.0-OpenSSH_9.2\r\n")
                .unwrap_err()
                .to_string()
                .contains("not a distccd stats reply")
        );
        let s = parse(&reply(
            "\u{fffd}\u{0}junk\ndcc_max_kids 2\ndcc_max_kids 9000\n",
        ))
        .unwrap();
        assert_eq!(s.max_kids, 2, "first occurrence wins");
    }
}
