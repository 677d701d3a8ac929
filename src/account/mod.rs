//! A build's own account (live builds): what its distcc clients did, from
//! distcc's state files, and what held it back. Pure: `live::follow`
//! feeds the `ledger`, and `render::summary` and `render::trace` turn the
//! `Account` into text.
//!
//! - `binstate`: distcc's state-file format.
//! - `ledger`: records as they were seen, and the slices they make.

pub mod binstate;
pub mod ledger;

use ledger::{Compile, HERE, Kind, Ledger, Membership, Micros, Placement, Slice, Track, slices_of};

/// A decimal number and nothing else.
pub(crate) fn whole(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One worker's part in the build.
#[derive(Debug, Clone, Default)]
pub struct WorkerUse {
    pub name: String,
    /// Compiles that ran there to the end.
    pub compiles: u32,
    /// Compiles that failed there and were done again elsewhere.
    pub failed: u32,
    /// Slot-time its compiles held (µs).
    pub busy: Micros,
    /// Slot-time it offered while in the build (µs).
    pub capacity: Micros,
    /// The longest compile there: (file, µs).
    pub longest: Option<(String, Micros)>,
    /// Whether it was out of the build at the end.
    pub left: bool,
}

impl WorkerUse {
    /// Busy slot-time over offered slot-time, in percent.
    pub fn utilisation(&self) -> Option<u32> {
        percent(self.busy, self.capacity)
    }
}

fn percent(part: Micros, whole: Micros) -> Option<u32> {
    (whole > 0).then(|| u32::try_from((part.min(whole) * 100 + whole / 2) / whole).unwrap_or(100))
}

/// The whole build, as it ended.
#[derive(Debug, Clone, Default)]
pub struct Account {
    /// From the start of the build to its end (µs).
    pub span: Micros,
    pub compiles: Vec<Compile>,
    /// Every slot's slices, no two on one track overlapping.
    pub slices: Vec<Slice>,
    pub workers: Vec<WorkerUse>,
    /// This machine: its compiles here, and the slot-time they and its
    /// preprocessing held.
    pub here: WorkerUse,
    /// The most compiles at once.
    pub peak: u32,
    /// Compiles sent out whose worker no record named (over too soon).
    pub unseen: u32,
    /// Time (µs) when every preprocessor slot here was taken while a
    /// worker's slot stood free.
    pub preprocess_bound: Micros,
    /// The most slots there were at once (here and on workers).
    pub slots: u32,
    /// Time compiles waited for a slot before their first record (µs),
    /// and how many waited a whole pause of distcc's (its 1 s sleep).
    pub waited: (Micros, u32),
    pub marks: Vec<(Micros, String)>,
}

impl Account {
    fn of(l: &Ledger, end: Micros) -> Account {
        let members = l.members();
        let mut workers: Vec<WorkerUse> = members
            .iter()
            .map(|m| WorkerUse {
                name: m.name.clone(),
                capacity: integral(&m.changes, end),
                left: m.changes.last().is_some_and(|c| c.1 == 0),
                ..WorkerUse::default()
            })
            .collect();
        // A host of the hosts file that is no member (not ours): by name.
        let mut by_host: Vec<Option<usize>> = Vec::new();
        for h in l.hosts() {
            by_host.push(if h == HERE {
                None
            } else if let Some(i) = members.iter().position(|m| &m.host == h) {
                Some(i)
            } else {
                workers.push(WorkerUse {
                    name: h.clone(),
                    ..WorkerUse::default()
                });
                Some(workers.len() - 1)
            });
        }
        let remote = |h: usize| by_host.get(h).copied().flatten();
        let mut compiles = Vec::new();
        let mut slices = Vec::new();
        for (file, events, ended, started) in l.compiles() {
            let stop = ended.unwrap_or(end).max(events[0].t);
            let (placement, failed_on, s) = slices_of(events, stop, compiles.len(), &remote);
            compiles.push(Compile {
                file: file.to_string(),
                placement,
                failed_on,
                waited: started.map_or(0, |s| events[0].t.saturating_sub(s)),
                start: events[0].t,
                end: stop,
            });
            slices.extend(s);
        }
        exclusive(&mut slices);
        let mut a = Account {
            span: end,
            compiles,
            slices,
            workers,
            marks: l.marks().to_vec(),
            ..Account::default()
        };
        let local: Vec<(Micros, u32)> = l.local().iter().map(|&(t, s, _)| (t, s)).collect();
        a.here = WorkerUse {
            name: "here".into(),
            capacity: integral(&local, end),
            ..WorkerUse::default()
        };
        a.tally();
        a.waited = (
            a.compiles.iter().map(|c| c.waited).sum(),
            u32::try_from(a.compiles.iter().filter(|c| c.waited >= PAUSED).count()).unwrap_or(0),
        );
        a.peak = peak(&a.compiles);
        let caps = capacity_changes(&members, l.local(), end);
        a.slots = caps.iter().map(|c| c.1 + c.2).max().unwrap_or(0);
        a.preprocess_bound = preprocess_bound(&a.slices, &caps, end);
        a
    }

    /// Counts, busy time and longest compile per worker and here.
    fn tally(&mut self) {
        for c in &self.compiles {
            let took = c.end.saturating_sub(c.start);
            let at = match c.placement {
                Placement::Remote(w) => &mut self.workers[w],
                Placement::Here => &mut self.here,
                Placement::Unseen => {
                    self.unseen += 1;
                    continue;
                }
            };
            at.compiles += 1;
            if at.longest.as_ref().is_none_or(|l| took > l.1) {
                at.longest = Some((c.file.clone(), took));
            }
            for w in c.failed_on.iter().flatten() {
                self.workers[*w].failed += 1;
            }
        }
        for s in &self.slices {
            let d = s.end - s.start;
            match s.track.worker {
                Some(w) => self.workers[w].busy += d,
                None => self.here.busy += d,
            }
        }
    }

    /// Compiles (remote, here, done again after failing on a worker).
    pub fn counts(&self) -> (u32, u32, u32) {
        let mut n = (0, 0, 0);
        for c in &self.compiles {
            match c.placement {
                Placement::Remote(_) | Placement::Unseen => n.0 += 1,
                Placement::Here => n.1 += 1,
            }
            n.2 += u32::from(!c.failed_on.is_empty());
        }
        n
    }

    /// Remote busy slot-time over remote slot-time offered, in percent.
    pub fn remote_busy(&self) -> Option<u32> {
        let busy = self.workers.iter().map(|w| w.busy).sum();
        percent(busy, self.workers.iter().map(|w| w.capacity).sum())
    }

    /// Every track with a slice, in order: here first, then each worker.
    pub fn tracks(&self) -> Vec<Track> {
        let mut t: Vec<Track> = self.slices.iter().map(|s| s.track).collect();
        t.sort_by_key(|t| (t.worker.map_or(0, |w| w + 1), t.slot));
        t.dedup();
        t
    }

    /// The name of a track's machine.
    pub fn machine(&self, t: Track) -> &str {
        t.worker.map_or("here", |w| self.workers[w].name.as_str())
    }
}

/// A wait this long is distcc's own pause: a client that finds no free
/// slot sleeps DISTCC_PAUSE_TIME_MSEC (1000 by default) before it looks
/// again (process start times are in 10 ms ticks).
const PAUSED: Micros = 900_000;

/// ∫ slots dt over [first change, end], from (time, slots) changes.
fn integral(changes: &[(Micros, u32)], end: Micros) -> Micros {
    changes
        .iter()
        .enumerate()
        .map(|(i, &(t, s))| {
            let until = changes.get(i + 1).map_or(end, |n| n.0).min(end);
            until.saturating_sub(t) * Micros::from(s)
        })
        .sum()
}

/// A slot is held by one compile at a time (distcc's lock): on each
/// track, a slice ends no later than the next one starts.
fn exclusive(slices: &mut [Slice]) {
    slices.sort_by_key(|s| (s.track, s.start));
    for i in 1..slices.len() {
        if slices[i].track == slices[i - 1].track && slices[i - 1].end > slices[i].start {
            let cut = slices[i].start.max(slices[i - 1].start);
            let prev = &mut slices[i - 1];
            prev.end = cut;
            for p in &mut prev.phases {
                p.2 = p.2.min(cut);
                p.1 = p.1.min(cut);
            }
            prev.phases.retain(|p| p.2 > p.1);
        }
    }
    slices.sort_by_key(|s| (s.start, s.track));
}

/// The most compiles running at once.
fn peak(compiles: &[Compile]) -> u32 {
    let mut edges: Vec<(Micros, i32)> = compiles
        .iter()
        .flat_map(|c| [(c.start, 1), (c.end, -1)])
        .collect();
    edges.sort_unstable();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    u32::try_from(most).unwrap_or(0)
}

/// At every change: (time, remote slots, local slots, preprocessor slots).
fn capacity_changes(
    members: &[Membership],
    local: &[(Micros, u32, u32)],
    end: Micros,
) -> Vec<(Micros, u32, u32, u32)> {
    let mut times: Vec<Micros> = members
        .iter()
        .flat_map(|m| m.changes.iter().map(|c| c.0))
        .chain(local.iter().map(|l| l.0))
        .filter(|&t| t <= end)
        .collect();
    times.sort_unstable();
    times.dedup();
    let at =
        |changes: &[(Micros, u32)], t| changes.iter().rev().find(|c| c.0 <= t).map_or(0, |c| c.1);
    times
        .into_iter()
        .map(|t| {
            let remote = members.iter().map(|m| at(&m.changes, t)).sum();
            let l = local.iter().rev().find(|l| l.0 <= t);
            (t, remote, l.map_or(0, |l| l.1), l.map_or(0, |l| l.2))
        })
        .collect()
}

/// Time when every preprocessor slot here was taken (by preprocessing or
/// compiles here: distcc counts both on this machine's locks) while a
/// worker's slot was free.
/// `caps`: the capacity at every change (`capacity_changes`).
fn preprocess_bound(slices: &[Slice], caps: &[(Micros, u32, u32, u32)], end: Micros) -> Micros {
    // Edges: (time, change in local use, change in remote use).
    let mut edges: Vec<(Micros, i64, i64)> = Vec::new();
    for s in slices {
        let (l, r) = if s.kind == Kind::Remote {
            (0, 1)
        } else {
            (1, 0)
        };
        edges.push((s.start, l, r));
        edges.push((s.end, -l, -r));
    }
    edges.extend(caps.iter().map(|c| (c.0, 0, 0)));
    edges.sort_unstable();
    let cap_at = |t: Micros| caps.iter().rev().find(|c| c.0 <= t).copied();
    let (mut here, mut out, mut total) = (0i64, 0i64, 0);
    for (i, &(t, dl, dr)) in edges.iter().enumerate() {
        here += dl;
        out += dr;
        let next = edges.get(i + 1).map_or(t, |e| e.0).min(end);
        let Some((_, remote, _, cpp)) = cap_at(t) else {
            continue;
        };
        if cpp > 0 && here >= i64::from(cpp) && out < i64::from(remote) {
            total += next.saturating_sub(t);
        }
    }
    total
}

/// What held a build back that its user can change: one, the first that
/// applies, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Every preprocessor slot here was taken, while workers had free
    /// slots, for `percent` of the build.
    Preprocessing { percent: u32 },
    /// `compiles` compiles slept distcc's pause waiting for a slot,
    /// `waited` µs in all (every compile's wait).
    Paused { compiles: u32, waited: Micros },
    /// At most `peak` compiles ran at once, against `slots` slots, under
    /// the build's own job count.
    FewJobs { peak: u32, slots: u32 },
    /// A worker in the build that got no compile.
    Unused(String),
    /// Most compiles ran here although workers were in the build.
    MostlyHere { here: u32, of: u32 },
}

