//! After a live build: what it did, from its own account (`account`):
//! one line, a table per worker on request, and one hint.

use crate::account::{Account, Hint, WorkerUse};

/// `2m14s`, `14.2s`, `1h02m`.
pub fn duration(us: u64) -> String {
    let s = us / 1_000_000;
    if s < 60 {
        format!("{:.1}s", us as f64 / 1e6)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    }
}

/// `1 worker`, `3 workers`.
pub(crate) fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A file name as it may be shown on a terminal: no control characters.
pub fn shown(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// The lines to say. `build_ok`: the build exited 0; `table`: -v or
/// DISTCC_AUTO_SUMMARY=1; `own_jobs`: the job count was the build's own;
/// `lost`: the kernel dropped some of the state files' events.
pub fn lines(a: &Account, build_ok: bool, table: bool, own_jobs: bool, lost: bool) -> Vec<String> {
    let (remote, here, _) = a.counts();
    let all = remote + here;
    let mut out = vec![headline(a)];
    if lost {
        out.push("warning: some of distcc's state changes were missed (the kernel's inotify queue overflowed): the counts are short".into());
    }
    if remote == 0 && build_ok && !a.workers.is_empty() {
        out.push(super::tally::NONE_REMOTE.into());
    }
    if table && all > 0 {
        out.extend(worker_table(a));
    }
    if let Some(h) = a.hint(own_jobs) {
        out.push(format!("hint: {}", hint(&h)));
    }
    out
}

/// `412 compiles: 380 remote on 3 workers, 32 here (4 after 'w2' stopped
/// answering); remote slots busy 71% of 2m14s`.
fn headline(a: &Account) -> String {
    let (remote, here, _) = a.counts();
    let all = remote + here;
    if all == 0 {
        return format!("no compile went through distcc in {}", duration(a.span));
    }
    let used = a.workers.iter().filter(|w| w.compiles > 0).count();
    let used = u32::try_from(used).unwrap_or(u32::MAX);
    let mut line = format!(
        "{}: {remote} remote on {}, {} here",
        plural(all, "compile", "compiles"),
        plural(used, "worker", "workers"),
        here
    );
    let mut why: Vec<String> = a
        .workers
        .iter()
        .filter(|w| w.failed > 0)
        .map(|w| {
            if w.left {
                format!("{} redone after '{}' stopped answering", w.failed, w.name)
            } else {
                format!("{} redone after failing on '{}'", w.failed, w.name)
            }
        })
        .collect();
    let unnamed: u32 = a
        .compiles
        .iter()
        .map(|c| u32::try_from(c.failed_on.iter().filter(|f| f.is_none()).count()).unwrap_or(0))
        .sum();
    if unnamed > 0 {
        why.push(format!("{unnamed} redone after a worker failed"));
    }
    if a.unseen > 0 {
        why.push(format!(
            "{} sent out and done before a record named the worker",
            a.unseen
        ));
    }
    if !why.is_empty() {
        line.push_str(&format!(" ({})", why.join(", ")));
    }
    match a.remote_busy() {
        Some(p) => line.push_str(&format!("; remote slots busy {p}% of {}", duration(a.span))),
        None => line.push_str(&format!(" in {}", duration(a.span))),
    }
    line
}

/// One row per worker and one for here.
fn worker_table(a: &Account) -> Vec<String> {
    let rows: Vec<&WorkerUse> = a.workers.iter().chain([&a.here]).collect();
    let width = rows.iter().map(|w| w.name.len()).max().unwrap_or(4).max(6);
    let mut out = vec![format!(
        "{:width$}  {:>8}  {:>7}  {:>11}  {:>5}  longest",
        "worker", "compiles", "failed", "busy slot-s", "use"
    )];
    for w in rows {
        let longest = w.longest.as_ref().map_or("-".to_string(), |(f, us)| {
            format!("{} {}", shown(f), duration(*us))
        });
        let used = w.utilisation().map_or("-".into(), |p| format!("{p}%"));
        let failed = if std::ptr::eq(w, &a.here) {
            "-".to_string()
        } else {
            w.failed.to_string()
        };
        out.push(format!(
            "{:width$}  {:>8}  {:>7}  {:>11.1}  {:>5}  {longest}",
            w.name,
            w.compiles,
            failed,
            w.busy as f64 / 1e6,
            used
        ));
    }
    out
}

fn hint(h: &Hint) -> String {
    match h {
        Hint::Preprocessing { percent } => format!(
            "preprocessing here was the limit: every preprocessor slot was taken while worker \
             slots waited, {percent}% of the build (more: DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS; \
             or let the workers preprocess: DISTCC_AUTO_PUMP=1)"
        ),
        Hint::Paused { compiles, waited } => format!(
            "{} slept distcc's pause waiting for a free slot ({} of waiting in all): a client \
             that finds none sleeps DISTCC_PAUSE_TIME_MSEC (1000 by default) before it looks \
             again; a shorter pause (DISTCC_PAUSE_TIME_MSEC=100) or fewer preprocessor jobs \
             (DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS) waste less",
            plural(*compiles, "compile", "compiles"),
            duration(*waited)
        ),
        Hint::FewJobs { peak, slots } => format!(
            "the job count was the limit: at most {peak} compiles ran at once, against {slots} \
             slots (leave -j to distcc-auto: drop the build's own -j, or DISTCC_AUTO_APPEND_JOBS=0)"
        ),
        Hint::Unused(name) => format!(
            "worker '{name}' was in the build but got no compile (see distcc-auto hosts; its slots \
             may be better spent elsewhere)"
        ),
        Hint::MostlyHere { here, of } => format!(
            "most compiles ran here ({here} of {of}): the workers failed them or the build \
             does not go through distcc for them (DISTCC_VERBOSE=1 shows why)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::binstate::{Phase, Task};
    use crate::account::ledger::{HERE, Ledger};

    fn note(l: &mut Ledger, t: u64, pid: u32, file: &str, host: &str, phase: Phase) {
        let task = Task {
            pid,
            file: file.into(),
            host: host.into(),
            slot: 0,
            phase,
        };
        l.note(t, &task);
    }

    #[test]
    fn the_line_says_where_compiles_ran_and_why_some_came_back() {
        let mut l = Ledger::new();
        l.here(0, 1, 1);
        l.member(0, "w1", "127.200.0.1", 1);
        l.member(0, "w2", "127.200.0.2", 1);
        note(&mut l, 0, 1, "a.c", "127.200.0.1", Phase::Compile);
        l.end(67_000_000, 1);
        note(&mut l, 0, 2, "b.c", "127.200.0.2", Phase::Compile);
        note(&mut l, 10, 2, "b.c", HERE, Phase::Compile);
        l.end(20, 2);
        l.member(30, "w2", "127.200.0.2", 0);
        note(&mut l, 40, 3, "c.c", HERE, Phase::Compile);
        l.end(50, 3);
        let a = l.close(134_000_000);
        let out = lines(&a, true, false, false, false);
        assert_eq!(
            out[0],
            "3 compiles: 1 remote on 1 worker, 2 here (1 redone after 'w2' stopped answering); \
             remote slots busy 50% of 2m14s"
        );
        let table = lines(&a, true, true, false, false);
        assert!(table[1].starts_with("worker"), "{table:?}");
        assert!(
            table[2].starts_with("w1") && table[2].ends_with("a.c 1m07s"),
            "{table:?}"
        );
    }

    #[test]
    fn a_build_without_compiles_says_so() {
        let mut l = Ledger::new();
        l.member(0, "w1", "127.200.0.1", 4);
        let a = l.close(2_000);
        assert_eq!(
            lines(&a, true, true, false, false)[..1],
            ["no compile went through distcc in 0.0s"]
        );
        assert!(lines(&a, true, false, false, false)[1].starts_with("warning: no remote"));
        assert_eq!(lines(&a, false, false, false, false).len(), 1);
    }

    #[test]
    fn names_are_shown_without_control_characters() {
        assert_eq!(shown("a\u{1b}[31m.c"), "a\\u{1b}[31m.c");
        assert_eq!(duration(3_725_000_000), "1h02m");
    }
}
