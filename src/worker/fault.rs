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
    /// The stats port closed at once without a word: distccd's `--allow`
    /// does not admit us.
    NotAllowed(String),
    /// The compile check ran and the compiler failed: its own words.
    Compile(String),
    /// ssh could not set up the tunnel: its own words.
    Ssh(String),
    /// Anything else the system said.
    Io(String),
}

/// Why a worker is not used, for machines (`hosts --json`'s
/// `reason_code`): stable names, beside the reason text for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Its name did not resolve.
    Unresolved,
    /// It did not answer within the deadline.
    Timeout,
    /// Nothing listens on its ports (refused, or no route).
    Refused,
    /// Its distccd closed the connection at once: --allow excludes us.
    NotAllowed,
    /// It answered, but not as distccd does (or reported unusable stats).
    Protocol,
    /// The compile check failed.
    CompileFailed,
    /// The ssh tunnel could not be set up.
    Ssh,
    /// A local system error (sockets, threads, file descriptors).
    Local,
    /// Too little free memory for one compiler.
    NoMemory,
    /// No stats port, and DISTCC_AUTO_NO_STATS_SLOTS is 0.
    NoStats,
    /// Its compiler is not the one this machine has (toolchain check).
    Toolchain,
    /// It let the deadline pass shortly before and was not waited for.
    NotWaited,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unresolved => "unresolved",
            Code::Timeout => "timeout",
            Code::Refused => "refused",
            Code::NotAllowed => "not_allowed",
            Code::Protocol => "protocol",
            Code::CompileFailed => "compile_failed",
            Code::Ssh => "ssh",
            Code::Local => "local",
            Code::NoMemory => "no_memory",
            Code::NoStats => "no_stats",
            Code::Toolchain => "toolchain",
            Code::NotWaited => "not_waited",
        }
    }
}

impl Fault {
    pub fn code(&self) -> Code {
        match self {
            Fault::Timeout => Code::Timeout,
            Fault::Refused(_) => Code::Refused,
            Fault::NotAllowed(_) => Code::NotAllowed,
            Fault::Protocol(_) => Code::Protocol,
            Fault::Compile(_) => Code::CompileFailed,
            Fault::Ssh(_) => Code::Ssh,
            Fault::Io(_) => Code::Local,
        }
    }

    /// The same fault, with what was being done in front of its text.
    pub fn context(self, what: &str) -> Fault {
        match self {
            Fault::Refused(e) => Fault::Refused(format!("{what}: {e}")),
            Fault::Protocol(e) => Fault::Protocol(format!("{what}: {e}")),
            Fault::NotAllowed(e) => Fault::NotAllowed(format!("{what}: {e}")),
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
            | Fault::NotAllowed(m)
            | Fault::Compile(m)
            | Fault::Ssh(m)
            | Fault::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Fault {}
