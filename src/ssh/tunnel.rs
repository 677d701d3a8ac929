//! ssh port-forwarding tunnels for `ssh://` workers.
//!
//! Each tunnel is one `ssh -N` with two local forwards (job and stats port),
//! started in its own session and process group with stdin and stdout on
//! /dev/null, so that it outlives `distcc-auto env`, ignores the terminal's
//! job control, and never holds the pipe that `eval "$(...)"` reads. Its
//! stderr goes to an in-memory file that we read for the error message.
//! Every ssh process we start is in the `registry` until it is handed to
//! the shell (its PID printed) or stopped with its whole group.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub use crate::config::SshSettings;
use crate::config::hostspec::HostSpec;
use crate::ssh::args::{Ready, Role, SshLog, fnv1a, ssh_args, ssh_command_line, why_it_exited};
use crate::ssh::mux::{Forward, MuxError};
use crate::worker::fault::Fault;
use crate::worker::found::TunnelInfo;
use crate::{process::registry, process::signals, sys};

/// How many times to pick new local ports when a forward cannot bind.
const PORT_ATTEMPTS: usize = 3;

/// A running tunnel and ssh's stderr, to explain a failure later.
#[derive(Debug)]
pub struct Tunnel {
    pub info: TunnelInfo,
    /// The entry it was opened for.
    entry: String,
    log: SshLog,
}

/// Whether tunnels whose worker is up are kept for the next round
/// (`hosts --watch`) instead of closing with the round.
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The tunnels kept from the previous round.
static KEPT: std::sync::Mutex<Vec<Tunnel>> = std::sync::Mutex::new(Vec::new());

/// From now on, a tunnel whose worker is up stays open for the next probe
/// of the same entry (`hosts --watch`: one login per worker, not one per
/// round). They are still registered: closing the run stops them.
pub fn keep_between_rounds() {
    KEEP.store(true, Ordering::Relaxed);
}

/// A kept tunnel for `entry` whose ssh still runs.
fn kept(entry: &str) -> Option<Tunnel> {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    let i = kept.iter().position(|t| t.entry == entry)?;
    let t = kept.swap_remove(i);
    // try_wait reaps and forgets an ssh that has ended meanwhile.
    registry::try_wait(t.info.pid).is_none().then_some(t)
}

impl Tunnel {
    fn new(
        spec: &HostSpec,
        pid: u32,
        master: Option<u32>,
        distcc: u16,
        stats: u16,
        log: SshLog,
    ) -> Tunnel {
        Tunnel {
            entry: spec.entry.clone(),
            info: TunnelInfo {
                pid,
                uid: sys::owner(pid).unwrap_or(u32::MAX),
                start: sys::stat(pid).map_or(0, |s| s.start),
                destination: spec.ssh_destination().unwrap_or_default(),
                master,
                local_distcc_port: distcc,
                local_stats_port: stats,
            },
            log,
        }
    }

    /// What ssh has said so far, as one line.
    pub fn said(&self) -> String {
        self.log.last_words()
    }

    /// Stop it with its whole group: the worker behind it is not used.
    pub fn stop(&self) {
        registry::stop(self.info.pid);
    }
}

