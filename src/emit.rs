//! Rendering a plan: shell code for `eval`, the one-line summary, the
//! `hosts` table and its JSON form. This module is the only caller of
//! `shell_escape`: everything `eval` reads is built here, in a fixed order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;

use crate::plan::{Plan, Worker};
use crate::tunnel::TunnelInfo;

fn quote(s: &str) -> Cow<'_, str> {
    // The unix function directly: the top-level escape() follows the
    // build target's shell, and `eval` is always a POSIX shell.
    shell_escape::unix::escape(Cow::Borrowed(s))
}

/// The lines `eval "$(distcc-auto env)"` reads. Only values we built are
/// emitted, each quoted; the variable names are fixed. `ccache_prefix` is
/// what `distcc_build` gives CCACHE_PREFIX (see `ccache`).
pub fn env_script(plan: &Plan, tunnels: &[TunnelInfo], ccache_prefix: Option<&str>) -> String {
    let pids: Vec<String> = tunnels.iter().map(|t| t.pid.to_string()).collect();
    let ids: Vec<String> = tunnels.iter().map(TunnelInfo::identity).collect();
    let mut out = String::new();
    for (name, value) in [
        ("DISTCC_HOSTS", plan.distcc_hosts()),
        ("DISTCC_AUTO_JOBS", plan.jobs().to_string()),
        ("DISTCC_AUTO_TUNNEL_PIDS", pids.join(" ")),
        ("DISTCC_AUTO_TUNNEL_IDS", ids.join(" ")),
        ("DISTCC_AUTO_COUNTERS", crate::tally::render(plan)),
        (
            "DISTCC_AUTO_CCACHE_PREFIX",
            ccache_prefix.unwrap_or_default().into(),
        ),
    ] {
        let _ = writeln!(out, "export {name}={};", quote(&value));
    }
    out
}

/// What `eval "$(distcc-auto kill)"` reads.
pub const UNSET_SCRIPT: &str = "unset DISTCC_HOSTS DISTCC_AUTO_JOBS DISTCC_AUTO_TUNNEL_PIDS \
                                DISTCC_AUTO_TUNNEL_IDS DISTCC_AUTO_COUNTERS \
                                DISTCC_AUTO_CCACHE_PREFIX;\n";

/// One line for stderr: what -j is made of.
pub fn summary(plan: &Plan) -> String {
    let n = plan.up().count();
    format!(
        "-j {}: {} local, {} preprocessor, {} remote on {n} worker{}",
        plan.jobs(),
        plan.local_slots,
        plan.preprocessor_slots,
        plan.remote_slots(),
        if n == 1 { "" } else { "s" },
    )
}

