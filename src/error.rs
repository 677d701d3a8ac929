//! The one error type. Its category picks the exit code the reference tool
//! established: 96 for configuration, 97 when there is nothing to build on.

use std::fmt;

/// Exit code for a configuration problem (bad variable, bad host entry).
pub const EXIT_CONFIG: u8 = 96;
/// Exit code when no worker is up and no local slot is allowed.
pub const EXIT_NO_WORKERS: u8 = 97;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The user's configuration is wrong; the message names what to fix.
    Config(String),
    /// Nothing to build on: no worker answered and no local slot is allowed.
    NoWorkers(String),
    /// A bad command line.
    Usage(String),
    /// Anything else (an I/O failure of our own).
    Other(String),
    /// `exec`: the command's own exit status, passed on without a word.
    Exit(u8),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => EXIT_CONFIG,
            Error::NoWorkers(_) => EXIT_NO_WORKERS,
            Error::Usage(_) => 2,
            Error::Other(_) => 1,
            Error::Exit(code) => *code,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) | Error::NoWorkers(m) | Error::Usage(m) | Error::Other(m) => {
                f.write_str(m)
            }
            Error::Exit(code) => write!(f, "exit status {code}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<lexopt::Error> for Error {
    fn from(e: lexopt::Error) -> Self {
        Error::Usage(format!(
            "{e}\nTry 'distcc-auto --help' for more information."
        ))
    }
}
