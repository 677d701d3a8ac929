//! The toolchain check with real compilers: a real distccd whose `cc` is
//! gcc 11 (gcc 11's driver bound over gcc 12's in a mount namespace of the
//! daemon's own) beside a real distccd with this machine's gcc 12.

use std::process::{Command, Stdio};

use crate::support::*;

/// A real distccd on free loopback ports whose gcc 12 driver is gcc 11.
fn distccd_with_gcc11() -> (Daemon, u16, u16) {
    let (port, stats) = (free_port(), free_port());
    let script = format!(
        "mount --bind /usr/bin/x86_64-linux-gnu-gcc-11 /usr/bin/x86_64-linux-gnu-gcc-12 && \
         exec distccd --daemon --no-detach --log-stderr --listen 127.0.0.1 \
         --allow 127.0.0.1/32 --port {port} --stats --stats-port {stats} --jobs 2"
    );
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stderr(Stdio::null());
    let d = Daemon::spawn(c, "distccd (gcc 11)");
    wait_for(10, "the gcc 11 distccd", || {
        std::net::TcpStream::connect(("127.0.0.1", stats)).is_ok()
    });
    (d, port, stats)
}

#[test]
#[ignore = "needs root: a mount namespace"]
fn a_worker_with_another_gcc_is_dropped_with_both_versions_named() {
    need_netns!();
    assert!(
        std::path::Path::new("/usr/bin/x86_64-linux-gnu-gcc-11").exists(),
        "gcc-11 is missing: run `sh tests/deps.sh` (Debian package gcc-11)"
    );
    let same = Distccd::start(2);
    let (_old, port, stats) = distccd_with_gcc11();
    let old = format!("127.0.0.1:{port}:{stats}");
    let hosts = format!("{old} {}", same.entry());
    let r = run(
        &["hosts", "--check=toolchain", "--wide"],
        &[("DISTCC_AUTO_HOSTS", &hosts)],
    );
    r.ok();
    let dropped = r.row(&old);
    check!(
        r,
        dropped.contains(" down ")
            && dropped.contains("compiler differs: worker has GCC: (Debian 11.3.0-12) 11.3.0")
            && dropped.contains("this machine GCC: (Debian 12.")
    );
    check!(r, r.row(&same.entry()).contains(" up "));
    check!(
        r,
        r.stdout.contains(&format!(
            "DISTCC_HOSTS='--localslots_cpp=2 127.0.0.1:{}/2,lzo'",
            same.port
        )),
        "only the worker with this machine's compiler is used"
    );

    // The identities in the table and in JSON.
    let r = run(
        &["hosts", "--check=toolchain"],
        &[("DISTCC_AUTO_HOSTS", &same.entry()), ("COLUMNS", "120")],
    );
    check!(r, r.stdout.contains("compiler: GCC: (Debian 12."));
    let j = run(
        &["hosts", "--json"],
        &[
            ("DISTCC_AUTO_HOSTS", &hosts),
            ("DISTCC_AUTO_CHECK", "toolchain"),
        ],
    );
    check!(j, j.stdout.contains("\"reason_code\":\"toolchain\""));
    check!(
        j,
        j.stdout.contains(
            "\"compiler\":\"GCC: (Debian 11.3.0-12) 11.3.0 (x86-64, ELF64, little-endian)\""
        )
    );

    // With DISTCC_AUTO_CHECK_TOOLCHAIN=warn the worker is kept, with a warning.
    let r = run(
        &["env"],
        &[
            ("DISTCC_AUTO_HOSTS", &hosts),
            ("DISTCC_AUTO_CHECK", "toolchain"),
            ("DISTCC_AUTO_CHECK_TOOLCHAIN", "warn"),
        ],
    );
    r.ok();
    check!(
        r,
        r.export("DISTCC_HOSTS")
            .contains(&format!("127.0.0.1:{port}/2,lzo"))
    );
    check!(
        r,
        r.stderr
            .contains(&format!("worker '{old}': compiler differs"))
            && r.stderr.contains("kept: DISTCC_AUTO_CHECK_TOOLCHAIN=warn")
    );
    // The plain compile check does not compare: both compile.
    let r = run(
        &["hosts", "--check", "--wide"],
        &[("DISTCC_AUTO_HOSTS", &hosts)],
    );
    check!(r, r.row(&old).contains(" up "));
}

