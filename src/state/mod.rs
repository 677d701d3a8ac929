//! What we keep on disk between runs.
//!
//! - `rundir`: the private run directory (`$XDG_RUNTIME_DIR/distcc-auto`,
//!   else `$TMPDIR/distcc-auto-UID`), proven ours before use.
//! - `unanswered`: our memory of workers that did not answer
//!   (DISTCC_AUTO_BACKOFF_PERIOD), so that the next run does not wait.
//! - `distcc_backoff`: distcc's own backoff files, cleared for workers we
//!   have just seen answer.

pub mod distcc_backoff;
pub mod rundir;
pub mod unanswered;
