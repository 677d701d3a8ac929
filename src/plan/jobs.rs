//! Where `-j N` goes in a build command, the same rule as the shell
//! functions': before the first `--` (what follows belongs to the program,
//! as in `cargo test -- --nocapture`), else at the end; nowhere when the
//! arguments before any `--` already hold a job count (`-j`, `-jN`,
//! `-j N`, `--jobs N`, `--jobs=N`): the user's count is kept.

use std::ffi::OsString;

/// The command with `-j jobs` placed, and whether the user's own job count
/// was kept instead. `append` false (DISTCC_AUTO_APPEND_JOBS=0) adds none.
pub fn place(cmd: &[OsString], jobs: u32, append: bool) -> (Vec<OsString>, bool) {
    let before_dd = cmd.iter().take_while(|a| *a != "--");
    let own = before_dd
        .clone()
        .any(|a| is_job_count(&a.to_string_lossy()));
    if own || !append {
        return (cmd.to_vec(), own && append);
    }
    let at = cmd.iter().position(|a| a == "--").unwrap_or(cmd.len());
    let mut out = cmd[..at].to_vec();
    out.push("-j".into());
    out.push(jobs.to_string().into());
    out.extend_from_slice(&cmd[at..]);
    (out, false)
}

/// What is said when the user's own job count is kept.
pub fn kept_own(jobs: u32) -> String {
    format!("the command has its own job count; the probed -j {jobs} is not used")
}

fn is_job_count(arg: &str) -> bool {
    arg == "-j"
        || arg == "--jobs"
        || arg.starts_with("--jobs=")
        || arg
            .strip_prefix("-j")
            .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &str, append: bool) -> (String, bool) {
        let cmd: Vec<OsString> = args.split(' ').map(OsString::from).collect();
        let (out, own) = place(&cmd, 3, append);
        let out: Vec<String> = out
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        (out.join(" "), own)
    }

    #[test]
    fn the_same_rule_as_the_shell_functions() {
        assert_eq!(p("make all", true), ("make all -j 3".into(), false));
        assert_eq!(
            p("cargo test -- --nocapture", true),
            ("cargo test -j 3 -- --nocapture".into(), false)
        );
        assert_eq!(p("prog -- -j 9", true), ("prog -j 3 -- -j 9".into(), false));
        for own in [
            "make -j 7",
            "make -j7",
            "make -j",
            "cargo --jobs 5",
            "cargo --jobs=5 -- x",
        ] {
            assert_eq!(p(own, true), (own.into(), true), "{own}");
        }
        assert_eq!(
            p("make -jobless", true),
            ("make -jobless -j 3".into(), false)
        );
        assert_eq!(p("make all", false), ("make all".into(), false));
        assert_eq!(p("make -j 2", false), ("make -j 2".into(), false));
    }
}
