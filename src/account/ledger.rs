//! What the build's distcc clients did, as the state files showed it:
//! the ledger takes each record as it is seen (time-stamped when seen:
//! distcc writes no time) and, at the end, turns them into compiles, the
//! slices of time each held a slot, and the use of every worker.
//!
//! What a state file tells, from distcc's client (3.4): a compile sent
//! out holds its worker's slot (a lock) from before its first record to
//! its end; it preprocesses here first, holding one of this machine's
//! slots too (`Preprocess` records name "localhost"), then `Connect`,
//! `Send`, `Compile`, `Receive` name the worker. When that fails, distcc
//! compiles here: a `Compile` record naming "localhost". Slot locks are
//! exclusive, so two slices on one slot never overlap: where our late
//! view makes them seem to, the earlier one ends where the next starts.

use std::collections::HashMap;

use super::binstate::{Phase, Task};

/// Time in microseconds since the build started.
pub type Micros = u64;

#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub t: Micros,
    pub phase: Phase,
    /// Index into `Ledger::hosts`.
    pub host: usize,
    pub slot: u32,
}

#[derive(Debug)]
struct Record {
    file: String,
    events: Vec<Event>,
    end: Option<Micros>,
    /// When the client started, if known: before its first record it
    /// waited for a slot.
    started: Option<Micros>,
}

/// A change in who is in the build: `slots` of `name` (reached as `host`
/// in the hosts file) from `t` on; 0 when it left.
#[derive(Debug, Clone)]
struct Member {
    t: Micros,
    name: String,
    host: String,
    slots: u32,
}

/// One worker's time in the build: its name, its host in the hosts file
/// (the last), and its slots as they changed.
pub(super) struct Membership {
    pub name: String,
    pub host: String,
    pub changes: Vec<(Micros, u32)>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    hosts: Vec<String>,
    records: Vec<Record>,
    /// Records of clients still running, by PID.
    open: HashMap<u32, usize>,
    /// Start times of clients seen before their first record.
    starts: HashMap<u32, Micros>,
    members: Vec<Member>,
    /// This machine's (compile, preprocessor) slots, as they changed.
    local: Vec<(Micros, u32, u32)>,
    marks: Vec<(Micros, String)>,
}

pub const HERE: &str = "localhost";

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    fn host(&mut self, name: &str) -> usize {
        match self.hosts.iter().position(|h| h == name) {
            Some(i) => i,
            None => {
                self.hosts.push(name.to_string());
                self.hosts.len() - 1
            }
        }
    }

    /// A state record of one of the build's clients, seen at `t`.
    pub fn note(&mut self, t: Micros, task: &Task) {
        let host = self.host(&task.host);
        let i = match self.open.get(&task.pid) {
            Some(&i) => i,
            None => {
                self.records.push(Record {
                    file: String::new(),
                    events: Vec::new(),
                    end: None,
                    started: self.starts.remove(&task.pid),
                });
                self.open.insert(task.pid, self.records.len() - 1);
                self.records.len() - 1
            }
        };
        let r = &mut self.records[i];
        if r.file.is_empty() {
            r.file.clone_from(&task.file);
        }
        let e = Event {
            t,
            phase: task.phase,
            host,
            slot: task.slot,
        };
        let same = r
            .events
            .last()
            .is_some_and(|l| (l.phase, l.host, l.slot) == (e.phase, e.host, e.slot));
        if !same {
            r.events.push(e);
        }
    }

    /// The client `pid` ended (its state file is gone) at `t`.
    pub fn end(&mut self, t: Micros, pid: u32) {
        self.starts.remove(&pid);
        if let Some(i) = self.open.remove(&pid) {
            self.records[i].end = Some(t);
        }
    }

    /// The client `pid` started at `t` (its process's start time).
    pub fn started(&mut self, t: Micros, pid: u32) {
        self.starts.insert(pid, t);
    }

    /// From `t` on, worker `name` has `slots` slots at `host`.
    pub fn member(&mut self, t: Micros, name: &str, host: &str, slots: u32) {
        let last = self.members.iter().rev().find(|m| m.name == name);
        if last.is_none_or(|m| m.slots != slots || m.host != host) {
            self.members.push(Member {
                t,
                name: name.to_string(),
                host: host.to_string(),
                slots,
            });
        }
    }

    /// The slots worker `name` has now, if it was ever a member.
    pub fn slots_of(&self, name: &str) -> Option<u32> {
        self.members
            .iter()
            .rev()
            .find(|m| m.name == name)
            .map(|m| m.slots)
    }

    /// From `t` on, this machine has `slots` compile slots and `cpp`
    /// preprocessor slots.
    pub fn here(&mut self, t: Micros, slots: u32, cpp: u32) {
        if self
            .local
            .last()
            .is_none_or(|&(_, s, c)| (s, c) != (slots, cpp))
        {
            self.local.push((t, slots, cpp));
        }
    }

    /// Something the build went through (a worker joined or left).
    pub fn mark(&mut self, t: Micros, text: String) {
        self.marks.push((t, text));
    }

    /// The build as it ended at `end`.
    pub fn close(&self, end: Micros) -> super::Account {
        super::Account::of(self, end)
    }
}

