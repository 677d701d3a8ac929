//! How a worker is reached and what asking it found: the plain results
//! `probe` and `ssh` produce and `plan` reads.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::hostspec::{Host, HostSpec, Transport};
use crate::worker::fault::Code;
use crate::worker::stats::Stats;

/// Where to ask: for a TCP worker its own address, for an ssh worker the
/// local ends of its tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    pub distcc_port: u16,
    pub stats_port: u16,
}

impl Target {
    /// The worker's own address and ports, as configured.
    pub fn of(spec: &HostSpec) -> Target {
        Target {
            host: spec.host.clone(),
            distcc_port: spec.distcc_port,
            stats_port: spec.stats_port,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Up {
        stats: Stats,
    },
    /// The job port accepts but the stats port refused the connection: a
    /// distccd started without `--stats` (Debian's default). `why` is what
    /// the stats port said.
    NoStats {
        why: String,
    },
    Down {
        reason: String,
        code: Code,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The stats address last tried (the one that answered, when up).
    pub address: Option<SocketAddr>,
    pub outcome: Outcome,
    pub elapsed: Duration,
    /// The ssh tunnel the worker was reached through, while it runs.
    pub tunnel: Option<TunnelInfo>,
    /// The worker's compiler, as the compile check's object shows it.
    pub compiler: Option<String>,
}

/// How to reach a worker.
#[derive(Debug, Clone)]
pub enum Route {
    Direct(Target),
    /// Through an ssh tunnel, set up and probed by `ssh_deadline`.
    Ssh(HostSpec),
}

impl Route {
    pub fn of(spec: &HostSpec) -> Route {
        // A new transport makes the compiler list every place to update.
        match spec.transport {
            Transport::Ssh { .. } => Route::Ssh(spec.clone()),
            Transport::Tcp => Route::Direct(Target::of(spec)),
        }
    }

    /// Where the worker is asked before any tunnel exists.
    pub fn target(&self) -> Target {
        match self {
            Route::Direct(t) => t.clone(),
            Route::Ssh(s) => Target::of(s),
        }
    }
}

/// A running tunnel, as the rest of the program sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    /// The process `env` hands over: the leader of the tunnel's session
    /// and process group.
    pub pid: u32,
    /// Its owner and start time: with the PID, what `kill` checks before
    /// signalling, so that a reused PID is never taken for the tunnel.
    pub uid: u32,
    pub start: u64,
    pub destination: String,
    /// With DISTCC_AUTO_SSH_PERSIST: the PID of the shared master that
    /// carries the forwards (the tunnel PID is then the holder's).
    pub master: Option<u32>,
    pub local_distcc_port: u16,
    pub local_stats_port: u16,
}

impl TunnelInfo {
    /// `PID:UID:START`, as DISTCC_AUTO_TUNNEL_IDS carries it.
    pub fn identity(&self) -> String {
        format!("{}:{}:{}", self.pid, self.uid, self.start)
    }
}
