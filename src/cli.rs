//! The command line, parsed with lexopt into a value; nothing here exits.

use std::ffi::OsString;
use std::time::Duration;

use lexopt::prelude::*;

use crate::config::CheckKind;
use crate::error::Error;
use crate::render::shell::Shell;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Probe and print shell code for `eval`; with `build` (`env --
    /// COMMAND...`, what `distcc_build` runs), also the build's argument
    /// list with the job count placed, as `set --` for bash and zsh.
    Env {
        build: Option<Vec<OsString>>,
    },
    /// Probe and print a table (or JSON) for a person; with `watch`, again
    /// and again at that interval.
    Hosts {
        format: Format,
        check: Option<CheckKind>,
        watch: Option<Duration>,
    },
    /// Kill the tunnels in DISTCC_AUTO_TUNNEL_PIDS and print `unset` lines;
    /// with `all`, also end every shared ssh master of this user's.
    Kill {
        all: bool,
    },
    /// After a build that exited with `status`: count the remote compiles
    /// since `env` (DISTCC_AUTO_COUNTERS) and say so on stderr.
    /// `end`: internal `__end`, what `distcc_build` runs after the build:
    /// the same, and a live build's conductor then stops itself and its
    /// tunnels (`stopped` on stdout when it did).
    Tally {
        status: i32,
        end: bool,
    },
    /// Probe, run the command with -j N and DISTCC_HOSTS, stop the tunnels,
    /// exit as the command did.
    Exec {
        command: Vec<std::ffi::OsString>,
        /// `--trace FILE`: as DISTCC_AUTO_TRACE=FILE.
        trace: Option<std::path::PathBuf>,
    },
    /// Print the shell file that defines `distcc_build`, for a binary
    /// installed without them (`cargo install`).
    Init {
        shell: &'static str,
    },
    Help,
    Version,
    /// Internal: hold a shared ssh master's control connection (stdin)
    /// for these forwards; see `hold`.
    Hold {
        /// Where it records itself (its PID appended), so that the next
        /// run cancels its forwards if it is killed outright.
        record: std::path::PathBuf,
        forwards: Vec<crate::ssh::mux::Forward>,
    },
    /// Internal: start a shared ssh master with this command and be its
    /// parent until it ends; see `master::keep`.
    Keep {
        socket: std::path::PathBuf,
        ssh: Vec<std::ffi::OsString>,
    },
}

/// How `hosts` shows what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table that fits the terminal.
    Table,
    /// A table with every column on one line (--wide).
    Wide,
    /// One JSON document (--json).
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub verbose: bool,
    /// With env and kill: whose syntax to print.
    pub shell: Shell,
}

/// `--help`: the usage, then the variables (from `config::vars`), then
/// the exit statuses.
pub fn help() -> String {
    let (usage, exits) = USAGE.split_at(USAGE.find("Exit status:").unwrap_or(USAGE.len()));
    format!("{usage}{}\n{exits}", crate::config::vars::help())
}

const USAGE: &str = "\
Usage: distcc-auto [-v] env [--shell sh|fish]
       distcc-auto [-v] hosts [--json | --wide] [--check[=toolchain]] [--watch [SECONDS]]
       distcc-auto [-v] kill [--all] [--shell sh|fish]
       distcc-auto [-v] tally [BUILD_STATUS]
       distcc-auto [-v] exec [--trace FILE] [--] COMMAND [ARGS...]
       distcc-auto init bash|zsh|fish
       distcc-auto --help | --version

Probe the distcc workers in DISTCC_AUTO_HOSTS and size DISTCC_HOSTS and -j.