impl Account {
    /// The hint for this build, if one applies. `own_jobs`: the job count
    /// was the build's own (its -j, or DISTCC_AUTO_APPEND_JOBS=0).
    pub fn hint(&self, own_jobs: bool) -> Option<Hint> {
        let (remote, here, _) = self.counts();
        let all = remote + here;
        let offered: Micros = self.workers.iter().map(|w| w.capacity).sum();
        if all == 0 || offered == 0 {
            return None;
        }
        let bound = percent(self.preprocess_bound, self.span).unwrap_or(0);
        if bound >= 20 && self.span >= 1_000_000 && self.remote_busy().unwrap_or(0) < 80 {
            return Some(Hint::Preprocessing { percent: bound });
        }
        let (waited, paused) = self.waited;
        if paused > 0 && waited * 5 >= self.span {
            return Some(Hint::Paused {
                compiles: paused,
                waited,
            });
        }
        if own_jobs && all >= 2 * self.slots && self.peak * 4 < self.slots * 3 {
            return Some(Hint::FewJobs {
                peak: self.peak,
                slots: self.slots,
            });
        }
        if all >= self.slots
            && let Some(w) = self
                .workers
                .iter()
                .find(|w| w.capacity > 0 && w.compiles + w.failed == 0)
        {
            return Some(Hint::Unused(w.name.clone()));
        }
        if all >= 4 && here > remote {
            return Some(Hint::MostlyHere { here, of: all });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::binstate::{Phase, Task};
    use super::ledger::{Ledger, Placement};
    use super::*;

    fn task(pid: u32, file: &str, host: &str, slot: u32, phase: Phase) -> Task {
        Task {
            pid,
            file: file.into(),
            host: host.into(),
            slot,
            phase,
        }
    }

    /// A compile sent to `host` as distcc 3.4 records it: preprocess here
    /// (slot `cpp`), connect, preprocess, send, compile, receive.
    fn sent(l: &mut Ledger, pid: u32, file: &str, host: &str, slot: u32, t: Micros) {
        use Phase::*;
        l.note(t, &task(pid, "", HERE, 0, Preprocess));
        l.note(t + 10, &task(pid, file, host, slot, Connect));
        l.note(t + 20, &task(pid, "", HERE, 0, Preprocess));
        l.note(t + 30, &task(pid, file, host, slot, Send));
        l.note(t + 40, &task(pid, file, host, slot, Compile));
        l.note(t + 90, &task(pid, file, host, slot, Receive));
    }

    fn ledger() -> Ledger {
        let mut l = Ledger::new();
        l.here(0, 1, 2);
        l.member(0, "w1", "127.200.0.1", 2);
        l.member(0, "w2", "127.200.0.2", 1);
        l
    }

    #[test]
    fn compiles_are_placed_and_counted_per_worker() {
        let mut l = ledger();
        sent(&mut l, 10, "a.c", "127.200.0.1", 0, 0);
        l.end(100, 10);
        sent(&mut l, 11, "b.c", "127.200.0.1", 1, 5);
        l.end(200, 11);
        // Sent to w2, failed there, compiled here.
        sent(&mut l, 12, "c.c", "127.200.0.2", 0, 0);
        l.note(120, &task(12, "c.c", HERE, 0, Phase::Compile));
        l.end(300, 12);
        l.note(150, &task(13, "d.c", HERE, 0, Phase::Compile));
        l.end(400, 13);
        // A link: no file, stays here: not a compile.
        l.note(500, &task(14, "", HERE, 0, Phase::Compile));
        l.end(510, 14);
        let a = l.close(1000);
        assert_eq!(a.counts(), (2, 2, 1));
        assert_eq!(a.workers[0].compiles, 2);
        assert_eq!(a.workers[1].compiles, 0);
        assert_eq!(a.workers[1].failed, 1);
        assert_eq!(a.here.compiles, 2);
        assert_eq!(a.compiles[2].placement, Placement::Here);
        assert_eq!(a.compiles[2].failed_on, [Some(1)]);
        assert_eq!(a.workers[0].longest, Some(("b.c".into(), 195)));
        // w1: a.c held slot 0 for 100, b.c slot 1 for 195.
        assert_eq!(a.workers[0].busy, 295);
        assert_eq!(a.workers[0].capacity, 2000);
        assert_eq!(a.workers[0].utilisation(), Some(15));
        assert_eq!(a.peak, 3);
    }

    #[test]
    fn a_compile_that_fails_on_one_worker_and_goes_to_another_counts_there() {
        let mut l = ledger();
        sent(&mut l, 10, "a.c", "127.200.0.1", 1, 0);
        // Cut off: distcc picks a host again, the other worker.
        sent(&mut l, 10, "a.c", "127.200.0.2", 0, 200);
        l.end(400, 10);
        let a = l.close(1000);
        assert_eq!(a.counts(), (1, 0, 1));
        assert_eq!(a.compiles[0].placement, Placement::Remote(1));
        assert_eq!(a.compiles[0].failed_on, [Some(0)]);
        assert_eq!((a.workers[0].failed, a.workers[1].compiles), (1, 1));
        // w1's slot 1 until the second attempt began; w2's slot 0 after.
        let on = |w| {
            a.slices.iter().find(|s| {
                s.track
                    == Track {
                        worker: Some(w),
                        slot: 1 - w as u32,
                    }
            })
        };
        assert_eq!(on(0).map(|s| (s.start, s.end)), Some((0, 200)));
        assert_eq!(on(1).map(|s| (s.start, s.end)), Some((200, 400)));
    }

    #[test]
    fn slices_on_one_slot_never_overlap_and_nest_their_phases() {
        let mut l = ledger();
        // b.c took slot 0 before we saw a.c's file go (our view is late).
        sent(&mut l, 10, "a.c", "127.200.0.1", 0, 0);
        sent(&mut l, 11, "b.c", "127.200.0.1", 0, 95);
        l.end(120, 10);
        l.end(300, 11);
        let a = l.close(1000);
        for t in a.tracks() {
            let mut on: Vec<_> = a.slices.iter().filter(|s| s.track == t).collect();
            on.sort_by_key(|s| s.start);
            for w in on.windows(2) {
                assert!(w[0].end <= w[1].start, "{t:?}: {w:?}");
            }
            for s in on {
                for p in &s.phases {
                    assert!(s.start <= p.1 && p.2 <= s.end, "{s:?}");
                }
            }
        }
        let first = a
            .slices
            .iter()
            .find(|s| s.compile == 0 && s.kind == Kind::Remote);
        assert_eq!(first.map(|s| (s.start, s.end)), Some((0, 95)));
    }

    #[test]
    fn capacity_follows_workers_joining_and_leaving() {
        let mut l = ledger();
        l.member(500, "w2", "127.200.0.2", 0);
        l.member(800, "w2", "127.200.0.2", 3);
        let a = l.close(1000);
        assert_eq!(a.workers[1].capacity, 500 + 3 * 200);
        assert!(!a.workers[1].left);
        assert_eq!(a.slots, 1 + 2 + 3);
    }

    #[test]
    fn a_saturated_preprocessor_is_the_hint() {
        let mut l = Ledger::new();
        l.here(0, 0, 1);
        l.member(0, "w1", "127.200.0.1", 4);
        // One preprocessor slot, taken all the time; w1 mostly idle.
        for i in 0..20u32 {
            let t = Micros::from(i) * 100_000;
            l.note(t, &task(i + 1, "", HERE, 0, Phase::Preprocess));
            l.note(
                t + 99_000,
                &task(i + 1, "f.c", "127.200.0.1", 0, Phase::Send),
            );
            l.end(t + 100_000, i + 1);
        }
        let a = l.close(2_000_000);
        assert_eq!(a.hint(false), Some(Hint::Preprocessing { percent: 99 }));
    }

    #[test]
    fn a_compile_over_before_its_worker_was_seen_still_counts() {
        let mut l = ledger();
        l.note(0, &task(1, "", HERE, 0, Phase::Preprocess));
        l.end(500, 1);
        let a = l.close(1000);
        assert_eq!(a.counts(), (1, 0, 0));
        assert_eq!((a.unseen, a.workers[0].compiles), (1, 0));
        assert_eq!(a.compiles[0].placement, Placement::Unseen);
    }

    #[test]
    fn compiles_that_slept_for_a_slot_are_the_hint() {
        let mut l = ledger();
        // Two compiles at once; a third started with them but found no
        // slot and slept distcc's second before its first record.
        for pid in 1..=3u32 {
            l.started(0, pid);
        }
        sent(&mut l, 1, "a.c", "127.200.0.1", 0, 10_000);
        sent(&mut l, 2, "b.c", "127.200.0.1", 1, 10_000);
        sent(&mut l, 3, "c.c", "127.200.0.1", 0, 1_000_000);
        for pid in 1..=3u32 {
            l.end(1_100_000, pid);
        }
        let a = l.close(1_200_000);
        assert_eq!(a.compiles[2].waited, 1_000_000);
        assert_eq!(a.waited, (1_020_000, 1));
        assert_eq!(
            a.hint(false),
            Some(Hint::Paused {
                compiles: 1,
                waited: 1_020_000
            })
        );
    }

    #[test]
    fn other_hints_in_their_order() {
        let mut l = ledger();
        for i in 0..8u32 {
            let t = Micros::from(i) * 1000;
            l.note(t, &task(i + 1, "f.c", HERE, 0, Phase::Compile));
            l.end(t + 900, i + 1);
        }
        let a = l.close(10_000);
        // One at a time against four slots, with the build's own -j.
        assert_eq!(a.hint(true), Some(Hint::FewJobs { peak: 1, slots: 4 }));
        assert_eq!(a.hint(false), Some(Hint::Unused("w1".into())));
        let mut l = ledger();
        for i in 0..6u32 {
            let t = Micros::from(i) * 1000;
            let host = if i < 4 { HERE } else { "127.200.0.1" };
            let host2 = if i < 4 { HERE } else { "127.200.0.2" };
            l.note(
                t,
                &task(
                    i + 1,
                    "f.c",
                    if i == 5 { host2 } else { host },
                    0,
                    Phase::Compile,
                ),
            );
            l.end(t + 900, i + 1);
        }
        assert_eq!(
            l.close(10_000).hint(false),
            Some(Hint::MostlyHere { here: 4, of: 6 })
        );
    }
}
