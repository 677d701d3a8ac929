//! Plain data about workers, filled in by `probe` and `ssh`, read by
//! `plan` and `render`: no I/O here.
//!
//! - `fault`: why a worker could not be used, and its stable reason code.
//! - `stats`: a distccd `--stats` reply, parsed with bounds.
//! - `found`: how a worker is reached and what its probe found.

pub mod fault;
pub mod found;
pub mod stats;
