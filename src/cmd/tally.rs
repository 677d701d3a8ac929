use std::time::Instant;

use crate::config::{self, Config};
use crate::error::Error;
use crate::render::tally;
use crate::{say, set_debug};

use super::cpus;

/// `tally`: after a build, how many compiles ran remotely. `end`
/// (`__end`): a live build's conductor then stops, with its tunnels, and
/// `stopped` on stdout tells `distcc_build` that nothing is left to kill.
pub fn tally(verbose: bool, status: i32, end: bool) -> Result<(), Error> {
    // The configuration `env` already read and warned about: read quietly.
    let config = Config::read(config::process_env, cpus(), None)?;
    set_debug(verbose || config.debug);
    // A live build's conductor has the build's own account.
    let table = verbose || config.debug || config.summary;
    if let Some((lines, stopped)) = super::conduct::ask_summary(status == 0, table, end) {
        for line in lines {
            say(&line);
        }
        if stopped {
            super::print("stopped\n")?;
        }
        return Ok(());
    }
    let value = config::process_env("DISTCC_AUTO_COUNTERS").unwrap_or_default();
    let before = tally::parse(&value).map_err(|e| {
        Error::Config(format!(
            "DISTCC_AUTO_COUNTERS: {e} (set by distcc-auto env)"
        ))
    })?;
    say_tally(&before, &config, status == 0);
    Ok(())
}

/// Read the counters again and say how many compiles ran remotely.
pub(crate) fn say_tally(before: &[tally::Baseline], config: &Config, build_ok: bool) {
    let after = crate::probe::counters::read(before, Instant::now() + config.timeout);
    for line in tally::summarize(before, &after, build_ok) {
        say(&line);
    }
}
