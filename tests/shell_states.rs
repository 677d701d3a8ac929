//! `distcc_build` in the user's shell as it really is: their options, IFS,
//! functions named after builtins, aliases, traps, variable names and
//! working directory. For every state, in real bash and real zsh, through a
//! real sshd and distccd in test-made namespaces, the build must get the
//! same arguments as when the user calls it directly (plus -j), an
//! environment without our variables, its own exit status, and no ssh
//! tunnel may be left. These tests need root (network namespaces).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};

use crate::support::*;

/// The user's build function: records its arguments (with one unquoted
/// expansion, which the user's options and IFS decide) and environment.
const BASH_BUILD: &str = "b() { f=$1; shift; w='p q'; builtin printf '[%s]' $w \"$@\" > \"$f\"; env > \"$f.env\"; return 3; }";

/// One state of the user's shell: code run before sourcing our file (where
/// aliases take effect), code run after it, and the build function.
struct State {
    name: &'static str,
    before: &'static str,
    after: &'static str,
    build: &'static str,
}

const fn st(name: &'static str, before: &'static str, after: &'static str) -> State {
    State {
        name,
        before,
        after,
        build: BASH_BUILD,
    }
}

const BUILTIN_FUNCTIONS: &str = "command() { echo HIJACK >&2; return 1; }; unset() { echo HIJACK >&2; }; \
    trap() { echo HIJACK >&2; }; eval() { echo HIJACK >&2; }; export() { echo HIJACK >&2; }; \
    printf() { echo HIJACK >&2; }; [() { echo HIJACK >&2; }; type() { echo HIJACK >&2; }; \
    kill() { echo HIJACK >&2; }; print() { echo HIJACK >&2; }; emulate() { echo HIJACK >&2; }; \
    typeset() { echo HIJACK >&2; }; whence() { echo HIJACK >&2; }; exit() { echo HIJACK >&2; }";

fn states(sh: &str) -> Vec<State> {
    let mut v = vec![
        st("clean", "", ""),
        st("set -a", "", "set -a"),
        st("IFS=' '", "", "IFS=' '"),
        st("IFS=':'", "", "IFS=:"),
        st("IFS=''", "", "IFS="),
        st("functions named after builtins", "", BUILTIN_FUNCTIONS),
        State {
            name: "a build function with its own EXIT trap",
            before: "",
            after: "",
            build: "b() { builtin trap 'echo user-exit-trap >&2' EXIT; f=$1; shift; w='p q'; builtin printf '[%s]' $w \"$@\" > \"$f\"; env > \"$f.env\"; return 3; }",
        },
        State {
            name: "a build function that assigns common names",
            before: "",
            after: "",
            build: "b() { bin=$HOME/bin; pids=(); dir=/; try=x; out=x; njobs=1; var=x; \
                    __distcc_auto_pids=; __distcc_auto_bin=/nonexistent; DISTCC_AUTO_TUNNEL_PIDS=; \
                    f=$1; shift; w='p q'; builtin printf '[%s]' $w \"$@\" > \"$f\"; env > \"$f.env\"; return 3; }",
        },
        State {
            name: "a build function that changes directory",
            before: "",
            after: "",
            build: "b() { cd /; f=$1; shift; w='p q'; builtin printf '[%s]' $w \"$@\" > \"$f\"; env > \"$f.env\"; return 3; }",
        },
    ];
    if sh == "bash" {
        v.push(st("set -euo pipefail", "", "set -euo pipefail"));
        v.push(st(
            "aliases for builtins and for distcc-auto",
            "shopt -s expand_aliases; alias trap='echo HIJACK >&2'; alias printf='echo HIJACK >&2'; \
             alias unset='echo HIJACK >&2'; alias exit='echo HIJACK >&2'",
            "alias distcc-auto=false",
        ));
    } else {
        v.push(st(
            "sh_word_split ksh_arrays nounset err_exit",
            "",
            "setopt sh_word_split ksh_arrays nounset err_exit",
        ));
        v.push(st("emulate sh", "", "emulate sh"));
        v.push(st(
            "aliases for builtins and for distcc-auto",
            "alias trap='echo HIJACK >&2'; alias print='echo HIJACK >&2'; alias unset='echo HIJACK >&2'",
            "alias distcc-auto=false",
        ));
    }
    v
}

