//! The process-wide signal policy while ssh tunnels may exist.
//!
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT are blocked in every thread and taken by one
//! thread of their own, which stops every registered tunnel and then ends
//! the process the way the signal would have (re-raised with its default
//! action, so that a calling shell sees death by signal). The mask must be
//! in place before any other thread starts, since threads inherit it: the
//! `Guarded` token, which only `guard` makes, is what starting the probes
//! asks for.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::thread;

use crate::process::registry;

/// Proof that the signal policy is in force (or was not needed).
#[derive(Debug, Clone, Copy)]
pub struct Guarded(());

/// What SIGINT means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// Stop tunnels, then die of the signal (env, hosts).
    Die,
    /// Stop tunnels, then exit 0: Ctrl-C is the normal end of `--watch`.
    ExitZero,
}

static EXIT_ZERO_ON_INT: AtomicBool = AtomicBool::new(false);
/// `exec`'s command while it runs: signals go to it, and `exec` ends when
/// it ends.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// While `pid` runs (0: no longer), a signal is the command's business: one
/// sent by another process is passed on to it, one from the terminal
/// already reached it (same process group). `exec` then ends as it does.
pub fn set_child(pid: u32) {
    CHILD.store(i32::try_from(pid).unwrap_or(0), Ordering::SeqCst);
}

/// The signals that stop us: Ctrl-C, kill, a closing terminal, Ctrl-\\.
pub const STOPPING: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// A signal set of `sigs`.
pub fn mask(sigs: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill the local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in sigs {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Take the signals when `needed` (there are ssh workers, or a watch);
/// call before any other thread starts. If the signal thread cannot start,
/// the signals are unblocked again: never block what nobody handles.
pub fn guard(needed: bool, on_int: OnInterrupt) -> Guarded {
    if !needed {
        return Guarded(());
    }
    EXIT_ZERO_ON_INT.store(on_int == OnInterrupt::ExitZero, Ordering::Relaxed);
    let set = mask(&STOPPING);
    // SAFETY: changes this thread's signal mask only, from a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let started = thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                // SAFETY: sigwaitinfo reads the set and fills the info.
                let (sig, info) = unsafe {
                    let mut info: libc::siginfo_t = std::mem::zeroed();
                    (libc::sigwaitinfo(&set, &mut info), info)
                };
                if sig < 0 {
                    continue; // EINTR
                }
                let child = CHILD.load(Ordering::SeqCst);
                if child <= 0 {
                    interrupted(sig);
                }
                // si_code <= 0: sent by a process (kill, SI_USER or
                // SI_QUEUE); above: the kernel, for the whole terminal.
                if info.si_code <= 0 {
                    // SAFETY: kill touches no memory; child is our child,
                    // not yet reaped (set_child(0) comes after the wait).
                    unsafe { libc::kill(child, sig) };
                }
            }
        });
    if started.is_err() {
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
    Guarded(())
}

