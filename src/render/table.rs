//! The tables for people: `hosts` and `hosts --watch`.
//!
//! By default a table fits the terminal (`COLUMNS`, else the terminal's
//! width, else 80): one row per worker with the entry shown once, and what
//! needs words (the address asked when it is not the entry, why a worker
//! was dropped) on indented lines below it, wrapped. `--wide` keeps every
//! column on one line, however long, for scripts that cut columns.

use std::fmt::Write;

use crate::plan::{Plan, Worker};
use crate::render::shell::{
    Counters, Duplicates, address, free_mem, load, opt, quoted_hosts, reason, since, slots, state,
    took, totals,
};

/// How a table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Fit this many columns.
    Fit(usize),
    /// Every column on one line.
    Wide,
}

/// One worker's row: its cells after the first, and the lines below it.
struct Row {
    name: String,
    cells: Vec<String>,
    notes: Vec<String>,
}

/// The `hosts` table: a row per worker in priority order, a row per
/// duplicate entry, then the totals and DISTCC_HOSTS. KIDS is what a
/// worker advertises (dcc_max_kids), SLOTS what it was granted.
pub fn hosts(plan: &Plan, duplicates: &Duplicates, layout: Layout) -> String {
    let mut out = match layout {
        Layout::Wide => hosts_wide(plan, duplicates),
        Layout::Fit(width) => {
            let header = [
                "WORKER", "STATE", "KIDS", "LOAD", "FREE_MEM", "SLOTS", "TIME",
            ];
            let rows = plan.workers.iter().map(|w| Row {
                name: w.spec.entry.clone(),
                cells: figures(w),
                notes: notes(w),
            });
            let dups = duplicates.iter().map(|d| Row {
                name: d.entry.clone(),
                cells: vec![
                    "dup".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ],
                notes: vec![format!("same worker as '{}'", d.first)],
            });
            fit(&header, rows.chain(dups).collect(), &[2, 3, 5, 6], width)
        }
    };
    let _ = writeln!(out, "\n{}", totals(plan));
    let _ = writeln!(out, "DISTCC_HOSTS={}", quoted_hosts(plan));
    if let Some(why) = &plan.nothing {
        let _ = writeln!(out, "nothing to build on: {why}");
    }
    out
}

/// A worker's figures in the `hosts` tables: state, KIDS, LOAD, FREE_MEM,
/// SLOTS, TIME.
fn figures(w: &Worker) -> Vec<String> {
    vec![
        state(w),
        opt(w.stats.as_ref().map(|s| s.max_kids)),
        opt(load(w)),
        opt(free_mem(w)),
        slots(w),
        took(w.elapsed),
    ]
}

/// What is said below a worker's row: the address asked, when the entry
/// does not already say it, and the reason.
fn notes(w: &Worker) -> Vec<String> {
    let mut v = Vec::new();
    // An address entry says where it was asked; a name or a tunnel does not.
    let asked_elsewhere = match (&w.tunnel, w.address) {
        (None, Some(a)) => a.ip().to_string() != w.spec.host.to_string().trim_matches(['[', ']']),
        _ => w.spec.is_ssh(),
    };
    if asked_elsewhere {
        let at = address(w);
        v.push(if w.spec.is_ssh() {
            at
        } else {
            format!("at {at}")
        });
    }
    if let Some(a) = &w.spec.announced {
        v.push(format!("found by zeroconf: {}", a.service));
    }
    // With the toolchain check the reason names the compiler already.
    let why = reason(w);
    if let Some(c) = w.compiler.as_ref().filter(|c| !why.contains(c.as_str())) {
        v.push(format!("compiler: {c}"));
    }
    if !why.is_empty() {
        v.push(why);
    }
    v
}

/// The full-width form: every column on one line.
fn hosts_wide(plan: &Plan, duplicates: &Duplicates) -> String {
    let header = [
        "ENTRY", "ADDRESS", "STATE", "KIDS", "LOAD", "FREE_MEM", "SLOTS", "TIME", "REASON",
    ];
    let rows = plan.workers.iter().map(|w| {
        let mut row = vec![w.spec.entry.clone(), address(w)];
        row.extend(figures(w));
        row.push(reason(w));
        row
    });
    let dups = duplicates.iter().map(|d| {
        let mut row = vec![d.entry.clone(), "-".into(), "dup".into()];
        row.extend(["-"; 5].map(String::from));
        row.push(format!("same worker as '{}'", d.first));
        row
    });
    columns(&header, rows.chain(dups), &[3, 4, 6, 7])
}

/// One `hosts --watch` round: per worker its state, slots, distccd's
/// current load figure, load average, free memory, the compiles that
/// succeeded and failed since the previous round, and the probe time.
pub fn watch(plan: &Plan, previous: &Counters, layout: Layout) -> String {
    let rows: Vec<Row> = plan
        .workers
        .iter()
        .map(|w| {
            let s = w.stats.as_ref();
            let new = since(w, previous);
            Row {
                name: w.spec.entry.clone(),
                cells: vec![
                    state(w),
                    slots(w),
                    opt(s.and_then(|s| s.current_load)),
                    opt(load(w)),
                    opt(free_mem(w)),
                    opt(new.map(|n| n.0)),
                    opt(new.map(|n| n.1)),
                    took(w.elapsed),
                ],
                notes: notes(w),
            }
        })
        .collect();
    let header = [
        "WORKER", "STATE", "SLOTS", "CUR_LOAD", "LOAD", "FREE_MEM", "+OK", "+FAILED", "TIME",
    ];
    let mut out = match layout {
        Layout::Fit(width) => fit(&header, rows, &[2, 3, 4, 6, 7, 8], width),
        Layout::Wide => {
            let mut header = header.to_vec();
            header.push("REASON");
            let flat = rows.into_iter().map(|r| {
                let mut v = vec![r.name];
                v.extend(r.cells);
                v.push(r.notes.join("; "));
                v
            });
            columns(&header, flat, &[2, 3, 4, 6, 7, 8])
        }
    };
    let _ = writeln!(out, "\n{}", totals(plan));
    out
}

