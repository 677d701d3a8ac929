//! The ssh processes this run started and has not handed over, and the one
//! way to stop a tunnel: its whole process group.
//!
//! Each tunnel leads its own session and process group (setsid), and
//! whatever ssh starts (a `ProxyCommand`, the `ssh -W` of a `ProxyJump`, a
//! wrapper's ssh) stays in that group. Stopping a tunnel is: SIGTERM to the
//! group, one grace period, SIGKILL to what is left, then wait until the
//! group is empty; many tunnels are stopped in parallel. A PID is only
//! signalled or reaped under the registry's lock, so a PID we signal is
//! never one the system has already reused.

use std::process::{Child, Command};

use crate::process::ended::Ended;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::sys;

/// How long a tunnel gets to end after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(1);

struct Registry {
    /// Set once the run is ending: no new tunnel may start.
    closed: bool,
    children: Vec<Child>,
    /// Children that go on without us (`release`): never stopped, but
    /// reaped when they end while we still run (a long `hosts --watch`).
    released: Vec<Child>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    closed: false,
    children: Vec::new(),
    released: Vec::new(),
});

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawn and register in one step, so that a signal cannot fall between
/// the two; refused once the run is ending.
pub fn spawn(cmd: &mut Command) -> Result<u32, std::io::Error> {
    let mut r = lock();
    if r.closed {
        return Err(std::io::Error::other(
            "interrupted before the tunnel started",
        ));
    }
    r.released.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    let child = cmd.spawn()?;
    let pid = child.id();
    r.children.push(child);
    Ok(pid)
}

/// The exit status of a registered child, once it has ended (the child
/// is then reaped and forgotten; its group may still hold processes).
pub fn try_wait(pid: u32) -> Option<Ended> {
    let mut r = lock();
    let i = r.children.iter().position(|c| c.id() == pid)?;
    let status = r.children[i].try_wait().ok().flatten()?;
    // Reaped already: wait() returns the status it kept.
    let _ = r.children.remove(i).wait();
    Some(Ended::from(status))
}

/// Let a registered process go on without us: it is not stopped when the
/// run ends (a persistent master's keeper).
pub fn release(pid: u32) {
    let mut r = lock();
    if let Some(i) = r.children.iter().position(|c| c.id() == pid) {
        let child = r.children.remove(i);
        r.released.push(child);
    }
}

/// Stop one tunnel of ours (one that failed, or whose worker is not used)
/// with its whole group, reap it and forget it.
pub fn stop(pid: u32) {
    let mut r = lock();
    if let Some(i) = r.children.iter().position(|c| c.id() == pid) {
        let child = r.children.remove(i);
        end_children(vec![child]);
    }
}

/// The PIDs of the processes registered now (our tunnels).
pub fn pids() -> Vec<u32> {
    lock().children.iter().map(Child::id).collect()
}

/// Refuse new tunnels and stop every registered one except `keep` (handed
/// over to the shell and left running). Returns how many were stopped.
pub fn close(keep: &[u32]) -> usize {
    let mut r = lock();
    r.closed = true;
    let (kept, stop): (Vec<Child>, Vec<Child>) = std::mem::take(&mut r.children)
        .into_iter()
        .partition(|c| keep.contains(&c.id()));
    // Handed over: the shell stops them by PID (dropping a Child neither
    // signals nor waits).
    drop(kept);
    let n = stop.len();
    end_children(stop);
    n
}

/// Stop the groups of our own children and reap the children.
fn end_children(mut children: Vec<Child>) {
    let pgids: Vec<u32> = children.iter().map(Child::id).collect();
    stop_groups(&pgids, GRACE, || {
        for c in &mut children {
            let _ = c.try_wait();
        }
    });
    for c in &mut children {
        let _ = c.wait();
    }
}

/// How stopping one group ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every process of the group is gone.
    Ended,
    /// Signalling it is not permitted (another user's process).
    NotPermitted,
    /// Something in the group outlived SIGKILL (stuck in the kernel).
    Survived,
}