Commands:
  env         probe, then print DISTCC_HOSTS, DISTCC_AUTO_JOBS and
              DISTCC_AUTO_TUNNEL_PIDS as shell code: eval \"$(distcc-auto env)\"
  hosts       probe, then show every worker, what it reported and why it
              was used or dropped; its ssh tunnels close before it exits
  kill        stop the ssh tunnels in DISTCC_AUTO_TUNNEL_PIDS and print
              unset lines: eval \"$(distcc-auto kill)\"; --all also ends
              every shared ssh master (DISTCC_AUTO_SSH_PERSIST) now
  exec        probe, run COMMAND ARGS with -j N (before the first --, none
              when ARGS hold a job count) and DISTCC_HOSTS, stop the
              tunnels, say how many compiles ran remotely, and exit as
              COMMAND did: for fish, CI scripts, Makefiles and IDEs
  init        print the shell code that defines distcc_build, for a binary
              installed by cargo: eval \"$(distcc-auto init bash)\", or
              distcc-auto init fish | source
  tally       after a build (run by distcc_build): count the compiles the
              workers in DISTCC_AUTO_COUNTERS did since env, on stderr;
              warn when a build that exited BUILD_STATUS 0 sent none

Options:
  --json          with hosts: print one JSON document (schema 1)
  --wide          with hosts: every column on one line, however wide
                  (by default the table fits COLUMNS or the terminal)
  --check[=KIND]  with hosts: also compile a test file on each worker
                  (as DISTCC_AUTO_CHECK=compile); =toolchain also compares
                  the worker's compiler with this machine's
  --watch [SECS]  with hosts: redraw every SECS seconds (at least and by
                  default 2) until Ctrl-C
  --all           with kill: also end this user's shared ssh masters
  --trace FILE    with exec: write a live build's timeline to FILE (Chrome
                  trace JSON) and FILE.svg (as DISTCC_AUTO_TRACE=FILE)
  --shell SHELL   with env and kill: print sh (the default; also bash and
                  zsh) or fish syntax: distcc-auto env --shell fish | source
  -v, --verbose   trace every step on stderr (also DISTCC_AUTO_DEBUG=1)
  -h, --help      print this help
  -V, --version   print the version

Exit status: 0 ok, 96 configuration error, 97 nothing to build on,
2 bad command line, 1 kill refused a PID or env could not write,
128+N interrupted by signal N.
See distcc-auto(1).
";

/// What was typed, before it is judged: the command word, the values
/// after it, and every option, wherever it stood.
#[derive(Debug, Default)]
struct Typed {
    word: Option<OsString>,
    /// Values after the word (`init bash`, `tally 2`), or everything after
    /// it for the commands that take a command line (`exec`, `__hold`,
    /// `__keep`).
    rest: Vec<OsString>,
    /// `env -- COMMAND...`: the build command `distcc_build` will run.
    build: Option<Vec<OsString>>,
    help: bool,
    version: bool,
    verbose: bool,
    format: Option<Format>,
    shell: Option<Shell>,
    check: Option<CheckKind>,
    watch: Option<Duration>,
    all: bool,
}

/// Parse the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Args, Error> {
    judge(read(args)?)
}

/// The command line as typed: options anywhere, their values checked.
fn read(args: impl IntoIterator<Item = OsString>) -> Result<Typed, Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut t = Typed::default();
    loop {
        if t.word.as_ref().is_some_and(|w| w == "env") && t.build.is_none() {
            let mut raw = parser.raw_args()?;
            if raw.peek().is_some_and(|a| a == "--") {
                raw.next();
                t.build = Some(raw.collect());
            }
        }
        let Some(arg) = parser.next()? else {
            return Ok(t);
        };
        match arg {
            Short('h') | Long("help") => t.help = true,
            Short('V') | Long("version") => t.version = true,
            Short('v') | Long("verbose") => t.verbose = true,
            Long("all") => t.all = true,
            Long(f @ ("json" | "wide")) => {
                let f = if f == "json" {
                    Format::Json
                } else {
                    Format::Wide
                };
                if t.format.is_some_and(|g| g != f) {
                    return Err(usage("--json and --wide go separately".into()));
                }
                t.format = Some(f);
            }
            Long("check") => t.check = Some(check_kind(parser.optional_value())?),
            Long("shell") => t.shell = Some(shell_name(&parser.value()?)?),
            Long("watch") => t.watch = Some(watch_value(&mut parser)?),
            Value(v) if t.word.is_none() => {
                let line = matches!(v.to_str(), Some("exec" | "__hold" | "__keep"));
                t.word = Some(v);
                if line {
                    t.rest = parser.raw_args()?.collect();
                }
            }
            Value(v) => t.rest.push(v),
            _ => return Err(arg.unexpected().into()),
        }
    }
}

