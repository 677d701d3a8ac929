//! One thread watches every pending tunnel, however many logins are under
//! way, and wakes each waiting thread once, with its verdict: many pending
//! ssh logins must not keep the CPU busy.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::process::ended::Ended;
use crate::{process::registry, sys};

#[derive(Debug, Clone, Copy)]
pub enum Verdict {
    /// The tunnel's processes listen on both forwards: logged in.
    Ready,
    /// ssh (or the shell running the ssh command) exited first.
    Exited(Ended),
}

struct Pending {
    ports: [u16; 2],
    verdict: Option<Verdict>,
}

struct State {
    pending: BTreeMap<u32, Pending>,
    running: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    pending: BTreeMap::new(),
    running: false,
});
static DECIDED: Condvar = Condvar::new();

fn lock() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait until tunnel `pid` is ready or has exited; `None` at `deadline`.
pub fn wait(pid: u32, ports: [u16; 2], deadline: Instant) -> Option<Verdict> {
    let mut st = lock();
    st.pending.insert(
        pid,
        Pending {
            ports,
            verdict: None,
        },
    );
    if !st.running {
        let started = thread::Builder::new()
            .name("tunnels".into())
            .stack_size(128 * 1024)
            .spawn(watch);
        st.running = started.is_ok();
    }
    loop {
        if let Some(v) = st.pending.get(&pid).and_then(|p| p.verdict) {
            st.pending.remove(&pid);
            return Some(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            st.pending.remove(&pid);
            return None;
        }
        if !st.running {
            // No watcher thread (a thread limit): look ourselves.
            drop(st);
            let v = look(pid, ports, &sys::loopback_listeners());
            thread::sleep(Duration::from_millis(20).min(left));
            st = lock();
            if let Some(v) = v {
                st.pending.remove(&pid);
                return Some(v);
            }
            continue;
        }
        st = DECIDED
            .wait_timeout(st, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn look(pid: u32, ports: [u16; 2], listeners: &[(u16, u64)]) -> Option<Verdict> {
    if let Some(status) = registry::try_wait(pid) {
        return Some(Verdict::Exited(status));
    }
    sys::group_listens(pid, &ports, listeners).then_some(Verdict::Ready)
}

/// The watcher: look at every undecided tunnel, back off while nothing
/// changes, end when none is left.
fn watch() {
    let mut pause = Duration::from_millis(2);
    loop {
        let todo: Vec<(u32, [u16; 2])> = {
            let mut st = lock();
            let todo: Vec<_> = st
                .pending
                .iter()
                .filter(|(_, p)| p.verdict.is_none())
                .map(|(&pid, p)| (pid, p.ports))
                .collect();
            if todo.is_empty() {
                st.running = false;
                return;
            }
            todo
        };
        // One look at the kernel's listeners for all of them.
        let listeners = sys::loopback_listeners();
        let found: Vec<(u32, Verdict)> = todo
            .into_iter()
            .filter_map(|(pid, ports)| Some((pid, look(pid, ports, &listeners)?)))
            .collect();
        if found.is_empty() {
            pause = (pause * 2).min(Duration::from_millis(40));
        } else {
            let mut st = lock();
            for (pid, v) in found {
                if let Some(p) = st.pending.get_mut(&pid) {
                    p.verdict = Some(v);
                }
            }
            DECIDED.notify_all();
            pause = Duration::from_millis(2);
        }
        thread::sleep(pause);
    }
}
