//! A live build: while the build runs, what it compiles on follows the
//! cluster. Its pieces, each driven by the conductor (`cmd::conduct`):
//!
//! - the build's own DISTCC_DIR, in our private run directory, whose
//!   `hosts` file distcc reads afresh for every compile (the build has no
//!   DISTCC_HOSTS); its `lock` and `state` are the user's own, linked, so
//!   that slot locks, distcc's backoff and distccmon stay shared;
//! - one `relay` per worker on loopback, which the hosts file names, so
//!   that a dead worker's compiles in flight can be ended at once;
//! - the `jobserver` that make or ninja take their job count from.
//!
//! `apply` turns one round's plan into all three.

pub mod follow;
pub mod jobserver;
pub mod relay;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::account::Account;
use crate::config::hostspec::Host;
use crate::plan::{Plan, Worker};
use crate::worker::fault::Code;
use crate::{say, trace};
use follow::Follow;
use jobserver::Jobserver;
use relay::Relay;

/// One worker, as the live build sees it across rounds.
struct Seen {
    relay: Option<Relay>,
    /// Slots in the hosts file now; 0: not in it.
    slots: u32,
    /// Rounds in a row without any answer.
    misses: u32,
}

impl Seen {
    /// A worker that did not answer this round: out of the hosts file;
    /// silent two rounds in a row, its compiles in flight end.
    fn gone(&mut self, w: &Worker) {
        self.misses += u32::from(silent(w));
        if let Some(r) = &self.relay {
            r.point(None);
            if self.slots > 0 {
                say(&format!(
                    "worker '{}' left the build: {}",
                    w.spec.entry,
                    w.dropped.as_ref().map_or("", |d| d.why.as_str())
                ));
            }
            if self.misses == 2 {
                let n = r.cut();
                if n > 0 {
                    say(&format!(
                        "ended {n} compile{} in flight on '{}'; distcc compiles {} here",
                        if n == 1 { "" } else { "s" },
                        w.spec.entry,
                        if n == 1 { "it" } else { "them" }
                    ));
                }
            }
        }
        self.slots = 0;
    }

    /// A worker up this round: its relay (started the first time) sends
    /// to where it answered; its place in the hosts file.
    fn up(
        &mut self,
        w: &Worker,
        first: bool,
        taken: &mut Vec<SocketAddrV4>,
        own: &Path,
    ) -> Option<(SocketAddrV4, u32)> {
        self.misses = 0;
        let target = job_address(w);
        if self.relay.is_none() {
            match Relay::start(&w.spec.entry, w.spec.distcc_port, target, taken) {
                Ok(r) => {
                    taken.push(r.listen);
                    trace!("worker '{}': relay {}", w.spec.entry, r.listen);
                    self.relay = Some(r);
                }
                Err(e) => {
                    say(&format!("worker '{}' not used: {e}", w.spec.entry));
                    return None;
                }
            }
        }
        let r = self.relay.as_ref()?;
        r.point(target);
        if first || self.slots == 0 {
            clear_backoff(own, r.listen);
        }
        if self.slots == 0 && !first {
            say(&format!(
                "worker '{}' joined the build with {} slot{}",
                w.spec.entry,
                w.slots,
                if w.slots == 1 { "" } else { "s" }
            ));
        } else if self.slots != w.slots && !first {
            trace!(
                "worker '{}': {} slots, was {}",
                w.spec.entry, w.slots, self.slots
            );
        }
        self.slots = w.slots;
        Some((r.listen, w.slots))
    }
}

pub struct Live {
    /// The build's DISTCC_DIR (a real path: the build is not us).
    pub dir: PathBuf,
    /// The same directory through our private directory's held
    /// descriptor, for our own use.
    own: PathBuf,
    seen: HashMap<String, Seen>,
    /// Workers in the hosts file order, with their relay addresses.
    hosts: String,
    local: (u32, u32),
    pub jobserver: Option<Jobserver>,
    /// The job count of the last round.
    jobs: u32,
    /// distcc's state files, followed for this build's account (`None`
    /// when they cannot be: then the counters are the account).
    pub follow: Option<Arc<Follow>>,
    /// The job count was the build's own (its -j, or APPEND_JOBS=0).
    pub own_jobs: bool,
    /// Where the timeline goes (absolute), and what it is titled.
    pub trace: Option<(PathBuf, String)>,
}