/// `--check` or `--check=compile|toolchain`.
fn check_kind(v: Option<OsString>) -> Result<CheckKind, Error> {
    match v.as_ref().map(|v| v.to_str()) {
        None | Some(Some("compile")) => Ok(CheckKind::Compile),
        Some(Some("toolchain")) => Ok(CheckKind::Toolchain),
        Some(_) => Err(usage(format!(
            "--check='{}': expected compile or toolchain",
            v.unwrap_or_default().to_string_lossy()
        ))),
    }
}

fn shell_name(v: &OsString) -> Result<Shell, Error> {
    match v.to_str() {
        Some("sh" | "bash" | "zsh") => Ok(Shell::Sh),
        Some("fish") => Ok(Shell::Fish),
        _ => Err(usage(format!(
            "--shell '{}': expected sh, bash, zsh or fish",
            v.to_string_lossy()
        ))),
    }
}

/// `--watch`, `--watch=N` or `--watch N`.
fn watch_value(parser: &mut lexopt::Parser) -> Result<Duration, Error> {
    let value = match parser.optional_value() {
        Some(v) => Some(v),
        None => {
            let mut raw = parser.raw_args()?;
            // Anything that starts like a number is meant as the interval,
            // and judged as one (`--watch 0x10` and `--watch=0x10` get the
            // same answer).
            let numeric = raw
                .peek()
                .and_then(|a| a.to_str())
                .is_some_and(|a| a.starts_with(|c: char| c.is_ascii_digit() || c == '.'));
            if numeric { raw.next() } else { None }
        }
    };
    match value {
        None => Ok(MIN_WATCH),
        Some(v) => watch_interval(&v.to_string_lossy()),
    }
}

/// What will be done: the command and the options that go with it.
fn judge(t: Typed) -> Result<Args, Error> {
    let command = if t.help {
        Command::Help
    } else if t.version {
        Command::Version
    } else {
        let word = t
            .word
            .as_ref()
            .ok_or_else(|| usage("no command given".into()))?;
        command(word, &t)?
    };
    let wrong = |opt: &str, with: &str| {
        Err(usage(format!(
            "{opt} goes with {with}, not '{}'",
            name(&command)
        )))
    };
    let hosts = matches!(command, Command::Hosts { .. });
    let kill = matches!(command, Command::Kill { .. });
    let help = matches!(command, Command::Help | Command::Version);
    if !hosts && !help {
        match (t.format, t.check, t.watch) {
            (Some(Format::Json), ..) => return wrong("--json", "'hosts'"),
            (Some(_), ..) => return wrong("--wide", "'hosts'"),
            (_, Some(_), _) => return wrong("--check", "'hosts'"),
            (.., Some(_)) => return wrong("--watch", "'hosts'"),
            _ => {}
        }
    }
    if t.all && !kill && !help {
        return wrong("--all", "'kill'");
    }
    if t.shell.is_some() && !kill && !help && !matches!(command, Command::Env { .. }) {
        return wrong("--shell", "'env' or 'kill'");
    }
    if t.shell == Some(Shell::Fish) && matches!(command, Command::Env { build: Some(_) }) {
        return Err(usage(
            "env -- COMMAND prints code for bash and zsh; fish runs the build with 'exec'".into(),
        ));
    }
    Ok(Args {
        command,
        verbose: t.verbose,
        shell: t.shell.unwrap_or(Shell::Sh),
    })
}

