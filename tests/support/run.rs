//! Running the built binary with a clean environment, and what it did.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// No DISTCC_* variable of the test runner's reaches `c`, and every run
/// waits for every worker unless a test asks otherwise: the memory of dead
/// workers would make one test's timeout the next one's. Builds are
/// snapshots (DISTCC_AUTO_LIVE=0: DISTCC_HOSTS and -j N, which most tests
/// check) unless a test sets DISTCC_AUTO_LIVE=1 (`live.rs`, and the live
/// runs of the shell-state and signal tests).
pub fn without_distcc_vars(c: &mut Command) {
    for (k, _) in std::env::vars() {
        if k.starts_with("DISTCC") {
            c.env_remove(k);
        }
    }
    c.env("DISTCC_AUTO_BACKOFF_PERIOD", "0");
    c.env("DISTCC_AUTO_LIVE", "0");
}

/// The binary with every DISTCC_* variable removed, plus `vars`.
pub fn cmd(args: &[&str], vars: &[(&str, &str)]) -> Command {
    cmd_in(None, args, vars)
}

/// The same, inside a network namespace when one is given.
pub fn cmd_in(ns: Option<&Netns>, args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut c = match ns {
        Some(ns) => ns.cmd(BIN),
        None => Command::new(BIN),
    };
    c.args(args);
    without_distcc_vars(&mut c);
    c.env("DISTCC_DIR", std::env::temp_dir());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.stdin(Stdio::null());
    c
}

/// `cmd` as another user (`nobody`) runs it: from a copy of the binary in
/// a directory that user can enter (the checkout may be in one it cannot,
/// such as under /root or a mode-0700 directory). Keep the `TempDir`.
pub fn cmd_as_nobody(args: &[&str], vars: &[(&str, &str)]) -> (Command, TempDir) {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let t = TempDir::new("nobody");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = t.path().join("distcc-auto");
    std::fs::copy(BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = Command::new(&bin);
    c.args(args);
    without_distcc_vars(&mut c);
    c.env("DISTCC_DIR", t.path()).current_dir(t.path());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.stdin(Stdio::null()).uid(65534).gid(65534);
    (c, t)
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
    pub what: String,
}

impl Run {
    /// The cells of line `n` of stdout (0 is a table's header).
    pub fn cells(&self, n: usize) -> Vec<&str> {
        self.stdout
            .lines()
            .nth(n)
            .unwrap_or_else(|| panic!("no line {n}: {}", self.show()))
            .split_whitespace()
            .collect()
    }

    /// The `hosts` table row of `entry` (the first stdout line it starts),
    /// with the indented lines below it (address, reason), joined by
    /// spaces: what a person reads as that worker's row.
    pub fn row(&self, entry: &str) -> String {
        let mut lines = self.stdout.lines().skip_while(|l| !l.starts_with(entry));
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("no row {entry}: {}", self.show()));
        let mut row = format!("{first} ");
        for more in lines.take_while(|l| l.starts_with("    ")) {
            row.push_str(more.trim());
            row.push(' ');
        }
        row
    }

    /// Exit 0, or fail showing what ran and what it said.
    #[track_caller]
    pub fn ok(&self) -> &Run {
        self.expect(0, format_args!(""))
    }

    /// Assert the exit status; on failure show `what` and the whole run.
    #[track_caller]
    pub fn expect(&self, code: i32, what: std::fmt::Arguments) -> &Run {
        assert_eq!(self.code, code, "{what}{}", self.show());
        self
    }

    /// The value `env` exports for `name` (unquoted: the values tests
    /// read have no quotes inside).
    #[track_caller]
    pub fn export(&self, name: &str) -> String {
        let prefix = format!("export {name}=");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name}\n{}", self.show()))
            .trim_end_matches(';')
            .trim_matches('\'')
            .to_string()
    }

    /// The peak memory (VmHWM, KiB) that `-v` traces: the binary's own, where
    /// a parent's wait4 rusage would count the process it was forked from.
    #[track_caller]
    pub fn peak_kib(&self) -> u64 {
        self.stderr
            .split("peak memory ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no peak memory in trace: {}", self.show()))
    }

    /// A failure message that shows everything.
    pub fn show(&self) -> String {
        format!(
            "{}\nexit {}\nstdout:\n{}\nstderr:\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

pub fn run_cmd(mut c: Command) -> Run {
    let what = format!("{c:?}");
    let start = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().expect("run");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        took: start.elapsed(),
        what,
    }
}

pub fn run(args: &[&str], vars: &[(&str, &str)]) -> Run {
    run_cmd(cmd(args, vars))
}
