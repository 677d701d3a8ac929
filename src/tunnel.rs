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
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::FromRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use crate::config::SshSettings;
use crate::fault::{Code, Fault};
use crate::hostspec::{Host, HostSpec};
use crate::mux::{Forward, MuxError};
use crate::probe::{self, Bounds, Outcome, Probe, Route, Target};
use crate::{registry, signals, sys};

/// How many times to pick new local ports when a forward cannot bind.
const PORT_ATTEMPTS: usize = 3;

/// A running tunnel, as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    /// The process `env` hands over: the leader of the tunnel's session
    /// and process group.
    pub pid: u32,
    /// Its owner and start time: with the PID, what `kill` checks before
    /// signalling, so that a reused PID is never taken for the tunnel.
    pub uid: u32,
    pub start: u64,
    pub destination: String,
    /// With DISTCC_AUTO_SSH_PERSIST: the PID of the shared master that
    /// carries the forwards (the tunnel PID is then the holder's).
    pub master: Option<u32>,
    pub local_distcc_port: u16,
    pub local_stats_port: u16,
}

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

impl TunnelInfo {
    /// `PID:UID:START`, as DISTCC_AUTO_TUNNEL_IDS carries it.
    pub fn identity(&self) -> String {
        format!("{}:{}:{}", self.pid, self.uid, self.start)
    }
}

/// What an ssh process of ours is for.
#[derive(Debug, Clone, Copy)]
pub enum Role<'a> {
    /// A tunnel of its own: the job and stats forwards on these local
    /// ports, and no connection sharing.
    Forwards { distcc: u16, stats: u16 },
    /// A shared master (DISTCC_AUTO_SSH_PERSIST): no forwards of its own,
    /// its control socket and log, and how long it stays after last use.
    Master {
        socket: &'a std::path::Path,
        log: &'a std::path::Path,
        persist: u32,
    },
}

