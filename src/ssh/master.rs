//! Opt-in ssh persistence (DISTCC_AUTO_SSH_PERSIST=SECONDS): one OpenSSH
//! master connection per ssh worker, shared by every run of this user's
//! within the persist time, so that only the first run logs in.
//!
//! A master is `ssh -N -M -S SOCKET -o ControlPersist=SECONDSs`, started
//! by a keeper (`__keep`, see `keep`) that becomes its parent once ssh
//! forks it into the background, and ends with it. The login worked when
//! the socket answers. The socket and the master's log live in the
//! private directory (`rundir`), named by a hash of what makes two masters
//! different: the ssh command, the destination, the ssh port and the
//! persist time (a master keeps the persist time it started with, so a
//! new value gets a new master). A lock file beside the socket makes
//! concurrent runs start one master, not one each. OpenSSH ends a master
//! SECONDS after its last use: no control connection (a holder, see
//! `hold`) and no forwarded connection open.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::config::SshSettings;
use crate::config::hostspec::{HostSpec, Transport};
use crate::process::ended::Ended;
use crate::ssh::args::{self, Ready, Role, SshLog};
use crate::ssh::mux::{Mux, MuxError};
use crate::worker::fault::Fault;
use crate::{process::registry, process::signals, state::rundir, sys};

/// A socket's path must fit `sun_path` (108 bytes with the NUL), and ssh
/// binds the master's socket first under a temporary name 17 bytes longer
/// (`PATH.` and 16 random characters) before renaming it.
const MAX_SOCKET_PATH: usize = 107 - 17;

/// A connection to a worker's master.
pub(crate) struct Shared {
    pub(crate) mux: Mux,
    /// The master's PID, as it says itself.
    pub(crate) pid: u32,
    /// Its log, from where this run began (the login's messages included
    /// when this run started it).
    pub(crate) log: SshLog,
}

/// The files of one master in the private directory: ours reached
/// through the held directory, ssh's (`-S`, `-E`, the keeper's argument)
/// by the directory's path.
pub(crate) struct Files {
    /// For us: connecting, checking, removing a stale one.
    socket: PathBuf,
    log: PathBuf,
    lock: PathBuf,
    /// For ssh and the keeper.
    real_socket: PathBuf,
    real_log: PathBuf,
    /// The held directory and the master's name, for holders' records.
    dir: PathBuf,
    name: String,
    /// What a holder records itself as (`.PID` appended).
    pub(crate) real_record: PathBuf,
}

impl Files {
    fn new(dir: &rundir::Dir, name: &str) -> Files {
        Files {
            socket: dir.at(name),
            log: dir.at(&format!("{name}.log")),
            lock: dir.at(&format!("{name}.lock")),
            real_socket: dir.real(name),
            real_log: dir.real(&format!("{name}.log")),
            dir: dir.at(""),
            name: name.to_string(),
            real_record: dir.real(&format!("{name}.fwd")),
        }
    }
}

/// `ssh-` and 16 hex digits (FNV-1a, 64 bits) of what tells masters apart.
pub fn name(command: &str, spec: &HostSpec, persist: u32) -> String {
    let port = match spec.transport {
        Transport::Ssh { port, .. } => port.unwrap_or(0),
        Transport::Tcp => 0,
    };
    let key = format!(
        "{command}\0{}\0{port}\0{persist}",
        spec.ssh_destination().unwrap_or_default()
    );
    format!("ssh-{:016x}", args::fnv1a(&key))
}

/// The files of `spec`'s master, in the private directory; `Err` says
/// why there can be none (the worker then gets a tunnel of its own).
pub(crate) fn files(spec: &HostSpec, settings: &SshSettings) -> Result<Files, String> {
    let dir = rundir::private_dir()?;
    let files = Files::new(dir, &name(&settings.command, spec, settings.persist));
    let socket = files.real_socket.to_string_lossy();
    if socket.len() > MAX_SOCKET_PATH {
        return Err(format!(
            "the control socket path {socket} is longer than a socket path may be; \
             set XDG_RUNTIME_DIR or TMPDIR to a shorter directory"
        ));
    }
    // ssh expands `${NAME}` in a control path (and `%` tokens, escaped
    // below); a directory name with it would name another socket.
    if socket.contains("${") {
        return Err(format!("the control socket path {socket} contains '${{'"));
    }
    Ok(files)
}