/// Ignore the stopping signals for good: cleanup that a second Ctrl-C or a
/// closing terminal's hangup must not cut short (`kill`).
pub fn ignore() {
    for sig in STOPPING {
        // SAFETY: sets the disposition of one signal to SIG_IGN.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// What must happen before a stopping signal stops the tunnels and ends
/// us (a live build's cleanup).
static BEFORE_STOPPING: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Run `f` when a stopping signal ends the run, before the tunnels stop.
pub fn before_stopping(f: fn()) {
    let _ = BEFORE_STOPPING.set(f);
}

fn interrupted(sig: libc::c_int) -> ! {
    if let Some(f) = BEFORE_STOPPING.get() {
        f();
    }
    let n = registry::close(&[]);
    if n > 0 {
        crate::say(&format!(
            "interrupted: stopped {n} ssh tunnel{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    if sig == libc::SIGINT && EXIT_ZERO_ON_INT.load(Ordering::Relaxed) {
        std::process::exit(0);
    }
    die_of(sig)
}

/// End the process the way signal `sig` would: default action, unblocked
/// in this thread, raised (exit 128 + sig if it is ignored regardless).
pub fn die_of(sig: libc::c_int) -> ! {
    // Die of the signal itself: default action, unblocked, raised.
    let one = mask(&[sig]);
    // SAFETY: plain signal calls on this thread and a local set.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

/// The signal mask and the ignored signals (bit `n - 1` for signal `n`,
/// 1 to 31) we were started with, for the commands we run for the user.
static STARTED_MASK: AtomicU64 = AtomicU64::new(0);
static STARTED_IGNORED: AtomicU64 = AtomicU64::new(0);

/// Note the signal state we were started with: call first in `main`,
/// before any thread starts or any signal is changed. SIGPIPE is the
/// exception: Rust's runtime ignores it before `main`, so it is taken as
/// default, as a shell starts a program.
pub fn remember_start() {
    let (mut mask, mut ignored) = (0u64, 0u64);
    // SAFETY: queries only: the current mask into a local set, and each
    // signal's current action into a local struct.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
        for sig in 1..32 {
            if libc::sigismember(&set, sig) == 1 {
                mask |= 1 << (sig - 1);
            }
            let mut act: libc::sigaction = std::mem::zeroed();
            if sig != libc::SIGPIPE
                && libc::sigaction(sig, std::ptr::null(), &mut act) == 0
                && act.sa_sigaction == libc::SIG_IGN
            {
                ignored |= 1 << (sig - 1);
            }
        }
    }
    STARTED_MASK.store(mask, Ordering::Relaxed);
    STARTED_IGNORED.store(ignored, Ordering::Relaxed);
}

/// Let `cmd` (a command the user asked for: `exec`'s, the compiler of the
/// toolchain check) start with the signal state we were started with, not
/// ours: our threads block the stopping signals, and a blocked SIGINT
/// would make Ctrl-C stop nothing.
pub fn as_started(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    let mask = STARTED_MASK.load(Ordering::Relaxed);
    let ignored = STARTED_IGNORED.load(Ordering::Relaxed);
    // SAFETY: sigemptyset, sigaddset, sigprocmask and signal are
    // async-signal-safe, as a child between fork and exec needs.
    unsafe {
        cmd.pre_exec(move || {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in 1..32 {
                if mask & (1 << (sig - 1)) != 0 {
                    libc::sigaddset(&mut set, sig);
                }
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    let ignore = ignored & (1 << (sig - 1)) != 0;
                    libc::signal(sig, if ignore { libc::SIG_IGN } else { libc::SIG_DFL });
                }
            }
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        })
    }
}

/// Let `cmd` start in a session and process group of its own (the
/// terminal's signals and hangup do not reach it, and the group is what
/// we stop), with the signal state of a new process: how every process
/// that may outlive us is started. It is also a child subreaper (kept
/// through exec): what its descendants start and orphan in a session of
/// its own stays below it, where stopping it finds them (see
/// `sys::escaped_groups`).
pub fn own_session(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure makes only async-signal-safe calls (setsid,
    // prctl, and those of reset_for_exec), as a child between fork and
    // exec must.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
            reset_for_exec();
            Ok(())
        })
    }
}

/// Like `own_session`, for a helper of ours (`__hold`, `__keep`): the
/// stopping signals stay blocked through exec, so that one sent before the
/// helper takes them (`helper`) waits for it instead of killing it before
/// it can clean up (a holder's forwards would outlive it).
pub fn own_session_for_helper(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    own_session(cmd);
    // SAFETY: sigemptyset, sigaddset and sigprocmask are async-signal-safe;
    // this runs after own_session's closure, which cleared the mask.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in STOPPING {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        })
    }
}

/// The start of a helper of ours that may live long (`__hold`, `__keep`):
/// no descriptor of whoever started it stays open in it (a pipe another
/// process waits on to close), as ssh does for itself; and the stopping
/// signals, with `also`, are blocked in this, the only, thread and queue
/// for the descriptor returned. `None` when there can be none.
pub fn helper(also: &[libc::c_int]) -> Option<libc::c_int> {
    // SAFETY: closes descriptors 3 and up, which a helper has not opened
    // yet (0 to 2 stay).
    unsafe { libc::close_range(3, u32::MAX, 0) };
    let mut sigs = STOPPING.to_vec();
    sigs.extend_from_slice(also);
    let set = mask(&sigs);
    // SAFETY: changes this thread's mask and makes a signalfd, both from
    // a valid set.
    let fd = unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC)
    };
    (fd >= 0).then_some(fd)
}

/// Let `cmd` start in a process group of its own (in our session), with
/// the signal state of a new process.
pub fn own_group(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: setpgid and reset_for_exec are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            reset_for_exec();
            Ok(())
        })
    }
}

/// In a child before exec: the signal state of a new process. Our threads
/// block the three signals, Rust ignores SIGPIPE, and the user's shell may
/// have started us with signals ignored (`trap '' TERM`, nohup); all of
/// that would be inherited through exec, and ssh must die of SIGTERM.
///
/// # Safety
/// Only async-signal-safe calls: for use in `pre_exec`.
unsafe fn reset_for_exec() {
    // SAFETY: sigemptyset, sigprocmask and signal are async-signal-safe.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}
