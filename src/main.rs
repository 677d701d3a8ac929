//! distcc-auto: probe distcc workers and size DISTCC_HOSTS and -j.
//!
//! `main` parses the command line, sets the process up, dispatches to
//! `app`, and turns every failure into its exit code.

use std::process::ExitCode;

use distcc_auto::cli::{self, Command};
use distcc_auto::error::Error;
use distcc_auto::process::signals;
use distcc_auto::{cmd, sys};

fn main() -> ExitCode {
    ExitCode::from(cmd::exit_code(run()))
}

fn run() -> Result<(), Error> {
    signals::remember_start();
    let args = cli::parse(std::env::args_os().skip(1))?;
    // Before any thread starts: one thread per worker must fit an address
    // space limit, and one socket per worker a file limit.
    sys::few_malloc_arenas();
    sys::raise_file_limit();
    let v = args.verbose;
    match args.command {
        Command::Help => cmd::print(&cli::help()),
        Command::Version => cmd::print(&format!("distcc-auto {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Env { build } => cmd::env::env(v, args.shell, build.as_deref()),
        Command::Hosts {
            format,
            check,
            watch: None,
        } => cmd::hosts::hosts(v, format, check),
        Command::Hosts {
            format,
            check,
            watch: Some(every),
        } => cmd::hosts::watch(v, format, check, every),
        Command::Kill { all } => cmd::kill::kill(args.shell, all),
        Command::Hold { record, forwards } => cmd::internal::hold(&record, &forwards),
        Command::Keep { socket, ssh } => cmd::internal::keep(&socket, &ssh),
        Command::Tally { status, end } => cmd::tally::tally(v, status, end),
        Command::Exec { command, trace } => cmd::exec::exec(v, &command, trace),
        Command::Init { shell } => cmd::init::init(shell),
    }
}