/// The command a word names, with the values that follow it.
fn command(word: &OsString, t: &Typed) -> Result<Command, Error> {
    let one_value = |what: &str| -> Result<Option<&OsString>, Error> {
        match &t.rest[..] {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            [_, extra, ..] => Err(usage(format!(
                "{what}: unexpected argument '{}'",
                extra.to_string_lossy()
            ))),
        }
    };
    let none = |what: &str| match t.rest.first() {
        None => Ok(()),
        Some(v) => Err(usage(format!(
            "{what}: unexpected argument '{}'",
            v.to_string_lossy()
        ))),
    };
    Ok(match word.to_str() {
        Some("env") => {
            none("env")?;
            if t.build.as_ref().is_some_and(Vec::is_empty) {
                return Err(usage("env --: no command given".into()));
            }
            Command::Env {
                build: t.build.clone(),
            }
        }
        Some("hosts") => {
            none("hosts")?;
            Command::Hosts {
                format: t.format.unwrap_or(Format::Table),
                check: t.check,
                watch: t.watch,
            }
        }
        Some("kill") => {
            none("kill")?;
            Command::Kill { all: t.all }
        }
        Some("help") => Command::Help,
        Some("tally") => Command::Tally {
            status: tally_status(one_value("tally")?)?,
            end: false,
        },
        Some("__end") => Command::Tally {
            status: tally_status(one_value("__end")?)?,
            end: true,
        },
        Some("init") => Command::Init {
            shell: init_shell(one_value("init")?)?,
        },
        Some("exec") => {
            let (trace, command) = exec_line(&t.rest)?;
            Command::Exec { command, trace }
        }
        Some(w) if w.starts_with("__") => return internal(w, t),
        _ => {
            return Err(usage(format!(
                "unknown command '{}'",
                word.to_string_lossy()
            )));
        }
    })
}

/// The internal commands (`__hold`, `__keep`): what
/// distcc-auto runs of itself, never typed by a person.
fn internal(word: &str, t: &Typed) -> Result<Command, Error> {
    Ok(match word {
        "__hold" => match t.rest.split_first() {
            Some((record, rest)) if std::path::Path::new(record).is_absolute() => Command::Hold {
                record: record.into(),
                forwards: hold_forwards(rest)?,
            },
            _ => return Err(usage("__hold: expected RECORD LISTEN:CONNECT...".into())),
        },
        "__keep" => match &t.rest[..] {
            [socket, dashes, ssh @ ..] if dashes == "--" && !ssh.is_empty() => Command::Keep {
                socket: socket.into(),
                ssh: ssh.to_vec(),
            },
            _ => return Err(usage("__keep: expected SOCKET -- COMMAND...".into())),
        },
        _ => return Err(usage(format!("unknown command '{word}'"))),
    })
}

/// `exec [--trace FILE] [--] COMMAND...`: everything after that is the
/// command, options included.
fn exec_line(rest: &[OsString]) -> Result<(Option<std::path::PathBuf>, Vec<OsString>), Error> {
    let (trace, rest) = match rest {
        [flag, file, rest @ ..] if flag == "--trace" && !file.is_empty() => {
            (Some(std::path::PathBuf::from(file)), rest)
        }
        [flag, ..] if flag == "--trace" => {
            return Err(usage("exec: --trace needs a FILE".into()));
        }
        _ => (None, rest),
    };
    let rest = match rest.first() {
        Some(d) if d == "--" => &rest[1..],
        _ => rest,
    };
    if rest.is_empty() {
        return Err(usage("exec: no command given".into()));
    }
    Ok((trace, rest.to_vec()))
}

/// `tally [BUILD_STATUS]`: the build's exit status, 0 when not given.
fn tally_status(v: Option<&OsString>) -> Result<i32, Error> {
    let Some(v) = v else { return Ok(0) };
    v.to_str()
        .and_then(|s| s.parse::<i32>().ok())
        .ok_or_else(|| {
            usage(format!(
                "tally: '{}' is not an exit status",
                v.to_string_lossy()
            ))
        })
}

/// `init bash|zsh|fish`.
fn init_shell(v: Option<&OsString>) -> Result<&'static str, Error> {
    match v.map(|v| v.to_str()) {
        None => Err(usage("init: which shell? bash, zsh or fish".into())),
        Some(Some("bash")) => Ok("bash"),
        Some(Some("zsh")) => Ok("zsh"),
        Some(Some("fish")) => Ok("fish"),
        Some(_) => Err(usage(format!(
            "init '{}': expected bash, zsh or fish",
            v.unwrap_or(&OsString::new()).to_string_lossy()
        ))),
    }
}