/// Text from a worker is shown escaped wherever it is printed: a worker
/// (a real distccd whose gcc writes a `.comment` with ESC, BEL and a
/// newline, as a hostile worker may) cannot write to the terminal or spoof
/// a line of ours.
#[test]
#[ignore = "needs root: a mount namespace"]
fn a_workers_words_reach_the_terminal_escaped() {
    need_netns!();
    let t = TempDir::new("comment");
    let d = t.path().display();
    std::fs::write(
        t.path().join("comment"),
        b"\x1b[2K\rdistcc-auto: -j 64\n\x07evil\0",
    )
    .unwrap();
    let wrapper = t.path().join("gcc");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nout=\nprev=\nfor a; do [ \"$prev\" = -o ] && out=$a; prev=$a; done\n\
             /usr/bin/x86_64-linux-gnu-gcc-11 \"$@\" || exit\n\
             exec objcopy --remove-section .comment --add-section .comment={d}/comment \"$out\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (port, stats) = (free_port(), free_port());
    let gcc = "/usr/bin/x86_64-linux-gnu-gcc-12";
    let script = format!(
        "mount --bind {d}/gcc {gcc} && \
         exec distccd --daemon --no-detach --log-stderr --listen 127.0.0.1 \
         --allow 127.0.0.1/32 --port {port} --stats --stats-port {stats} --jobs 2"
    );
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stderr(Stdio::null());
    let _d = Daemon::spawn(c, "distccd (hostile .comment)");
    wait_for(10, "the distccd", || {
        std::net::TcpStream::connect(("127.0.0.1", stats)).is_ok()
    });
    let entry = format!("127.0.0.1:{port}:{stats}");
    for args in [
        &["hosts", "--check=toolchain", "--wide"][..],
        &["hosts", "--check=toolchain"],
        &["hosts", "--json", "--check=toolchain"],
        &["env"],
    ] {
        let r = run(
            args,
            &[
                ("DISTCC_AUTO_HOSTS", &entry),
                ("DISTCC_AUTO_CHECK", "toolchain"),
                ("DISTCC_AUTO_CHECK_TOOLCHAIN", "warn"),
            ],
        );
        let all = format!("{}{}", r.stdout, r.stderr);
        check!(
            r,
            all.contains("evil"),
            "{args:?}: the worker's text is shown"
        );
        for bad in ['\x1b', '\x07', '\r', '\0'] {
            check!(r, !all.contains(bad), "{args:?}: raw {bad:?}");
        }
        check!(
            r,
            !all.lines().any(|l| l.starts_with("distcc-auto: -j 64")),
            "{args:?}: a spoofed line"
        );
    }
}

/// A bad DISTCC_AUTO_CHECK_COMPILER is a configuration error (96, named);
/// a toolchain check that cannot run here (no such compiler, no TMPDIR)
/// is a warning, and the build goes on.
#[test]
fn a_local_check_that_cannot_run_warns_and_the_build_goes_on() {
    let d = Distccd::start(1);
    for bad in ["..", ".", "-v", "a b", "$(id)"] {
        let r = run(
            &["env"],
            &[
                ("DISTCC_AUTO_HOSTS", &d.entry()),
                ("DISTCC_AUTO_CHECK", "toolchain"),
                ("DISTCC_AUTO_CHECK_COMPILER", bad),
            ],
        );
        r.expect(96, format_args!("{bad}: "));
        check!(r, r.stderr.contains("DISTCC_AUTO_CHECK_COMPILER"));
    }
    for (var, value) in [
        ("DISTCC_AUTO_CHECK_COMPILER", "no-such-compiler-here"),
        ("TMPDIR", "/nonexistent/dir"),
    ] {
        let t = TempDir::new("check");
        let mut c = Command::new("bash");
        c.args(["--norc", "-c"])
            .arg(format!(
                ". '{}/shell/distcc.sh'; distcc_build printf '%s ' built",
                root().display()
            ))
            .current_dir(t.path())
            .env(
                "PATH",
                format!(
                    "{}:/usr/bin:/bin",
                    std::path::Path::new(BIN).parent().unwrap().display()
                ),
            )
            .env("DISTCC_AUTO_HOSTS", d.entry())
            .env("DISTCC_AUTO_CHECK", "toolchain")
            .env("DISTCC_AUTO_APPEND_JOBS", "0")
            .env(var, value);
        let r = run_cmd(c);
        r.expect(0, format_args!("{var}: "));
        check!(r, r.stdout.starts_with("built"), "{var}");
        check!(
            r,
            r.stderr.contains(
                "warning: DISTCC_AUTO_CHECK=toolchain: cannot compile the check file here"
            ),
            "{var}"
        );
    }
}
