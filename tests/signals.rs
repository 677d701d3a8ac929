//! What we start for the user gets the signal state it would have had
//! without us, and Ctrl-C on a real terminal (tmux) stops a real ninja
//! build through `exec` and through fish's `distcc_build`.

use std::process::Command;

use crate::support::*;

/// SigBlk and SigIgn of the command `exec` runs (grep itself: a shell
/// would clear its mask), for signals 1 to 31 (glibc's own real-time
/// signals are not ours to judge).
fn signal_state(shell_prelude: &str) -> (u64, u64) {
    let d = Distccd::start(1);
    let mut c = Command::new("sh");
    c.arg("-c").arg(format!(
        "{shell_prelude} exec '{BIN}' exec grep -E '^Sig(Blk|Ign)' /proc/self/status"
    ));
    c.env("DISTCC_AUTO_HOSTS", d.entry())
        .env("DISTCC_AUTO_APPEND_JOBS", "0")
        .env("DISTCC_AUTO_BACKOFF_PERIOD", "0");
    let r = run_cmd(c);
    r.ok();
    let field = |name: &str| {
        let line = r.stdout.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap() & 0x7fff_ffff
    };
    (field("SigBlk:"), field("SigIgn:"))
}

#[test]
fn exec_runs_the_command_with_the_signal_state_it_was_given() {
    // Nothing blocked or ignored, as a shell starts a program.
    assert_eq!(signal_state(""), (0, 0));
    // What the user ignored stays ignored (nohup, trap ''), and only that.
    let term = 1 << (libc::SIGTERM - 1);
    let hup = 1 << (libc::SIGHUP - 1);
    assert_eq!(signal_state("trap '' TERM HUP;"), (0, term | hup));
}

/// A ninja build whose one edge runs `sleep SECS`, in a directory of its
/// own.
fn slow_ninja(secs: u32) -> TempDir {
    let t = TempDir::new("ninja");
    std::fs::write(
        t.path().join("build.ninja"),
        format!("rule slow\n  command = sleep {secs} && touch $out\nbuild out: slow\n"),
    )
    .unwrap();
    t
}

pub(crate) fn sleeping(secs: u32) -> bool {
    Command::new("pgrep")
        .args(["-f", &format!("^sleep {secs}$")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Run `line` in bash on a tmux terminal, press Ctrl-C once the build's
/// edge runs, and return what the screen says after it.
pub(crate) fn ctrl_c_on_a_terminal(what: &str, dir: &TempDir, line: &str, secs: u32) -> String {
    let session = format!("dauto-sig-{what}-{}", std::process::id());
    let script = dir.path().join("run.sh");
    // The script survives the Ctrl-C (as an interactive shell does) to say
    // how the build ended; the build gets the default SIGINT.
    std::fs::write(
        &script,
        format!("trap : INT\n{line}\necho \"exit=$?\"\nsleep 60\n"),
    )
    .unwrap();
    let tmux = |args: &[&str]| {
        let mut c = Command::new("tmux");
        c.args(["-L", &session]).args(args);
        run_cmd(c)
    };
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-c",
        &dir.path().display().to_string(),
        &format!("bash --norc {}", script.display()),
    ])
    .ok();
    wait_for(20, "the build's edge running", || sleeping(secs));
    tmux(&["send-keys", "-t", &session, "C-c"]);
    let screen = || tmux(&["capture-pane", "-p", "-t", &session]).stdout;
    let mut shown = String::new();
    let mut done = false;
    for _ in 0..100 {
        shown = screen();
        if shown.contains("exit=") && !sleeping(secs) {
            done = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    tmux(&["kill-server"]);
    assert!(
        done,
        "{what}: Ctrl-C did not stop the build in 10 s:\n{shown}"
    );
    shown
}

#[test]
fn ctrl_c_on_a_terminal_stops_a_ninja_build_through_exec_and_fish() {
    let d = Distccd::start(1);
    let hosts = format!(
        "DISTCC_AUTO_HOSTS='{}' DISTCC_AUTO_BACKOFF_PERIOD=0",
        d.entry()
    );
    let t = slow_ninja(3141);
    let s = ctrl_c_on_a_terminal("exec", &t, &format!("{hosts} '{BIN}' exec ninja"), 3141);
    assert!(!s.contains("exit=0"), "{s}");
    let t = slow_ninja(3142);
    let fish = format!(
        "PATH='{}':$PATH {hosts} fish --no-config -c 'source {}/shell/distcc.fish; distcc_build ninja'",
        std::path::Path::new(BIN).parent().unwrap().display(),
        root().display()
    );
    let s = ctrl_c_on_a_terminal("fish", &t, &fish, 3142);
    assert!(!s.contains("exit=0"), "{s}");
}
