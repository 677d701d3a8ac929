//! The conductor of a live build (DISTCC_AUTO_LIVE, on by default).
//!
//! `env -- COMMAND` (what `distcc_build` runs) hands the whole job to the
//! conductor, a child it forks (named `distcc-conduct`): it probes and
//! plans exactly as `env` would (same messages, same exit codes; `env`
//! passes them on), sets the live build up (`live`), prints the shell
//! code `env` passes on, leaves for a session of its own, and then
//! re-probes every DISTCC_AUTO_REPROBE seconds until `distcc_build` asks
//! for the build's account at its end (through the FIFOs `end` and
//! `said`, or `__end`), the shell's trap stops it with `kill`, like a
//! tunnel (it is listed in DISTCC_AUTO_TUNNEL_PIDS), or the shell it
//! serves is gone. `exec` runs the same rounds in a thread of its own.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::live::Live;
use crate::live::jobserver::{self, Jobserver, Style};
use crate::plan::Plan;
use crate::process::ended::Ended;
use crate::process::identity::{CONDUCTOR_NAME, Identity};
use crate::process::signals::{self, OnInterrupt};
use crate::render::shell::{self as emit, LiveVars};
use crate::worker::found::TunnelInfo;
use crate::{say, sys, trace};

use super::{configure, probe_with};

/// The live build of this process, for the rounds and for the cleanup a
/// stopping signal runs.
static LIVE: Mutex<Option<Live>> = Mutex::new(None);

fn live() -> std::sync::MutexGuard<'static, Option<Live>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Count the tokens back and remove the build's directory (once).
pub fn finish() {
    if let Some(mut l) = live().take() {
        l.finish();
    }
}

/// Whether a live build is wanted, by the environment alone (before the
/// configuration is read: the conductor reads and judges it).
pub fn wanted() -> bool {
    let get = |n: &str| crate::config::process_env(n).filter(|v| !v.is_empty());
    get(crate::config::vars::LIVE).as_deref() != Some("0")
        && get(crate::config::vars::PUMP).as_deref() != Some("1")
}

/// `env -- COMMAND` when live: fork the conductor (this process has one
/// thread yet), pass on what it prints, or end as it ended.
pub fn hand_off(verbose: bool, command: &[OsString]) -> Result<(), Error> {
    // Nobody would ever stop the conductor (nor its tunnels).
    if sys::stdout_is_dev_null() {
        return Err(Error::Other(
            "standard output is /dev/null or closed: nobody would get the conductor's PID \
             (distcc_build reads `env -- COMMAND`; see distcc-auto(1))"
                .into(),
        ));
    }
    let cannot = |e: std::io::Error| Error::Other(format!("cannot start the conductor: {e}"));
    let (mut from, to) = sys::pipe().map_err(cannot)?;
    let Some(child) = sys::fork_alone().map_err(cannot)? else {
        drop(from);
        sys::put_at(&to, 1);
        drop(to);
        if let Ok(null) = std::fs::File::open("/dev/null") {
            sys::put_at(&null, 0);
        }
        // SAFETY: PR_SET_NAME copies at most 16 bytes of a C string.
        unsafe {
            libc::prctl(libc::PR_SET_NAME, CONDUCTOR_NAME.as_ptr());
        }
        let code = super::exit_code(conduct(verbose, command));
        std::process::exit(i32::from(code));
    };
    drop(to);
    let mut text = Vec::new();
    let _ = from.read_to_end(&mut text);
    if text.is_empty() {
        let status = sys::reap(child)
            .map_err(|e| Error::Other(format!("waiting for the conductor: {e}")))?;
        return match Ended::from_wait(status) {
            Ended::Exited(0) => Err(Error::Other("the conductor printed nothing".into())),
            Ended::Exited(c) => Err(Error::Exit(u8::try_from(c).unwrap_or(1))),
            Ended::Signalled(sig) => signals::die_of(sig),
        };
    }
    // It runs on in a session of its own; the shell stops it.
    super::write_stdout(&text).map_err(|e| Error::Other(format!("writing to stdout: {e}")))
}

/// What the build's environment gets from a live build.
pub struct Prepared {
    pub argv: Vec<OsString>,
    pub vars: LiveVars,
}

