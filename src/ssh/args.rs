//! What every ssh process of ours shares: its arguments (the user's
//! command first, then ours), its log, and how to read why it ended.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::FromRawFd;
use std::time::Duration;

use crate::config::SshSettings;
use crate::config::hostspec::HostSpec;
use crate::process::ended::Ended;
use crate::worker::fault::Fault;

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
    if let crate::config::hostspec::Transport::Ssh { port: Some(p), .. } = spec.transport {
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

/// FNV-1a, 64 bits: a stable short name for what tells ssh processes
/// apart (a master's socket, a worker's stable ports).
pub(crate) fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
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

/// Why ssh (or the shell running DISTCC_AUTO_SSH_COMMAND) exited before
/// the tunnel was up, in its own words.
pub(crate) fn why_it_exited(said: &str, ended: Ended, ports: &[u16]) -> Ready {
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
    if matches!(ended, Ended::Exited(126 | 127)) {
        let why = said
            .strip_prefix(&format!("{SH_NAME}: 1: "))
            .or_else(|| said.strip_prefix(&format!("{SH_NAME}: ")))
            .unwrap_or(said);
        return Ready::Failed(format!("cannot run DISTCC_AUTO_SSH_COMMAND: {why}"));
    }
    Ready::Failed(if said.is_empty() {
        format!("ssh exited ({ended}) without a message")
    } else if said.starts_with("ssh:") {
        said.to_string()
    } else {
        format!("ssh: {said}")
    })
}

/// What ssh says: for a tunnel of its own, its stderr in an anonymous
/// in-memory file (memfd), so that no file system (a missing, unwritable
/// or full TMPDIR) can lose ssh's words; for a shared master, its log
/// file, from where this run began.
#[derive(Debug)]
pub(crate) struct SshLog {
    pub(crate) file: File,
    from: u64,
}

impl SshLog {
    pub(crate) fn new() -> Result<SshLog, Fault> {
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
        // The far side's words (a banner, a distccd's) are relayed too.
        crate::worker::shown(&keep.join(" "), 300)
    }
}
