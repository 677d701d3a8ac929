//! distcc's own backoff: when distcc fails to reach a worker (and also
//! after ordinary compile errors and failed configure tests, distcc issue
//! 74), it writes `$DISTCC_DIR/lock/backoff_tcp_HOST_PORT_0` and avoids that
//! worker for DISTCC_BACKOFF_PERIOD (60 s). A worker that our probe has just
//! found up (stats port and job port) is not to be avoided: its file is
//! removed, for exactly the host and port written in DISTCC_HOSTS, and no
//! other.

use std::path::{Path, PathBuf};

use crate::config::hostspec::Host;
use crate::plan::Plan;

/// distcc's lock directory: `$DISTCC_DIR/lock`, DISTCC_DIR defaulting to
/// `~/.distcc`.
pub fn lock_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("DISTCC_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").filter(|h| !h.is_empty())?).join(".distcc"),
    };
    Some(base.join("lock"))
}

/// The backoff file names of the used workers, as distcc makes them from
/// the host as written in DISTCC_HOSTS (for an IPv6 address, with and
/// without its brackets: both name the same host).
pub fn files(plan: &Plan) -> Vec<String> {
    plan.up()
        .filter(|w| w.stats.is_some())
        .flat_map(|w| {
            let (host, port) = w.distcc_address();
            let mut names = vec![format!("backoff_tcp_{host}_{port}_0")];
            if let Host::V6(a) = host {
                names.push(format!("backoff_tcp_{a}_{port}_0"));
            }
            names
        })
        .collect()
}

/// Remove those files from `dir`; the names of the ones that were there.
/// The directory is read once, and only files that are there are removed
/// (a thousand workers, a thousand failed unlinks otherwise).
pub fn clear(dir: &Path, names: &[String]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| wanted.contains(n.as_str()))
        .filter(|n| std::fs::remove_file(dir.join(n)).is_ok())
        .collect()
}
