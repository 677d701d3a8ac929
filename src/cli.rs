//! The command line, parsed with lexopt into a value; nothing here exits.

use lexopt::prelude::*;

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Probe and print shell code for `eval`.
    Env,
    /// Probe and print a table (or JSON) for a person.
    Hosts {
        json: bool,
    },
    /// Kill the tunnels in DISTCC_AUTO_TUNNEL_PIDS and print `unset` lines.
    Kill,
    Help,
    Version,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub command: Command,
    pub verbose: bool,
}

pub const USAGE: &str = "\
Usage: distcc-auto [-v] env
       distcc-auto [-v] hosts [--json]
       distcc-auto [-v] kill
       distcc-auto --help | --version

Probe the distcc workers in DISTCC_AUTO_HOSTS and size DISTCC_HOSTS and -j.

Commands:
  env         probe, then print DISTCC_HOSTS, DISTCC_AUTO_JOBS and
              DISTCC_AUTO_TUNNEL_PIDS as shell code: eval \"$(distcc-auto env)\"
  hosts       probe, then show every worker, what it reported and why it
              was used or dropped; its ssh tunnels close before it exits
  kill        stop the ssh tunnels in DISTCC_AUTO_TUNNEL_PIDS and print
              unset lines: eval \"$(distcc-auto kill)\"

Options:
  --json          with hosts: print one JSON document
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
  DISTCC_AUTO_DEBUG                         1 traces like --verbose

Exit status: 0 ok, 96 configuration error, 97 nothing to build on,
2 bad command line, 1 kill refused a PID, 128+N interrupted by signal N.
See distcc-auto(1).
";

pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Args, Error> {
    let mut parser = lexopt::Parser::from_args(args);
    let mut command = None;
    let mut verbose = false;
    let mut json = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => command = Some(Command::Help),
            Short('V') | Long("version") => command = Some(Command::Version),
            Short('v') | Long("verbose") => verbose = true,
            Long("json") => json = true,
            Value(v) if command.is_none() => {
                command = Some(match v.to_str() {
                    Some("env") => Command::Env,
                    Some("hosts") => Command::Hosts { json: false },
                    Some("kill") => Command::Kill,
                    Some("help") => Command::Help,
                    _ => return Err(usage(format!("unknown command '{}'", v.to_string_lossy()))),
                })
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let command = match command {
        Some(Command::Hosts { .. }) => Command::Hosts { json },
        Some(c @ (Command::Help | Command::Version)) => c,
        Some(c) if json => {
            return Err(usage(format!(
                "--json goes with 'hosts', not '{}'",
                name(&c)
            )));
        }
        Some(c) => c,
        None => return Err(usage("no command given".into())),
    };
    Ok(Args { command, verbose })
}

fn name(c: &Command) -> &'static str {
    match c {
        Command::Env => "env",
        Command::Hosts { .. } => "hosts",
        Command::Kill => "kill",
        Command::Help => "help",
        Command::Version => "version",
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
        assert_eq!(
            p(&["env"]).unwrap(),
            Args {
                command: Command::Env,
                verbose: false
            }
        );
        assert_eq!(
            p(&["-v", "env"]).unwrap(),
            Args {
                command: Command::Env,
                verbose: true
            }
        );
        assert_eq!(
            p(&["hosts", "--json", "--verbose"]).unwrap(),
            Args {
                command: Command::Hosts { json: true },
                verbose: true
            }
        );
        assert_eq!(
            p(&["hosts"]).unwrap().command,
            Command::Hosts { json: false }
        );
        assert_eq!(p(&["kill"]).unwrap().command, Command::Kill);
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
            (&["env", "extra"][..], "unexpected argument"),
            (&["--bogus"][..], "invalid option '--bogus'"),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{args:?}: {e}");
            assert!(e.to_string().contains("--help"));
        }
    }
}
