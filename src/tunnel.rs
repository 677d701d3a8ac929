//! ssh port-forwarding tunnels for `ssh://` workers.
//!
//! Each tunnel is one `ssh -N` with two local forwards (job and stats port),
//! started in its own session with stdin and stdout on /dev/null, so that it
//! outlives `distcc-auto env`, ignores the terminal's job control, and never
//! holds the pipe that `eval "$(...)"` reads. Its stderr goes to an unlinked
//! temporary file that we read for the error message.
//!
//! Every ssh process we start is in a registry until it is handed to the
//! shell (its PID printed) or killed. While tunnels may exist, a signal
//! thread owns SIGINT, SIGTERM and SIGHUP: on one it kills every registered
//! tunnel and exits, and no new tunnel can start after that.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::hostspec::HostSpec;

/// How many times to pick new local ports when a forward cannot bind.
const PORT_ATTEMPTS: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    /// The client and its options, run by `sh -c` like git's GIT_SSH_COMMAND.
    pub command: String,
    /// Bound on setting up one tunnel (ssh handshake and forwards).
    pub timeout: Duration,
}

/// A running tunnel, as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    pub pid: u32,
    pub destination: String,
    pub local_distcc_port: u16,
    pub local_stats_port: u16,
}

/// A running tunnel and ssh's stderr, to explain a failure later.
#[derive(Debug)]
pub struct Tunnel {
    pub info: TunnelInfo,
    log: SharedLog,
}

impl Tunnel {
    /// What ssh has said so far, as one line.
    pub fn said(&self) -> String {
        self.log.last_words()
    }

    /// Kill it: the worker behind it is not used.
    pub fn stop(&self) {
        registry::stop_pid(self.info.pid);
    }
}

/// The ssh arguments after the user's command, without the destination's
/// forwards. Options given in DISTCC_AUTO_SSH_COMMAND come first, and ssh
/// keeps the first value it sees, so the user's choices win.
pub fn ssh_args(spec: &HostSpec, distcc: u16, stats: u16, timeout: Duration) -> Vec<String> {
    let mut args: Vec<String> = ["-N", "-T", "-a", "-x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let connect = timeout.as_secs().max(1);
    for opt in [
        "BatchMode=yes",
        "ExitOnForwardFailure=yes",
        "StrictHostKeyChecking=accept-new",
        "Compression=no",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=3",
        &format!("ConnectTimeout={connect}"),
        // A shared master connection would take our forwards and exit,
        // leaving a PID that is not the tunnel.
        "ControlMaster=no",
        "ControlPath=none",
        "PermitLocalCommand=no",
        // INFO, ssh's default: a refused forward ("open failed") is said at
        // INFO only, and tells a worker without distccd from one whose
        // distccd refused us. Only we read it.
        "LogLevel=INFO",
    ] {
        args.push("-o".into());
        args.push(opt.into());
    }
    if let crate::hostspec::Transport::Ssh { port: Some(p), .. } = spec.transport {
        args.push("-p".into());
        args.push(p.to_string());
    }
    args.push("-L".into());
    args.push(format!("127.0.0.1:{distcc}:localhost:{}", spec.distcc_port));
    args.push("-L".into());
    args.push(format!("127.0.0.1:{stats}:localhost:{}", spec.stats_port));
    args.push("--".into());
    args.push(spec.ssh_destination().expect("an ssh entry"));
    args
}

/// Start a tunnel for `spec` and wait until this ssh process listens on
/// both forwards (it does once logged in), ssh exits, or `deadline` passes.
pub fn open(spec: &HostSpec, settings: &SshSettings, deadline: Instant) -> Result<Tunnel, String> {
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let (distcc, stats) = two_free_ports().map_err(|e| format!("no free local port: {e}"))?;
        let log = SharedLog::new().map_err(|e| format!("cannot create a log for ssh: {e}"))?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("exec {} \"$@\"", settings.command))
            .arg("distcc-auto-ssh")
            .args(ssh_args(spec, distcc, stats, settings.timeout))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.file.try_clone().map_err(|e| e.to_string())?);
        // SAFETY: only async-signal-safe calls. ssh gets its own session, so
        // that the terminal's signals and hangup do not reach it, and the
        // signal state of a normal process: our threads block SIGINT, SIGTERM
        // and SIGHUP (see registry::guard_signals) and Rust ignores SIGPIPE,
        // and both would be inherited through exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                Ok(())
            });
        }
        let mut child = registry::spawn(&mut cmd)?;
        let tunnel = Tunnel {
            info: TunnelInfo {
                pid: child.id(),
                destination: spec.ssh_destination().unwrap_or_default(),
                local_distcc_port: distcc,
                local_stats_port: stats,
            },
            log,
        };
        match wait_ready(&mut child, &tunnel, deadline) {
            Ok(()) => return Ok(tunnel),
            Err(Ready::PortTaken(why)) => {
                registry::stop_pid(child.id());
                last = why;
            }
            Err(Ready::Failed(why)) => {
                registry::stop_pid(child.id());
                return Err(why);
            }
        }
    }
    Err(format!(
        "ssh could not bind local ports after {PORT_ATTEMPTS} attempts: {last}"
    ))
}

