//! Turning a plan into text: nothing here decides or does I/O.
//!
//! - `shell`: the code `eval` (or fish's `source`) reads; the only caller
//!   of `shell_escape`, and the cells the tables and the JSON share.
//! - `table`: the `hosts` tables for a person.
//! - `json`: `hosts --json`.
//! - `tally`: the compile counters handed to the shell and the post-build
//!   line made from them.

pub mod json;
pub mod shell;
pub mod summary;
pub mod table;
pub mod tally;
pub mod trace;