/// `__hold LISTEN:CONNECT...`.
fn hold_forwards(args: &[OsString]) -> Result<Vec<crate::ssh::mux::Forward>, Error> {
    args.iter()
        .map(|a| {
            a.to_str()
                .and_then(crate::ssh::mux::Forward::parse)
                .ok_or_else(|| usage("__hold: expected LISTEN:CONNECT ports".into()))
        })
        .collect()
}

fn name(c: &Command) -> &'static str {
    match c {
        Command::Env { .. } => "env",
        Command::Hosts { .. } => "hosts",
        Command::Kill { .. } => "kill",
        Command::Tally { end: true, .. } => "__end",
        Command::Tally { .. } => "tally",
        Command::Exec { .. } => "exec",
        Command::Init { .. } => "init",
        Command::Help => "help",
        Command::Version => "version",
        Command::Hold { .. } => "__hold",
        Command::Keep { .. } => "__keep",
    }
}

/// The shortest `--watch` interval, and its default: distccd answers
/// stats in its main loop, and polling it faster is known to stall it.
pub const MIN_WATCH: Duration = Duration::from_secs(2);

fn watch_interval(v: &str) -> Result<Duration, Error> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= MIN_WATCH.as_secs_f64() && s <= 86400.0 => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(usage(format!(
            "--watch '{v}': the interval must be a number of seconds from {} to 86400 \
             (polling distccd's stats faster can stall it)",
            MIN_WATCH.as_secs()
        ))),
    }
}