/// A connection to the master of `spec`'s worker, started (one login) if
/// none runs.
pub(crate) fn connect(
    spec: &HostSpec,
    settings: &SshSettings,
    files: &Files,
    deadline: Instant,
) -> Result<Shared, Fault> {
    // One run at a time checks for the master and starts it.
    let lock = rundir::lock(&files.lock, Some(deadline)).map_err(Fault::Io)?;
    let Some(mut lock) = lock else {
        return Err(Fault::Ssh(
            "another distcc-auto was still logging in to this worker".into(),
        ));
    };
    let (mux, started) = match Mux::connect(&files.socket, deadline) {
        Ok(mux) => (mux, false),
        Err(MuxError::Io(e)) if Instant::now() < deadline => {
            crate::trace!("{}: no ssh master to reuse ({e})", spec.entry);
            // Refused: nothing listens (a master that was killed). Closed
            // after connecting: a master that is ending right now.
            remove_stale(
                &files.socket,
                e.kind() != std::io::ErrorKind::ConnectionRefused,
            );
            // Named in the lock file for `kill --all`.
            let _ = lock.set_len(0);
            let _ = lock.write_all(destination(spec).as_bytes());
            match start(spec, settings, files, deadline) {
                Ok(mux) => (mux, true),
                Err(fault) => {
                    // No master: its files go (the keeper, which would
                    // remove them, cannot take the lock we hold).
                    let _ = std::fs::remove_file(&files.log);
                    rundir::remove_locked(&files.lock, lock);
                    return Err(fault);
                }
            }
        }
        Err(e) => return Err(Fault::Ssh(format!("the ssh master does not answer: {e}"))),
    };
    let mut mux = mux;
    let pid = mux
        .alive()
        .map_err(|e| Fault::Ssh(format!("the ssh master does not answer: {e}")))?;
    // Forwards of holders killed outright go before ours come.
    crate::ssh::holder::sweep(&files.dir, &files.name, &mut mux);
    drop(lock);
    let log = rundir::open_own(&files.log, OpenOptions::new().read(true)).map_err(Fault::Io)?;
    let log = if started {
        SshLog::whole(log)
    } else {
        crate::trace!("{}: reusing ssh master {pid}", spec.entry);
        SshLog::after(log)
    };
    Ok(Shared { mux, pid, log })
}

/// What a master is for, as `kill --all` names it: `[USER@]HOST [port P]`.
fn destination(spec: &HostSpec) -> String {
    let dest = spec.ssh_destination().unwrap_or_default();
    match spec.transport {
        Transport::Ssh { port: Some(p), .. } => format!("{dest} port {p}"),
        _ => dest,
    }
}

/// A socket file that no master answers on: ssh would not start a master
/// over it. One that is `ending` unlinks it itself: give it a moment.
fn remove_stale(socket: &Path, ending: bool) {
    let until = Instant::now() + Duration::from_millis(100);
    while ending && socket.exists() && Instant::now() < until {
        thread::sleep(Duration::from_millis(5));
    }
    if let Ok(m) = std::fs::symlink_metadata(socket) {
        if m.file_type().is_socket() && m.uid() == rundir::euid() {
            let _ = std::fs::remove_file(socket);
        }
    }
}