/// Where one compile ran in the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On worker `n` (an index into `Account::workers`).
    Remote(usize),
    Here,
    /// Sent to a worker, but over before a record named it (it preprocessed
    /// here, so it was sent out, and it was not compiled here).
    Unseen,
}

/// What a slice of a slot's time was spent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A compile sent to a worker: from locking its slot to the object.
    Remote,
    /// Preprocessing here for a compile sent out.
    Preprocess,
    /// A compile here.
    Local,
}

/// One slot: `worker` (`None`: this machine) and distcc's slot number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Track {
    pub worker: Option<usize>,
    pub slot: u32,
}

/// A stretch of one slot's time held by one compile.
#[derive(Debug, Clone)]
pub struct Slice {
    pub track: Track,
    pub kind: Kind,
    /// Index into `Account::compiles`.
    pub compile: usize,
    pub start: Micros,
    pub end: Micros,
    /// The phases distcc went through meanwhile, in order, inside it.
    pub phases: Vec<(Phase, Micros, Micros)>,
}

#[derive(Debug, Clone)]
pub struct Compile {
    pub file: String,
    pub placement: Placement,
    /// The workers it failed on first, in order (`None`: before distcc
    /// named the worker); distcc then picked another host.
    pub failed_on: Vec<Option<usize>>,
    /// How long the client waited for a slot before its first record.
    pub waited: Micros,
    pub start: Micros,
    pub end: Micros,
}

/// One attempt of a compile: on a worker (`None`: here, or a worker
/// distcc never named), its events.
type Attempt<'a> = (Option<usize>, &'a [Event]);

/// A record's events cut into attempts. distcc (3.4) that fails on a
/// worker picks a host again: another worker, or here; a compile here
/// (a `Compile` record naming "localhost") is always the last attempt.
/// The preprocessing records between two workers' belong to the second.
fn attempts<'a>(events: &'a [Event], remote: &dyn Fn(usize) -> Option<usize>) -> Vec<Attempt<'a>> {
    let mut out = Vec::new();
    let (mut from, mut on, mut last_remote) = (0, None, None);
    for (i, e) in events.iter().enumerate() {
        match remote(e.host) {
            Some(w) => {
                if on.is_some_and(|o| o != w) {
                    let cut = last_remote.map_or(i, |l: usize| l + 1);
                    out.push((on, &events[from..cut]));
                    from = cut;
                }
                on = Some(w);
                last_remote = Some(i);
            }
            None if e.phase == Phase::Compile => {
                if from < i {
                    out.push((on, &events[from..i]));
                }
                out.push((None, &events[i..]));
                return out;
            }
            None => {}
        }
    }
    out.push((on, &events[from..]));
    out
}

