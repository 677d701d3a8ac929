//! A live build's timeline, from its account: Chrome trace-event JSON
//! (DISTCC_AUTO_TRACE=FILE; opens in Perfetto and chrome://tracing, as
//! ninjatracing's and clang's -ftime-trace output do) and an SVG picture
//! of the same (FILE.svg), for any browser.
//!
//! The JSON: one process per machine ("here" is pid 1, the workers 2 and
//! on), one thread per slot (tid = slot + 1); each compile a complete
//! event ("ph":"X", category remote, here or preprocess) named by its
//! file, with its phases as events nested inside it (category phase);
//! the build itself on "here" thread 0; workers joining and leaving as
//! global instant events (category cluster). Times in microseconds from
//! the start of the build.

use std::fmt::Write as _;

use crate::account::ledger::{Kind, Placement, Track};
use crate::account::{Account, binstate::Phase};

use super::json::string;

fn pid(t: Track) -> usize {
    t.worker.map_or(1, |w| w + 2)
}

fn placement(p: Placement) -> &'static str {
    match p {
        Placement::Remote(_) => "remote",
        Placement::Here => "here",
        Placement::Unseen => "remote, worker not seen",
    }
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Remote => "remote",
        Kind::Preprocess => "preprocess",
        Kind::Local => "here",
    }
}

/// The trace-event JSON document.
pub fn chrome(a: &Account) -> String {
    let mut ev: Vec<String> = Vec::new();
    let mut named = Vec::new();
    let meta = |pid: usize, tid: u32, what: &str, key: &str, value: String| {
        format!(
            r#"{{"name":"{what}","ph":"M","pid":{pid},"tid":{tid},"args":{{"{key}":{value}}}}}"#
        )
    };
    ev.push(meta(1, 0, "process_name", "name", string("here")));
    ev.push(meta(1, 0, "thread_name", "name", string("build")));
    for (i, w) in a.workers.iter().enumerate() {
        ev.push(meta(i + 2, 0, "process_name", "name", string(&w.name)));
        ev.push(meta(
            i + 2,
            0,
            "process_sort_index",
            "sort_index",
            (i + 2).to_string(),
        ));
    }
    for t in a.tracks() {
        named.push(t);
        let name = format!("{} slot {}", a.machine(t), t.slot);
        ev.push(meta(
            pid(t),
            t.slot + 1,
            "thread_name",
            "name",
            string(&name),
        ));
    }
    ev.push(format!(
        r#"{{"name":"build","cat":"build","ph":"X","ts":0,"dur":{},"pid":1,"tid":0}}"#,
        a.span
    ));
    for s in &a.slices {
        let c = &a.compiles[s.compile];
        let (p, tid) = (pid(s.track), s.track.slot + 1);
        let mut args = String::new();
        let _ = write!(
            args,
            r#""machine":{},"slot":{},"ended":"{}","attempts":{},"waited_us":{}"#,
            string(a.machine(s.track)),
            s.track.slot,
            placement(c.placement),
            c.failed_on.len() + 1,
            c.waited
        );
        ev.push(format!(
            r#"{{"name":{},"cat":"{}","ph":"X","ts":{},"dur":{},"pid":{p},"tid":{tid},"args":{{{args}}}}}"#,
            string(&c.file),
            kind(s.kind),
            s.start,
            s.end - s.start
        ));
        for &(phase, from, to) in &s.phases {
            ev.push(format!(
                r#"{{"name":"{}","cat":"phase","ph":"X","ts":{from},"dur":{},"pid":{p},"tid":{tid}}}"#,
                phase.name(),
                to - from
            ));
        }
    }
    for (t, text) in &a.marks {
        ev.push(format!(
            r#"{{"name":{},"cat":"cluster","ph":"i","s":"g","ts":{t},"pid":1,"tid":0}}"#,
            string(text)
        ));
    }
    format!(
        "{{\"displayTimeUnit\":\"ms\",\"otherData\":{{\"tool\":\"distcc-auto\",\"span_us\":{}}},\"traceEvents\":[\n{}\n]}}\n",
        a.span,
        ev.join(",\n")
    )
}

/// Text for SVG: the five characters XML gives meaning to, escaped.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in super::summary::shown(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A phase's colour; a compile here has its own.
fn colour(k: Kind, p: Phase) -> &'static str {
    match (k, p) {
        (Kind::Local, _) => "#d9654b",
        (_, Phase::Preprocess) => "#9b7cc4",
        (_, Phase::Connect) => "#a0a0a0",
        (_, Phase::Send) => "#4e8fd8",
        (_, Phase::Compile) => "#3ea35a",
        (_, Phase::Receive) => "#e3a535",
        _ => "#cccccc",
    }
}

const LEGEND: [(&str, Kind, Phase); 6] = [
    ("preprocess", Kind::Preprocess, Phase::Preprocess),
    ("connect", Kind::Remote, Phase::Connect),
    ("send", Kind::Remote, Phase::Send),
    ("compile there", Kind::Remote, Phase::Compile),
    ("receive", Kind::Remote, Phase::Receive),
    ("compile here", Kind::Local, Phase::Compile),
];

