//! The processes we start are ours until they are reaped, with all their
//! children; a process we did not start is never signalled.
//!
//! - `ended`: how a process ended, one type for every reaper.
//! - `registry`: every process we start, by group, and how it is stopped.
//! - `signals`: what a stopping signal does to us and to what we started.
//! - `identity`: proving that a printed PID is still the tunnel we started
//!   before `kill` signals it.

pub mod ended;
pub mod identity;
pub mod registry;
pub mod signals;