/// Log in and leave a master running in the background, under a keeper
/// (`__keep`, see `keep`): started by us, it reaps the master when it
/// ends, with whatever ssh started beside it. Returns a connection to it.
fn start(
    spec: &HostSpec,
    settings: &SshSettings,
    files: &Files,
    deadline: Instant,
) -> Result<Mux, Fault> {
    // Appended to by ssh's -E and by every process's stderr alike, so that
    // none writes over another; emptied for the new master.
    let log = rundir::open_own(&files.log, OpenOptions::new().create(true).append(true))
        .and_then(|f| f.set_len(0).map(|()| f).map_err(|e| e.to_string()))
        .map_err(Fault::Io)?;
    // ssh expands `%` tokens in the path it is given: `%%` is a `%`.
    let socket = PathBuf::from(files.real_socket.to_string_lossy().replace('%', "%%"));
    let role = Role::Master {
        socket: &socket,
        log: &files.real_log,
        persist: settings.persist,
    };
    let mut cmd = sys::ourselves("__keep");
    cmd.arg(&files.real_socket)
        .arg("--")
        .args(args::ssh_command_line(
            settings,
            args::ssh_args(spec, role, settings.timeout),
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let keeper = registry::spawn(signals::own_session_for_helper(&mut cmd))
        .map_err(|e| Fault::Io(format!("cannot start the keeper of an ssh master: {e}")))?;
    let log = SshLog::whole(
        rundir::open_own(&files.log, OpenOptions::new().read(true)).map_err(Fault::Io)?,
    );
    let mut pause = Duration::from_millis(1);
    loop {
        // The master listens once logged in.
        if let Ok(mux) = Mux::connect(&files.socket, deadline) {
            registry::release(keeper);
            return Ok(mux);
        }
        let exited = registry::try_wait(keeper);
        let words = log.last_words();
        if let Some(status) = exited {
            return Err(Fault::Ssh(match args::why_it_exited(&words, status, &[]) {
                Ready::Failed(why) | Ready::PortTaken(why) => why,
            }));
        }
        // ssh that cannot make the socket goes on as a plain connection
        // that would never exit: no master.
        if words.contains("disabling multiplexing") {
            registry::stop(keeper);
            return Err(Fault::Ssh(format!("ssh could not start a master: {words}")));
        }
        if Instant::now() >= deadline {
            // The keeper's group and everything that left it: the login,
            // and a master that came up just now.
            registry::stop(keeper);
            return Err(Fault::Ssh(if words.is_empty() {
                "ssh login not done in time".into()
            } else {
                format!("ssh login not done in time: {words}")
            }));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// `__keep SOCKET -- SSH...`: run the ssh that logs in and forks the
/// master (in a process group of its own), then wait as the master's
/// parent: ssh's ControlPersist detaching orphans the master, and this
/// process, a child subreaper, adopts it (as it adopts the lasting master
/// that a ProxyJump's ssh may start under the user's own ControlPersist).
/// When the master ends (its persist time, `kill --all`, the worker gone)
/// or this process is told to stop, everything below it is stopped and
/// reaped, and it exits: nothing ssh started outlives the master.
pub fn keep(socket: &Path, ssh: &[std::ffi::OsString]) -> ! {
    // SIGCHLD too: children are reaped where the signals are read.
    let (Some(sfd), Some((program, args))) = (signals::helper(&[libc::SIGCHLD]), ssh.split_first())
    else {
        std::process::exit(2);
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    let login = match signals::own_group(&mut cmd).spawn() {
        Ok(child) => child.id(),
        Err(e) => {
            crate::say(&format!("cannot run {}: {e}", program.to_string_lossy()));
            std::process::exit(127);
        }
    };
    // It may live long: it must not keep the caller's directory busy.
    let _ = std::env::set_current_dir("/");
    let mut master = None;
    loop {
        // SAFETY: reads one signalfd_siginfo into a local buffer.
        let got = unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let n = libc::read(
                sfd,
                std::ptr::addr_of_mut!(info).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            );
            (n > 0).then_some(info.ssi_signo as libc::c_int)
        };
        match got {
            Some(libc::SIGCHLD) => {}
            Some(_) => end_everything(socket, 0),
            None => continue,
        }
        while let Some((pid, ended)) = reap_one() {
            if pid == login {
                if !ended.success() {
                    end_everything(socket, ended.shell_status());
                }
                match master_pid(socket) {
                    Ok(p) => master = Some(p),
                    Err(e) => {
                        crate::say(&format!("ssh exited without starting a master: {e}"));
                        end_everything(socket, 1);
                    }
                }
            } else if Some(pid) == master {
                end_everything(socket, 0);
            }
        }
    }
}

/// The master's PID, as it says on its socket. It answered ssh's own
/// client just now; a machine under load gets a few tries, since giving up
/// stops the master.
fn master_pid(socket: &Path) -> Result<u32, MuxError> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let asked = Mux::connect(socket, until).and_then(|mut m| m.alive());
        if asked.is_ok() || Instant::now() >= until {
            return asked;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Reap one exited child: its PID and how it ended.
fn reap_one() -> Option<(u32, Ended)> {
    let mut status = 0;
    // SAFETY: waitpid fills a local status; WNOHANG never blocks.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then(|| (pid as u32, Ended::from_wait(status)))
}

/// Stop and reap everything below this process, then exit with `code`.
fn end_everything(socket: &Path, code: i32) -> ! {
    let groups = sys::escaped_groups(std::process::id());
    registry::stop_groups(&groups, registry::GRACE, || while reap_one().is_some() {});
    forget(socket);
    std::process::exit(code)
}

/// The master is gone: its socket (when left by a master killed outright),
/// log and lock file go too, under the lock, unless a run is starting a
/// new master with them right now. Nothing of ours piles up.
fn forget(socket: &Path) {
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", socket.display()));
    let lock = with("lock");
    let until = Instant::now() + Duration::from_secs(1);
    let Ok(Some(held)) = rundir::lock(&lock, Some(until)) else {
        return;
    };
    if Mux::connect(socket, until).is_err() {
        remove_stale(socket, false);
    }
    let _ = std::fs::remove_file(with("log"));
    rundir::remove_locked(&lock, held);
}

/// `kill --all`: end every master of this user's now. Returns what was
/// said for each, and the failures.
pub fn stop_all() -> (Vec<String>, Vec<String>) {
    let (mut said, mut failed) = (Vec::new(), Vec::new());
    let dir = match rundir::private_dir() {
        Ok(d) => d,
        Err(e) => return (said, vec![e]),
    };
    let Ok(entries) = std::fs::read_dir(dir.at("")) else {
        return (said, failed);
    };
    let mut ending = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_socket = e.file_type().is_ok_and(|t| t.is_socket());
        if !name.starts_with("ssh-") || !is_socket {
            continue;
        }
        let files = Files::new(dir, &name);
        let entry = std::fs::read_to_string(&files.lock).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(1);
        let asked = Mux::connect(&files.socket, deadline).and_then(|mut m| {
            let pid = m.alive()?;
            m.terminate()?;
            Ok(pid)
        });
        match asked {
            Ok(pid) => ending.push((pid, entry)),
            // Connected, then no answer: a master that is stopped (SIGSTOP)
            // or hung. Its socket stays, so that a later `kill --all`
            // reaches it once it answers.
            Err(MuxError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                failed.push(format!(
                    "ssh master of {entry} does not answer on {} (stopped?): left running",
                    files.real_socket.display()
                ));
            }
            Err(MuxError::Io(_)) => remove_stale(&files.socket, false),
            Err(e) => failed.push(format!("ssh master of {entry}: {e}")),
        }
    }
    let until = Instant::now() + Duration::from_secs(2);
    for (pid, entry) in ending {
        while sys::alive(pid) && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        if sys::alive(pid) {
            failed.push(format!("ssh master {pid} of {entry} did not exit"));
        } else {
            said.push(format!("stopped ssh master {pid} of {entry}"));
        }
    }
    (said, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::hostspec::parse_entry;

    #[test]
    fn masters_differ_by_command_destination_port_and_persist_time() {
        let a = parse_entry("ssh://ci@w1").unwrap();
        let n = name("ssh", &a, 60);
        assert!(n.starts_with("ssh-") && n.len() == 20, "{n}");
        // The same worker written with other distccd ports shares it.
        assert_eq!(
            n,
            name("ssh", &parse_entry("ssh://ci@w1/4000/4001").unwrap(), 60)
        );
        for other in [
            name("ssh -F other", &a, 60),
            name("ssh", &parse_entry("ssh://w1").unwrap(), 60),
            name("ssh", &parse_entry("ssh://ci@w1:2222").unwrap(), 60),
            name("ssh", &a, 61),
        ] {
            assert_ne!(n, other);
        }
    }
}
