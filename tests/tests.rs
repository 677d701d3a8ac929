//! The whole suite, one test binary: a module per area, and `support/`
//! for the fixtures they share (real distccd, sshd, namespaces, shells).
//! Tests that need root (network namespaces, another user) are ignored
//! with the reason when not run as root; `make test` includes them as root.

#[macro_use]
mod support;

mod account;
mod build_systems;
mod cluster;
mod docs;
mod ecosystem;
mod env;
mod hostile;
mod layout;
mod lifecycle;
mod live;
mod package;
mod properties;
mod pump;
mod setups;
mod shell;
mod shell_states;
mod signals;
mod ssh;
mod toolchain;
mod warm;
mod zeroconf;
