//! The private directory of this user's that distcc-auto keeps state in
//! between runs (remembered dead workers, ssh masters' control sockets and
//! logs): `$XDG_RUNTIME_DIR/distcc-auto`, else `$TMPDIR/distcc-auto-UID`.
//! It is made with mode 0700 and checked before every use: a directory,
//! not a symlink, owned by this user, with no access for anyone else.
//! Whoever runs as this user can use what is in it, as with ~/.ssh.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// The private directory, made if missing; `Err` says why it cannot be
/// trusted.
pub fn private_dir() -> Result<PathBuf, String> {
    let uid = euid();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("distcc-auto"),
        None => std::env::temp_dir().join(format!("distcc-auto-{uid}")),
    };
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot make {}: {e}", dir.display())),
    }
    // Not through a symlink, ours, and nobody else's to write.
    let m = std::fs::symlink_metadata(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not a directory of this user's with mode 0700; not used",
            dir.display()
        ));
    }
    Ok(dir)
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// An exclusive lock on `path` (made 0600 if missing), held until the
/// value is dropped. With a deadline, given up at it (`None`).
pub fn lock(path: &Path, deadline: Option<Instant>) -> Result<Option<File>, String> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
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