/// Whether a worker that is not up gave no answer at all: a slow stats
/// reply or compile check from a busy worker is not death.
/// Through an ssh tunnel every step is a question to the worker (the
/// tunnel's local end accepts whatever it does), so any timeout is.
fn silent(w: &Worker) -> bool {
    w.dropped.as_ref().is_some_and(|d| match d.code {
        Code::Timeout if w.spec.is_ssh() => true,
        Code::Timeout => !(d.why.contains("(stats reply)") || d.why.contains("(compile check)")),
        Code::Unresolved | Code::Refused | Code::Ssh | Code::NotWaited => true,
        _ => false,
    })
}

/// A worker whose probe only ran slow this round: keep it as it was.
fn slow(w: &Worker) -> bool {
    !w.is_up()
        && w.dropped
            .as_ref()
            .is_some_and(|d| d.code == Code::Timeout && !silent(w))
}

/// The hosts file: this machine's slots, then each worker in `order` at
/// its relay, best first.
pub fn hosts_text(local: (u32, u32), order: &[(SocketAddrV4, u32)], pump: bool) -> String {
    let mut out = String::new();
    if local.0 > 0 {
        let _ = write!(out, "localhost/{0} --localslots={0}", local.0);
    }
    if local.1 > 0 {
        let _ = write!(out, " --localslots_cpp={}", local.1);
    }
    let cpp = if pump { ",cpp" } else { "" };
    for (addr, slots) in order {
        let _ = write!(out, " {addr}/{slots}{cpp},lzo");
    }
    out.trim_start().to_string() + "\n"
}

/// Where a worker's relay sends connections: the address that answered
/// (for an ssh worker, its tunnel's local end).
fn job_address(w: &Worker) -> Option<SocketAddr> {
    let (host, port) = w.distcc_address();
    let ip = match host {
        Host::V4(a) => IpAddr::V4(a),
        Host::V6(a) => IpAddr::V6(a),
        Host::Name(_) => return None,
    };
    Some(SocketAddr::new(ip, port))
}

impl Live {
    /// Make the build's DISTCC_DIR at `dir` (inside our private run
    /// directory) with the user's `lock` and `state` linked in, and apply
    /// the first plan.
    pub fn start(own: PathBuf, dir: PathBuf, user_dir: &Path, plan: &Plan) -> Result<Live, String> {
        std::fs::create_dir(&own).map_err(|e| format!("{}: {e}", dir.display()))?;
        for sub in ["lock", "state"] {
            let theirs = user_dir.join(sub);
            let _ = std::fs::create_dir_all(&theirs);
            std::os::unix::fs::symlink(&theirs, own.join(sub))
                .map_err(|e| format!("linking {}: {e}", theirs.display()))?;
        }
        let follow = Follow::start(&user_dir.join("state"), &dir)
            .inspect_err(|e| say(&format!("no account of this build: {e}")))
            .ok();
        let mut live = Live {
            dir,
            own,
            seen: HashMap::new(),
            hosts: String::new(),
            local: (0, 0),
            jobserver: None,
            jobs: 0,
            follow,
            own_jobs: false,
            trace: None,
        };
        live.apply(plan, true);
        Ok(live)
    }

    /// The job count the hosts file gives now.
    pub fn jobs(&self) -> u32 {
        self.local.0 + self.local.1 + self.seen.values().map(|s| s.slots).sum::<u32>()
    }

    /// Compiles of this build on each worker right now, by entry.
    pub fn in_flight(&self, entry: &str) -> usize {
        self.seen
            .get(entry)
            .and_then(|s| s.relay.as_ref())
            .map_or(0, Relay::in_flight)
    }