fn usage(msg: String) -> Error {
    Error::Usage(format!(
        "{msg}\nTry 'distcc-auto --help' for more information."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, Error> {
        parse(args.iter().map(Into::into))
    }

    #[test]
    fn commands_and_options() {
        let hosts = |json, check: bool, watch| Command::Hosts {
            format: if json { Format::Json } else { Format::Table },
            check: check.then_some(CheckKind::Compile),
            watch,
        };
        assert_eq!(
            p(&["env"]).unwrap(),
            Args {
                command: Command::Env { build: None },
                verbose: false,
                shell: Shell::Sh
            }
        );
        assert_eq!(
            p(&["-v", "env"]).unwrap(),
            Args {
                command: Command::Env { build: None },
                verbose: true,
                shell: Shell::Sh
            }
        );
        assert_eq!(
            p(&["hosts", "--json", "--verbose"]).unwrap(),
            Args {
                command: hosts(true, false, None),
                verbose: true,
                shell: Shell::Sh
            }
        );
        assert_eq!(p(&["hosts"]).unwrap().command, hosts(false, false, None));
        assert_eq!(
            p(&["hosts", "--check"]).unwrap().command,
            hosts(false, true, None)
        );
        assert_eq!(
            p(&["hosts", "--watch"]).unwrap().command,
            hosts(false, false, Some(MIN_WATCH))
        );
        assert_eq!(
            p(&["hosts", "--watch", "5"]).unwrap().command,
            hosts(false, false, Some(Duration::from_secs(5)))
        );
        assert_eq!(
            p(&["hosts", "--watch=2.5", "-v"]).unwrap().command,
            hosts(false, false, Some(Duration::from_millis(2500)))
        );
        assert_eq!(
            p(&["--watch", "hosts"]).unwrap().command,
            hosts(false, false, Some(MIN_WATCH))
        );
        assert_eq!(
            p(&["hosts", "--wide"]).unwrap().command,
            Command::Hosts {
                format: Format::Wide,
                check: None,
                watch: None
            }
        );
        assert_eq!(
            p(&["hosts", "--check=toolchain"]).unwrap().command,
            Command::Hosts {
                format: Format::Table,
                check: Some(CheckKind::Toolchain),
                watch: None
            }
        );
        assert_eq!(p(&["kill"]).unwrap().command, Command::Kill { all: false });
        assert_eq!(
            p(&["kill", "--all"]).unwrap().command,
            Command::Kill { all: true }
        );
        assert!(p(&["env", "--all"]).is_err());
        assert!(p(&["__hold", "/r", "1:2", "x"]).is_err());
        assert!(p(&["__hold", "r", "1:2"]).is_err());
        assert_eq!(
            p(&["__keep", "/d/ssh-1", "--", "/bin/sh", "-c", "x"])
                .unwrap()
                .command,
            Command::Keep {
                socket: "/d/ssh-1".into(),
                ssh: vec!["/bin/sh".into(), "-c".into(), "x".into()]
            }
        );
        for bad in [
            &["__keep", "/d/ssh-1"][..],
            &["__keep", "/d/ssh-1", "--"],
            &["__keep", "/s", "ssh"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        assert_eq!(p(&["env", "--shell", "fish"]).unwrap().shell, Shell::Fish);
        assert_eq!(
            p(&["init", "zsh"]).unwrap().command,
            Command::Init { shell: "zsh" }
        );
        assert_eq!(p(&["kill", "--shell=bash"]).unwrap().shell, Shell::Sh);
        let exec = |args: &[&str]| Command::Exec {
            command: args.iter().map(Into::into).collect(),
            trace: None,
        };
        assert_eq!(
            p(&["exec", "--trace", "t.json", "make"]).unwrap().command,
            Command::Exec {
                command: vec!["make".into()],
                trace: Some("t.json".into())
            }
        );
        assert_eq!(
            p(&["-v", "exec", "make", "-j", "--json"]).unwrap().command,
            exec(&["make", "-j", "--json"])
        );
        assert_eq!(
            p(&["exec", "--", "--weird", "x"]).unwrap().command,
            exec(&["--weird", "x"])
        );
        let build = |args: &[&str]| Command::Env {
            build: Some(args.iter().map(Into::into).collect()),
        };
        assert_eq!(
            p(&["-v", "env", "--", "make", "-k", "--json"])
                .unwrap()
                .command,
            build(&["make", "-k", "--json"])
        );
        assert_eq!(
            p(&["env", "--shell", "bash", "--", "--", "x"])
                .unwrap()
                .command,
            build(&["--", "x"])
        );
        assert!(p(&["env", "--"]).is_err());
        assert!(p(&["env", "--shell=fish", "--", "make"]).is_err());
        assert_eq!(p(&["--help"]).unwrap().command, Command::Help);
        assert_eq!(p(&["env", "-h"]).unwrap().command, Command::Help);
        assert_eq!(p(&["-V"]).unwrap().command, Command::Version);
    }

    #[test]
    fn misuse_is_exit_2_with_a_hint() {
        for (args, want) in [
            (&[][..], "no command given"),
            (&["frobnicate"][..], "unknown command 'frobnicate'"),
            (&["env", "--json"][..], "--json goes with 'hosts'"),
            (&["env", "--wide"][..], "--wide goes with 'hosts'"),
            (&["hosts", "--json", "--wide"][..], "--json and --wide"),
            (&["env", "--check"][..], "--check goes with 'hosts'"),
            (
                &["hosts", "--watch", "1"][..],
                "--watch '1': the interval must be",
            ),
            (&["hosts", "--watch=x"][..], "--watch 'x'"),
            (
                &["hosts", "--watch=0x10"][..],
                "--watch '0x10': the interval",
            ),
            (
                &["hosts", "--watch", "0x10"][..],
                "--watch '0x10': the interval",
            ),
            (&["env", "extra"][..], "unexpected argument"),
            (&["exec"][..], "exec: no command given"),
            (&["hosts", "--check=gcc"][..], "--check='gcc'"),
            (&["env", "--shell", "csh"][..], "--shell 'csh'"),
            (&["init"][..], "init: which shell?"),
            (&["init", "tcsh"][..], "init 'tcsh'"),
            (
                &["hosts", "--shell", "fish"][..],
                "--shell goes with 'env' or 'kill'",
            ),
            (&["exec", "--"][..], "exec: no command given"),
            (&["exec", "--trace"][..], "exec: --trace needs a FILE"),
            (&["exec", "--trace", "f"][..], "exec: no command given"),
            (&["--bogus"][..], "invalid option '--bogus'"),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{args:?}: {e}");
            assert!(e.to_string().contains("--help"));
        }
    }
}