/// SIGTERM to every group at once, one grace period, SIGKILL to what is
/// left, then wait (at most a second) until the groups are empty. `reap`
/// runs while waiting, so that our own children do not linger as zombies.
/// A group's leader's descendants that went into groups of their own
/// (`sys::escaped_groups`) are stopped with it, and count for its result.
pub fn stop_groups(pgids: &[u32], grace: Duration, reap: impl FnMut()) -> Vec<Stopped> {
    // Found before any signal: once a leader is gone, its orphans are
    // init's and cannot be told from anyone else's.
    let mut all = pgids.to_vec();
    let mut owner: Vec<usize> = (0..pgids.len()).collect();
    for (i, &g) in pgids.iter().enumerate() {
        for e in sys::escaped_groups(g) {
            if !all.contains(&e) {
                all.push(e);
                owner.push(i);
            }
        }
    }
    let each = stop_all_groups(&all, grace, reap);
    let mut result: Vec<Stopped> = each[..pgids.len()].to_vec();
    for (k, r) in each.into_iter().enumerate().skip(pgids.len()) {
        if r == Stopped::Survived {
            result[owner[k]] = Stopped::Survived;
        }
    }
    result
}

fn stop_all_groups(pgids: &[u32], grace: Duration, mut reap: impl FnMut()) -> Vec<Stopped> {
    let mut result: Vec<Option<Stopped>> = pgids
        .iter()
        .map(|&g| match signal_group(g, libc::SIGTERM) {
            Err(libc::EPERM) => Some(Stopped::NotPermitted),
            Err(_) => Some(Stopped::Ended), // ESRCH: nothing left
            Ok(()) => None,
        })
        .collect();
    let mut wait_for_groups = |until: Instant, result: &mut Vec<Option<Stopped>>| {
        let mut pause = Duration::from_millis(1);
        loop {
            reap();
            for (i, &g) in pgids.iter().enumerate() {
                if result[i].is_none() && sys::group(g).is_empty() {
                    result[i] = Some(Stopped::Ended);
                }
            }
            if result.iter().all(Option::is_some) || Instant::now() >= until {
                return;
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    };
    wait_for_groups(Instant::now() + grace, &mut result);
    for (i, &g) in pgids.iter().enumerate() {
        if result[i].is_none() {
            let _ = signal_group(g, libc::SIGKILL);
        }
    }
    wait_for_groups(Instant::now() + Duration::from_secs(1), &mut result);
    result
        .into_iter()
        .map(|r| r.unwrap_or(Stopped::Survived))
        .collect()
}

/// kill(-pgid, sig), with errno on failure. Refuses the groups 0 and 1
/// (all processes, init).
fn signal_group(pgid: u32, sig: libc::c_int) -> Result<(), libc::c_int> {
    if pgid <= 1 || pgid > i32::MAX as u32 {
        return Err(libc::ESRCH);
    }
    // SAFETY: kill(2) with a negative PID signals one process group and
    // touches no memory; pgid is > 1, so never every process or init.
    let rc = unsafe { libc::kill(-(pgid as libc::pid_t), sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ESRCH))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::process::Stdio;

    #[test]
    fn what_leaves_the_group_for_a_session_of_its_own_is_stopped_with_it() {
        // A tunnel whose child starts a daemon: a process in a new session,
        // orphaned at once (its parent, the subshell, exits).
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "(setsid sleep 300 & echo $!); exec sleep 300"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        crate::process::signals::own_session(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let leader = child.id();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let daemon: u32 = line.trim().parse().unwrap();
        // The leader is a child subreaper: the orphan becomes its child, in
        // a group that is not the leader's.
        let until = Instant::now() + Duration::from_secs(5);
        while sys::escaped_groups(leader) != vec![daemon] && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sys::escaped_groups(leader), vec![daemon]);
        let result = stop_groups(&[leader], GRACE, || {
            let _ = child.try_wait();
        });
        assert_eq!(result, vec![Stopped::Ended]);
        let _ = child.wait();
        assert!(
            !sys::alive(daemon),
            "the daemon was stopped with the tunnel"
        );
    }
}
