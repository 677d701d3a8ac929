//! `distcc_build` in real bash and real zsh, building demo/ with real make
//! through a real distccd.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// Run `script` in `sh` after sourcing our file, in `dir`, with `vars`.
fn in_shell(sh: &str, dir: &Path, vars: &[(&str, &str)], script: &str) -> Run {
    let mut c = shell(sh, None, script);
    let distcc_dir = dir.join(".distcc");
    std::fs::create_dir_all(&distcc_dir).unwrap();
    c.env("DISTCC_DIR", &distcc_dir);
    c.current_dir(dir);
    for (k, v) in vars {
        c.env(k, v);
    }
    run_cmd(c)
}

#[test]
fn builds_across_a_real_worker_in_bash_and_zsh() {
    let d = Distccd::start(3);
    let hosts = d.entry();
    for sh in SHELLS {
        let src = demo_copy(sh);
        let before = d.stat("dcc_compile_ok");
        let r = in_shell(
            sh,
            src.path(),
            &[
                ("DISTCC_AUTO_HOSTS", &hosts),
                ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "2"),
            ],
            "distcc_build make",
        );
        r.expect(0, format_args!("{sh}: "));
        // make got -j (3 remote + 2 preprocessor) and the daemon compiled
        // every one of the four files.
        let flags = std::fs::read_to_string(src.path().join("makeflags.txt")).unwrap();
        check!(
            r,
            flags.split_whitespace().any(|f| f == "-j5"),
            "{sh}: MAKEFLAGS {flags:?}\n"
        );
        assert_eq!(
            d.grown("dcc_compile_ok", before, 4),
            4,
            "{sh}: {}",
            r.show()
        );
        check!(
            r,
            r.stderr
                .contains("distcc-auto: -j 5: 0 local, 2 preprocessor, 3 remote on 1 worker"),
            "{sh}"
        );
        let out = Command::new(src.path().join("hello")).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello from distcc-auto: sum_to(100)=5050 fib(30)=832040\n"
        );
    }
}

#[test]
fn exit_codes_pass_through() {
    let d = Distccd::start(1);
    let hosts = d.entry();
    for sh in SHELLS {
        let t = TempDir::new(sh);
        let vars = [("DISTCC_AUTO_HOSTS", hosts.as_str())];
        let r = in_shell(
            sh,
            t.path(),
            &vars,
            "distcc_build sh -c 'exit 7' sh; echo \"rc=$?\"",
        );
        check!(r, r.stdout.ends_with("rc=7\n"), "{sh}");
        let r = in_shell(sh, t.path(), &vars, "distcc_build; echo \"rc=$?\"");
        check!(
            r,
            r.stdout.ends_with("rc=96\n") && r.stderr.contains("usage: distcc_build BUILD-COMMAND"),
            "{sh}"
        );
        let r = in_shell(
            sh,
            t.path(),
            &[("DISTCC_AUTO_HOSTS", "bad;host")],
            "distcc_build true; echo \"rc=$?\"",
        );
        check!(
            r,
            r.stdout.ends_with("rc=96\n") && r.stderr.contains("bad entry 'bad;host'"),
            "{sh}"
        );
        let dead = format!("127.0.0.1:{0}:{0}", closed_port());
        let vars = [
            ("DISTCC_AUTO_HOSTS", dead.as_str()),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "0"),
        ];
        let r = in_shell(sh, t.path(), &vars, "distcc_build true; echo \"rc=$?\"");
        check!(r, r.stdout.ends_with("rc=97\n"), "{sh}");
    }
}

