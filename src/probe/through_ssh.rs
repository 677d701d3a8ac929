//! Probing an `ssh://` worker: open (or reuse) its route, then ask
//! through the route's local ports exactly as a direct worker is asked.

use std::thread;
use std::time::{Duration, Instant};

use crate::config::SshSettings;
use crate::config::hostspec::{Host, HostSpec};
use crate::probe::one::{self, Bounds};
use crate::probe::stage::{Stage, StageCell};
use crate::ssh::tunnel;
use crate::worker::fault::Code;
use crate::worker::found::{Outcome, Probe, Route, Target};

/// Start a tunnel, then probe the worker through it like any other. A
/// tunnel whose worker does not answer is stopped at once.
pub fn probe(
    spec: &HostSpec,
    ssh: &SshSettings,
    bounds: &Bounds,
    stage: &StageCell,
) -> (Target, Probe) {
    let start = Instant::now();
    stage.set(Stage::Tunnel);
    let remote = Route::Ssh(spec.clone()).target();
    let t = match tunnel::reach(spec, ssh, bounds.ssh_deadline) {
        Ok(t) => t,
        Err(fault) => {
            return (
                remote,
                one::down(None, fault.code(), fault.to_string(), start),
            );
        }
    };
    let target = Target {
        host: Host::V4(std::net::Ipv4Addr::LOCALHOST),
        distcc_port: t.info.local_distcc_port,
        stats_port: t.info.local_stats_port,
    };
    let mut probe = one::probe_one(&target, bounds.ssh_deadline, bounds, true, stage);
    if let Outcome::Down { reason, code } = &mut probe.outcome {
        let mut said = t.said();
        if *code == Code::NotAllowed && said.is_empty() {
            // ssh says why it closed a forward just before closing it.
            thread::sleep(Duration::from_millis(50));
            said = t.said();
        }
        t.stop();
        (*code, *reason) = match empty_through_tunnel(*code, &said, spec.stats_port) {
            Some(found) => found,
            None if said.is_empty() => (*code, format!("through the ssh tunnel: {reason}")),
            None => (
                *code,
                format!("through the ssh tunnel: {reason} (ssh: {said})"),
            ),
        };
    }
    probe.tunnel = Some(t.info.clone());
    probe.elapsed = start.elapsed();
    if !matches!(probe.outcome, Outcome::Down { .. }) {
        tunnel::done_with(t);
    }
    (target, probe)
}

/// An empty stats reply through a tunnel has three causes on the worker;
/// what ssh said tells them apart.
fn empty_through_tunnel(code: Code, said: &str, port: u16) -> Option<(Code, String)> {
    if code != Code::NotAllowed {
        return None;
    }
    Some(if said.contains("Connection refused") {
        (
            Code::Refused,
            format!(
                "nothing listens on the worker's localhost:{port} (ssh: {said}): distccd is not \
                 running there with --stats, or listens only on another address (its --listen)"
            ),
        )
    } else if said.contains("open failed") {
        (
            Code::Ssh,
            format!("the worker's sshd refused the forward to localhost:{port} (ssh: {said})"),
        )
    } else {
        (
            Code::NotAllowed,
            "distccd on the worker closed the connection without a reply: its --allow \
             probably lacks 127.0.0.1, where the tunnel arrives"
                .into(),
        )
    })
}