    /// One round: who is in the hosts file and with how many slots, whose
    /// compiles in flight end (no answer two rounds in a row), and the
    /// job count. Says what changed (everything, when `first` and tracing).
    pub fn apply(&mut self, plan: &Plan, first: bool) {
        let mut order = Vec::new();
        let mut taken: Vec<SocketAddrV4> = self
            .seen
            .values()
            .filter_map(|s| s.relay.as_ref().map(|r| r.listen))
            .collect();
        for w in &plan.workers {
            let seen = self.seen.entry(w.spec.entry.clone()).or_insert(Seen {
                relay: None,
                slots: 0,
                misses: 0,
            });
            if slow(w) {
                if seen.slots > 0 {
                    trace!("worker '{}' answered slowly; kept as it was", w.spec.entry);
                    if let Some(r) = &seen.relay {
                        order.push((r.listen, seen.slots));
                    }
                }
                continue;
            }
            let at = if w.is_up() {
                seen.up(w, first, &mut taken, &self.own)
            } else {
                seen.gone(w);
                None
            };
            order.extend(at);
        }
        self.local = (plan.local_slots, plan.preprocessor_slots);
        self.note(plan, first);
        let text = hosts_text(self.local, &order, plan.pump);
        if text != self.hosts {
            if let Err(e) = replace(&self.own.join("hosts"), &text) {
                say(&format!("cannot update the build's hosts file: {e}"));
            } else {
                trace!("hosts: {}", text.trim_end());
                self.hosts = text;
            }
        }
        let jobs = self.jobs();
        if let Some(js) = &self.jobserver {
            js.set(jobs.saturating_sub(1));
            if self.jobs != jobs && !first {
                say(&format!("jobs: {jobs} (was {})", self.jobs));
            }
        }
        self.jobs = jobs;
    }

    /// Tell the account who is in the build now, and who came and went.
    fn note(&self, plan: &Plan, first: bool) {
        let Some(f) = &self.follow else { return };
        let t = f.now();
        let mut g = f.lock();
        let l = &mut g.ledger;
        l.here(t, self.local.0, self.local.1);
        for w in &plan.workers {
            let Some(s) = self.seen.get(&w.spec.entry) else {
                continue;
            };
            let Some(r) = &s.relay else { continue };
            let before = l.slots_of(&w.spec.entry);
            l.member(t, &w.spec.entry, &r.listen.ip().to_string(), s.slots);
            match (before, s.slots) {
                (None | Some(0), n) if n > 0 && !first => {
                    l.mark(t, format!("worker '{}' joined", w.spec.entry));
                }
                (Some(b), 0) if b > 0 => l.mark(t, format!("worker '{}' left", w.spec.entry)),
                _ => {}
            }
        }
    }

    /// The build's account up to now: everything its clients that have
    /// ended did. `None` when its state files were not followed.
    pub fn account(&self) -> Option<(Account, bool)> {
        let f = self.follow.as_ref()?;
        Some(f.with(|l, t, lost| (l.close(t), lost)))
    }

    /// `name` in the build's directory, by our private directory's held
    /// descriptor: the conductor's socket (`control`) and FIFOs.
    pub fn own(&self, name: &str) -> PathBuf {
        self.own.join(name)
    }

    /// The end of the build: count the tokens back, remove the directory.
    pub fn finish(&mut self) {
        if let Some(js) = &self.jobserver {
            let (got, expected) = js.count_back();
            if got < expected {
                say(&format!(
                    "the build returned {got} of the jobserver's {expected} tokens"
                ));
            }
        }
        self.jobserver = None;
        if let Some(f) = self.follow.take() {
            f.stop();
        }
        for s in self.seen.values() {
            if let Some(r) = &s.relay {
                r.point(None);
            }
        }
        let _ = std::fs::remove_dir_all(&self.own);
    }
}

/// Replace `path` whole: distcc never reads half a file.
fn replace(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// distcc's backoff file for a relay address: a worker that is back is
/// not to be avoided.
fn clear_backoff(dir: &Path, addr: SocketAddrV4) {
    let name = format!("backoff_tcp_{}_{}_0", addr.ip(), addr.port());
    if std::fs::remove_file(dir.join("lock").join(&name)).is_ok() {
        trace!("removed distcc's backoff file {name}");
    }
}