enum Ready {
    PortTaken(String),
    Failed(String),
}

fn wait_ready(child: &mut Child, t: &Tunnel, deadline: Instant) -> Result<(), Ready> {
    let ports = [t.info.local_distcc_port, t.info.local_stats_port];
    loop {
        if let Some(status) = registry::try_wait(child) {
            let said = t.said();
            // Another process took a port between our pick and ssh's bind.
            if [
                "Address already in use",
                "cannot listen to port",
                "Could not request local forwarding",
            ]
            .iter()
            .any(|m| said.contains(m))
            {
                return Err(Ready::PortTaken(said));
            }
            // sh names itself by its $0 when it cannot run the command.
            if let Some(why) = said.strip_prefix("distcc-auto-ssh: 1: ") {
                return Err(Ready::Failed(format!(
                    "cannot run DISTCC_AUTO_SSH_COMMAND: {why}"
                )));
            }
            let said = if said.is_empty() {
                format!("ssh exited ({status}) without a message")
            } else {
                said
            };
            let said = if said.starts_with("ssh:") {
                said
            } else {
                format!("ssh: {said}")
            };
            return Err(Ready::Failed(said));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let said = t.said();
            let tail = if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            };
            return Err(Ready::Failed(format!("ssh tunnel not up in time{tail}")));
        }
        // ssh listens on its forwards only once it is logged in. Both ports
        // must be listened on by this ssh process itself: a port picked
        // free a moment ago may have been taken by someone else since.
        if listened_by(child.id(), &ports) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(5).min(left));
    }
}

/// Whether process `pid` holds listening TCP sockets on 127.0.0.1 at every
/// one of `ports` (from /proc/net/tcp and /proc/PID/fd).
fn listened_by(pid: u32, ports: &[u16]) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let listeners = listening_inodes(&table);
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let owned: Vec<u64> = fds
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    ports.iter().all(|p| {
        listeners
            .iter()
            .any(|(port, inode)| port == p && owned.contains(inode))
    })
}

/// (port, inode) of every socket listening on 127.0.0.1 in a
/// /proc/net/tcp table.
fn listening_inodes(table: &str) -> Vec<(u16, u64)> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (addr, port) = f.get(1)?.split_once(':')?;
            // State 0A is LISTEN; 0100007F is 127.0.0.1 in host byte order.
            (addr == "0100007F" && *f.get(3)? == "0A").then_some(())?;
            Some((u16::from_str_radix(port, 16).ok()?, f.get(9)?.parse().ok()?))
        })
        .collect()
}

fn two_free_ports() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let b = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// ssh's stderr: a temporary file, unlinked at once, so that nothing is
/// left on disk whenever ssh ends.
#[derive(Debug)]
struct SharedLog {
    file: File,
}

