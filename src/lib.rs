//! distcc-auto: probe distcc workers and size DISTCC_HOSTS and -j.
//!
//! Where things are decided, by folder (each `mod.rs` opens with its map):
//!
//! - `cli`: what was typed. `cmd/`: one file per command, the only place
//!   that joins configuration, I/O and rendering.
//! - `config/`: the `DISTCC_AUTO_*` variables and the host grammar (pure).
//! - `worker/`: plain data about a worker: how it is reached, what it
//!   answered, why it failed (pure; the stats reply parser lives here).
//! - `plan/`: every decision about slots, order and `-j` (pure: it reads
//!   only `config` and `worker`).
//! - `account/`: what a live build did, from distcc's state files: the
//!   ledger of its compiles, slots and workers, and its hints (pure).
//! - `render/`: shell code for `eval`, tables, JSON, the post-build line,
//!   the build's summary and timeline (trace JSON, SVG).
//! - `probe/`: asking workers (sockets, threads, deadlines, the checks).
//! - `ssh/`: a route to an `ssh://` worker: its own tunnel or a shared
//!   master, and the helpers that hold them.
//! - `process/`: starting, tracking and stopping the processes we start.
//! - `state/`: what we keep on disk: the private run directory, the memory
//!   of unanswered workers, distcc's own backoff files.
//! - `live/`: a live build (the build's own DISTCC_DIR and hosts file, the
//!   relays that can end a dead worker's compiles, the jobserver, the
//!   follower of distcc's state files), driven by `cmd::conduct`.
//! - `sys`: the FFI, and only that.
//!
//! Layers only point down: `cmd` > `live` > `probe` > `ssh` >
//! `process`/`state` > `render` > `account`, `plan` > `worker` > `config`
//! (a test checks the graph). It is a library so that the fuzz targets
//! and property tests reach the parsers.

pub mod account;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod discover;
pub mod error;
pub mod live;
pub mod plan;
pub mod probe;
pub mod process;
pub mod render;
pub mod ssh;
pub mod state;
pub mod sys;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};

static DEBUG: AtomicBool = AtomicBool::new(false);

/// Turn tracing on or off (-v, DISTCC_AUTO_DEBUG=1).
pub fn set_debug(on: bool) {
    DEBUG.store(on, Ordering::Relaxed);
}

pub fn debugging() -> bool {
    DEBUG.load(Ordering::Relaxed)
}

/// A line on stderr. Unlike `eprintln!`, a stderr that is gone (a closed
/// terminal) is no reason to stop: the cleanup that follows matters more.
/// One write per line: stderr is unbuffered, and the build's distcc
/// clients write to it too, so a line made of pieces could be split.
pub fn say(msg: &str) {
    use std::io::Write;
    let line = format!("distcc-auto: {msg}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A trace line on stderr, when tracing is on.
pub fn debug(msg: &str) {
    if debugging() {
        say(&format!("debug: {msg}"));
    }
}

/// `trace!(...)`: like `debug(&format!(...))`, but the message is only
/// built when tracing is on (1024 workers make 1024 messages).
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::debugging() {
            $crate::debug(&format!($($arg)*));
        }
    };
}

/// One line on stderr that the next call replaces ("" erases it): what a
/// slow probe is waiting for, for a person at a terminal. Cut to the
/// terminal's width, so that it never wraps.
pub fn progress(msg: &str) {
    use std::io::Write;
    let width = stderr_width();
    let line: String = format!("distcc-auto: {msg}")
        .chars()
        .take(width.saturating_sub(1))
        .collect();
    let text = if msg.is_empty() {
        "\r\x1b[K".to_string()
    } else {
        format!("\r\x1b[K{line}")
    };
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Whether stderr is a terminal (where a progress line may be drawn).
pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

fn stderr_width() -> usize {
    sys::terminal_columns(libc::STDERR_FILENO).unwrap_or(80)
}

pub fn warn(msg: &str) {
    say(&format!("warning: {msg}"));
}
