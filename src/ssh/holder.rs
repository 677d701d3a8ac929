//! The process that stands for one ssh worker's forwards in a shared
//! master (DISTCC_AUTO_SSH_PERSIST): `distcc-auto __hold LISTEN:CONNECT...`,
//! started by `env` in a session and process group of its own, with a
//! connection to the master's control socket as its stdin. It is what
//! DISTCC_AUTO_TUNNEL_PIDS names, and what `kill` and the shell's traps
//! stop, exactly like a tunnel of its own:
//!
//! - while it runs, the master counts as in use (an open control
//!   connection), so ControlPersist cannot end it in the middle of a build
//!   that pauses between compiles;
//! - on SIGTERM, SIGINT or SIGHUP it cancels its forwards (the local ports
//!   close) and exits; the master then ends by itself once it has been
//!   unused for the persist time;
//! - when the master goes (`kill --all`, the worker gone), it exits too;
//! - it records itself and its forwards (`RECORD.PID`: its start time and
//!   forwards) and removes the record when it ends, so that the forwards
//!   of a holder killed outright (SIGKILL, no handler) are found and
//!   cancelled by the next run that uses the master (`sweep`).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::process::identity::Identity;
use crate::ssh::mux::{Forward, Mux};
use crate::state::rundir;
use crate::{process::registry, process::signals};

/// Start the holder of `forwards`, handing it `mux`'s connection; it
/// records itself as `record.PID`.
pub fn spawn(mux: &Mux, record: &Path, forwards: &[Forward]) -> std::io::Result<u32> {
    let conn = mux.try_clone_stream()?;
    let mut cmd = crate::sys::ourselves("__hold");
    cmd.arg(record)
        .args(forwards.iter().map(Forward::render))
        .stdin(Stdio::from(OwnedFd::from(conn)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // It may live long: it must not keep the caller's directory busy.
        .current_dir("/");
    registry::spawn(signals::own_session_for_helper(&mut cmd))
}

/// `__hold`: wait for a signal (then cancel the forwards) or for the
/// master to close the connection (then there is nothing to cancel).
pub fn run(record: &Path, forwards: &[Forward]) -> ! {
    let Some(sfd) = signals::helper(&[]) else {
        std::process::exit(1);
    };
    if !crate::sys::is_socket(0) {
        crate::say("__hold is started by distcc-auto itself, with a control connection on stdin");
        std::process::exit(2);
    }
    let pid = std::process::id();
    let mine = PathBuf::from(format!("{}.{pid}", record.display()));
    if let Some(me) = Identity::of(pid) {
        let made = rundir::open_own(
            &mine,
            OpenOptions::new().create(true).write(true).truncate(true),
        );
        let _ = made.map(|mut f| f.write_all(render_record(&me, forwards).as_bytes()));
    }
    // SAFETY: fd 0 is the connection `spawn` handed us; we own it now.
    let mut conn = unsafe { UnixStream::from_raw_fd(0) };
    let mut fds = [
        libc::pollfd {
            fd: conn.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: sfd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: polls two valid descriptors in a local array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue; // EINTR
        }
        if fds[1].revents != 0 {
            break;
        }
        if fds[0].revents != 0 {
            // The end or an error: the master is gone, and its forwards
            // with it. (An idle client is sent nothing; a stray byte is
            // dropped.)
            let mut buf = [0u8; 256];
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = std::fs::remove_file(&mine);
                    std::process::exit(0)
                }
                Ok(_) => {}
            }
        }
    }
    // The record goes first: a record whose forwards were cancelled could
    // make a later sweep cancel a new run's forward on a reused port.
    let _ = std::fs::remove_file(&mine);
    let mut mux = Mux::adopt(conn);
    let _ = mux.bound(Instant::now() + Duration::from_secs(1));
    for &f in forwards {
        if mux.cancel(f).is_err() {
            break;
        }
    }
    std::process::exit(0)
}

/// A holder's record: its identity (as `kill` checks one), then its
/// forwards.
fn render_record(me: &Identity, forwards: &[Forward]) -> String {
    let fwds: Vec<String> = forwards.iter().map(Forward::render).collect();
    format!("{}\n{}\n", me.render(), fwds.join(" "))
}

fn parse_record(text: &str) -> Option<(Identity, Vec<Forward>)> {
    let (id, fwds) = text.split_once('\n')?;
    let fwds = fwds
        .split_whitespace()
        .map(Forward::parse)
        .collect::<Option<Vec<_>>>()?;
    Some((Identity::parse(id)?, fwds))
}

/// Cancel, on `mux`, the forwards of holders recorded as `NAME.fwd.PID` in
/// `dir` that no longer run (killed outright), and drop their records.
/// Called under the master's lock, before this run adds its own.
pub fn sweep(dir: &Path, name: &str, mux: &mut Mux) {
    let prefix = format!("{name}.fwd.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = dir.join(&file);
        let mut text = String::new();
        let read = rundir::open_own(&path, OpenOptions::new().read(true))
            .map(|mut f| f.read_to_string(&mut text));
        let Some((id, forwards)) = parse_record(&text).filter(|(id, _)| id.pid == pid) else {
            if read.is_ok() {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        };
        let running = crate::sys::stat(pid).is_some_and(|s| s.state != 'Z');
        if running && id.matches_now() {
            continue; // it still holds them
        }
        for f in forwards {
            let _ = mux.cancel(f);
        }
        let _ = std::fs::remove_file(&path);
        crate::trace!("cancelled the forwards of holder {pid}, which is gone");
    }
}
