//! `hosts --json`: one document per probe, schema 1.
//!
//! Figures a worker did not report are `null`, never a placeholder;
//! addresses come as a display string and as host and port; a dropped
//! worker carries a stable `reason_code` beside the text. With `--watch`,
//! each round's document also has the round, a timestamp and the compiles
//! since the previous round.

use std::fmt::{Display, Write};
use std::time::Duration;

use crate::config::hostspec::Transport;
use crate::plan::{Plan, Worker};
use crate::render::shell::{Counters, Duplicates, address, compiles, since};

/// Where a watch round is: its number, when, and the counters before it.
pub struct Round<'a> {
    pub number: u64,
    pub previous: &'a Counters,
}

/// A JSON object, written field by field.
struct Obj(String);

impl Obj {
    fn new() -> Obj {
        Obj(String::from("{"))
    }

    /// A field whose value is already JSON.
    fn raw(mut self, key: &str, value: impl Display) -> Obj {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "{}:{value}", string(key));
        self
    }

    fn str(self, key: &str, value: &str) -> Obj {
        self.raw(key, string(value))
    }

    fn opt_str(self, key: &str, value: Option<&str>) -> Obj {
        self.raw(key, value.map_or("null".into(), string))
    }

    fn num(self, key: &str, value: Option<impl Display>) -> Obj {
        self.raw(key, value.map_or("null".into(), |v| v.to_string()))
    }

    fn end(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn array(items: impl Iterator<Item = String>) -> String {
    format!("[{}]", items.collect::<Vec<_>>().join(","))
}

/// The document for one probe.
pub fn hosts(
    plan: &Plan,
    duplicates: &Duplicates,
    timeout: Duration,
    round: Option<Round>,
) -> String {
    let workers = array(plan.workers.iter().map(|w| worker(w, round.as_ref())));
    let dups = array(duplicates.iter().map(|d| {
        Obj::new()
            .str("entry", &d.entry)
            .str("same_as", &d.first)
            .end()
    }));
    let mut doc = Obj::new().raw("schema", 1);
    if let Some(r) = &round {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        doc = doc
            .raw("round", r.number)
            .raw("time", format!("{:.3}", now.as_secs_f64()));
    }
    doc.raw("workers", workers)
        .raw("duplicates", dups)
        .raw("local_slots", plan.local_slots)
        .raw("preprocessor_slots", plan.preprocessor_slots)
        .raw("remote_slots", plan.remote_slots())
        .raw("jobs", plan.jobs())
        .str("distcc_hosts", &plan.distcc_hosts())
        .raw("timeout_s", timeout.as_secs_f64())
        .opt_str("nothing_to_build_on", plan.nothing.as_deref())
        .end()
        + "\n"
}

fn worker(w: &Worker, round: Option<&Round>) -> String {
    let s = w.stats.as_ref();
    let load = s.map(|s| {
        array(
            s.load
                .iter()
                .map(|l| l.map_or("null".into(), |l| l.to_string())),
        )
    });
    let (host, port) = match (w.address, &w.tunnel) {
        (Some(a), _) => (Some(a.ip().to_string()), Some(a.port())),
        (None, Some(t)) => (Some("127.0.0.1".into()), Some(t.local_stats_port)),
        (None, None) if w.spec.is_ssh() => (None, None),
        (None, None) => (Some(w.target.host.to_string()), Some(w.target.stats_port)),
    };
    let tunnel = w.tunnel.as_ref().map(|t| {
        Obj::new()
            // A stopped tunnel's PID may be anyone's by now.
            .num("pid", w.is_up().then_some(t.pid))
            .num("master_pid", t.master)
            .str("destination", &t.destination)
            .raw("local_distcc_port", t.local_distcc_port)
            .raw("local_stats_port", t.local_stats_port)
            .end()
    });
    let done = compiles(w);
    let mut o = Obj::new()
        .str("entry", &w.spec.entry)
        .str(
            "transport",
            match w.spec.transport {
                Transport::Tcp => "tcp",
                Transport::Ssh { .. } => "ssh",
            },
        )
        .str("address", &address(w))
        .opt_str("host", host.as_deref())
        .num("port", port)
        .raw("up", w.is_up())
        .opt_str("reason", w.dropped.as_ref().map(|d| d.why.as_str()))
        .opt_str("reason_code", w.dropped.as_ref().map(|d| d.code.as_str()))
        .opt_str("no_stats", w.no_stats.as_deref())
        .opt_str("compiler", w.compiler.as_deref())
        .opt_str("warning", w.warning.as_deref())
        .num("max_kids", s.map(|s| s.max_kids))
        .raw("load", load.unwrap_or_else(|| "null".into()))
        .num("current_load", s.and_then(|s| s.current_load))
        .num("free_mem_mib", s.and_then(|s| s.free_mem_mib))
        .num("compile_ok", done.map(|d| d.0))
        .num("compile_failed", done.map(|d| d.1))
        .raw("slots", w.slots)
        .raw(
            "probe_ms",
            format!("{:.1}", w.elapsed.as_secs_f64() * 1000.0),
        )
        .raw("tunnel", tunnel.unwrap_or_else(|| "null".into()))
        .str(
            "found_by",
            if w.spec.announced.is_some() {
                "zeroconf"
            } else {
                "config"
            },
        )
        .opt_str(
            "service",
            w.spec.announced.as_ref().map(|a| a.service.as_str()),
        );
    if let Some(r) = round {
        let new = since(w, r.previous);
        o = o
            .num("round_ok", new.map(|n| n.0))
            .num("round_failed", new.map(|n| n.1));
    }
    o.end()
}

/// A JSON string literal.
pub(crate) fn string(s: &str) -> String {
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
    use crate::render::shell::tests::sample_plan;

    #[test]
    fn one_document_with_schema_nulls_and_codes() {
        let j = hosts(
            &sample_plan("0"),
            &[crate::config::hostspec::Duplicate {
                entry: "W1".into(),
                first: "w1".into(),
            }],
            Duration::from_secs(2),
            None,
        );
        assert!(j.starts_with("{\"schema\":1,\"workers\":[{\"entry\":\"w1\",\"transport\":\"tcp\",\"address\":\"w1:3633\",\"host\":\"w1\",\"port\":3633,\"up\":true,\"reason\":null,\"reason_code\":null"), "{j}");
        assert!(
            j.contains("\"max_kids\":16,\"load\":[0.5,0.5,0.5],\"current_load\":null"),
            "{j}"
        );
        // The worker that timed out: nulls where nothing was reported.
        assert!(j.contains("\"reason_code\":\"timeout\""), "{j}");
        assert!(j.contains("\"max_kids\":null,\"load\":null,"), "{j}");
        assert!(j.contains("\"jobs\":21,\"distcc_hosts\":\"localhost/2 --localslots=2 --localslots_cpp=3 w1:3632/16,lzo\""), "{j}");
        assert!(
            j.contains(
                "],\"duplicates\":[{\"entry\":\"W1\",\"same_as\":\"w1\"}],\"local_slots\":2,"
            ),
            "{j}"
        );
        assert!(!j.contains("\"round\""), "{j}");
        assert_eq!(string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn watch_rounds_carry_time_and_new_compiles() {
        let mut p = sample_plan("0");
        if let Some(s) = p.workers[0].stats.as_mut() {
            s.compile_ok = Some(40);
        }
        let mut before = Counters::new();
        before.insert("w1".into(), (35, 0));
        let j = hosts(
            &p,
            &[],
            Duration::from_secs(2),
            Some(Round {
                number: 3,
                previous: &before,
            }),
        );
        assert!(j.starts_with("{\"schema\":1,\"round\":3,\"time\":"), "{j}");
        assert!(j.contains("\"round_ok\":5,\"round_failed\":0"), "{j}");
        assert!(j.contains("\"round_ok\":null,\"round_failed\":null"), "{j}");
    }
}
