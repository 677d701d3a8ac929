//! A route to an `ssh://` worker: local ports that reach its distccd.
//!
//! - `tunnel`: one `ssh -N` per worker with two local forwards, or, with
//!   persistence, forwards added to a shared master.
//! - `master`: the shared OpenSSH master (DISTCC_AUTO_SSH_PERSIST) and its
//!   keeper (`__keep`), which owns the master's lifetime.
//! - `holder`: `__hold`, the process that holds a run's forwards in a
//!   master and is the run's "tunnel PID".
//! - `mux`: OpenSSH's control-socket protocol, spoken directly.
//! - `args`: the ssh command line, its log, and reading why ssh ended.
//! - `ready`: waiting until a tunnel's ports listen or its ssh exits.
//!
//! Nothing here probes: `probe` asks through the ports a route gives.

pub mod args;
pub mod holder;
pub mod master;
pub mod mux;
pub mod ready;
pub mod tunnel;