/// Set the live build up for `plan`: the build's directory, relays and
/// hosts file, and the jobserver when the command is a client of one.
/// `None`, with a warning, when there is no private directory to hold
/// it: the build is then a snapshot, as with DISTCC_AUTO_LIVE=0.
pub(crate) fn prepare(
    config: &Config,
    plan: &Plan,
    command: &[OsString],
) -> Result<Option<Prepared>, Error> {
    let trace = trace_target(config, command)?;
    let dir = match crate::state::rundir::private_dir() {
        Ok(d) => d,
        Err(e) => {
            crate::warn(&format!(
                "not a live build (the workers are fixed for this build): {e}"
            ));
            return Ok(None);
        }
    };
    sweep(dir);
    let name = format!("build.{}", std::process::id());
    let user_dir = crate::state::distcc_backoff::lock_dir()
        .and_then(|l| l.parent().map(PathBuf::from))
        .ok_or_else(|| Error::Config("neither DISTCC_DIR nor HOME is set".into()))?;
    let mut l = Live::start(dir.at(&name), dir.real(&name), &user_dir, plan)
        .map_err(|e| Error::Other(format!("cannot set the live build up: {e}")))?;
    l.own_jobs = !config.append_jobs || crate::plan::jobs::place(command, 1, true).1;
    l.trace = trace;
    let style = client_style(config, command);
    let user_flags = std::env::var("MAKEFLAGS").unwrap_or_default();
    let mut vars = LiveVars {
        distcc_dir: l.dir.display().to_string(),
        makeflags: None,
        fifo: None,
    };
    let mut argv = None;
    if let Some(style) = style {
        let js = Jobserver::create(&l.dir.join("jobserver"), style, l.jobs().saturating_sub(1))
            .map_err(Error::Other)?;
        if let Some(flags) = jobserver::makeflags(&user_flags, &js) {
            trace!(
                "jobserver: {} tokens, MAKEFLAGS '{flags}'",
                js.circulating()
            );
            vars.makeflags = Some(flags);
            if style == Style::Pipe {
                vars.fifo = Some(js.path.display().to_string());
            }
            l.jobserver = Some(js);
            argv = Some(command.to_vec());
        }
    }
    let argv = match argv {
        Some(a) => a,
        None => super::build_argv(config, plan, command)?,
    };
    *live() = Some(l);
    signals::before_stopping(finish);
    Ok(Some(Prepared { argv, vars }))
}

/// Where the timeline goes (absolute: the conductor leaves for /) and its
/// title; checked before anything is set up, since a timeline with
/// nowhere to go is a configuration error.
fn trace_target(config: &Config, command: &[OsString]) -> Result<Option<(PathBuf, String)>, Error> {
    let Some(t) = &config.trace else {
        return Ok(None);
    };
    let path = std::path::absolute(t)
        .map_err(|e| Error::Config(format!("DISTCC_AUTO_TRACE={}: {e}", t.display())))?;
    if !path.parent().is_some_and(std::path::Path::is_dir) {
        return Err(Error::Config(format!(
            "DISTCC_AUTO_TRACE={}: no such directory for the timeline",
            t.display()
        )));
    }
    let title = command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Some((path, title)))
}

/// Remove the directories of live builds whose conductor is gone.
fn sweep(dir: &crate::state::rundir::Dir) {
    let Ok(entries) = std::fs::read_dir(dir.at("")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("build.")
            .and_then(crate::config::whole::<u32>)
            && !sys::alive(pid)
        {
            let _ = std::fs::remove_dir_all(dir.at(&name));
        }
    }
}

/// The jobserver style of the build command, when it is GNU make (4.2 and
/// later) or ninja (1.13 and later), as its `--version` says; only asked
/// of programs named make, gmake or ninja, so that no other program is
/// ever run with `--version`. None when -j is not ours to place.
fn client_style(config: &Config, command: &[OsString]) -> Option<Style> {
    if !config.append_jobs {
        return None;
    }
    let (_, own) = crate::plan::jobs::place(command, 1, true);
    if own {
        return None;
    }
    let first = PathBuf::from(command.first()?);
    let base = first.file_name()?.to_str()?;
    if !["make", "gmake", "ninja"].contains(&base) {
        return None;
    }
    let program = if first.components().count() > 1 {
        first
    } else {
        crate::probe::ccache::on_path(base)?
    };
    let mut cmd = std::process::Command::new(&program);
    signals::as_started(&mut cmd)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().ok()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut text = String::new();
    child.stdout.take()?.read_to_string(&mut text).ok()?;
    let style = jobserver::style_of(&text);
    trace!(
        "{}: {} ({})",
        program.display(),
        text.lines().next().unwrap_or(""),
        match style {
            Some(Style::Pipe) => "jobserver through inherited descriptors",
            Some(Style::Fifo) => "jobserver through a FIFO",
            None => "not a jobserver client we know; -j N",
        }
    );
    style
}