/// Start the user's ssh command with `args` in a session and process
/// group of its own, stdin and stdout on /dev/null, stderr into `log`;
/// registered.
fn spawn_ssh(settings: &SshSettings, args: Vec<String>, log: &File) -> Result<u32, Fault> {
    let line = ssh_command_line(settings, args);
    let mut cmd = Command::new(&line[0]);
    cmd.args(&line[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.try_clone().map_err(|e| Fault::Io(e.to_string()))?);
    registry::spawn(signals::own_session(&mut cmd))
        .map_err(|e| Fault::Ssh(format!("cannot run ssh (DISTCC_AUTO_SSH_COMMAND): {e}")))
}

/// Start a tunnel for `spec` and wait until its process group listens on
/// both forwards (ssh does once logged in), ssh exits, or `deadline`. With
/// DISTCC_AUTO_SSH_PERSIST, the forwards go into the worker's shared
/// master instead.
pub fn open(spec: &HostSpec, settings: &SshSettings, deadline: Instant) -> Result<Tunnel, Fault> {
    if settings.persist > 0 {
        match crate::ssh::master::files(spec, settings) {
            Ok(files) => return open_shared(spec, settings, &files, deadline),
            // Persistence saves time; without it the worker still works.
            Err(why) => warn_once(&format!(
                "DISTCC_AUTO_SSH_PERSIST: {why}; ssh workers get a tunnel of their own"
            )),
        }
    }
    let mut last = String::new();
    for attempt in 0..PORT_ATTEMPTS {
        let (distcc, stats) = two_free_ports(spec, attempt)?;
        let log = SshLog::new()?;
        let role = Role::Forwards { distcc, stats };
        let pid = spawn_ssh(settings, ssh_args(spec, role, settings.timeout), &log.file)?;
        let tunnel = Tunnel::new(spec, pid, None, distcc, stats, log);
        match wait_ready(&tunnel, deadline) {
            Ok(()) => return Ok(tunnel),
            Err(Ready::PortTaken(why)) => {
                registry::stop(pid);
                last = why;
            }
            Err(Ready::Failed(why)) => {
                registry::stop(pid);
                return Err(Fault::Ssh(why));
            }
        }
    }
    Err(Fault::Ssh(format!(
        "ssh could not bind local ports after {PORT_ATTEMPTS} attempts: {last}"
    )))
}

/// Add this run's two forwards to the worker's master (started if none
/// runs), then hand the control connection to a holder process: that is
/// the tunnel the rest of the program and the shell see.
fn open_shared(
    spec: &HostSpec,
    settings: &SshSettings,
    files: &crate::ssh::master::Files,
    deadline: Instant,
) -> Result<Tunnel, Fault> {
    let shared = crate::ssh::master::connect(spec, settings, files, deadline)?;
    let mut mux = shared.mux;
    let mut last = String::new();
    for attempt in 0..PORT_ATTEMPTS {
        let (distcc, stats) = two_free_ports(spec, attempt)?;
        let forwards = [
            Forward {
                listen: distcc,
                connect: spec.distcc_port,
            },
            Forward {
                listen: stats,
                connect: spec.stats_port,
            },
        ];
        let added = mux.forward(forwards[0]).and_then(|()| {
            mux.forward(forwards[1]).inspect_err(|_| {
                let _ = mux.cancel(forwards[0]);
            })
        });
        match added {
            Ok(()) => {}
            // The master could not listen: another process took a port
            // between our pick and its bind.
            Err(MuxError::Refused(why)) => {
                last = why;
                continue;
            }
            Err(e) => return Err(Fault::Ssh(format!("ssh master of {}: {e}", spec.entry))),
        }
        return match crate::ssh::holder::spawn(&mux, &files.real_record, &forwards) {
            Ok(pid) => Ok(Tunnel::new(
                spec,
                pid,
                Some(shared.pid),
                distcc,
                stats,
                shared.log,
            )),
            Err(e) => {
                for f in forwards {
                    let _ = mux.cancel(f);
                }
                Err(Fault::Io(format!(
                    "cannot start the process that holds the ssh master: {e}"
                )))
            }
        };
    }
    Err(Fault::Ssh(format!(
        "the ssh master could not forward local ports after {PORT_ATTEMPTS} attempts: {last}"
    )))
}

/// One warning per run, however many workers it concerns.
fn warn_once(msg: &str) {
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| crate::warn(msg));
}

fn wait_ready(t: &Tunnel, deadline: Instant) -> Result<(), Ready> {
    let ports = [t.info.local_distcc_port, t.info.local_stats_port];
    match crate::ssh::ready::wait(t.info.pid, ports, deadline) {
        Some(crate::ssh::ready::Verdict::Ready) => Ok(()),
        Some(crate::ssh::ready::Verdict::Exited(status)) => {
            Err(why_it_exited(&t.said(), status, &ports))
        }
        None => {
            let said = t.said();
            let tail = if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            };
            Err(Ready::Failed(format!("ssh tunnel not up in time{tail}")))
        }
    }
}

