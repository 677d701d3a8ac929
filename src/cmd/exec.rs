use std::ffi::OsString;
use std::io;

use crate::error::Error;
use crate::process::ended::Ended;
use crate::process::registry;
use crate::process::signals::{self, OnInterrupt};
use crate::render::{shell as emit, tally};
use crate::{say, sys};

use super::tally::say_tally;
use super::{configure, probe_with};

/// `exec`: probe, run the command with -j N and DISTCC_HOSTS (and no
/// DISTCC_AUTO_* variable), wait for it, say how many compiles ran
/// remotely, stop the tunnels, and end as the command did: its exit status,
/// or death by the same signal.
pub fn exec(verbose: bool, command: &[OsString]) -> Result<(), Error> {
    let config = configure(verbose, None)?;
    // Always: a signal while the command runs is passed on to it.
    let guarded = signals::guard(true, OnInterrupt::Die);
    let plan = probe_with(&config, true, &guarded)?;
    if let Err(e) = plan.usable() {
        registry::close(&[]);
        return Err(e);
    }
    say(&emit::summary(&plan));
    let argv = super::build_argv(&config, &plan, command)?;
    let mut cmd = std::process::Command::new(&argv[0]);
    signals::as_started(cmd.args(&argv[1..]));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DISTCC_AUTO_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("DISTCC_HOSTS", plan.distcc_hosts());
    if let Some(p) = crate::probe::ccache::prefix_here() {
        cmd.env("CCACHE_PREFIX", p);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            registry::close(&[]);
            let code = if e.kind() == io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            say(&format!(
                "exec: cannot run '{}': {e}",
                argv[0].to_string_lossy()
            ));
            return Err(Error::Exit(code));
        }
    };
    signals::set_child(child.id());
    // Wait without reaping, so that the PID stays the command's until no
    // signal can be passed on to it any more; then reap.
    sys::wait_exit(child.id());
    signals::set_child(0);
    let status = child
        .wait()
        .map_err(|e| Error::Other(format!("waiting for the command: {e}")))?;
    let ended = Ended::from(status);
    if let Ended::Exited(code) = ended {
        say_tally(&tally::baseline(&plan), &config, code == 0);
    }
    let n = registry::close(&[]);
    if n > 0 {
        say(&format!(
            "stopped {n} ssh tunnel{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    match ended {
        Ended::Exited(0) => Ok(()),
        Ended::Exited(code) => Err(Error::Exit(u8::try_from(code).unwrap_or(1))),
        Ended::Signalled(sig) => signals::die_of(sig),
    }
}