/// Re-probe every DISTCC_AUTO_REPROBE seconds and apply each round, until
/// `wait` (which waits at most the time it is given) says the build is
/// done, or the live build is finished.
pub(crate) fn rounds(config: &Config, guarded: &signals::Guarded, wait: &dyn Fn(Duration) -> bool) {
    // The compile check ran at the start; rounds ask stats and job port.
    let mut config = config.clone();
    config.check = None;
    crate::ssh::tunnel::keep_between_rounds();
    let mut next = Instant::now() + config.reprobe;
    loop {
        while Instant::now() < next {
            if live().is_none() || wait(next.saturating_duration_since(Instant::now())) {
                return;
            }
        }
        next = Instant::now() + config.reprobe;
        let own = |entry: &str| {
            live()
                .as_ref()
                .map_or(0, |l| u32::try_from(l.in_flight(entry)).unwrap_or(u32::MAX))
        };
        let Ok(plan) = super::probe_minus(&config, false, guarded, false, &own) else {
            continue;
        };
        match live().as_mut() {
            Some(l) => l.apply(&plan, false),
            None => return,
        }
    }
}

/// The conductor's work, in the child `hand_off` forks: see the module's
/// comment.
fn conduct(verbose: bool, command: &[OsString]) -> Result<(), Error> {
    let config = configure(verbose, None)?;
    let guarded = signals::guard(true, OnInterrupt::Die);
    let plan = probe_with(&config, true, &guarded, true)?;
    plan.usable()?;
    say(&emit::summary(&plan));
    let Some(prepared) = prepare(&config, &plan, command)? else {
        // A snapshot, printed as `env` prints one; we then end.
        return super::env::hand_over(&config, &plan, emit::Shell::Sh, Some(command));
    };
    // From here on the shell's trap stops us, not the terminal.
    // SAFETY: setsid and prctl change only this process.
    unsafe {
        libc::setsid();
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let me = Identity::of(std::process::id())
        .ok_or_else(|| Error::Other("cannot read our own identity".into()))?;
    let mut tunnels: Vec<TunnelInfo> = plan.up().filter_map(|w| w.tunnel.clone()).collect();
    tunnels.push(TunnelInfo {
        pid: me.pid,
        uid: me.uid,
        start: me.start,
        destination: String::new(),
        master: None,
        local_distcc_port: 0,
        local_stats_port: 0,
    });
    let asked = listen_for_tally();
    let ccache = crate::probe::ccache::prefix_here();
    let text = emit::build_script(
        &plan,
        &tunnels,
        ccache,
        &prepared.argv,
        Some(&prepared.vars),
    );
    let sent = std::io::stdout()
        .lock()
        .write_all(&text)
        .and_then(|()| std::io::stdout().flush());
    if sent.is_err() {
        // `env` is gone (interrupted): nobody will run the build.
        finish();
        crate::process::registry::close(&[]);
        return Err(Error::Exit(1));
    }
    // Nothing of the caller's stays open here: `$(...)` waits for its
    // pipe to close, and a directory we sit in could not be removed.
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null");
    if let Ok(null) = null {
        sys::put_at(&null, 0);
        sys::put_at(&null, 1);
    }
    let _ = std::env::set_current_dir("/");
    if let Some(asked) = asked {
        answer_tally(asked, verbose || config.debug || config.summary);
    }
    let shell = watched_shell();
    let pidfd = shell.and_then(|s| sys::pidfd(s.pid).filter(|_| !gone(s)));
    rounds(&config, &guarded, &|left| {
        shell_gone(shell, pidfd.as_ref(), left)
    });
    finish();
    crate::process::registry::close(&[]);
    Ok(())
}

/// Wait up to `left` for the watched shell to end (through its pidfd:
/// no wake-ups to look; without one, a look every 100 ms): whether it did.
fn shell_gone(
    shell: Option<Identity>,
    pidfd: Option<&std::os::fd::OwnedFd>,
    left: Duration,
) -> bool {
    match (shell, pidfd) {
        (None, _) => {
            std::thread::sleep(left);
            false
        }
        (Some(shell), Some(fd)) => {
            let ms = i32::try_from(left.as_millis() + 1).unwrap_or(i32::MAX);
            sys::readable([fd.as_raw_fd()], ms)[0] && gone(shell)
        }
        (Some(shell), None) => {
            std::thread::sleep(left.min(Duration::from_millis(100)));
            gone(shell)
        }
    }
}

/// Whether the watched shell is gone (said when it is).
fn gone(shell: Identity) -> bool {
    let here =
        sys::alive(shell.pid) && sys::stat(shell.pid).is_some_and(|s| s.start == shell.start);
    if !here {
        say("the shell that ran the build is gone: the live build's conductor stops");
    }
    !here
}

/// Where we are asked for the build's account: the control socket, for
/// `tally` and `__end`, and two FIFOs, by which `distcc_build` ends the
/// build without starting a process: it writes the build's status to
/// `end`, we print what there is to say on our standard error (the one
/// `distcc_build` gave `env`), and then write `stopped` on `said`, which
/// it reads until then or until we exit (we hold `said` open for writing
/// while we live, so that its reader then sees the end of the file, and
/// at once if we are gone). The lines do not pass through `said`: bash
/// reads a FIFO one byte at a time, two system calls per byte.
struct Asked {
    control: std::os::unix::net::UnixListener,
    fifos: Option<(std::fs::File, std::fs::File)>,
}

/// Open where we are asked (before the shell can ask).
fn listen_for_tally() -> Option<Asked> {
    let path = |name: &str| live().as_ref().map(|l| l.own(name));
    let control = match std::os::unix::net::UnixListener::bind(path("control")?) {
        Ok(l) => l,
        Err(e) => {
            say(&format!("no account after the build: its socket: {e}"));
            return None;
        }
    };
    let fifos = match (sys::fifo(&path("end")?), sys::fifo(&path("said")?)) {
        (Ok(end), Ok(said)) => Some((end, said)),
        (Err(e), _) | (_, Err(e)) => {
            say(&format!(
                "distcc_build will ask through a socket: its FIFOs: {e}"
            ));
            None
        }
    };
    Some(Asked { control, fifos })
}

/// Answer in a thread of our own.
fn answer_tally(asked: Asked, table: bool) {
    let _ = std::thread::Builder::new()
        .name("tally".into())
        .stack_size(256 * 1024)
        .spawn(move || serve_tally(asked, table));
}

/// The shell `distcc_build` runs in (DISTCC_AUTO_SHELL_PID): when it is
/// gone without stopping us (killed outright), so are we. Only watched,
/// never signalled.
fn watched_shell() -> Option<Identity> {
    let pid = crate::config::process_env("DISTCC_AUTO_SHELL_PID")
        .and_then(|p| crate::config::whole::<u32>(&p))
        .filter(|&p| p > 1)?;
    Identity::of(pid)
}

/// What to say after the build, from its own account (and the timeline
/// written, when asked for). `None` when there is no account: the
/// counters then say what they can.
pub(crate) fn summary(build_ok: bool, table: bool) -> Option<Vec<String>> {
    let g = live();
    let l = g.as_ref()?;
    let (account, lost) = l.account()?;
    let mut lines = crate::render::summary::lines(&account, build_ok, table, l.own_jobs, lost);
    if let Some((path, title)) = &l.trace {
        let svg = path.with_file_name(format!(
            "{}.svg",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        let title = format!(
            "{title}: {} compiles in {}",
            account.compiles.len(),
            crate::render::summary::duration(account.span)
        );
        let written = std::fs::write(path, crate::render::trace::chrome(&account))
            .and_then(|()| std::fs::write(&svg, crate::render::trace::svg(&account, &title)));
        lines.push(match written {
            Ok(()) => format!(
                "timeline: {} (open in https://ui.perfetto.dev or chrome://tracing) and {}",
                path.display(),
                svg.display()
            ),
            Err(e) => format!(
                "cannot write the timeline to {}: {e} (DISTCC_AUTO_TRACE)",
                path.display()
            ),
        });
    }
    Some(lines)
}

/// The last line of an answer to `__end`: the conductor has stopped
/// everything of its own, and ends.
const STOPPED: &str = "\0stopped";

/// Answer `tally` and `__end` on our control socket (it sends `STATUS
/// TABLE END`, we send the lines to say; with END 1 we then stop, tunnels
/// and all, and say so last), and `distcc_build` on our FIFOs.
fn serve_tally(asked: Asked, table: bool) {
    use std::os::fd::AsRawFd;
    let end = asked.fifos.as_ref().map_or(-1, |(e, _)| e.as_raw_fd());
    loop {
        let [by_socket, by_fifo] = sys::readable([asked.control.as_raw_fd(), end], -1);
        if by_fifo && let Some((end, said)) = &asked.fifos {
            let mut line = [0u8; 64];
            let n = (&*end).read(&mut line).unwrap_or(0);
            let status = std::str::from_utf8(&line[..n])
                .ok()
                .and_then(|l| crate::config::whole::<i32>(l.trim_end()));
            if let Some(status) = status {
                let text: String = ending(status == 0, table)
                    .iter()
                    .map(|l| format!("distcc-auto: {l}\n"))
                    .collect();
                // Where the shell would have printed them, and in the same
                // order: it prints nothing until it reads `stopped`.
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
                let _ = sys::write_by(said, b"stopped\n", Instant::now() + Duration::from_secs(10));
                std::process::exit(0);
            }
        }
        if by_socket && let Ok((conn, _)) = asked.control.accept() {
            answer(conn);
        }
    }
}

/// One question on the control socket.
fn answer(mut conn: std::os::unix::net::UnixStream) {
    // Only the user we run as may ask (the directory is private too).
    if sys::peer_uid(&conn).ok() != Some(sys::euid()) {
        return;
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut ask = [0u8; 64];
    let n = conn.read(&mut ask).unwrap_or(0);
    let ask = String::from_utf8_lossy(&ask[..n]);
    let mut words = ask.split_whitespace();
    let ok = words.next() == Some("0");
    let table = words.next() == Some("1");
    if words.next() != Some("1") {
        let text = summary(ok, table).map_or_else(String::new, |l| l.join("\n"));
        let _ = conn.write_all(text.as_bytes());
        return;
    }
    let text = ending(ok, table).join("\n");
    let _ = conn.write_all(format!("{text}\n{STOPPED}").as_bytes());
    drop(conn);
    std::process::exit(0);
}

/// The end of the build: what it did, then stop everything of ours, and
/// say so as `kill` would have said it.
fn ending(build_ok: bool, table: bool) -> Vec<String> {
    use crate::process::identity::{CONDUCTOR, TUNNEL, stopped};
    let mut said = summary(build_ok, table).unwrap_or_default();
    said.extend(
        crate::process::registry::pids()
            .iter()
            .map(|&p| stopped(TUNNEL, p)),
    );
    finish();
    crate::process::registry::close(&[]);
    said.push(stopped(CONDUCTOR, std::process::id()));
    said
}

/// `tally` in a live build: ask its conductor (at DISTCC_AUTO_DISTCC_DIR)
/// for the build's own account, and with `end` that it then stop (true
/// when it says it did). `None` when it cannot answer.
pub fn ask_summary(build_ok: bool, table: bool, end: bool) -> Option<(Vec<String>, bool)> {
    let dir = crate::config::process_env("DISTCC_AUTO_DISTCC_DIR").filter(|d| !d.is_empty())?;
    match ask(&dir, build_ok, table, end) {
        Ok(answer) => Some(answer),
        Err(why) => {
            crate::warn(&format!(
                "the live build's conductor did not answer ({why}): counting from the workers' counters"
            ));
            // Its directory, if it is gone (killed outright: give it a
            // moment to finish dying; one still alive is stopped by `kill`,
            // which has it clean up).
            let pid = dir
                .rsplit_once("/build.")
                .and_then(|(_, p)| crate::config::whole::<u32>(p));
            let until = Instant::now() + Duration::from_secs(1);
            while pid.is_some_and(sys::alive) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Ok(dir) = crate::state::rundir::private_dir() {
                sweep(dir);
            }
            None
        }
    }
}

fn ask(dir: &str, build_ok: bool, table: bool, end: bool) -> Result<(Vec<String>, bool), String> {
    use std::os::unix::net::UnixStream;
    // Through a descriptor: the socket's path may be longer than a socket
    // address holds.
    let held = std::fs::File::open(dir).map_err(|e| format!("{dir}: {e}"))?;
    let path = format!("/proc/self/fd/{}/control", held.as_raw_fd());
    let mut conn = UnixStream::connect(path).map_err(|e| format!("connecting: {e}"))?;
    let uid = sys::peer_uid(&conn).map_err(|e| format!("its user: {e}"))?;
    if uid != sys::euid() {
        return Err(format!("served by uid {uid}"));
    }
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let ask = format!(
        "{} {} {}\n",
        if build_ok { 0 } else { 1 },
        u8::from(table),
        u8::from(end)
    );
    conn.write_all(ask.as_bytes())
        .map_err(|e| format!("asking: {e}"))?;
    let mut text = String::new();
    conn.read_to_string(&mut text)
        .map_err(|e| format!("reading: {e}"))?;
    let (text, stopped) = match text.strip_suffix(STOPPED) {
        Some(t) => (t.strip_suffix('\n').unwrap_or(t).to_string(), true),
        None => (text, false),
    };
    if text.is_empty() && !stopped {
        return Err("an empty answer".into());
    }
    Ok((text.lines().map(str::to_string).collect(), stopped))
}
