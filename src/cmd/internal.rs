//! The commands we run ourselves, never a user: `__hold` (a run's hold on
//! a shared ssh master) and `__keep` (a master's keeper). Neither returns.

use std::ffi::OsString;
use std::path::Path;

use crate::ssh::mux::Forward;

/// `__hold RECORD LISTEN:PORT...`: see `ssh::holder`.
pub fn hold(record: &Path, forwards: &[Forward]) -> ! {
    crate::ssh::holder::run(record, forwards)
}

/// `__keep SOCKET -- SSH...`: see `ssh::master::keep`.
pub fn keep(socket: &Path, ssh: &[OsString]) -> ! {
    crate::ssh::master::keep(socket, ssh)
}
