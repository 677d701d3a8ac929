//! `make deb`'s package, built with Debian's own tools: lintian finds no
//! error or warning, the contents are where Debian looks for them, and
//! (root) installed with dpkg it builds through a real distccd from the
//! installed shell file and binary, then is removed without a trace.

use std::process::Command;

use crate::support::*;

fn build_deb(out: &TempDir) -> String {
    let mut c = Command::new("sh");
    c.arg(root().join("packaging/deb.sh"))
        .arg(BIN)
        .arg(out.path());
    let r = run_cmd(c);
    r.ok();
    r.stdout.trim().to_string()
}

const CONTENTS: [&str; 10] = [
    "./usr/bin/distcc-auto",
    "./usr/share/distcc-auto/distcc.sh",
    "./usr/share/distcc-auto/distcc.zsh",
    "./usr/share/distcc-auto/distcc.fish",
    "./usr/share/man/man1/distcc-auto.1.gz",
    "./usr/share/bash-completion/completions/distcc-auto",
    "./usr/share/zsh/vendor-completions/_distcc-auto",
    "./usr/share/fish/vendor_completions.d/distcc-auto.fish",
    "./usr/share/doc/distcc-auto/copyright",
    "./usr/share/doc/distcc-auto/changelog.gz",
];

#[test]
fn the_debian_package_is_clean_and_complete() {
    let out = TempDir::new("deb");
    let deb = build_deb(&out);
    assert!(
        deb.ends_with(".deb") && deb.contains("distcc-auto_0.1.0_"),
        "{deb}"
    );
    let r = run_cmd({
        let mut c = Command::new("dpkg-deb");
        c.args(["-c", &deb]);
        c
    });
    let files: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    let mut want = CONTENTS.to_vec();
    want.sort_unstable();
    let mut got = files.clone();
    got.sort_unstable();
    assert_eq!(got, want, "{}", r.stdout);
    check!(r, r.stdout.contains("root/root"));
    let r = run_cmd({
        let mut c = Command::new("dpkg-deb");
        c.args(["-f", &deb, "Depends", "Recommends"]);
        c
    });
    check!(
        r,
        r.stdout.contains("distcc") && r.stdout.contains("Recommends: openssh-client")
    );
    // lintian: no error, no warning (its informational tags are in the
    // README).
    let r = run_cmd({
        let mut c = Command::new("lintian");
        c.args(["--tag-display-limit", "0", &deb]);
        c
    });
    let tags: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(tags.is_empty(), "lintian: {}", r.show());
}

#[test]
#[ignore = "needs root: dpkg -i installs into the system"]
fn the_installed_package_builds_through_a_real_worker_and_is_removed() {
    need_netns!();
    if std::path::Path::new("/usr/bin/distcc-auto").exists() {
        skip("distcc-auto is already installed in /usr/bin; not touching it");
        return;
    }
    let out = TempDir::new("deb");
    let deb = build_deb(&out);
    let dpkg = |args: &[&str]| {
        let mut c = Command::new("dpkg");
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run_cmd(c)
    };
    dpkg(&["-i", &deb]).ok();
    let d = Distccd::start(2);
    let src = demo_copy("deb");
    let before = d.stat("dcc_compile_ok");
    let mut c = Command::new("bash");
    c.args([
        "--norc",
        "-c",
        ". /usr/share/distcc-auto/distcc.sh; distcc_build make",
    ])
    .current_dir(src.path())
    .env("PATH", "/usr/bin:/bin")
    .env("DISTCC_DIR", src.path().join(".distcc"))
    .env("DISTCC_AUTO_HOSTS", d.entry());
    let r = run_cmd(c);
    let removed = dpkg(&["-r", "distcc-auto"]);
    r.ok();
    removed.ok();
    assert_eq!(d.grown("dcc_compile_ok", before, 4), 4, "{}", r.show());
    for f in CONTENTS {
        let p = f.trim_start_matches('.');
        assert!(!std::path::Path::new(p).exists(), "{p} left after dpkg -r");
    }
}