#[test]
fn arguments_and_environment_reach_the_command_untouched() {
    let d = Distccd::start(2);
    let hosts = d.entry();
    for sh in SHELLS {
        let t = TempDir::new(sh);
        let vars = [
            ("DISTCC_AUTO_HOSTS", hosts.as_str()),
            ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1"),
            ("DISTCC_AUTO_TIMEOUT", "1.5"),
        ];
        // A file named like a glob result must not appear in the arguments.
        std::fs::write(t.path().join("glob-bait"), "").unwrap();
        let r = in_shell(
            sh,
            t.path(),
            &vars,
            "distcc_build printf '[%s]' 'two words' '*' '$HOME' ''",
        );
        r.expect(0, format_args!("{sh}: "));
        assert_eq!(
            r.stdout,
            "[two words][*][$HOME][][-j][3]",
            "{sh}: {}",
            r.show()
        );

        let r = in_shell(sh, t.path(), &vars, "distcc_build sh -c 'env' sh");
        r.expect(0, format_args!("{sh}: "));
        let env: Vec<&str> = r.stdout.lines().collect();
        check!(
            r,
            env.contains(
                &format!("DISTCC_HOSTS=--localslots_cpp=1 127.0.0.1:{}/2,lzo", d.port).as_str()
            ),
            "{sh}"
        );
        check!(r, env.contains(&"CCACHE_PREFIX=distcc"), "{sh}");
        check!(
            r,
            !env.iter().any(|l| l.starts_with("DISTCC_AUTO_")),
            "{sh}"
        );

        let r = in_shell(
            sh,
            t.path(),
            &[
                ("DISTCC_AUTO_HOSTS", hosts.as_str()),
                ("DISTCC_HOSTS", "old"),
            ],
            "distcc_build true",
        );
        check!(
            r,
            r.stderr
                .contains("warning: DISTCC_HOSTS is set; distcc-auto replaces it"),
            "{sh}"
        );
    }
}

#[test]
fn sourcing_defines_only_distcc_build() {
    let t = TempDir::new("source");
    let bash = "a=$(compgen -A function; compgen -v | grep -v '^BASH_\\|^_$\\|^FUNCNAME$'); . shell/distcc.sh; \
                b=$(compgen -A function; compgen -v | grep -v '^BASH_\\|^_$\\|^FUNCNAME$\\|^a$'); \
                diff <(echo \"$a\") <(echo \"$b\") | grep '^[<>]'; true";
    let zsh = "a=(${(k)functions} ${(k)parameters}); . shell/distcc.zsh; \
               b=(${(k)functions} ${(k)parameters}); print -l ${b:|a}";
    for (sh, script) in [("bash", bash), ("zsh", zsh)] {
        let mut c = Command::new(sh);
        c.args(if sh == "bash" {
            vec!["--noprofile", "--norc", "-u", "-c", script]
        } else {
            vec!["-f", "-u", "-c", script]
        });
        c.current_dir(root());
        let r = run_cmd(c);
        let new: Vec<&str> = r
            .stdout
            .lines()
            .filter(|l| !l.is_empty() && *l != "a")
            .collect();
        let want: &[&str] = if sh == "bash" {
            &["> distcc_build"]
        } else {
            &["distcc_build"]
        };
        assert_eq!(new, want, "{sh}: {}", r.show());
        let _ = &t;
    }
}

#[test]
fn finds_the_installed_binary_beside_the_shell_file() {
    // `make install` layout: PREFIX/bin/distcc-auto and
    // PREFIX/share/distcc-auto/distcc.{sh,zsh}; no distcc-auto on PATH.
    let d = Distccd::start(1);
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
    let share = prefix.path().join("usr/share/distcc-auto");
    // Sourced by absolute path, and by bare name from its own directory.
    for (sh, file) in [
        ("bash", share.join("distcc.sh").display().to_string()),
        ("zsh", share.join("distcc.zsh").display().to_string()),
        ("bash", "distcc.sh".into()),
        ("zsh", "./distcc.zsh".into()),
    ] {
        let mut c = Command::new(sh);
        c.args(if sh == "bash" {
            vec!["--noprofile", "--norc", "-u", "-c"]
        } else {
            vec!["-f", "-u", "-c"]
        });
        c.arg(format!(". '{file}'; distcc_build printf '%s ' ok"));
        c.current_dir(&share);
        c.env("PATH", "/usr/bin:/bin");
        c.env("DISTCC_AUTO_HOSTS", d.entry());
        c.env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0");
        let r = run_cmd(c);
        r.expect(0, format_args!("{sh} {file}: "));
        assert_eq!(r.stdout, "ok -j 1 ", "{sh} {file}: {}", r.show());
    }
}