/// Where a worker was asked, as a person wants to read it: for an ssh
/// worker, the destination and the tunnel's local job and stats ports.
fn address(w: &Worker) -> String {
    match (&w.tunnel, w.address) {
        (Some(t), _) => format!(
            "{} via 127.0.0.1:{},{}",
            t.destination, t.local_distcc_port, t.local_stats_port
        ),
        (None, Some(a)) => a.to_string(),
        // An ssh worker whose tunnel never came up.
        (None, None) if w.spec.is_ssh() => {
            format!("{} via ssh", w.spec.ssh_destination().unwrap_or_default())
        }
        (None, None) => format!("{}:{}", w.target.host, w.target.stats_port),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn load(w: &Worker) -> Option<String> {
    w.stats.as_ref()?.mean_load().map(|l| format!("{l:.2}"))
}

fn free_mem(w: &Worker) -> Option<String> {
    w.stats.as_ref()?.free_mem_mib.map(|m| format!("{m} MiB"))
}

fn millis(w: &Worker) -> f64 {
    (w.elapsed.as_secs_f64() * 10_000.0).round() / 10.0
}

/// Entries dropped as naming a worker already listed: (entry, first).
pub type Duplicates = [(String, String)];

/// The `hosts` table: a row per worker in priority order, a row per
/// duplicate entry, then the totals. KIDS is what a worker advertises
/// (dcc_max_kids), SLOTS what it was granted.
pub fn hosts_table(plan: &Plan, duplicates: &Duplicates) -> String {
    let header = [
        "ENTRY", "ADDRESS", "STATE", "KIDS", "LOAD", "FREE_MEM", "SLOTS", "TIME", "REASON",
    ];
    let rows = plan.workers.iter().map(|w| {
        let s = w.stats.as_ref();
        vec![
            w.spec.entry.clone(),
            address(w),
            state(w),
            opt(s.map(|s| s.max_kids)),
            opt(load(w)),
            opt(free_mem(w)),
            slots(w),
            format!("{} ms", millis(w)),
            reason(w),
        ]
    });
    let dups = duplicates.iter().map(|(entry, first)| {
        let mut row = vec![entry.clone(), "-".into(), "dup".into()];
        row.extend(["-"; 5].map(String::from));
        row.push(format!("same worker as '{first}'"));
        row
    });
    let mut out = columns(&header, rows.chain(dups), &[3, 4, 6, 7]);
    let _ = writeln!(out, "\n{}", totals(plan));
    let _ = writeln!(out, "DISTCC_HOSTS={}", quote(&plan.distcc_hosts()));
    if let Some(why) = &plan.nothing {
        let _ = writeln!(out, "nothing to build on: {why}");
    }
    out
}

/// Why an up worker's slots are a default, and how to fix that.
pub fn no_stats_note(w: &Worker) -> Option<String> {
    let why = w.no_stats.as_ref().filter(|_| w.is_up())?;
    Some(format!(
        "no stats port ({why}): {} slots by default (DISTCC_AUTO_NO_STATS_SLOTS); \
         start its distccd with --stats (Debian: add DAEMON_ARGS=\"$DAEMON_ARGS --stats\" \
         to /etc/default/distcc)",
        w.slots
    ))
}

/// The REASON cell: why a worker was dropped, or a note on one that is up.
fn reason(w: &Worker) -> String {
    w.dropped
        .clone()
        .or_else(|| no_stats_note(w))
        .unwrap_or_default()
}

fn state(w: &Worker) -> String {
    if w.is_up() { "up" } else { "down" }.into()
}

fn slots(w: &Worker) -> String {
    if w.is_up() {
        w.slots.to_string()
    } else {
        "-".into()
    }
}

fn totals(plan: &Plan) -> String {
    format!(
        "local slots: {}, preprocessor slots: {}, remote slots: {} on {} of {} workers, total: -j {}",
        plan.local_slots,
        plan.preprocessor_slots,
        plan.remote_slots(),
        plan.up().count(),
        plan.workers.len(),
        plan.jobs()
    )
}

/// Aligned columns: `numeric` ones to the right, the last one ragged.
fn columns(header: &[&str], rows: impl Iterator<Item = Vec<String>>, numeric: &[usize]) -> String {
    let mut rows: Vec<Vec<String>> =
        std::iter::once(header.iter().map(|s| s.to_string()).collect())
            .chain(rows)
            .collect();
    let cols = header.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &mut rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = " ".repeat(widths[c] - cell.chars().count());
            if c + 1 == cols {
                line.push_str(cell);
            } else if numeric.contains(&c) {
                let _ = write!(line, "{pad}{cell}  ");
            } else {
                let _ = write!(line, "{cell}{pad}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Compiles a worker had done when last seen: (ok, failed), by entry.
pub type Counters = HashMap<String, (u64, u64)>;

pub fn counters(plan: &Plan) -> Counters {
    plan.workers
        .iter()
        .filter_map(|w| {
            let s = w.stats.as_ref()?;
            Some((
                w.spec.entry.clone(),
                (s.compile_ok?, s.compile_error.unwrap_or(0)),
            ))
        })
        .collect()
}

/// One `hosts --watch` round: per worker its state, slots, distccd's
/// current load figure, load average, free memory, the compiles that
/// succeeded and failed since the previous round, and the probe time.
pub fn watch_table(plan: &Plan, previous: &Counters) -> String {
    let header = [
        "ENTRY", "STATE", "SLOTS", "CUR_LOAD", "LOAD", "FREE_MEM", "+OK", "+FAILED", "TIME",
        "REASON",
    ];
    let rows = plan.workers.iter().map(|w| {
        let s = w.stats.as_ref();
        let now = s.and_then(|s| Some((s.compile_ok?, s.compile_error.unwrap_or(0))));
        // A restarted daemon counts from 0 again: show its total then.
        let delta = |pick: fn((u64, u64)) -> u64| match (now, previous.get(&w.spec.entry)) {
            (Some(n), Some(p)) if pick(n) >= pick(*p) => (pick(n) - pick(*p)).to_string(),
            (Some(n), _) => pick(n).to_string(),
            (None, _) => "-".into(),
        };
        vec![
            w.spec.entry.clone(),
            state(w),
            slots(w),
            opt(s.and_then(|s| s.current_load)),
            opt(load(w)),
            opt(free_mem(w)),
            delta(|c| c.0),
            delta(|c| c.1),
            format!("{} ms", millis(w)),
            reason(w),
        ]
    });
    let mut out = columns(&header, rows, &[2, 3, 4, 6, 7, 8]);
    let _ = writeln!(out, "\n{}", totals(plan));
    out
}

/// The same as one JSON document.
pub fn hosts_json(plan: &Plan, duplicates: &Duplicates, timeout: std::time::Duration) -> String {
    let mut workers = Vec::new();
    for w in &plan.workers {
        let s = w.stats.as_ref();
        let load: Vec<String> = s.map_or(vec![], |s| s.load.iter().map(|l| num(*l)).collect());
        workers.push(format!(
            "{{\"entry\":{},\"transport\":{},\"address\":{},\"up\":{},\"reason\":{},\
             \"max_kids\":{},\"load\":[{}],\"current_load\":{},\"free_mem_mib\":{},\"slots\":{},\
             \"probe_ms\":{},\"tunnel\":{},\"no_stats\":{}}}",
            string(&w.spec.entry),
            string(if w.spec.is_ssh() { "ssh" } else { "tcp" }),
            string(&address(w)),
            w.is_up(),
            w.dropped.as_deref().map_or("null".into(), string),
            num(s.map(|s| s.max_kids)),
            load.join(","),
            num(s.and_then(|s| s.current_load)),
            num(s.and_then(|s| s.free_mem_mib)),
            w.slots,
            millis(w),
            w.tunnel.as_ref().map_or("null".into(), |t| format!(
                "{{\"pid\":{},\"destination\":{},\"local_distcc_port\":{},\"local_stats_port\":{}}}",
                t.pid,
                string(&t.destination),
                t.local_distcc_port,
                t.local_stats_port
            )),
            w.no_stats.as_deref().map_or("null".into(), string),
        ));
    }
    let dups: Vec<String> = duplicates
        .iter()
        .map(|(entry, first)| {
            format!(
                "{{\"entry\":{},\"same_as\":{}}}",
                string(entry),
                string(first)
            )
        })
        .collect();
    format!(
        "{{\"workers\":[{}],\"duplicates\":[{}],\"local_slots\":{},\"preprocessor_slots\":{},\"remote_slots\":{},\
         \"jobs\":{},\"distcc_hosts\":{},\"timeout_s\":{},\"nothing_to_build_on\":{}}}\n",
        workers.join(","),
        dups.join(","),
        plan.local_slots,
        plan.preprocessor_slots,
        plan.remote_slots(),
        plan.jobs(),
        string(&plan.distcc_hosts()),
        timeout.as_secs_f64(),
        plan.nothing.as_deref().map_or("null".into(), string),
    )
}

fn num<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hostspec::parse_entry;
    use crate::plan::{Local, Probed, plan};
    use crate::probe::{Outcome, Probe, Target};
    use crate::stats::Stats;
    use std::time::Duration;

    fn sample_plan(fallback: &str) -> Plan {
        let vars = [
            ("DISTCC_AUTO_HOSTS", "w"),
            ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "2"),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", fallback),
        ];
        let config = Config::from_lookup(
            |n| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            },
            3,
        )
        .unwrap();
        let mk = |entry: &str, outcome| {
            let spec = parse_entry(entry).unwrap();
            let target = Target::of(&spec);
            Probed {
                spec,
                target,
                probe: Probe {
                    address: None,
                    outcome,
                    elapsed: Duration::from_micros(1234),
                    tunnel: None,
                },
            }
        };
        let stats = Stats {
            max_kids: 16,
            load: [Some(0.5); 3],
            ..Stats::default()
        };
        plan(
            &config,
            Local {
                mem_available_mib: None,
            },
            vec![
                mk("w1", Outcome::Up { stats }),
                mk(
                    "[fd00::7]",
                    Outcome::Down {
                        reason: "timed out after 2 s (connecting to the stats port)".into(),
                    },
                ),
            ],
        )
    }

    #[test]
    fn env_is_quoted_shell_in_fixed_order() {
        let p = sample_plan("0");
        assert_eq!(
            env_script(&p, &[], Some("distcc")),
            "export DISTCC_HOSTS='localhost/2 --localslots=2 --localslots_cpp=3 w1:3632/16,lzo';\n\
             export DISTCC_AUTO_JOBS=21;\n\
             export DISTCC_AUTO_TUNNEL_PIDS='';\n\
             export DISTCC_AUTO_TUNNEL_IDS='';\n\
             export DISTCC_AUTO_COUNTERS=-;\n\
             export DISTCC_AUTO_CCACHE_PREFIX=distcc;\n"
        );
        let tunnel = |pid| TunnelInfo {
            pid,
            uid: 1000,
            start: 77,
            destination: "w".into(),
            local_distcc_port: 1,
            local_stats_port: 2,
        };
        let with_tunnels = env_script(&p, &[tunnel(41), tunnel(42)], None);
        assert!(with_tunnels.contains("export DISTCC_AUTO_TUNNEL_PIDS='41 42';\n"));
        assert!(with_tunnels.contains("export DISTCC_AUTO_TUNNEL_IDS='41:1000:77 42:1000:77';\n"));
        assert!(with_tunnels.ends_with("export DISTCC_AUTO_CCACHE_PREFIX='';\n"));
        assert_eq!(
            summary(&p),
            "-j 21: 2 local, 3 preprocessor, 16 remote on 1 worker"
        );
    }

    #[test]
    fn table_lists_every_worker_and_totals() {
        let t = hosts_table(&sample_plan("0"), &[("W1".into(), "w1".into())]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("ENTRY") && lines[0].ends_with("REASON"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("w1 ") && lines[1].contains(" up ") && lines[1].contains("1.2 ms"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("[fd00::7]")
                && lines[2].contains("[fd00::7]:3633")
                && lines[2].ends_with("timed out after 2 s (connecting to the stats port)"),
            "{t}"
        );
        let dup: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(&dup[..3], ["W1", "-", "dup"], "{t}");
        assert!(lines[3].ends_with("same worker as 'w1'"), "{t}");
        assert!(t.contains("local slots: 2, preprocessor slots: 3, remote slots: 16 on 1 of 2 workers, total: -j 21"), "{t}");
    }

    #[test]
    fn watch_table_shows_compiles_since_the_last_round() {
        let mut p = sample_plan("0");
        if let Some(s) = p.workers[0].stats.as_mut() {
            s.compile_ok = Some(40);
            s.compile_error = Some(2);
            s.current_load = Some(3);
        }
        let first = watch_table(&p, &Counters::new());
        let row: Vec<&str> = first.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            ["w1", "up", "16", "3", "0.50", "-", "40", "2", "1.2", "ms"],
            "{first}"
        );
        let mut before = counters(&p);
        before.insert("w1".into(), (35, 2));
        let next = watch_table(&p, &before);
        let row: Vec<&str> = next.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(&row[6..8], ["5", "0"], "{next}");
        assert!(
            next.lines().nth(2).unwrap().starts_with("[fd00::7]  down"),
            "{next}"
        );
    }

    #[test]
    fn json_is_one_document() {
        let j = hosts_json(
            &sample_plan("0"),
            &[("W1".into(), "w1".into())],
            Duration::from_secs(2),
        );
        assert!(j.starts_with("{\"workers\":[{\"entry\":\"w1\",\"transport\":\"tcp\",\"address\":\"w1:3633\",\"up\":true,\"reason\":null,\"max_kids\":16,\"load\":[0.5,0.5,0.5]"), "{j}");
        assert!(j.contains("\"jobs\":21,\"distcc_hosts\":\"localhost/2 --localslots=2 --localslots_cpp=3 w1:3632/16,lzo\""), "{j}");
        assert!(
            j.contains(
                "],\"duplicates\":[{\"entry\":\"W1\",\"same_as\":\"w1\"}],\"local_slots\":2,"
            ),
            "{j}"
        );
        assert_eq!(string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}
