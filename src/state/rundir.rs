//! The private directory of this user's that distcc-auto keeps state in
//! between runs (remembered dead workers, ssh masters' control sockets and
//! logs): `$XDG_RUNTIME_DIR/distcc-auto`, else `$TMPDIR/distcc-auto-UID`.
//! It is made with mode 0700 and proven ours once, on the descriptor then
//! held: a directory, not a symlink, owned by this user, with no access for
//! anyone else, on a path that only root and this user can change. Every
//! file in it is opened through that descriptor without following a
//! symlink, and proven ours too.
//! Whoever runs as this user can use what is in it, as with ~/.ssh.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The private directory, opened once and held: every file and socket of
/// ours in it is reached through the held descriptor (`at`), so that a
/// directory swapped in under the same name later is never used.
pub struct Dir {
    /// Its path, for the processes we start (ssh's `-S` and `-E`).
    real: PathBuf,
    /// `/proc/self/fd/N`: the held directory, for our own use.
    at: PathBuf,
    _fd: OwnedFd,
}

impl Dir {
    /// `name` in the held directory, for this process only.
    pub fn at(&self, name: &str) -> PathBuf {
        self.at.join(name)
    }

    /// `name` by the directory's path, for a process we start.
    pub fn real(&self, name: &str) -> PathBuf {
        self.real.join(name)
    }
}

static DIR: OnceLock<Result<Dir, String>> = OnceLock::new();

/// The private directory, made if missing; `Err` says why it cannot be
/// trusted (the callers then do without it, and say so).
pub fn private_dir() -> Result<&'static Dir, String> {
    DIR.get_or_init(open_private).as_ref().map_err(Clone::clone)
}

fn open_private() -> Result<Dir, String> {
    let uid = euid();
    let (base, name) = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => (
            ("XDG_RUNTIME_DIR", PathBuf::from(d)),
            "distcc-auto".to_string(),
        ),
        None => (
            ("TMPDIR", std::env::temp_dir()),
            format!("distcc-auto-{uid}"),
        ),
    };
    let ((var, base), name) = (base, name);
    if !base.is_absolute() {
        return Err(format!(
            "{var} '{}' is not an absolute path; nothing is kept there",
            base.display()
        ));
    }
    let base =
        std::fs::canonicalize(&base).map_err(|e| format!("{var} {}: {e}", base.display()))?;
    trusted(&base)?;
    let real = base.join(&name);
    match std::fs::DirBuilder::new().mode(0o700).create(&real) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot make {}: {e}", real.display())),
    }
    // Not through a symlink, ours, and nobody else's to read or write:
    // checked on the descriptor we then hold, not on the name.
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(&real)
        .map_err(|e| format!("{}: {e}", real.display()))?;
    let m = dir
        .metadata()
        .map_err(|e| format!("{}: {e}", real.display()))?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not a directory of this user's with mode 0700; not used",
            real.display()
        ));
    }
    let fd = OwnedFd::from(dir);
    Ok(Dir {
        at: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        real,
        _fd: fd,
    })
}

/// Whether only root and this user can change what `dir` (a canonical
/// path) leads to: every directory on it owned by one of them, and none
/// writable by others unless sticky (as /tmp is: nobody else can rename
/// or remove what is ours in it).
fn trusted(dir: &Path) -> Result<(), String> {
    let uid = euid();
    for d in dir.ancestors() {
        let m = std::fs::symlink_metadata(d).map_err(|e| format!("{}: {e}", d.display()))?;
        let sticky = m.mode() & 0o1000 != 0;
        if m.uid() != 0 && m.uid() != uid {
            return Err(format!(
                "{} belongs to uid {}, who could replace what is kept in it; not used",
                d.display(),
                m.uid()
            ));
        }
        if m.mode() & 0o022 != 0 && !sticky {
            return Err(format!(
                "{} can be written by others, who could replace what is kept in it; not used",
                d.display()
            ));
        }
    }
    Ok(())
}

pub use crate::sys::euid;

/// A file of ours in the private directory, opened (made 0600 if
/// `create`) without following a symlink, and proven ours.
pub fn open_own(path: &Path, opts: &mut OpenOptions) -> Result<File, String> {
    let file = opts
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let m = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !m.is_file() || m.uid() != euid() {
        return Err(format!("{} is not a file of this user's", path.display()));
    }
    Ok(file)
}

/// An exclusive lock on `path` (made 0600 if missing), held until the
/// value is dropped. With a deadline, given up at it (`None`). A lock file
/// may be removed by whoever holds it (`remove_locked`): a lock taken on a
/// file that is no longer at `path` is let go and taken again.
pub fn lock(path: &Path, deadline: Option<Instant>) -> Result<Option<File>, String> {
    loop {
        let Some(file) = lock_once(path, deadline)? else {
            return Ok(None);
        };
        let here = std::fs::symlink_metadata(path).ok();
        let held = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if here.is_some_and(|m| m.dev() == held.dev() && m.ino() == held.ino()) {
            return Ok(Some(file));
        }
    }
}

/// Remove a lock file while holding its lock (then drop the lock).
pub fn remove_locked(path: &Path, held: File) {
    let _ = std::fs::remove_file(path);
    drop(held);
}

fn lock_once(path: &Path, deadline: Option<Instant>) -> Result<Option<File>, String> {
    let file = open_own(
        path,
        OpenOptions::new().create(true).truncate(false).write(true),
    )?;
    let fd = file.as_raw_fd();
    let Some(deadline) = deadline else {
        // SAFETY: flock on a descriptor we own; released when it closes.
        unsafe { libc::flock(fd, libc::LOCK_EX) };
        return Ok(Some(file));
    };
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: as above, without blocking.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(file));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
