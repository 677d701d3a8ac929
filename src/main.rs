//! distcc-auto: probe distcc workers and size DISTCC_HOSTS and -j.
//!
//! `main` parses the command line, sets the process up, dispatches to
//! `app`, and turns every failure into its exit code.

use std::process::ExitCode;

use distcc_auto::cli::{self, Command};
use distcc_auto::error::Error;
use distcc_auto::{app, say, sys};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Exit(code)) => ExitCode::from(code),
        Err(e) => {
            say(&format!("error: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}

fn run() -> Result<(), Error> {
    let args = cli::parse(std::env::args_os().skip(1))?;
    // Before any thread starts: one thread per worker must fit an address
    // space limit, and one socket per worker a file limit.
    sys::few_malloc_arenas();
    sys::raise_file_limit();
    let v = args.verbose;
    match args.command {
        Command::Help => app::print(cli::USAGE),
        Command::Version => app::print(&format!("distcc-auto {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Env => app::env(v, args.shell),
        Command::Hosts {
            format,
            check,
            watch: None,
        } => app::hosts(v, format, check),
        Command::Hosts {
            format,
            check,
            watch: Some(every),
        } => app::watch(v, format, check, every),
        Command::Kill { all } => app::kill(args.shell, all),
        Command::Hold { forwards } => distcc_auto::hold::run(&forwards),
        Command::Keep { socket, ssh } => distcc_auto::master::keep(&socket, &ssh),
        Command::Tally { status } => app::tally(v, status),
        Command::Exec { command } => app::exec(v, &command),
        Command::Init { shell } => app::init(shell),
    }
}
