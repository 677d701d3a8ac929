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

#[derive(Debug, Default)]
pub struct Ledger {
    hosts: Vec<String>,
    records: Vec<Record>,
    /// Records of clients still running, by PID.
    open: HashMap<u32, usize>,
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
        if let Some(i) = self.open.remove(&pid) {
            self.records[i].end = Some(t);
        }
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

    /// How many clients of the build are running now.
    pub fn running(&self) -> usize {
        self.open.len()
    }

    /// The build as it ended at `end`.
    pub fn close(&self, end: Micros) -> super::Account {
        super::Account::of(self, end)
    }
}

/// Where one compile ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On worker `n` (an index into `Account::workers`).
    Remote(usize),
    Here,
    /// Here, after it failed on worker `n` (`None`: before distcc named
    /// the worker).
    Retried(Option<usize>),
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
    pub start: Micros,
    pub end: Micros,
}

/// One record's events cut into slices (of compile `compile`), before
/// slots are known to be exclusive (`Account::of` clips them).
/// `remote(host)`: the worker a host of the hosts file is, if any.
pub(super) fn slices_of(
    events: &[Event],
    end: Micros,
    compile: usize,
    remote: &dyn Fn(usize) -> Option<usize>,
) -> (Placement, Vec<Slice>) {
    let slice = |worker, slot, kind, start, end, phases| Slice {
        track: Track { worker, slot },
        kind,
        compile,
        start,
        end,
        phases,
    };
    let here_compile = events
        .iter()
        .position(|e| remote(e.host).is_none() && e.phase == Phase::Compile);
    let sent = &events[..here_compile.unwrap_or(events.len())];
    let worker = sent
        .iter()
        .find_map(|e| remote(e.host).map(|w| (w, e.slot)));
    let mut out = Vec::new();
    let sent_end = here_compile.map_or(end, |i| events[i].t);
    if let Some((w, slot)) = worker {
        let ph = phases(sent, sent_end);
        out.push(slice(Some(w), slot, Kind::Remote, sent[0].t, sent_end, ph));
    }
    // This machine's slot, held while preprocessing for a compile sent out.
    if let Some(first) = sent.iter().position(|e| e.phase == Phase::Preprocess) {
        let last = sent
            .iter()
            .rposition(|e| e.phase == Phase::Preprocess)
            .unwrap_or(first);
        let stop = sent.get(last + 1).map_or(sent_end, |e| e.t);
        let e = sent[first];
        let ph = vec![(Phase::Preprocess, e.t, stop)];
        out.push(slice(None, e.slot, Kind::Preprocess, e.t, stop, ph));
    }
    let placement = match (here_compile, worker) {
        (Some(i), w) => {
            let e = events[i];
            let ph = vec![(Phase::Compile, e.t, end)];
            out.push(slice(None, e.slot, Kind::Local, e.t, end, ph));
            if sent.is_empty() {
                Placement::Here
            } else {
                Placement::Retried(w.map(|w| w.0))
            }
        }
        (None, Some((w, _))) => Placement::Remote(w),
        (None, None) => Placement::Here,
    };
    (placement, out)
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
    pub(super) fn compiles(&self) -> impl Iterator<Item = (&str, &[Event], Option<Micros>)> {
        self.records
            .iter()
            .filter(|r| !r.events.is_empty())
            .filter(|r| !r.file.is_empty() || r.events.iter().any(|e| self.hosts[e.host] != HERE))
            .map(|r| (r.file.as_str(), r.events.as_slice(), r.end))
    }

    /// Each worker's (name, host, slot changes), in the order they came.
    pub(super) fn members(&self) -> Vec<(String, String, Vec<(Micros, u32)>)> {
        let mut out: Vec<(String, String, Vec<(Micros, u32)>)> = Vec::new();
        for m in &self.members {
            match out.iter_mut().find(|o| o.0 == m.name) {
                Some(o) => {
                    o.1.clone_from(&m.host);
                    o.2.push((m.t, m.slots));
                }
                None => out.push((m.name.clone(), m.host.clone(), vec![(m.t, m.slots)])),
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