/// A binary anyone can plant where a relative lookup would go: in the
/// current directory, and at `./../../bin` and `./../target/release` from
/// it. `init` output and the sourced files must never run it, whether
/// distcc-auto is on PATH or not, and whatever PATH holds relative.
#[test]
fn no_binary_is_looked_up_relative_to_the_current_directory() {
    let d = Distccd::start(1);
    let t = TempDir::new("planted");
    let cwd = t.path().join("tmp/a");
    let planted = t.path().join("ran");
    let fake = format!("#!/bin/sh\necho planted >> '{}'\n", planted.display());
    for dir in ["tmp/a", "tmp/a/bin", "bin", "tmp/target/release"] {
        let p = t.path().join(dir);
        std::fs::create_dir_all(&p).unwrap();
        let f = p.join("distcc-auto");
        std::fs::write(&f, &fake).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let file = |name: &str| root().join("shell").join(name).display().to_string();
    let cases = [
        ("bash", format!("eval \"$({BIN} init bash)\"")),
        ("zsh", format!("eval \"$({BIN} init zsh)\"")),
        ("fish", format!("{BIN} init fish | source")),
    ];
    for (sh, load) in cases {
        let mut c = Command::new(sh);
        c.args(match sh {
            "bash" => &["--noprofile", "--norc", "-c"][..],
            "zsh" => &["-f", "-c"],
            _ => &["--no-config", "-c"],
        });
        c.arg(format!("{load}; distcc_build printf '%s ' ok"));
        // Relative PATH entries, and no distcc-auto on PATH otherwise.
        c.current_dir(&cwd).env("PATH", ".:bin:/usr/bin:/bin");
        c.env("DISTCC_AUTO_HOSTS", d.entry());
        c.env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0");
        let r = run_cmd(c);
        r.expect(0, format_args!("{sh} init: "));
        assert_eq!(r.stdout, "ok -j 1 ", "{sh}: {}", r.show());
        assert!(!planted.exists(), "{sh}: the planted binary ran");
    }
    // Sourced files, not on PATH: found beside the file, not in `.`.
    for (sh, f) in [("bash", file("distcc.sh")), ("zsh", file("distcc.zsh"))] {
        let mut c = Command::new(sh);
        c.args(if sh == "bash" {
            &["--noprofile", "--norc", "-c"][..]
        } else {
            &["-f", "-c"]
        });
        c.arg(format!(". '{f}'; distcc_build printf '%s ' ok"));
        c.current_dir(&cwd).env("PATH", ".:bin:/usr/bin:/bin");
        c.env("DISTCC_AUTO_HOSTS", d.entry());
        c.env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0");
        let r = run_cmd(c);
        // A checkout's target/release may not be built: either it runs
        // that one (absolute, beside the file), or it says it found none.
        check!(r, r.stdout == "ok -j 1 " || r.code == 96, "{sh}");
        assert!(!planted.exists(), "{sh} sourced: the planted binary ran");
    }
}

/// `init`'s output is held to the sourced files' standard: linted
/// (shellcheck for bash, `zsh -n`, `fish --no-execute`), and its
/// distcc_build builds under `set -euo pipefail`.
#[test]
fn init_output_is_linted_and_runs_under_strict_options() {
    let d = Distccd::start(1);
    for sh in ["bash", "zsh", "fish"] {
        let text = run(&["init", sh], &[]).stdout;
        let t = TempDir::new("init-lint");
        let f = t.path().join(format!("init.{sh}"));
        std::fs::write(&f, &text).unwrap();
        let f = f.display().to_string();
        let lint: &[&str] = match sh {
            "bash" => &["shellcheck", "-s", "bash", &f],
            "zsh" => &["zsh", "-n", &f],
            _ => &["fish", "--no-execute", &f],
        };
        let mut c = Command::new(lint[0]);
        c.args(&lint[1..]);
        run_cmd(c).expect(0, format_args!("{sh} lint: "));
        let strict = match sh {
            "bash" => "set -euo pipefail; ",
            "zsh" => "setopt err_exit no_unset pipe_fail; ",
            _ => "",
        };
        let mut c = Command::new(sh);
        c.args(match sh {
            "bash" => &["--norc", "-c"][..],
            "zsh" => &["-f", "-c"],
            _ => &["--no-config", "-c"],
        })
        .arg(format!("{strict}source {f}; distcc_build printf '%s ' ok"))
        .current_dir(t.path())
        .env("PATH", "/usr/bin:/bin")
        .env("DISTCC_AUTO_HOSTS", d.entry())
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0");
        let r = run_cmd(c);
        r.expect(0, format_args!("{sh}: "));
        assert_eq!(r.stdout, "ok -j 1 ", "{sh}: {}", r.show());
    }
}