/// The script: the state, then the direct call (what the user expects; in
/// a subshell, as a build function may change directory), then the same
/// through distcc_build, whose status is printed.
fn script(s: &State, file: &str, out: &str) -> String {
    format!(
        "{before}\n. {file}\n{build}\n{after}\n\
         (b {out}/direct x 'y z' -j 4) || :\n\
         distcc_build b {out}/via x 'y z' && rc=0 || rc=$?\n\
         \\builtin echo \"rc=$rc\"\n",
        before = s.before,
        build = s.build,
        after = s.after,
    )
}

fn shell_cmd(w: &SshWorker, sh: &str, script: &str, path: &str) -> Command {
    shell_cmd_live(w, sh, script, path, false)
}

/// `shell_cmd`, as a live build (DISTCC_AUTO_LIVE=1) when `live`.
fn shell_cmd_live(w: &SshWorker, sh: &str, script: &str, path: &str, live: bool) -> Command {
    let mut c = w.lan.client.cmd(sh);
    if sh == "bash" {
        c.args(["--noprofile", "--norc", "-c", script]);
    } else {
        c.args(["-f", "-c", script]);
    }
    without_distcc_vars(&mut c);
    c.env("PATH", path)
        .env("DISTCC_AUTO_HOSTS", "ssh://worker")
        .env("DISTCC_AUTO_SSH_COMMAND", w.ssh_command())
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1")
        .env("DISTCC_AUTO_LIVE", if live { "1" } else { "0" })
        .stdin(Stdio::null());
    c
}

fn check(w: &SshWorker, sh: &str, state: &str, r: &Run, out: &std::path::Path) {
    check_live(w, sh, state, r, out, false);
}