/// Rows that fit `width`: the first column as wide as it may be, an entry
/// too long for it on a line of its own, notes wrapped below.
fn fit(header: &[&str], rows: Vec<Row>, numeric: &[usize], width: usize) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (c, cell) in r.cells.iter().enumerate() {
            widths[c + 1] = widths[c + 1].max(cell.chars().count());
        }
    }
    let rest: usize = widths[1..].iter().map(|w| w + 2).sum();
    let room = width.saturating_sub(rest).max(header[0].len());
    widths[0] = rows
        .iter()
        .map(|r| r.name.chars().count())
        .filter(|&n| n <= room)
        .chain([header[0].len()])
        .max()
        .unwrap_or(0);
    let line = |first: &str, cells: &[String]| {
        let mut l = format!("{first:<w$}  ", w = widths[0]);
        for (c, cell) in cells.iter().enumerate() {
            let w = widths[c + 1];
            if numeric.contains(&(c + 1)) {
                let _ = write!(l, "{cell:>w$}  ");
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        l.trim_end().to_string()
    };
    let header_cells: Vec<String> = header[1..cols].iter().map(|h| h.to_string()).collect();
    let mut out = line(header[0], &header_cells) + "\n";
    for r in rows {
        if r.name.chars().count() > widths[0] {
            for part in wrap(&r.name, width.max(16)) {
                out.push_str(&part);
                out.push('\n');
            }
            out.push_str(&line("", &r.cells));
        } else {
            out.push_str(&line(&r.name, &r.cells));
        }
        out.push('\n');
        for note in &r.notes {
            for l in wrap(note, width.saturating_sub(4).max(16)) {
                let _ = writeln!(out, "    {l}");
            }
        }
    }
    out
}

/// Words of `text` in lines of at most `width` characters; a word longer
/// than that is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            lines.push(word[..width].iter().collect());
            word.drain(..width);
        }
        let word: String = word.into_iter().collect();
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::shell::counters;
    use crate::render::shell::tests::sample_plan;

    #[test]
    fn wide_table_lists_every_worker_and_totals() {
        let p = sample_plan("0");
        let t = hosts(
            &p,
            &[crate::config::hostspec::Duplicate {
                entry: "W1".into(),
                first: "w1".into(),
            }],
            Layout::Wide,
        );
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
        assert!(
            t.contains("-j 21: 2 local, 3 preprocessor, 16 remote slots; 1 of 2 workers up"),
            "{t}"
        );
    }

    #[test]
    fn fitted_table_keeps_to_the_width() {
        let mut p = sample_plan("0");
        p.workers[1].spec.entry =
            "a-very-long-worker-name.in-a-very-long-domain.build.example.org:3632:3633".into();
        let long = "timed out after 2 s (connecting to the stats port) and then some more words \
                    to make it long: "
            .repeat(3);
        p.workers[1].dropped = Some(crate::plan::Dropped {
            why: long.clone(),
            code: crate::worker::fault::Code::Timeout,
        });
        // The fixed columns take 50: any width from there on is kept.
        for width in [50, 60, 80, 100] {
            let t = hosts(
                &p,
                &[crate::config::hostspec::Duplicate {
                    entry: "W1".into(),
                    first: "w1".into(),
                }],
                Layout::Fit(width),
            );
            let body: Vec<&str> = t.lines().take_while(|l| !l.is_empty()).collect();
            for l in &body {
                assert!(l.chars().count() <= width, "{width}: {l:?}\n{t}");
            }
            assert!(
                body[0].starts_with("WORKER") && body[0].ends_with("TIME"),
                "{t}"
            );
            assert!(t.contains("\n    same worker as 'w1'\n"), "{t}");
            // Every word of the reason is there, in order.
            let said: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(said.contains(long.trim_end()), "{t}");
        }
        let t = hosts(&p, &[], Layout::Fit(80));
        assert!(t.lines().nth(1).unwrap().starts_with("w1 "), "{t}");
        assert!(t.contains(" 1.2 ms"), "{t}");
    }

    #[test]
    fn watch_shows_compiles_since_the_last_round() {
        let mut p = sample_plan("0");
        if let Some(s) = p.workers[0].stats.as_mut() {
            s.compile_ok = Some(40);
            s.compile_error = Some(2);
            s.current_load = Some(3);
        }
        let first = watch(&p, &Counters::new(), Layout::Wide);
        let row: Vec<&str> = first.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            ["w1", "up", "16", "3", "0.50", "-", "40", "2", "1.2", "ms"],
            "{first}"
        );
        let mut before = counters(&p);
        before.insert("w1".into(), (35, 2));
        let next = watch(&p, &before, Layout::Fit(80));
        let row: Vec<&str> = next.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(&row[6..8], ["5", "0"], "{next}");
        assert!(
            next.lines().nth(2).unwrap().starts_with("[fd00::7]"),
            "{next}"
        );
    }

    #[test]
    fn words_wrap() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert!(wrap("", 5).is_empty());
    }
}