/// One record's events cut into slices (of compile `compile`), before
/// slots are known to be exclusive (`Account::of` clips them), and where
/// it ran in the end and failed before. `remote(host)`: the worker a host
/// of the hosts file is, if any.
pub(super) fn slices_of(
    events: &[Event],
    end: Micros,
    compile: usize,
    remote: &dyn Fn(usize) -> Option<usize>,
) -> (Placement, Vec<Option<usize>>, Vec<Slice>) {
    let slice = |worker, slot, kind, start, end, phases| Slice {
        track: Track { worker, slot },
        kind,
        compile,
        start,
        end,
        phases,
    };
    let tries = attempts(events, remote);
    let mut out = Vec::new();
    let mut failed = Vec::new();
    let mut placement = Placement::Here;
    for (k, &(on, evs)) in tries.iter().enumerate() {
        let until = tries.get(k + 1).map_or(end, |n| n.1[0].t);
        let last = k + 1 == tries.len();
        let here = on.is_none() && evs[0].phase == Phase::Compile && remote(evs[0].host).is_none();
        if here {
            let e = evs[0];
            let ph = vec![(Phase::Compile, e.t, until)];
            out.push(slice(None, e.slot, Kind::Local, e.t, until, ph));
            continue;
        }
        if let Some(w) = on {
            let slot = evs
                .iter()
                .find(|e| remote(e.host).is_some())
                .map_or(0, |e| e.slot);
            let ph = phases(evs, until);
            out.push(slice(Some(w), slot, Kind::Remote, evs[0].t, until, ph));
            if last {
                placement = Placement::Remote(w);
            }
        } else if last && evs.iter().any(|e| e.phase == Phase::Preprocess) {
            placement = Placement::Unseen;
        }
        if !last {
            failed.push(on);
        }
        // This machine's slot, held while preprocessing for a worker.
        if let Some(first) = evs.iter().position(|e| e.phase == Phase::Preprocess) {
            let lastp = evs
                .iter()
                .rposition(|e| e.phase == Phase::Preprocess)
                .unwrap_or(first);
            let stop = evs.get(lastp + 1).map_or(until, |e| e.t);
            let e = evs[first];
            let ph = vec![(Phase::Preprocess, e.t, stop)];
            out.push(slice(None, e.slot, Kind::Preprocess, e.t, stop, ph));
        }
    }
    (placement, failed, out)
}

/// Each event's phase, until the next event (the last until `end`).
fn phases(events: &[Event], end: Micros) -> Vec<(Phase, Micros, Micros)> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.phase, e.t, events.get(i + 1).map_or(end, |n| n.t)))
        .filter(|&(_, s, e)| e > s)
        .collect()
}

impl Ledger {
    pub(super) fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// Records that are compiles: those that named a file or went out
    /// (a link through distcc names none and stays here).
    pub(super) fn compiles(
        &self,
    ) -> impl Iterator<Item = (&str, &[Event], Option<Micros>, Option<Micros>)> {
        self.records
            .iter()
            .filter(|r| !r.events.is_empty())
            .filter(|r| {
                !r.file.is_empty()
                    || r.events
                        .iter()
                        .any(|e| self.hosts[e.host] != HERE || e.phase == Phase::Preprocess)
            })
            .map(|r| (r.file.as_str(), r.events.as_slice(), r.end, r.started))
    }

    /// Each worker, in the order they came.
    pub(super) fn members(&self) -> Vec<Membership> {
        let mut out: Vec<Membership> = Vec::new();
        for m in &self.members {
            match out.iter_mut().find(|o| o.name == m.name) {
                Some(o) => {
                    o.host.clone_from(&m.host);
                    o.changes.push((m.t, m.slots));
                }
                None => out.push(Membership {
                    name: m.name.clone(),
                    host: m.host.clone(),
                    changes: vec![(m.t, m.slots)],
                }),
            }
        }
        out
    }

    pub(super) fn local(&self) -> &[(Micros, u32, u32)] {
        &self.local
    }

    pub(super) fn marks(&self) -> &[(Micros, String)] {
        &self.marks
    }
}
