use std::ffi::OsString;

use crate::config::Config;
use crate::error::Error;
use crate::plan::Plan;
use crate::process::registry;
use crate::process::signals::OnInterrupt;
use crate::render::shell as emit;
use crate::render::shell::Shell;
use crate::worker::found::TunnelInfo;
use crate::{say, sys};

use super::{configure, probe_and_plan, write_stdout};

/// `env`: probe, then print shell code for `eval`. With `build` (`env --
/// COMMAND...`, as `distcc_build` runs it), the code also sets the build's
/// arguments, with the job count placed by the one rule (`plan::jobs`).
pub fn env(verbose: bool, shell: Shell, build: Option<&[OsString]>) -> Result<(), Error> {
    if let Some(command) = build
        && super::conduct::wanted()
    {
        return super::conduct::hand_off(verbose, command);
    }
    let config = configure(verbose, None)?;
    let plan = probe_and_plan(&config, true, OnInterrupt::Die)?;
    if let Err(e) = plan.usable() {
        registry::close(&[]);
        return Err(e);
    }
    say(&emit::summary(&plan));
    hand_over(&config, &plan, shell, build)
}

/// Print the eval text for `plan` (a snapshot: DISTCC_HOSTS, and with
/// `build` its arguments with -j N) and hand the used workers' tunnels
/// over to the shell; the rest stop. Also what a conductor prints when a
/// live build cannot be had.
pub(crate) fn hand_over(
    config: &Config,
    plan: &Plan,
    shell: Shell,
    build: Option<&[OsString]>,
) -> Result<(), Error> {
    if build.is_some() && config.trace.is_some() {
        crate::warn("DISTCC_AUTO_TRACE is passed over: only a live build has a timeline");
    }
    let keep: Vec<TunnelInfo> = plan.up().filter_map(|w| w.tunnel.clone()).collect();
    let pids: Vec<u32> = keep.iter().map(|t| t.pid).collect();
    // Tunnels are handed over only if their PIDs reach someone: not on a
    // closed pipe, and not on /dev/null (where Rust also puts a closed
    // stdout), or nobody would ever stop them.
    if !keep.is_empty() && sys::stdout_is_dev_null() {
        registry::close(&[]);
        return Err(Error::Other(
            "standard output is /dev/null or closed: nobody would get the PIDs of the \
             ssh tunnels, so they were stopped (use eval \"$(distcc-auto env)\")"
                .into(),
        ));
    }
    let ccache = crate::probe::ccache::prefix_here();
    let text = match build {
        None => emit::env_script(plan, &keep, ccache, shell).into_bytes(),
        Some(command) => {
            let argv = super::build_argv(config, plan, command)?;
            emit::build_script(plan, &keep, ccache, &argv, None)
        }
    };
    let printed = write_stdout(&text);
    registry::close(if printed.is_ok() { &pids } else { &[] });
    printed.map_err(|e| Error::Other(format!("writing to stdout: {e}")))
}