/// The ssh arguments after the user's command. Options given in
/// DISTCC_AUTO_SSH_COMMAND come first, and ssh keeps the first value it
/// sees, so the user's choices win (the Control* options are refused
/// there when a master is wanted: see config).
pub fn ssh_args(spec: &HostSpec, role: Role, timeout: Duration) -> Vec<String> {
    let mut args: Vec<String> = ["-N", "-T", "-a", "-x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut persist = None;
    if let Role::Master {
        socket,
        log,
        persist: secs,
    } = role
    {
        persist = Some(format!("ControlPersist={secs}s"));
        // -M and -S, unlike -o, override what came before them (a
        // ControlMaster or ControlPath in the user's ssh_config).
        args.push("-M".into());
        args.push("-S".into());
        args.push(socket.display().to_string());
        // The master's messages ("open failed", for a forward whose port
        // nothing listens on) outlive its detaching from our stderr.
        args.push("-E".into());
        args.push(log.display().to_string());
    }
    let connect = timeout.as_secs().max(1);
    let sharing: &[&str] = match role {
        // A shared master would take our forwards and exit, leaving a PID
        // that is not the tunnel.
        Role::Forwards { .. } => &["ControlMaster=no", "ControlPath=none"],
        Role::Master { .. } => &[],
    };
    for opt in [
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "StrictHostKeyChecking=accept-new",
        "Compression=no",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=3",
        &format!("ConnectTimeout={connect}"),
    ]
    .into_iter()
    .chain(sharing.iter().copied())
    .chain(persist.as_deref())
    .chain([
        "PermitLocalCommand=no",
        // INFO, ssh's default: a refused forward ("open failed") is said at
        // INFO only, and tells a worker without distccd from one whose
        // distccd refused us. Only we read it.
        "LogLevel=INFO",
    ]) {
        args.push("-o".into());
        args.push(opt.into());
    }
    if let crate::hostspec::Transport::Ssh { port: Some(p), .. } = spec.transport {
        args.push("-p".into());
        args.push(p.to_string());
    }
    if let Role::Forwards { distcc, stats } = role {
        args.push("-L".into());
        args.push(format!("127.0.0.1:{distcc}:localhost:{}", spec.distcc_port));
        args.push("-L".into());
        args.push(format!("127.0.0.1:{stats}:localhost:{}", spec.stats_port));
    }
    args.push("--".into());
    args.push(spec.ssh_destination().expect("an ssh entry"));
    args
}

/// `/bin/sh -c 'exec CMD "$@"' NAME ARGS...`: how the user's ssh command
/// runs with our arguments (so that it may hold options and quotes).
pub(crate) fn ssh_command_line(settings: &SshSettings, args: Vec<String>) -> Vec<String> {
    let mut line = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        format!("exec {} \"$@\"", settings.command),
        SH_NAME.into(),
    ];
    line.extend(args);
    line
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
        match crate::master::files(spec, settings) {
            Ok(files) => return open_shared(spec, settings, &files, deadline),
            // Persistence saves time; without it the worker still works.
            Err(why) => warn_once(&format!(
                "DISTCC_AUTO_SSH_PERSIST: {why}; ssh workers get a tunnel of their own"
            )),
        }
    }
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let (distcc, stats) = two_free_ports()?;
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
    files: &crate::master::Files,
    deadline: Instant,
) -> Result<Tunnel, Fault> {
    let shared = crate::master::connect(spec, settings, files, deadline)?;
    let mut mux = shared.mux;
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let (distcc, stats) = two_free_ports()?;
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
        return match crate::hold::spawn(&mux, &forwards) {
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

/// The name `/bin/sh` gives itself in its own error messages.
const SH_NAME: &str = "distcc-auto-ssh";

pub(crate) enum Ready {
    /// Another process took one of our local ports between our pick and
    /// ssh's bind: worth another try with other ports.
    PortTaken(String),
    /// Anything else: no retry can fix it.
    Failed(String),
}

fn wait_ready(t: &Tunnel, deadline: Instant) -> Result<(), Ready> {
    let ports = [t.info.local_distcc_port, t.info.local_stats_port];
    match crate::watcher::wait(t.info.pid, ports, deadline) {
        Some(crate::watcher::Verdict::Ready) => Ok(()),
        Some(crate::watcher::Verdict::Exited(status)) => {
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

/// Start a tunnel, then probe the worker through it like any other. A
/// tunnel whose worker does not answer is stopped at once.
pub fn probe_through(
    spec: &HostSpec,
    ssh: &SshSettings,
    bounds: &Bounds,
    stage: &AtomicU8,
) -> (Target, Probe) {
    let start = Instant::now();
    stage.store(probe::TUNNEL, Ordering::Relaxed);
    let remote = Route::Ssh(spec.clone()).target();
    let opened = match kept(&spec.entry) {
        Some(t) => Ok(t),
        None => open(spec, ssh, bounds.ssh_deadline),
    };
    let t = match opened {
        Ok(t) => t,
        Err(fault) => {
            return (
                remote,
                probe::down(None, fault.code(), fault.to_string(), start),
            );
        }
    };
    let target = Target {
        host: Host::V4(std::net::Ipv4Addr::LOCALHOST),
        distcc_port: t.info.local_distcc_port,
        stats_port: t.info.local_stats_port,
    };
    let mut probe = probe::probe_one(&target, bounds.ssh_deadline, bounds, true, stage);
    if let Outcome::Down { reason, code } = &mut probe.outcome {
        let mut said = t.said();
        if *code == Code::NotAllowed && said.is_empty() {
            // ssh says why it closed a forward just before closing it.
            thread::sleep(Duration::from_millis(50));
            said = t.said();
        }
        t.stop();
        (*code, *reason) = match empty_through_tunnel(*code, &said, spec.stats_port) {
            Some(found) => found,
            None if said.is_empty() => (*code, format!("through the ssh tunnel: {reason}")),
            None => (
                *code,
                format!("through the ssh tunnel: {reason} (ssh: {said})"),
            ),
        };
    }
    probe.tunnel = Some(t.info.clone());
    probe.elapsed = start.elapsed();
    if KEEP.load(Ordering::Relaxed) && !matches!(probe.outcome, Outcome::Down { .. }) {
        KEPT.lock().unwrap_or_else(|e| e.into_inner()).push(t);
    }
    (target, probe)
}

/// An empty stats reply through a tunnel has three causes on the worker;
/// what ssh said tells them apart.
fn empty_through_tunnel(code: Code, said: &str, port: u16) -> Option<(Code, String)> {
    if code != Code::NotAllowed {
        return None;
    }
    Some(if said.contains("Connection refused") {
        (
            Code::Refused,
            format!(
                "nothing listens on the worker's localhost:{port} (ssh: {said}): distccd is not \
                 running there with --stats, or listens only on another address (its --listen)"
            ),
        )
    } else if said.contains("open failed") {
        (
            Code::Ssh,
            format!("the worker's sshd refused the forward to localhost:{port} (ssh: {said})"),
        )
    } else {
        (
            Code::NotAllowed,
            "distccd on the worker closed the connection without a reply: its --allow \
             probably lacks 127.0.0.1, where the tunnel arrives"
                .into(),
        )
    })
}

/// Why ssh (or the shell running DISTCC_AUTO_SSH_COMMAND) exited before
/// the tunnel was up, in its own words.
pub(crate) fn why_it_exited(said: &str, status: std::process::ExitStatus, ports: &[u16]) -> Ready {
    // Only a bind failure on one of our own ports is a race worth another
    // try; a port of the user's (a LocalForward in ssh_config) is not.
    let ours = ports.iter().any(|p| {
        said.contains(&format!("cannot listen to port: {p}"))
            || said.contains(&format!(":{p}: Address already in use"))
    });
    if ours {
        return Ready::PortTaken(said.to_string());
    }
    // sh says "distcc-auto-ssh: 1: name: not found" and exits 127 (126:
    // found, not executable) when it cannot run the command.
    if matches!(status.code(), Some(126 | 127)) {
        let why = said
            .strip_prefix(&format!("{SH_NAME}: 1: "))
            .or_else(|| said.strip_prefix(&format!("{SH_NAME}: ")))
            .unwrap_or(said);
        return Ready::Failed(format!("cannot run DISTCC_AUTO_SSH_COMMAND: {why}"));
    }
    Ready::Failed(if said.is_empty() {
        format!("ssh exited ({status}) without a message")
    } else if said.starts_with("ssh:") {
        said.to_string()
    } else {
        format!("ssh: {said}")
    })
}

fn two_free_ports() -> Result<(u16, u16), Fault> {
    let pick = || -> std::io::Result<(u16, u16)> {
        let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        Ok((a.local_addr()?.port(), b.local_addr()?.port()))
    };
    pick().map_err(|e| Fault::Io(format!("no free local port: {e}")))
}

/// What ssh says: for a tunnel of its own, its stderr in an anonymous
/// in-memory file (memfd), so that no file system (a missing, unwritable
/// or full TMPDIR) can lose ssh's words; for a shared master, its log
/// file, from where this run began.
#[derive(Debug)]
pub(crate) struct SshLog {
    file: File,
    from: u64,
}

impl SshLog {
    fn new() -> Result<SshLog, Fault> {
        // SAFETY: memfd_create reads the NUL-terminated name and returns a
        // new descriptor (or -1), which we then own.
        let fd = unsafe { libc::memfd_create(c"distcc-auto-ssh".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Fault::Io(format!("cannot create a log for ssh: {e}")));
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(SshLog { file, from: 0 })
    }

    /// A log file that ssh appends to: only what it says from now on.
    pub(crate) fn after(file: File) -> SshLog {
        let from = file.metadata().map_or(0, |m| m.len());
        SshLog { file, from }
    }

    /// A log file that ssh appends to: everything it has said in it.
    pub(crate) fn whole(file: File) -> SshLog {
        SshLog { file, from: 0 }
    }

    /// The last lines ssh wrote (at most 4 KiB), joined, without noise.
    pub(crate) fn last_words(&self) -> String {
        let mut f = &self.file;
        let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096).max(self.from)));
        let mut buf = Vec::new();
        let _ = f.take(4096).read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty()
                    && !l.starts_with("@@@")
                    && !l.starts_with("Warning: Permanently added")
            })
            .collect();
        let keep = &lines[lines.len().saturating_sub(2)..];
        keep.join(" ")
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostspec::parse_entry;

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
