//! distcc-auto outside bash and zsh: `exec` for CI scripts, Makefiles and
//! IDEs, fish, completions in all three shells, `init`, `make install`
//! without cargo, and the progress line on a terminal. Real distccd, real
//! make, real fish; the ssh parts through a real sshd (root only).

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::*;

fn exec_in(dir: &std::path::Path, hosts: &str, args: &[&str]) -> Command {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    let mut c = cmd(&all, &[("DISTCC_AUTO_HOSTS", hosts)]);
    c.current_dir(dir)
        .env("DISTCC_DIR", dir.join(".distcc"))
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1")
        .env("DISTCC_AUTO_APPEND_JOBS", "1");
    c
}

#[test]
fn exec_builds_through_a_real_worker_and_exits_as_the_command() {
    let d = Distccd::start(3);
    let src = demo_copy("exec");
    let before = d.stat("dcc_compile_ok");
    let r = run_cmd(exec_in(src.path(), &d.entry(), &["make"]));
    r.ok();
    assert_eq!(d.grown("dcc_compile_ok", before, 4), 4, "{}", r.show());
    let flags = std::fs::read_to_string(src.path().join("makeflags.txt")).unwrap();
    assert!(flags.split_whitespace().any(|f| f == "-j4"), "{flags}");
    check!(
        r,
        r.stderr
            .contains("distcc-auto: 4 remote compiles on 1 worker (0 failed)")
    );

    // Its environment: DISTCC_HOSTS, and no DISTCC_AUTO_* variable.
    let t = TempDir::new("exec-env");
    let r = run_cmd(exec_in(
        t.path(),
        &d.entry(),
        &["sh", "-c", "env; exit 7", "sh"],
    ));
    r.expect(7, format_args!("the command's status: "));
    check!(
        r,
        r.stdout
            .lines()
            .any(|l| l == format!("DISTCC_HOSTS=--localslots_cpp=1 127.0.0.1:{}/3,lzo", d.port))
    );
    check!(r, !r.stdout.contains("DISTCC_AUTO_"));

    // -j before `--`, and none when the command has its own.
    let r = run_cmd(exec_in(
        t.path(),
        &d.entry(),
        &["printf", "[%s]", "a", "--", "b"],
    ));
    assert_eq!(r.stdout, "[a][-j][4][--][b]", "{}", r.show());
    let r = run_cmd(exec_in(t.path(), &d.entry(), &["printf", "[%s]", "-j2"]));
    assert_eq!(r.stdout, "[-j2]", "{}", r.show());
    check!(r, r.stderr.contains("has its own job count"));

    // A command that cannot be run: 127, as a shell says.
    let r = run_cmd(exec_in(t.path(), &d.entry(), &["no-such-command-here"]));
    r.expect(127, format_args!(""));
    // No command: usage.
    let r = run(&["exec"], &[("DISTCC_AUTO_HOSTS", &d.entry())]);
    r.expect(2, format_args!(""));
}