impl SharedLog {
    fn new() -> std::io::Result<SharedLog> {
        let dir = std::env::temp_dir();
        for n in 0..100u32 {
            let path = dir.join(format!(
                "distcc-auto-ssh-{}-{n}-{}",
                std::process::id(),
                nanos()
            ));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    let _ = std::fs::remove_file(&path);
                    return Ok(SharedLog { file });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no unique temporary file name"))
    }

    /// The last lines ssh wrote (at most 4 KiB), joined, without noise.
    fn last_words(&self) -> String {
        let mut f = &self.file;
        let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
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

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

/// Whether `pid` is, by its command line, an ssh tunnel that distcc-auto
/// started: PIDs get reused, and `kill` must never hit anything else.
pub fn is_our_tunnel(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let argv0 = args.first()?.rsplit('/').next()?.to_string();
    let has = |s: &str| args.iter().any(|a| a == s);
    let forwards = args
        .windows(2)
        .filter(|w| w[0] == "-L" && w[1].starts_with("127.0.0.1:") && w[1].contains(":localhost:"))
        .count();
    // Our tunnels lead their own session (setsid before exec).
    let leader = unsafe { libc::getsid(pid as libc::pid_t) } == pid as libc::pid_t;
    (argv0.contains("ssh")
        && has("-N")
        && has("ExitOnForwardFailure=yes")
        && forwards == 2
        && leader)
        .then(|| args.last().cloned().unwrap_or_default())
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// SIGTERM to a process, then wait up to `grace` for it to end.
pub fn terminate(pid: u32, grace: Duration) -> bool {
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if !alive(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    !alive(pid)
}

/// The ssh processes this run has started and not yet handed over. A PID
/// is only signalled or reaped under the lock, so a PID we signal is never
/// one the system has already reused.
pub mod registry {
    use super::*;
    use std::process::ExitStatus;

    struct Registry {
        closed: bool,
        pids: Vec<u32>,
    }

    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        closed: false,
        pids: Vec::new(),
    });

    fn lock() -> std::sync::MutexGuard<'static, Registry> {
        REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawn and register in one step, so that a signal cannot fall between
    /// the two; refused once the run is ending.
    pub(super) fn spawn(cmd: &mut Command) -> Result<Child, String> {
        let mut r = lock();
        if r.closed {
            return Err("interrupted before the tunnel started".into());
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run ssh (DISTCC_AUTO_SSH_COMMAND): {e}"))?;
        r.pids.push(child.id());
        Ok(child)
    }

    /// `try_wait`, forgetting the PID once the process is reaped.
    pub(super) fn try_wait(child: &mut Child) -> Option<ExitStatus> {
        let mut r = lock();
        let status = child.try_wait().ok().flatten();
        if status.is_some() {
            r.pids.retain(|&p| p != child.id());
        }
        status
    }

    /// Stop a tunnel of ours (one that failed, or whose worker is not
    /// used), reap it and forget it.
    pub fn stop_pid(pid: u32) {
        let mut r = lock();
        if r.pids.contains(&pid) {
            end(pid);
            r.pids.retain(|&p| p != pid);
        }
    }

    /// SIGTERM one of our children, give it a moment, then SIGKILL; reap it
    /// either way. Called with the lock held.
    fn end(pid: u32) {
        let pid = pid as libc::pid_t;
        let reaped = || unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) != 0 };
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if reaped() {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }

    /// Refuse new tunnels and end every registered one except `keep`,
    /// which are handed over to the shell and left running.
    pub fn close(keep: &[u32]) -> usize {
        let mut r = lock();
        r.closed = true;
        let mut killed = 0;
        for pid in std::mem::take(&mut r.pids) {
            if !keep.contains(&pid) {
                end(pid);
                killed += 1;
            }
        }
        killed
    }

    static WATCHING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// For `hosts --watch`, where Ctrl-C is the normal way out: SIGINT
    /// exits 0 (after stopping the tunnels).
    pub fn watching() {
        WATCHING.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// End every registered tunnel and keep accepting new ones: the end of
    /// one `hosts --watch` round.
    pub fn stop_all() {
        let mut r = lock();
        for pid in std::mem::take(&mut r.pids) {
            end(pid);
        }
    }

    /// Block SIGINT, SIGTERM and SIGHUP in this thread and every thread it
    /// starts afterwards, and handle them in one thread of their own: kill
    /// every registered tunnel, then exit with 128 + the signal.
    pub fn guard_signals() {
        // SAFETY: plain libc calls on a local signal set.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let _ = thread::Builder::new()
                .name("signals".into())
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut sig: libc::c_int = 0;
                    if libc::sigwait(&set, &mut sig) == 0 {
                        let n = close(&[]);
                        if n > 0 {
                            crate::say(&format!(
                                "interrupted: stopped {n} ssh tunnel{}",
                                if n == 1 { "" } else { "s" }
                            ));
                        }
                        let watching = WATCHING.load(std::sync::atomic::Ordering::Relaxed);
                        std::process::exit(if watching && sig == libc::SIGINT {
                            0
                        } else {
                            128 + sig
                        });
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostspec::parse_entry;

    #[test]
    fn ssh_command_line() {
        let spec = parse_entry("ssh://ci@[fd00::7]:2222/4000/4001").unwrap();
        let args = ssh_args(&spec, 50000, 50001, Duration::from_millis(2500));
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
        let plain = ssh_args(
            &parse_entry("ssh://w3").unwrap(),
            1,
            2,
            Duration::from_millis(300),
        );
        assert!(plain.join(" ").ends_with("-o ConnectTimeout=1 -o ControlMaster=no -o ControlPath=none -o PermitLocalCommand=no -o LogLevel=INFO -L 127.0.0.1:1:localhost:3632 -L 127.0.0.1:2:localhost:3633 -- w3"));
    }

    #[test]
    fn listening_sockets_from_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0E30 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000:0E31 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0
   2: 0100007F:0E32 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 20 4 30 10 -1
";
        assert_eq!(listening_inodes(table), [(3632, 4242)]);
        // A listener of our own is found; a port nobody holds is not.
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listened_by(std::process::id(), &[port]));
        drop(l);
        assert!(!listened_by(std::process::id(), &[port]));
    }

    #[test]
    fn only_our_tunnels_are_recognised() {
        // This test process is no ssh tunnel, and PID 1 is not ours either.
        assert_eq!(is_our_tunnel(std::process::id()), None);
        assert_eq!(is_our_tunnel(1), None);
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
