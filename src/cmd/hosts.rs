use std::io;
use std::time::{Duration, Instant};

use crate::cli::Format;
use crate::config::{CheckKind, Config};
use crate::error::Error;
use crate::plan::Plan;
use crate::probe;
use crate::process::registry;
use crate::process::signals::{self, OnInterrupt};
use crate::render::table::{self, Layout};
use crate::render::{json, shell as emit};

use super::{configure, print, probe_and_plan, probe_with, write_stdout};

/// `hosts`: probe, then a table (or JSON) for a person.
pub fn hosts(verbose: bool, format: Format, check: Option<CheckKind>) -> Result<(), Error> {
    let config = configure(verbose, check)?;
    let plan = probe_and_plan(&config, false, OnInterrupt::Die)?;
    // A person's look: every tunnel closes before we exit.
    registry::close(&[]);
    print(&render(&plan, &config, format, None))?;
    plan.usable()
}

/// The one place that turns a plan into what `hosts` shows.
fn render(plan: &Plan, config: &Config, format: Format, round: Option<json::Round>) -> String {
    let dups = &config.hosts.duplicates;
    let layout = || match format {
        Format::Wide => Layout::Wide,
        _ => Layout::Fit(terminal_width()),
    };
    match (format, round) {
        (Format::Json, round) => json::hosts(plan, dups, config.timeout, round),
        (_, None) => table::hosts(plan, dups, layout()),
        (_, Some(r)) => table::watch(plan, r.previous, layout()),
    }
}

/// `hosts --watch`: probe, draw, wait, until Ctrl-C (exit 0, after closing
/// the tunnels of the current round) or until the output cannot be written
/// (`| head`: the tunnels close and it ends). On a terminal each round
/// redraws the screen; otherwise rounds are appended.
pub fn watch(
    verbose: bool,
    format: Format,
    check: Option<CheckKind>,
    every: Duration,
) -> Result<(), Error> {
    use std::io::IsTerminal;
    let config = configure(verbose, check)?;
    let guarded = signals::guard(true, OnInterrupt::ExitZero);
    // One login per ssh worker for the whole watch, not one per round.
    crate::ssh::tunnel::keep_between_rounds();
    let tty = io::stdout().is_terminal();
    let mut previous = emit::Counters::new();
    for round in 1.. {
        let started = Instant::now();
        let plan = probe_with(&config, false, &guarded, true)?;
        let json = format == Format::Json;
        let this = json::Round {
            number: round,
            previous: &previous,
        };
        let body = render(&plan, &config, format, Some(this));
        let body = if json {
            body
        } else {
            format!(
                "distcc-auto hosts --watch: every {}, round {round}, {} of {} workers up\n\n{body}",
                probe::secs(every),
                plan.up().count(),
                plan.workers.len()
            )
        };
        previous = emit::counters(&plan);
        // Clear and home only on a terminal; a pipe gets plain blocks.
        let frame = if tty && !json {
            format!("\x1b[H\x1b[2J{body}")
        } else {
            format!("{body}\n")
        };
        if let Err(e) = write_stdout(&frame) {
            registry::close(&[]);
            return match e.kind() {
                // The reader has seen enough (`| head`): a normal end.
                io::ErrorKind::BrokenPipe => Ok(()),
                _ => Err(Error::Other(format!("writing to stdout: {e}"))),
            };
        }
        std::thread::sleep(every.saturating_sub(started.elapsed()));
    }
    Ok(())
}

/// The width to fit: `COLUMNS`, else the terminal's, else 80.
fn terminal_width() -> usize {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&n| n >= 20)
    {
        return n;
    }
    crate::sys::terminal_columns(libc::STDOUT_FILENO)
        .filter(|&n| n >= 20)
        .unwrap_or(80)
}