/// `check`; a live build's environment has DISTCC_DIR (the conductor's
/// hosts file) instead of DISTCC_HOSTS, and its conductor is stopped.
fn check_live(w: &SshWorker, sh: &str, state: &str, r: &Run, out: &std::path::Path, live: bool) {
    let what = format!("{sh}, {state}, live {live}");
    check!(
        r,
        r.stdout.ends_with("rc=3\n"),
        "{what}: the build's status"
    );
    let direct = std::fs::read_to_string(out.join("direct")).unwrap();
    let via = std::fs::read_to_string(out.join("via"))
        .unwrap_or_else(|e| panic!("{what}: the build did not run ({e}): {}", r.show()));
    assert_eq!(via, direct, "{what}: arguments differ: {}", r.show());
    let env = std::fs::read_to_string(out.join("via.env")).unwrap();
    let ours: Vec<&str> = env
        .lines()
        .filter(|l| l.starts_with("DISTCC_AUTO_") || l.starts_with("__distcc_auto"))
        .collect();
    assert!(ours.is_empty(), "{what}: {ours:?} reached the build");
    if live {
        assert!(
            !env.contains("DISTCC_HOSTS=")
                && env
                    .lines()
                    .any(|l| l.starts_with("DISTCC_DIR=") && l.contains("/build.")),
            "{what}: {env}"
        );
        check!(
            r,
            r.stderr
                .contains("distcc-auto: stopped the live build's conductor"),
            "{what}"
        );
    } else {
        assert!(
            env.lines()
                .any(|l| l.starts_with("DISTCC_HOSTS=--localslots_cpp=1 127.0.0.1:")),
            "{what}: {env}"
        );
    }
    check!(r, !r.stderr.contains("HIJACK"), "{what}");
    check!(
        r,
        r.stderr.contains("distcc-auto: stopped ssh tunnel"),
        "{what}: the cleanup ran"
    );
    w.assert_no_ssh_left(&what);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn distcc_build_survives_the_users_shell_state() {
    need_netns!();
    let w = SshWorker::start();
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let path = format!("{bin_dir}:/usr/bin:/bin");
    for live in [false, true] {
        for sh in ["bash", "zsh"] {
            for s in states(sh) {
                let out = TempDir::new("state");
                let o = out.path().display().to_string();
                let script = script(&s, &shell_file(sh), &o);
                let mut c = shell_cmd_live(&w, sh, &script, &path, live);
                c.current_dir(out.path());
                let r = run_cmd(c);
                check_live(&w, sh, s.name, &r, out.path(), live);
            }
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn relative_install_and_relative_path_survive_a_cd() {
    need_netns!();
    let w = SshWorker::start();
    // `make install` layout, no distcc-auto on PATH; sourced by a relative
    // path, or found through a relative PATH entry; the build changes
    // directory before the cleanup needs the binary again.
    let prefix = TempDir::new("prefix");
    let r = run_cmd({
        let mut c = Command::new("make");
        c.args(["-s", "install-files"])
            .arg(format!("DESTDIR={}", prefix.path().display()))
            .arg("PREFIX=/usr")
            .arg(format!("BIN={BIN}"));
        c.current_dir(root());
        c
    });
    r.ok();
    let cd_build = "b() { cd /; f=$1; shift; w='p q'; builtin printf '[%s]' $w \"$@\" > \"$f\"; env > \"$f.env\"; return 3; }";
    for sh in ["bash", "zsh"] {
        let file = if sh == "bash" {
            "distcc.sh"
        } else {
            "distcc.zsh"
        };
        for (how, rel_file, path, after) in [
            (
                "sourced by a relative path",
                format!("./share/distcc-auto/{file}"),
                "/usr/bin:/bin".to_string(),
                "",
            ),
            (
                "sourced by a relative path, then a cd before the build",
                format!("./share/distcc-auto/{file}"),
                "/usr/bin:/bin".to_string(),
                "cd /",
            ),
            (
                "a relative PATH entry",
                format!("./share/distcc-auto/{file}"),
                "bin:/usr/bin:/bin".to_string(),
                "",
            ),
        ] {
            let out = TempDir::new("rel");
            let o = out.path().display().to_string();
            let s = State {
                name: how,
                before: "",
                after,
                build: cd_build,
            };
            let script = script(&s, &rel_file, &o);
            let mut c = shell_cmd(&w, sh, &script, &path);
            c.current_dir(prefix.path().join("usr"));
            let r = run_cmd(c);
            check(&w, sh, how, &r, out.path());
        }
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ctrl_c_stops_a_calling_script_and_leaves_nothing() {
    need_netns!();
    let w = SshWorker::start();
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    for sh in ["bash", "zsh"] {
        let t = TempDir::new("loop");
        let marker = t.path().join("started");
        let script = format!(
            ". {}\nfor i in 1 2 3; do echo \"start $i\"; distcc_build sh -c 'echo > {m}; sleep 30' sh; done; echo end\n",
            shell_file(sh),
            m = marker.display()
        );
        let mut c = shell_cmd(&w, sh, &script, &format!("{bin_dir}:/usr/bin:/bin"));
        c.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let child = c.spawn().unwrap();
        wait_for(15, "the first build to start", || marker.exists());
        // Ctrl-C: SIGINT to the whole foreground process group.
        signal(-(child.id() as i32), libc::SIGINT);
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stdout, "start 1\n", "{sh}: the loop went on: {stderr}");
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGINT),
            "{sh}: the script dies of SIGINT, as it would for make: {:?} {stderr}",
            out.status
        );
        assert!(stderr.contains("stopped ssh tunnel"), "{sh}: {stderr}");
        w.assert_no_ssh_left(&format!("{sh}: Ctrl-C in a loop"));
    }
}
