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
        None => super::build_argv(&config, &plan, command)?,
    };
    let mut cmd = std::process::Command::new(&argv[0]);
    signals::as_started(cmd.args(&argv[1..]));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DISTCC_AUTO_") {
            cmd.env_remove(name);
        }
    }
    // Kept open (not close-on-exec) for the command: make 4.3's jobserver.
    let mut _inherited = None;
    match &live {
        None => {
            cmd.env("DISTCC_HOSTS", plan.distcc_hosts());
        }
        Some(l) => {
            cmd.env_remove("DISTCC_HOSTS")
                .env("DISTCC_DIR", &l.vars.distcc_dir);
            if let Some(flags) = &l.vars.makeflags {
                let flags = match &l.vars.fifo {
                    Some(fifo) => {
                        let fd = super::conduct::open_inherited(fifo)?;
                        let n = std::os::fd::AsRawFd::as_raw_fd(&fd);
                        _inherited = Some(fd);
                        format!("{flags} --jobserver-auth={n},{n}")
                    }
                    None => flags.clone(),
                };
                cmd.env("MAKEFLAGS", flags);
            }
        }
    }
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
    drop(_inherited);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if live.is_some() {
        let (config, done) = (config.clone(), std::sync::Arc::clone(&done));
        let _ = std::thread::Builder::new()
            .name("conductor".into())
            .spawn(move || {
                super::conduct::rounds(&config, &guarded, &|| {
                    done.load(std::sync::atomic::Ordering::Relaxed)
                });
            });
    }
    // Wait without reaping, so that the PID stays the command's until no
    // signal can be passed on to it any more; then reap.
    sys::wait_exit(child.id());
    signals::set_child(0);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    super::conduct::finish();
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
