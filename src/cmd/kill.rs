use crate::config::{self};
use crate::error::Error;
use crate::process::identity;
use crate::process::signals::{self};
use crate::render::shell as emit;
use crate::render::shell::Shell;
use crate::say;

use super::print;

/// `kill`: stop the tunnels that `env` handed over, print `unset` lines.
pub fn kill(shell: Shell, all: bool) -> Result<(), Error> {
    // Cleanup, often run from a trap while the terminal hangs up or Ctrl-C
    // is pressed again: the same signal must not cut it short.
    signals::ignore();
    let pids = config::process_env("DISTCC_AUTO_TUNNEL_PIDS").unwrap_or_default();
    let ids = config::process_env("DISTCC_AUTO_TUNNEL_IDS").unwrap_or_default();
    let (mut said, mut refused) = identity::stop(&pids, &ids);
    if all {
        let (s, r) = crate::ssh::master::stop_all();
        said.extend(s);
        refused.extend(r);
    }
    for line in said {
        say(&line);
    }
    print(&emit::unset_script(shell))?;
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "kill: {} (DISTCC_AUTO_TUNNEL_PIDS='{}')",
            refused.join("; "),
            pids.escape_debug()
        )))
    }
}