#[test]
fn exec_ends_as_its_command_does_on_a_signal() {
    let d = Distccd::start(1);
    let t = TempDir::new("exec-sig");
    let marker = t.path().join("started");
    for (sig, from_terminal) in [(libc::SIGTERM, false), (libc::SIGINT, true)] {
        let _ = std::fs::remove_file(&marker);
        let script = format!("echo > {}; sleep 30", marker.display());
        let mut c = exec_in(t.path(), &d.entry(), &["sh", "-c", &script, "sh"]);
        c.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        let child = c.spawn().unwrap();
        wait_for(10, "the command to start", || marker.exists());
        if from_terminal {
            // Ctrl-C: to the whole process group; the command gets it too.
            signal(-(child.id() as i32), sig);
        } else {
            // kill PID: to distcc-auto only, which passes it on.
            signal(child.id() as i32, sig);
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(sig),
            "dies of the command's signal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(processes("sleep 30").iter().all(|l| l.contains(" ps ")));
}

#[test]
#[ignore = "needs root: network namespaces"]
fn exec_and_fish_through_ssh_leave_no_tunnel() {
    need_netns!();
    let w = SshWorker::start();
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    for (sh, script) in [
        ("bash", "distcc-auto exec make; echo \"rc=$?\""),
        (
            "fish",
            "source SHELL_FILE; distcc_build make; echo \"rc=$status\"; \
             distcc_build sh -c 'exit 5'; echo \"rc5=$status\"",
        ),
    ] {
        let src = demo_copy(sh);
        let before = w.compile_ok(3633);
        let script = script.replace(
            "SHELL_FILE",
            &root().join("shell/distcc.fish").display().to_string(),
        );
        let mut c = w.lan.client.cmd(sh);
        if sh == "fish" {
            c.args(["--no-config", "-c", &script]);
        } else {
            c.args(["--norc", "-c", &script]);
        }
        without_distcc_vars(&mut c);
        c.current_dir(src.path())
            .env("PATH", format!("{bin_dir}:/usr/bin:/bin"))
            .env("DISTCC_DIR", src.path().join(".distcc"))
            .env("DISTCC_AUTO_HOSTS", "ssh://worker")
            .env("DISTCC_AUTO_SSH_COMMAND", w.ssh_command())
            .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1")
            .stdin(Stdio::null());
        let r = run_cmd(c);
        check!(r, r.stdout.contains("rc=0\n"), "{sh}");
        if sh == "fish" {
            check!(r, r.stdout.contains("rc5=5\n"), "{sh}");
        }
        assert_eq!(w.compiled(3633, before, 4), 4, "{sh}: {}", r.show());
        check!(r, r.stderr.contains("stopped 1 ssh tunnel"), "{sh}");
        w.assert_no_ssh_left(sh);
    }
}

#[test]
fn fish_distcc_build_builds_and_passes_status_and_environment() {
    let d = Distccd::start(3);
    let src = demo_copy("fish");
    let before = d.stat("dcc_compile_ok");
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    let script = format!(
        "source {}; distcc_build make; echo \"rc=$status\"; \
         distcc_build sh -c 'env | grep DISTCC; exit 3'; echo \"rc=$status\"; \
         distcc_build; echo \"rc=$status\"; functions -n | string match -e distcc",
        root().join("shell/distcc.fish").display()
    );
    let mut c = Command::new("fish");
    c.args(["--no-config", "-c", &script])
        .current_dir(src.path())
        .env("PATH", format!("{bin_dir}:/usr/bin:/bin"))
        .env("DISTCC_DIR", src.path().join(".distcc"))
        .env("DISTCC_AUTO_HOSTS", d.entry())
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "2")
        // The snapshot's environment (a live build's: `live.rs`).
        .env("DISTCC_AUTO_LIVE", "0")
        .stdin(Stdio::null());
    let r = run_cmd(c);
    assert_eq!(d.grown("dcc_compile_ok", before, 4), 4, "{}", r.show());
    let lines: Vec<&str> = r.stdout.lines().filter(|l| !l.contains(" -c ")).collect();
    check!(
        r,
        lines.contains(&"rc=0") && lines.contains(&"rc=3") && lines.contains(&"rc=96")
    );
    check!(
        r,
        r.stdout.contains(&format!(
            "DISTCC_HOSTS=--localslots_cpp=2 127.0.0.1:{}/3,lzo",
            d.port
        )) && !r.stdout.contains("DISTCC_AUTO_")
    );
    // Sourcing defines distcc_build and nothing else.
    assert_eq!(
        r.stdout.lines().rfind(|l| l.contains("distcc")),
        Some("distcc_build"),
        "{}",
        r.show()
    );
}

#[test]
fn env_for_fish_is_read_back_exactly() {
    // What fish reads from `env --shell fish`, and a corpus of hostile
    // strings through the same quoting: nothing runs, every byte survives.
    let d = Distccd::start(2);
    let r = run(
        &["env", "--shell", "fish"],
        &[("DISTCC_AUTO_HOSTS", &d.entry())],
    );
    r.ok();
    let t = TempDir::new("fish-q");
    let marker = t.path().join("pwned");
    let m = marker.display();
    let script = format!("{}\nprintf '%s|' $DISTCC_HOSTS $DISTCC_AUTO_JOBS", r.stdout);
    let out = Command::new("fish")
        .args(["--no-config", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "--localslots_cpp={} 127.0.0.1:{}/2,lzo|{}|",
            cpus(),
            d.port,
            2 + cpus()
        )
    );
    for hostile in [
        "a'b",
        "back\\slash\\",
        "$(touch M)",
        "(touch M)",
        "; touch M",
        "`touch M`",
        "\\'; touch M; echo '",
        "tab\there",
        "{a,b}",
        "*",
        "~root",
        "",
    ] {
        let value = hostile.replace('M', &m.to_string());
        let q = distcc_auto::render::shell::fish_quote(&value);
        let script = format!("set -gx X {q}; printf '%s' \"$X\"");
        let out = Command::new("fish")
            .args(["--no-config", "-c", &script])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            value,
            "{hostile}: {q}"
        );
        assert!(!marker.exists(), "{hostile} ran");
    }
    let r = run(&["kill", "--shell", "fish"], &[]);
    check!(r, r.stdout.starts_with("set -e DISTCC_HOSTS;\n"));
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn completions_complete_in_each_shell() {
    let dir = root().join("shell/completions");
    // bash: the completion function, as readline would call it.
    let script = format!(
        ". {}/distcc-auto.bash; \
         COMP_WORDS=(distcc-auto ''); COMP_CWORD=1; _distcc_auto; echo \"${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(distcc-auto hosts --w); COMP_CWORD=2; _distcc_auto; echo \"${{COMPREPLY[*]}}\"; \
         COMP_WORDS=(distcc-auto env --shell f); COMP_CWORD=3; _distcc_auto; echo \"${{COMPREPLY[*]}}\"",
        dir.display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("env hosts kill exec tally"), "{text}");
    assert_eq!(lines[1], "--wide --watch", "{text}");
    assert_eq!(lines[2], "fish", "{text}");

    // fish: its own `complete -C`.
    let out = Command::new("fish")
        .args([
            "--no-config",
            "-c",
            &format!(
                "source {}/distcc-auto.fish; complete -C 'distcc-auto '; complete -C 'distcc-auto hosts --j'",
                dir.display()
            ),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["env\t", "hosts\t", "kill\t", "exec\t", "--json\t"] {
        assert!(text.contains(want), "fish: {want:?} in {text}");
    }

    // zsh: a real interactive zsh in a pseudo-terminal, TAB pressed.
    let zpty = r#"
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=($1 \$fpath); autoload -U compinit; compinit -u -D; PS1='>'"
zpty -w -n z "$2"$'\t'
out=
integer i
for (( i = 0; i < 50; i++ )); do
    sleep 0.1
    while zpty -r -t z chunk; do out+=$chunk; done
    [[ $out == *"$3"* ]] && break
done
print -r -- ${out//$'\r'/}
zpty -d z
"#;
    for (typed, want) in [
        ("distcc-auto ho", "distcc-auto hosts "),
        ("distcc-auto hosts --wi", "--wide "),
        ("distcc-auto env --shell fi", "--shell fish "),
    ] {
        let out = Command::new("zsh")
            .args([
                "-f",
                "-c",
                zpty,
                "zpty",
                &dir.display().to_string(),
                typed,
                want,
            ])
            .output()
            .unwrap();
        let text = strip_escapes(&String::from_utf8_lossy(&out.stdout));
        assert!(text.contains(want), "zsh: {typed:?} → {want:?}: {text:?}");
    }
}

/// The text a terminal shows, without its control sequences.
fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if !c.is_control() || c == '\n' {
            out.push(c);
        }
    }
    out
}

#[test]
fn init_prints_a_file_that_defines_distcc_build() {
    for (sh, how) in [
        (
            "bash",
            "eval \"$(distcc-auto init bash)\"; type -t distcc_build",
        ),
        (
            "zsh",
            "eval \"$(distcc-auto init zsh)\"; whence -w distcc_build",
        ),
        (
            "fish",
            "distcc-auto init fish | source; functions -q distcc_build; and echo function",
        ),
    ] {
        let bin_dir = std::path::Path::new(BIN)
            .parent()
            .unwrap()
            .display()
            .to_string();
        let mut c = Command::new(sh);
        match sh {
            "fish" => c.args(["--no-config", "-c", how]),
            "zsh" => c.args(["-f", "-c", how]),
            _ => c.args(["--norc", "-c", how]),
        };
        c.env("PATH", format!("{bin_dir}:/usr/bin:/bin"));
        let r = run_cmd(c);
        check!(r, r.stdout.contains("function"), "{sh}");
    }
    // The same in a file of the user's that is sourced by a relative path:
    // the eval'd text must not take that file for its own (and run it again).
    for (sh, file) in [("bash", "rc.bash"), ("zsh", "rc.zsh")] {
        let dir = TempDir::new("init-rc");
        std::fs::write(
            dir.path().join(file),
            format!(
                "echo ran >> count\neval \"$({BIN} init {sh})\"\n\
                 whence -w distcc_build 2>/dev/null || type -t distcc_build\n"
            ),
        )
        .unwrap();
        let mut c = Command::new(sh);
        c.args(if sh == "zsh" {
            ["-f", "-c"]
        } else {
            ["--norc", "-c"]
        })
        .arg(format!(". ./{file}"))
        .current_dir(dir.path());
        let r = run_cmd(c);
        check!(r, r.stdout.contains("function"), "{sh}");
        let count = std::fs::read_to_string(dir.path().join("count")).unwrap();
        assert_eq!(count, "ran\n", "{sh}: the user's file ran once");
    }
}

#[test]
fn make_install_after_make_runs_no_cargo() {
    let dest = TempDir::new("dest");
    let r = run_cmd({
        let mut c = Command::new("make");
        c.args(["-s", "install"])
            .arg(format!("DESTDIR={}", dest.path().display()))
            .arg("PREFIX=/usr")
            .arg(format!("BIN={BIN}"))
            .arg("CARGO=/bin/false") // any cargo run would fail
            .current_dir(root());
        c
    });
    r.ok();
    for f in [
        "usr/bin/distcc-auto",
        "usr/share/distcc-auto/distcc.sh",
        "usr/share/distcc-auto/distcc.zsh",
        "usr/share/distcc-auto/distcc.fish",
        "usr/share/man/man1/distcc-auto.1",
        "usr/share/bash-completion/completions/distcc-auto",
        "usr/share/zsh/site-functions/_distcc-auto",
        "usr/share/fish/vendor_completions.d/distcc-auto.fish",
    ] {
        assert!(dest.path().join(f).exists(), "{f} not installed");
    }
    // Without a build, install says what to do instead of building.
    let r = run_cmd({
        let mut c = Command::new("make");
        c.args(["-s", "install"])
            .arg(format!("DESTDIR={}", dest.path().display()))
            .arg("BIN=/nonexistent/distcc-auto")
            .current_dir(root());
        c
    });
    assert_ne!(r.code, 0);
    check!(r, r.stderr.contains("run 'make' first"));
}

#[test]
fn a_slow_probe_says_what_it_waits_for_on_a_terminal_only() {
    // FAKE: a stats port that accepts and never answers (a real distccd
    // always answers).
    let silent = FakeStats::new(|c| {
        thread::sleep(Duration::from_secs(5));
        drop(c);
    });
    let d = Distccd::start(1);
    let hosts = format!("{} {}", d.entry(), silent.entry());
    // On a terminal (script(1) gives it one): one line, redrawn, erased.
    let r = run_cmd({
        let mut c = Command::new("script");
        c.args(["-qec", &format!("{BIN} env >/dev/null"), "/dev/null"])
            .env("DISTCC_AUTO_HOSTS", &hosts)
            .env("DISTCC_AUTO_TIMEOUT", "2")
            .env("DISTCC_DIR", std::env::temp_dir())
            .stdin(Stdio::null());
        c
    });
    let want = format!(
        "waiting for 1 of 2 workers: {} (stats reply)",
        silent.entry()
    );
    check!(r, r.stdout.contains(&want));
    check!(r, r.stdout.contains("\r\x1b[K"), "erased");
    // Not on a pipe.
    let r = run(
        &["env"],
        &[("DISTCC_AUTO_HOSTS", &hosts), ("DISTCC_AUTO_TIMEOUT", "2")],
    );
    check!(r, !r.stderr.contains("waiting for 1 of 2"));
}

/// fish lets a user define functions named after builtins that are not
/// reserved words (count, path, functions, echo): distcc_build calls the
/// builtins themselves, found on PATH or beside the file.
#[test]
fn fish_distcc_build_passes_over_the_users_functions_named_like_builtins() {
    let d = Distccd::start(2);
    let before = d.stat("dcc_compile_ok");
    let hijack: String = ["count", "path", "functions", "echo"]
        .iter()
        .map(|n| format!("function {n}; printf 'hijacked-{n}\\n'; return 1; end; "))
        .collect();
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .display()
        .to_string();
    for path in [
        format!("{bin_dir}:/usr/bin:/bin"),
        "/usr/bin:/bin".to_string(),
    ] {
        // Not on PATH: found beside the sourced file (target/debug is not
        // there, so this checkout's binary is linked where it looks).
        let src = demo_copy("fish-funcs");
        let shell_dir = TempDir::new("fish-share");
        let share = shell_dir.path().join("share/distcc-auto");
        std::fs::create_dir_all(&share).unwrap();
        std::fs::create_dir_all(shell_dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(BIN, shell_dir.path().join("bin/distcc-auto")).unwrap();
        std::fs::copy(root().join("shell/distcc.fish"), share.join("distcc.fish")).unwrap();
        let script = format!(
            "{hijack}source {}; distcc_build make; builtin echo \"rc=$status\"",
            share.join("distcc.fish").display()
        );
        let mut c = Command::new("fish");
        c.args(["--no-config", "-c", &script])
            .current_dir(src.path())
            .env("PATH", &path)
            .env("DISTCC_DIR", src.path().join(".distcc"))
            .env("DISTCC_AUTO_HOSTS", d.entry())
            .stdin(Stdio::null());
        let r = run_cmd(c);
        check!(r, r.stdout.ends_with("rc=0\n"), "PATH={path}");
        check!(
            r,
            !r.stdout.contains("hijacked") && !r.stderr.contains("hijacked")
        );
    }
    assert_eq!(d.grown("dcc_compile_ok", before, 8), 8);
}
