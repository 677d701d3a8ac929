//! `distcc-auto kill`: stop the tunnels that `env` handed over, and
//! nothing else.
//!
//! `DISTCC_AUTO_TUNNEL_PIDS` is a plain list of PIDs (so that a hand-written
//! `kill $DISTCC_AUTO_TUNNEL_PIDS` works), but a PID is reused once its
//! process ends, and a long session wraps PIDs. So `env` also records each
//! tunnel's identity in `DISTCC_AUTO_TUNNEL_IDS` as `PID:UID:START` (owner
//! and start time from /proc), and a PID is signalled only when the process
//! that has it now is that same process, still leading its own session and
//! process group. The whole group is stopped: ssh with whatever it started.

use std::time::Duration;

use crate::config::whole;
use crate::process::registry::{self, Stopped};
use crate::sys;

/// What `env` recorded about one tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub pid: u32,
    pub uid: u32,
    pub start: u64,
}

impl Identity {
    /// Parse `PID:UID:START`.
    pub fn parse(s: &str) -> Option<Identity> {
        let mut f = s.split(':');
        let id = Identity {
            pid: whole(f.next()?)?,
            uid: whole(f.next()?)?,
            start: whole(f.next()?)?,
        };
        f.next().is_none().then_some(id)
    }

    /// This process's identity, while it runs.
    pub fn of(pid: u32) -> Option<Identity> {
        Some(Identity {
            pid,
            uid: sys::owner(pid)?,
            start: sys::stat(pid)?.start,
        })
    }

    /// `PID:UID:START`, as DISTCC_AUTO_TUNNEL_IDS carries it.
    pub fn render(&self) -> String {
        format!("{}:{}:{}", self.pid, self.uid, self.start)
    }

    /// Whether process `pid` is this tunnel (or holder) now: the same
    /// start time and owner, and still the leader of its own session and
    /// process group.
    pub(crate) fn matches_now(&self) -> bool {
        let Some(s) = sys::stat(self.pid) else {
            return false;
        };
        s.start == self.start
            && sys::owner(self.pid) == Some(self.uid)
            && s.session as u32 == self.pid
            && s.pgrp as u32 == self.pid
    }
}

pub(crate) const TUNNEL: &str = "ssh tunnel";
pub(crate) const CONDUCTOR: &str = "the live build's conductor";
/// The conductor's process name (`ps`, /proc/PID/comm), by which `kill`
/// tells it from a tunnel.
pub const CONDUCTOR_NAME: &std::ffi::CStr = c"distcc-conduct";

/// What is said of a process stopped: by `kill`, and by a conductor that
/// stops its tunnels and itself (`__end`).
pub(crate) fn stopped(what: &str, pid: u32) -> String {
    format!("stopped {what} {pid}")
}

/// Stop the tunnels in `pids` whose identity is in `ids`. Returns what was
/// said for each, and the refusals (which make `kill` exit 1).
pub fn stop(pids: &str, ids: &str) -> (Vec<String>, Vec<String>) {
    let known: Vec<Identity> = ids.split_whitespace().filter_map(Identity::parse).collect();
    let (mut said, mut refused) = (Vec::new(), Vec::new());
    let mut targets = Vec::new();
    for word in pids.split_whitespace() {
        let pid = match whole::<u32>(word) {
            // 0 and 1 would signal a process group or init: never.
            Some(p) if p > 1 && p <= i32::MAX as u32 => p,
            _ => {
                refused.push(format!("'{}' is not a process ID", word.escape_debug()));
                continue;
            }
        };
        let Some(id) = known.iter().find(|i| i.pid == pid) else {
            refused.push(format!(
                "process {pid}: no identity recorded for it in DISTCC_AUTO_TUNNEL_IDS \
                 (set by distcc-auto env), so it is not known to be our tunnel"
            ));
            continue;
        };
        if !sys::alive(pid) {
            // A group outlives its leader only while its members live (the
            // PID cannot be reused meanwhile): what is left is still ours.
            if sys::group(pid).is_empty() {
                crate::trace!("tunnel {pid} already gone");
            } else {
                targets.push(pid);
            }
            continue;
        }
        if !id.matches_now() {
            refused.push(format!(
                "process {pid} is not the ssh tunnel that distcc-auto started \
                 (its owner or start time differ: the PID was reused)"
            ));
            continue;
        }
        targets.push(pid);
    }
    // A live build's conductor is listed with the tunnels.
    let names: Vec<&str> = targets
        .iter()
        .map(|&pid| {
            let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
            let name = CONDUCTOR_NAME.to_bytes();
            match comm.strip_suffix(b"\n") == Some(name) {
                true => CONDUCTOR,
                false => TUNNEL,
            }
        })
        .collect();
    let results = registry::stop_groups(&targets, Duration::from_secs(2), || {});
    for ((pid, r), name) in targets.iter().zip(results).zip(names) {
        match r {
            Stopped::Ended => said.push(stopped(name, *pid)),
            Stopped::NotPermitted => refused.push(format!(
                "ssh tunnel {pid}: not permitted to signal it (owned by another user)"
            )),
            Stopped::Survived => refused.push(format!("ssh tunnel {pid} did not stop")),
        }
    }
    (said, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_strictly() {
        assert_eq!(
            Identity::parse("123:0:98765"),
            Some(Identity {
                pid: 123,
                uid: 0,
                start: 98765
            })
        );
        for bad in ["123", "123:0", "1:2:3:4", "a:0:1", "-1:0:1", "1:+0:1", ""] {
            assert_eq!(Identity::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_process_that_is_not_the_recorded_one_is_refused() {
        let me = std::process::id();
        let start = sys::stat(me).unwrap().start;
        let uid = sys::owner(me).unwrap();
        // This test process does not lead its own session: refused, as is a
        // wrong start time (a reused PID) and a PID without an identity.
        for ids in [
            format!("{me}:{uid}:{start}"),
            format!("{me}:{uid}:{}", start + 1),
            String::new(),
        ] {
            let (said, refused) = stop(&me.to_string(), &ids);
            assert!(said.is_empty(), "{ids}");
            assert_eq!(refused.len(), 1, "{ids}: {refused:?}");
        }
        let (_, refused) = stop("0 1 abc", "");
        assert_eq!(refused.len(), 3);
    }
}