/// The tunnel for `spec`: the one kept from the last round, or a new one.
pub fn reach(spec: &HostSpec, ssh: &SshSettings, deadline: Instant) -> Result<Tunnel, Fault> {
    match kept(&spec.entry) {
        Some(t) => Ok(t),
        None => open(spec, ssh, deadline),
    }
}

/// A tunnel whose worker is up: kept for the next round when rounds keep
/// theirs (`hosts --watch`). Either way it stays registered.
pub fn done_with(t: Tunnel) {
    if KEEP.load(Ordering::Relaxed) {
        KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(t);
    }
}

/// Two free local ports for `spec`'s forwards: the same ones run after run
/// when they are free (distcc keeps a lock file per host and port in
/// `$DISTCC_DIR/lock`, so new ports every run would pile them up), from a
/// few pairs picked by a hash of the entry and the user, outside the
/// ephemeral range; else any two the kernel gives.
fn two_free_ports(spec: &HostSpec, attempt: usize) -> Result<(u16, u16), Fault> {
    let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p));
    let h = fnv1a(&format!("{}\0{}", spec.entry, sys::euid()));
    // A retry (the pair was taken between our check and ssh's bind, most
    // likely by a concurrent run) takes what the kernel gives.
    for i in (0..STABLE_PAIRS).filter(|_| attempt == 0) {
        let k = (h.wrapping_add(i as u64 * 7919) % 5000) as u16;
        let base = 20000 + 2 * k;
        if let (Ok(_a), Ok(_b)) = (free(base), free(base + 1)) {
            return Ok((base, base + 1));
        }
    }
    let pick = || -> std::io::Result<(u16, u16)> {
        let a = free(0)?;
        let b = free(0)?;
        Ok((a.local_addr()?.port(), b.local_addr()?.port()))
    };
    pick().map_err(|e| Fault::Io(format!("no free local port: {e}")))
}

/// How many pairs of stable ports a worker may have (one per concurrent
/// run of the same worker).
const STABLE_PAIRS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::hostspec::parse_entry;
    use std::time::Duration;

    #[test]
    fn ssh_command_line() {
        let spec = parse_entry("ssh://ci@[fd00::7]:2222/4000/4001").unwrap();
        let role = Role::Forwards {
            distcc: 50000,
            stats: 50001,
        };
        let args = ssh_args(&spec, role, Duration::from_millis(2500));
        let line = args.join(" ");
        assert!(line.starts_with("-N -T -a -x -o BatchMode=yes -o ExitOnForwardFailure=yes -o StrictHostKeyChecking=accept-new"), "{line}");
        for want in [
            "-o ConnectTimeout=2",
            "-o ControlMaster=no -o ControlPath=none",
            "-o Compression=no",
        ] {
            assert!(line.contains(want), "{want}: {line}");
        }
        assert!(
            line.ends_with("-p 2222 -L 127.0.0.1:50000:localhost:4000 -L 127.0.0.1:50001:localhost:4001 -- ci@fd00::7"),
            "{line}"
        );
        let w3 = parse_entry("ssh://w3").unwrap();
        let role = Role::Forwards {
            distcc: 1,
            stats: 2,
        };
        let plain = ssh_args(&w3, role, Duration::from_millis(300));
        assert!(plain.join(" ").ends_with("-o ConnectTimeout=1 -o ControlMaster=no -o ControlPath=none -o PermitLocalCommand=no -o LogLevel=INFO -L 127.0.0.1:1:localhost:3632 -L 127.0.0.1:2:localhost:3633 -- w3"));

        // A shared master: its socket and log, its persist time, no forwards.
        let role = Role::Master {
            socket: std::path::Path::new("/run/d/ssh-1"),
            log: std::path::Path::new("/run/d/ssh-1.log"),
            persist: 30,
        };
        let line = ssh_args(&w3, role, Duration::from_secs(5)).join(" ");
        assert!(
            line.starts_with("-N -T -a -x -M -S /run/d/ssh-1 -E /run/d/ssh-1.log -o "),
            "{line}"
        );
        assert!(
            line.contains("-o ConnectTimeout=5 -o ControlPersist=30s -o PermitLocalCommand=no"),
            "{line}"
        );
        assert!(!line.contains("-L") && line.ends_with("-- w3"), "{line}");
    }
}
