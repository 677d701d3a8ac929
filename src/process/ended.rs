//! How a process ended: the one type for it, from a `waitpid` status or
//! std's `ExitStatus`.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signalled(i32),
}

impl Ended {
    /// From a raw `waitpid` status of a process that ended.
    pub fn from_wait(status: libc::c_int) -> Ended {
        if libc::WIFEXITED(status) {
            Ended::Exited(libc::WEXITSTATUS(status))
        } else {
            Ended::Signalled(libc::WTERMSIG(status))
        }
    }

    pub fn success(self) -> bool {
        self == Ended::Exited(0)
    }

    /// What a shell would give as `$?`: the status, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            Ended::Exited(code) => code,
            Ended::Signalled(sig) => 128 + sig,
        }
    }
}

impl From<ExitStatus> for Ended {
    fn from(s: ExitStatus) -> Ended {
        match (s.code(), s.signal()) {
            (Some(code), _) => Ended::Exited(code),
            (None, Some(sig)) => Ended::Signalled(sig),
            // Neither: a stopped or continued status, never one of an end.
            (None, None) => Ended::Exited(1),
        }
    }
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Exited(code) => write!(f, "exit status {code}"),
            Ended::Signalled(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_a_real_child() {
        let st = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .status()
            .unwrap();
        assert_eq!(Ended::from(st), Ended::Exited(3));
        let st = std::process::Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .status()
            .unwrap();
        let e = Ended::from(st);
        assert_eq!(e, Ended::Signalled(libc::SIGTERM));
        assert_eq!(e.shell_status(), 143);
        assert_eq!(e.to_string(), "killed by signal 15");
    }
}
