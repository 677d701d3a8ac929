//! The command line, parsed with lexopt into a value; nothing here exits.

use std::time::Duration;

use lexopt::prelude::*;

use crate::config::CheckKind;
use crate::error::Error;
use crate::render::shell::Shell;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Probe and print shell code for `eval`.
    Env,
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
    Tally {
        status: i32,
    },
    /// Probe, run the command with -j N and DISTCC_HOSTS, stop the tunnels,
    /// exit as the command did.
    Exec {
        command: Vec<std::ffi::OsString>,
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

pub const USAGE: &str = "\
Usage: distcc-auto [-v] env [--shell sh|fish]
       distcc-auto [-v] hosts [--json | --wide] [--check[=toolchain]] [--watch [SECONDS]]
       distcc-auto [-v] kill [--all] [--shell sh|fish]
       distcc-auto [-v] tally [BUILD_STATUS]
       distcc-auto [-v] exec [--] COMMAND [ARGS...]
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
  --shell SHELL   with env and kill: print sh (the default; also bash and
                  zsh) or fish syntax: distcc-auto env --shell fish | source
  -v, --verbose   trace every step on stderr (also DISTCC_AUTO_DEBUG=1)
  -h, --help      print this help
  -V, --version   print the version

Environment:
  DISTCC_AUTO_HOSTS                         workers: [tcp://]HOST[:PORT[:STATS_PORT]]
                                            or ssh://[USER@]HOST[:SSH_PORT][/PORT[/STATS_PORT]]
  DISTCC_AUTO_TIMEOUT                       seconds for the whole probe (2)
  DISTCC_AUTO_COMPILER_MEMORY               MiB per compiler, 0 = no memory scaling (1024)
  DISTCC_AUTO_EARLY_LOCAL_JOBS              local jobs when a worker is up (0)
  DISTCC_AUTO_FALLBACK_LOCAL_JOBS           local jobs when no worker is up (CPUs)
  DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS  extra preprocessor jobs (CPUs)
  DISTCC_AUTO_SSH_COMMAND                   ssh client and options for ssh:// workers (ssh)
  DISTCC_AUTO_SSH_TIMEOUT                   seconds to set up and probe an ssh worker (5)
  DISTCC_AUTO_SSH_PERSIST                   seconds a shared ssh master per worker stays
                                            after its last use, 0 = none (0)
  DISTCC_AUTO_CHECK                         compile: drop workers that cannot compile;
                                            toolchain: also those whose compiler differs (none)
  DISTCC_AUTO_CHECK_TOOLCHAIN               drop or warn: what a differing compiler gets (drop)
  DISTCC_AUTO_CHECK_COMPILER                compiler for the check, as distcc names it (cc)
  DISTCC_AUTO_CHECK_TIMEOUT                 seconds for the compile check (5)
  DISTCC_AUTO_LOAD_AWARE                    1: take slots a busy worker cannot spare (0)
  DISTCC_AUTO_NO_STATS_SLOTS                slots of a worker without --stats, 0 = drop it (4)
  DISTCC_AUTO_APPEND_JOBS                   0: distcc_build adds no -j N to the command (1)
  DISTCC_AUTO_BACKOFF_PERIOD                seconds a worker that let the deadline pass
                                            is not waited for, 0 = off (60)
  DISTCC_AUTO_DEBUG                         1 traces like --verbose (0)

Exit status: 0 ok, 96 configuration error, 97 nothing to build on,
2 bad command line, 1 kill refused a PID or env could not write,
128+N interrupted by signal N.
See distcc-auto(1).
";

pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Args, Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut command = None;
    let mut verbose = false;
    let mut format = None;
    let mut shell = None;
    let mut check = None;
    let mut watch = None;
    let mut all = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => command = Some(Command::Help),
            Short('V') | Long("version") => command = Some(Command::Version),
            Short('v') | Long("verbose") => verbose = true,
            Long("json") | Long("wide") => {
                let f = if arg == Long("json") {
                    Format::Json
                } else {
                    Format::Wide
                };
                if format.is_some_and(|g| g != f) {
                    return Err(usage("--json and --wide go separately".into()));
                }
                format = Some(f);
            }
            Long("all") => all = true,
            Long("check") => {
                // `--check` or `--check=compile|toolchain`.
                check = Some(match parser.optional_value() {
                    None => CheckKind::Compile,
                    Some(v) => match v.to_str() {
                        Some("compile") => CheckKind::Compile,
                        Some("toolchain") => CheckKind::Toolchain,
                        _ => {
                            return Err(usage(format!(
                                "--check='{}': expected compile or toolchain",
                                v.to_string_lossy()
                            )));
                        }
                    },
                });
            }
            Long("shell") => {
                let v = parser.value()?;
                shell = Some(match v.to_str() {
                    Some("sh" | "bash" | "zsh") => Shell::Sh,
                    Some("fish") => Shell::Fish,
                    _ => {
                        return Err(usage(format!(
                            "--shell '{}': expected sh, bash, zsh or fish",
                            v.to_string_lossy()
                        )));
                    }
                });
            }
            Long("watch") => {
                // `--watch`, `--watch=N` or `--watch N`.
                let value = match parser.optional_value() {
                    Some(v) => Some(v),
                    None => {
                        let mut raw = parser.raw_args()?;
                        // Anything that starts like a number is meant as
                        // the interval, and judged as one (`--watch 0x10`
                        // and `--watch=0x10` get the same answer).
                        let numeric = raw.peek().and_then(|a| a.to_str()).is_some_and(|a| {
                            a.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                        });
                        if numeric { raw.next() } else { None }
                    }
                };
                watch = Some(match value {
                    None => MIN_WATCH,
                    Some(v) => watch_interval(&v.to_string_lossy())?,
                });
            }
            Value(v) if command == Some(Command::Init { shell: "" }) => {
                let shell = match v.to_str() {
                    Some("bash") => "bash",
                    Some("zsh") => "zsh",
                    Some("fish") => "fish",
                    _ => {
                        return Err(usage(format!(
                            "init '{}': expected bash, zsh or fish",
                            v.to_string_lossy()
                        )));
                    }
                };
                command = Some(Command::Init { shell });
            }
            Value(v) if matches!(command, Some(Command::Tally { .. })) => {
                let status = v.to_str().and_then(|s| s.parse::<i32>().ok());
                command = Some(Command::Tally {
                    status: status.ok_or_else(|| {
                        usage(format!(
                            "tally: '{}' is not an exit status",
                            v.to_string_lossy()
                        ))
                    })?,
                });
            }
            Value(v) if command.is_none() && v == "__hold" => {
                let forwards = parser
                    .raw_args()?
                    .map(|a| {
                        a.to_str()
                            .and_then(crate::ssh::mux::Forward::parse)
                            .ok_or_else(|| usage("__hold: expected LISTEN:CONNECT ports".into()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                command = Some(Command::Hold { forwards });
            }
            Value(v) if command.is_none() && v == "__keep" => {
                let mut rest = parser.raw_args()?;
                let socket = rest.next().map(std::path::PathBuf::from);
                let dashes = rest.next();
                let ssh: Vec<std::ffi::OsString> = rest.collect();
                match (socket, dashes) {
                    (Some(socket), Some(d)) if d == "--" && !ssh.is_empty() => {
                        command = Some(Command::Keep { socket, ssh });
                    }
                    _ => return Err(usage("__keep: expected SOCKET -- COMMAND...".into())),
                }
            }
            Value(v) if command.is_none() && v == "exec" => {
                // Everything after `exec` is the command, options included.
                let mut rest: Vec<std::ffi::OsString> = parser.raw_args()?.collect();
                if rest.first().is_some_and(|a| a == "--") {
                    rest.remove(0);
                }
                if rest.is_empty() {
                    return Err(usage("exec: no command given".into()));
                }
                command = Some(Command::Exec { command: rest });
            }
            Value(v) if command.is_none() => {
                command = Some(match v.to_str() {
                    Some("env") => Command::Env,
                    Some("hosts") => Command::Hosts {
                        format: Format::Table,
                        check: None,
                        watch: None,
                    },
                    Some("kill") => Command::Kill { all: false },
                    Some("tally") => Command::Tally { status: 0 },
                    Some("init") => Command::Init { shell: "" },
                    Some("help") => Command::Help,
                    _ => return Err(usage(format!("unknown command '{}'", v.to_string_lossy()))),
                })
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let command = match command {
        Some(Command::Hosts { .. }) => Command::Hosts {
            format: format.unwrap_or(Format::Table),
            check,
            watch,
        },
        Some(c @ (Command::Help | Command::Version)) => c,
        Some(c) if format.is_some() || check.is_some() || watch.is_some() => {
            let opt = if format == Some(Format::Json) {
                "--json"
            } else if format == Some(Format::Wide) {
                "--wide"
            } else if check.is_some() {
                "--check"
            } else {
                "--watch"
            };
            return Err(usage(format!(
                "{opt} goes with 'hosts', not '{}'",
                name(&c)
            )));
        }
        Some(Command::Init { shell: "" }) => {
            return Err(usage("init: which shell? bash, zsh or fish".into()));
        }
        Some(Command::Kill { .. }) => Command::Kill { all },
        Some(c) => c,
        None => return Err(usage("no command given".into())),
    };
    if all && !matches!(command, Command::Kill { .. }) {
        return Err(usage(format!(
            "--all goes with 'kill', not '{}'",
            name(&command)
        )));
    }
    if shell.is_some() && !matches!(command, Command::Env | Command::Kill { .. }) {
        return Err(usage(format!(
            "--shell goes with 'env' or 'kill', not '{}'",
            name(&command)
        )));
    }
    Ok(Args {
        command,
        verbose,
        shell: shell.unwrap_or(Shell::Sh),
    })
}

fn name(c: &Command) -> &'static str {
    match c {
        Command::Env => "env",
        Command::Hosts { .. } => "hosts",
        Command::Kill { .. } => "kill",
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
                command: Command::Env,
                verbose: false,
                shell: Shell::Sh
            }
        );
        assert_eq!(
            p(&["-v", "env"]).unwrap(),
            Args {
                command: Command::Env,
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
        assert!(p(&["__hold", "1:2", "x"]).is_err());
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
        };
        assert_eq!(
            p(&["-v", "exec", "make", "-j", "--json"]).unwrap().command,
            exec(&["make", "-j", "--json"])
        );
        assert_eq!(
            p(&["exec", "--", "--weird", "x"]).unwrap().command,
            exec(&["--weird", "x"])
        );
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
            (&["--bogus"][..], "invalid option '--bogus'"),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{args:?}: {e}");
            assert!(e.to_string().contains("--help"));
        }
    }
}
