//! Remembering workers that did not answer: for DISTCC_AUTO_BACKOFF_PERIOD
//! seconds after a worker let the deadline pass, later runs still probe it
//! but do not wait for it (the probing phase ends when every other worker
//! has answered, plus a short grace in which a worker that came back can
//! still answer). The state is one small file in the private directory
//! (`rundir`). It is replaced atomically (write, then rename) under a lock,
//! so concurrent runs neither tear nor lose it; a file that is corrupt or
//! not ours is ignored with a warning.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::whole;
use crate::plan::Plan;
use crate::state::rundir;
use crate::worker::fault::Code;

/// When each remembered worker last let the deadline pass (seconds since
/// the epoch), by entry.
pub type Dead = BTreeMap<String, u64>;

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parse the file; `Err` for anything but `ENTRY<TAB>SECONDS` lines.
pub fn parse(text: &str) -> Result<Dead, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (entry, at) = l.split_once('\t').ok_or("a line without a tab")?;
            let at = whole(at).ok_or("a time that is not a number")?;
            if entry.is_empty() || entry.contains(char::is_whitespace) {
                return Err("an empty or spaced entry");
            }
            Ok((entry.to_string(), at))
        })
        .collect::<Result<_, _>>()
        .map_err(|e: &str| e.to_string())
}

pub fn render(dead: &Dead) -> String {
    dead.iter().map(|(e, t)| format!("{e}\t{t}\n")).collect()
}

/// The state after a run: workers that let the deadline pass are
/// remembered from now (one not waited for keeps its first time, so that
/// it is waited for again once the period is over); every other worker
/// the run heard from is forgotten; entries older than `period` go.
pub fn update(old: &Dead, plan: &Plan, at: u64, period: u64) -> Dead {
    let mut new: Dead = old
        .iter()
        .filter(|(e, _)| age(old, e, at, period).is_some())
        .map(|(e, t)| (e.clone(), *t))
        .collect();
    for w in &plan.workers {
        match w.dropped.as_ref().map(|d| d.code) {
            Some(Code::Timeout) => {
                new.insert(w.spec.entry.clone(), at);
            }
            Some(Code::NotWaited) => {}
            _ => {
                new.remove(&w.spec.entry);
            }
        }
    }
    new
}

/// How many seconds ago `entry` last let the deadline pass, when that is
/// within `period`. A time after `at` (the clock was set back) counts as
/// long ago: it would otherwise be kept until the clock passes it.
pub fn age(dead: &Dead, entry: &str, at: u64, period: u64) -> Option<u64> {
    let t = *dead.get(entry)?;
    let age = at.checked_sub(t)?;
    (age < period).then_some(age)
}

/// Read the state (empty when there is none).
fn read(path: &Path) -> Result<Dead, String> {
    if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(Dead::new());
    }
    let mut text = String::new();
    rundir::open_own(path, OpenOptions::new().read(true))?
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The state file, in the private directory.
pub struct Store {
    dir: &'static rundir::Dir,
    path: PathBuf,
}

impl Store {
    pub fn open() -> Result<Store, String> {
        let dir = rundir::private_dir()?;
        Ok(Store {
            path: dir.at("dead"),
            dir,
        })
    }

    /// The state as it is; replaced only by rename, so never torn.
    pub fn load(&self) -> Result<Dead, String> {
        read(&self.path)
    }

    /// Change the state under the lock: `change` gets the state as it is
    /// now (another run may have changed it meanwhile) and returns the new.
    pub fn update(&self, change: impl FnOnce(&Dead) -> Dead) -> Result<(), String> {
        let _lock = rundir::lock(&self.dir.at("dead.lock"), None)?;
        let now = read(&self.path).unwrap_or_default();
        let new = change(&now);
        if new == now {
            return Ok(());
        }
        self.save(&new)
    }

    /// Replace the state atomically.
    fn save(&self, dead: &Dead) -> Result<(), String> {
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let written = (|| {
            let mut f = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(render(dead).as_bytes())?;
            std::fs::rename(&tmp, &self.path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {e}", self.path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_strictly() {
        let d = parse("w1\t100\nssh://ci@w2\t200\n").unwrap();
        assert_eq!(d.get("w1"), Some(&100));
        assert_eq!(parse(&render(&d)).unwrap(), d);
        for bad in ["w1 100", "w1\t-1", "w1\tx", "\t5", "a b\t5"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn a_time_in_the_future_is_forgotten() {
        let d = parse("w1\t100\nw2\t5000\n").unwrap();
        assert_eq!(age(&d, "w1", 130, 60), Some(30));
        assert_eq!(age(&d, "w1", 160, 60), None);
        // The clock was set back to 1000: w2's 5000 is not "0 s ago".
        assert_eq!(age(&d, "w2", 1000, 60), None);
        let plan = crate::plan::Plan {
            workers: vec![],
            local_slots: 0,
            preprocessor_slots: 0,
            nothing: None,
            decisions: vec![],
            pump: false,
        };
        assert!(update(&d, &plan, 1000, 60).is_empty());
    }
}