/// A time step for the axis that gives at most ten ticks.
fn tick_step(span: u64) -> u64 {
    const STEPS: [u64; 14] = [
        100_000,
        200_000,
        500_000,
        1_000_000,
        2_000_000,
        5_000_000,
        10_000_000,
        15_000_000,
        30_000_000,
        60_000_000,
        120_000_000,
        300_000_000,
        600_000_000,
        1_800_000_000,
    ];
    STEPS
        .into_iter()
        .find(|s| span / s <= 10)
        .unwrap_or(3_600_000_000)
}

const WIDTH: u64 = 1200;
const LABEL: u64 = 150;
const LANE: u64 = 16;
const TOP: u64 = 44;

/// The SVG picture: one lane per slot, labelled, a colour per phase, a
/// time axis, the workers joining and leaving as lines.
pub fn svg(a: &Account, title: &str) -> String {
    let tracks = a.tracks();
    let lanes = tracks.len() as u64;
    let height = TOP + lanes * LANE + 50;
    let plot = WIDTH - LABEL - 20;
    let span = a.span.max(1);
    let x = |t: u64| LABEL as f64 + (t.min(span) as f64) * plot as f64 / span as f64;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"8\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        xml(title)
    );
    let step = tick_step(span);
    let bottom = TOP + lanes * LANE;
    for i in 0..=span / step {
        let t = i * step;
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{bottom}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\" fill=\"#555\">{3}</text>",
            x(t),
            TOP - 4,
            TOP - 8,
            super::summary::duration(t)
        );
    }
    for (i, t) in tracks.iter().enumerate() {
        let y = TOP + i as u64 * LANE;
        let shade = if i % 2 == 0 { "#f7f7f7" } else { "#ffffff" };
        let _ = writeln!(
            out,
            "<g class=\"lane\"><rect x=\"0\" y=\"{y}\" width=\"{WIDTH}\" height=\"{LANE}\" fill=\"{shade}\"/>\
             <text x=\"6\" y=\"{}\">{} slot {}</text></g>",
            y + 12,
            xml(a.machine(*t)),
            t.slot
        );
    }
    slices_svg(&mut out, a, &tracks, &x);
    marks_svg(&mut out, a, bottom, &x);
    legend_svg(&mut out, bottom + 30);
    out.push_str("</svg>\n");
    out
}

fn slices_svg(out: &mut String, a: &Account, tracks: &[Track], x: &dyn Fn(u64) -> f64) {
    for s in &a.slices {
        let Some(lane) = tracks.iter().position(|t| *t == s.track) else {
            continue;
        };
        let y = TOP + lane as u64 * LANE + 2;
        let file = xml(&a.compiles[s.compile].file);
        let _ = write!(out, "<g><title>{file} ({})</title>", kind(s.kind));
        for &(p, from, to) in &s.phases {
            let w = (x(to) - x(from)).max(0.5);
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>",
                x(from),
                LANE - 4,
                colour(s.kind, p)
            );
        }
        out.push_str("</g>\n");
    }
}

fn marks_svg(out: &mut String, a: &Account, bottom: u64, x: &dyn Fn(u64) -> f64) {
    for (t, text) in &a.marks {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" y1=\"{TOP}\" x2=\"{0:.1}\" y2=\"{bottom}\" stroke=\"#c0392b\" \
             stroke-dasharray=\"4 3\"><title>{1}</title></line>",
            x(*t),
            xml(text)
        );
    }
}

fn legend_svg(out: &mut String, y: u64) {
    let mut at = LABEL;
    for (name, k, p) in LEGEND {
        let _ = writeln!(
            out,
            "<rect x=\"{at}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{y}\">{name}</text>",
            y - 9,
            colour(k, p),
            at + 16
        );
        at += 16 + 8 * name.len() as u64 + 20;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::binstate::Task;
    use crate::account::ledger::{HERE, Ledger};

    fn account() -> Account {
        let mut l = Ledger::new();
        l.here(0, 1, 1);
        l.member(0, "w<1>", "127.200.0.1", 2);
        for (pid, host, slot) in [(1, "127.200.0.1", 0), (2, "127.200.0.1", 1), (3, HERE, 0)] {
            let task = Task {
                pid,
                file: format!("f\"{pid}\".c"),
                host: host.into(),
                slot,
                phase: Phase::Compile,
            };
            l.note(u64::from(pid) * 100, &task);
            l.end(u64::from(pid) * 100 + 50, pid);
        }
        l.mark(120, "worker 'w<1>' left the build".into());
        l.close(1000)
    }

    #[test]
    fn the_trace_names_every_slot_and_compile() {
        let a = account();
        let json = chrome(&a);
        assert!(json.contains(r#""name":"w<1> slot 1""#), "{json}");
        assert!(
            json.contains(
                r#""name":"f\"2\".c","cat":"remote","ph":"X","ts":200,"dur":50,"pid":2,"tid":2"#
            ),
            "{json}"
        );
        assert!(json.contains(r#""cat":"cluster","ph":"i""#));
        assert_eq!(json.matches(r#""cat":"phase""#).count(), 3);
    }

    #[test]
    fn the_picture_has_a_lane_per_slot_and_escapes_names() {
        let s = svg(&account(), "a <build>");
        assert_eq!(s.matches("class=\"lane\"").count(), 3);
        assert!(s.contains("w&lt;1&gt; slot 1"));
        assert!(s.contains("a &lt;build&gt;"));
        assert!(!s.contains("w<1>"));
    }
}
