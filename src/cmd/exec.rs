use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
pub fn exec(
    verbose: bool,
    command: &[OsString],
    trace: Option<std::path::PathBuf>,
) -> Result<(), Error> {
    let mut config = configure(verbose, None)?;
    if trace.is_some() {
        config.trace = trace;
    }
    // Always: a signal while the command runs is passed on to it.
    let guarded = signals::guard(true, OnInterrupt::Die);
    let plan = probe_with(&config, true, &guarded, true)?;
    if let Err(e) = plan.usable() {
        registry::close(&[]);
        return Err(e);
    }
    say(&emit::summary(&plan));
    let live = (config.live && !config.pump)
        .then(|| super::conduct::prepare(&config, &plan, command))
        .transpose()
        .inspect_err(|_| {
            registry::close(&[]);
        })?
        .flatten();
    let argv = match &live {
        Some(l) => l.argv.clone(),
        None => snapshot_argv(&config, &plan, command)?,
    };
    let mut cmd = std::process::Command::new(&argv[0]);
    signals::as_started(cmd.args(&argv[1..]));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DISTCC_AUTO_") {
            cmd.env_remove(name);
        }
    }
    // Kept open (not close-on-exec) for the command: make 4.3's jobserver.
    let inherited = environment(&mut cmd, &plan, live.as_ref())?;
    let mut child = cmd.spawn().map_err(|e| cannot_run(&argv[0], &e))?;
    signals::set_child(child.id());
    drop(inherited);
    let done = Arc::new(AtomicBool::new(false));
    if live.is_some() {
        let (config, done) = (config.clone(), Arc::clone(&done));
        let _ = std::thread::Builder::new()
            .name("conductor".into())
            .spawn(move || {
                super::conduct::rounds(&config, &guarded, &|left| {
                    std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
                    done.load(Ordering::Relaxed)
                });
            });
    }
    // Wait without reaping, so that the PID stays the command's until no
    // signal can be passed on to it any more; then reap.
    sys::wait_exit(child.id());
    signals::set_child(0);
    done.store(true, Ordering::Relaxed);
    let status = child
        .wait()
        .map_err(|e| Error::Other(format!("waiting for the command: {e}")))?;
    let ended = Ended::from(status);
    if let Ended::Exited(code) = ended {
        say_after(&config, &plan, verbose, code == 0);
    }
    super::conduct::finish();
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

/// What the build did: a live build's own account, else the counters.
fn say_after(config: &crate::config::Config, plan: &crate::plan::Plan, verbose: bool, ok: bool) {
    let table = verbose || config.debug || config.summary;
    match super::conduct::summary(ok, table) {
        Some(lines) => lines.iter().for_each(|l| say(l)),
        None => say_tally(&tally::baseline(plan), config, ok),
    }
}

/// The command line of a build that is not live (-j N placed).
fn snapshot_argv(
    config: &crate::config::Config,
    plan: &crate::plan::Plan,
    command: &[OsString],
) -> Result<Vec<OsString>, Error> {
    if config.trace.is_some() {
        crate::warn("DISTCC_AUTO_TRACE is passed over: only a live build has a timeline");
    }
    super::build_argv(config, plan, command)
}

/// The command's environment for the build: DISTCC_HOSTS, or for a live
/// build DISTCC_DIR and the jobserver in MAKEFLAGS. Returns the FIFO
/// descriptor the command inherits (make 4.3), to close once it started.
fn environment(
    cmd: &mut std::process::Command,
    plan: &crate::plan::Plan,
    live: Option<&super::conduct::Prepared>,
) -> Result<Option<OwnedFd>, Error> {
    let Some(l) = live else {
        cmd.env("DISTCC_HOSTS", plan.distcc_hosts());
        return Ok(None);
    };
    cmd.env_remove("DISTCC_HOSTS")
        .env("DISTCC_DIR", &l.vars.distcc_dir);
    let Some(flags) = &l.vars.makeflags else {
        return Ok(None);
    };
    let Some(fifo) = &l.vars.fifo else {
        cmd.env("MAKEFLAGS", flags);
        return Ok(None);
    };
    let fd = crate::live::jobserver::for_command(fifo).map_err(Error::Other)?;
    let n = fd.as_raw_fd();
    cmd.env("MAKEFLAGS", format!("{flags} --jobserver-auth={n},{n}"));
    Ok(Some(fd))
}

/// The command could not start: its tunnels stop; 127 when it was not
/// found, 126 otherwise, as a shell says.
fn cannot_run(program: &OsString, e: &io::Error) -> Error {
    registry::close(&[]);
    say(&format!(
        "exec: cannot run '{}': {e}",
        program.to_string_lossy()
    ));
    Error::Exit(if e.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}
