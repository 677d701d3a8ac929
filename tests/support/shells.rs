//! Real bash, zsh and fish with the shell files sourced, and the demo.

use std::path::Path;
use std::process::{Command, Stdio};

use super::*;

/// The shells `distcc_build` (bash and zsh's file) is tested in.
pub const SHELLS: [&str; 2] = ["bash", "zsh"];
/// The shells `eval "$(distcc-auto env)"` is tested in: any POSIX shell.
pub const EVAL_SHELLS: [&str; 3] = ["bash", "zsh", "dash"];

/// Our shell file for `sh` ("bash" or "zsh").
pub fn shell_file(sh: &str) -> String {
    root()
        .join(if sh == "bash" {
            "shell/distcc.sh"
        } else {
            "shell/distcc.zsh"
        })
        .display()
        .to_string()
}

/// `sh` (no rc files, `set -u`) that sources our shell file and then runs
/// `script`, with the test binary first on PATH and no DISTCC_* variable
/// from outside; inside `ns` when given.
pub fn shell(sh: &str, ns: Option<&Netns>, script: &str) -> Command {
    let mut c = match ns {
        Some(ns) => ns.cmd(sh),
        None => Command::new(sh),
    };
    c.args(
        if sh == "bash" {
            ["--noprofile", "--norc", "-u", "-c"]
        } else {
            ["-f", "-u", "-c", ""]
        }
        .iter()
        .filter(|a| !a.is_empty()),
    );
    c.arg(format!(". '{}'\n{script}", shell_file(sh)));
    without_distcc_vars(&mut c);
    let bin_dir = Path::new(BIN).parent().unwrap();
    c.env(
        "PATH",
        format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    c.stdin(Stdio::null());
    c
}

/// A copy of demo/ (the small C program) in a fresh directory.
pub fn demo_copy(tag: &str) -> TempDir {
    let t = TempDir::new(tag);
    for f in std::fs::read_dir(root().join("demo")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, t.path().join(f.file_name().unwrap())).unwrap();
    }
    std::fs::create_dir_all(t.path().join(".distcc")).unwrap();
    t
}
