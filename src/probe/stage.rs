//! What a probe thread is doing, so that a timeout can say where it hung
//! and the progress line what is being waited for.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    Resolving,
    Connecting,
    Reading,
    JobPort,
    Tunnel,
    Checking,
    /// Waiting for a file descriptor from the budget.
    Waiting,
}

const ALL: [Stage; 7] = [
    Stage::Resolving,
    Stage::Connecting,
    Stage::Reading,
    Stage::JobPort,
    Stage::Tunnel,
    Stage::Checking,
    Stage::Waiting,
];

impl Stage {
    /// The stage as a reason says it, and in a word or two for the
    /// progress line.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Stage::Resolving => ("resolving the name", "resolving"),
            Stage::Connecting => ("connecting to the stats port", "connecting"),
            Stage::Reading => ("waiting for the stats reply", "stats reply"),
            Stage::JobPort => ("connecting to the job port", "job port"),
            Stage::Tunnel => ("starting the ssh tunnel", "ssh login"),
            Stage::Checking => ("compiling the check file", "compile check"),
            Stage::Waiting => (
                "waiting for a free file descriptor: raise ulimit -n",
                "file limit",
            ),
        }
    }
}

/// A stage shared between a probe thread (which sets it) and the main
/// thread (which reads it when the deadline passes).
#[derive(Debug)]
pub struct StageCell(AtomicU8);

impl StageCell {
    pub fn new(s: Stage) -> StageCell {
        StageCell(AtomicU8::new(s as u8))
    }

    pub fn set(&self, s: Stage) {
        self.0.store(s as u8, Ordering::Relaxed);
    }

    /// Sets `s` and returns the stage before it.
    pub fn swap(&self, s: Stage) -> Stage {
        ALL[usize::from(self.0.swap(s as u8, Ordering::Relaxed))]
    }

    pub fn get(&self) -> Stage {
        // Only `set` and `swap` store, and only a Stage's discriminant.
        ALL[usize::from(self.0.load(Ordering::Relaxed))]
    }
}
