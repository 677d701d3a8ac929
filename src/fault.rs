//! Why asking a worker failed: one type for the whole probe path (stats
//! parser, compile check, ssh tunnel, sockets), with one `Display`. The
//! top-level `error::Error` picks exit codes; a `Fault` only ever becomes
//! the reason a worker was dropped.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// A wait ran out. Where it was is the prober's to say (its stage).
    Timeout,
    /// Nothing listens there: the connection was refused, or there is no
    /// route. Answered at once.
    Refused(String),
    /// The worker answered, but not as a distccd does.
    Protocol(String),
    /// The compile check ran and the compiler failed: its own words.
    Compile(String),
    /// ssh could not set up the tunnel: its own words.
    Ssh(String),
    /// Anything else the system said.
    Io(String),
}

impl Fault {
    /// The same fault, with what was being done in front of its text.
    pub fn context(self, what: &str) -> Fault {
        match self {
            Fault::Refused(e) => Fault::Refused(format!("{what}: {e}")),
            Fault::Protocol(e) => Fault::Protocol(format!("{what}: {e}")),
            Fault::Compile(e) => Fault::Compile(format!("{what}: {e}")),
            Fault::Ssh(e) => Fault::Ssh(format!("{what}: {e}")),
            Fault::Io(e) => Fault::Io(format!("{what}: {e}")),
            Fault::Timeout => Fault::Timeout,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Timeout => f.write_str("timed out"),
            Fault::Refused(m)
            | Fault::Protocol(m)
            | Fault::Compile(m)
            | Fault::Ssh(m)
            | Fault::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Fault {}
