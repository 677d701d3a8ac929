//! The README's "Your build system" recipes, each run for real through a
//! real distccd: the project in tests/data/project (C and C++) built with
//! make, ninja, CMake (compiler launcher, masquerade directory, ccache as
//! launcher with CCACHE_PREFIX=distcc), meson, autotools and cargo with
//! the cc crate. Each must send exactly its compiles to the worker and
//! make a program that runs.

use std::process::Command;

use crate::support::*;

/// Run `script` (a recipe, in bash with distcc.sh sourced) in a fresh
/// copy of the project; returns the run and how many compiles the worker
/// did of the `want` expected.
fn recipe(what: &str, script: &str, want: u64) -> (Run, u64) {
    let d = Distccd::start(2);
    let t = TempDir::new(&format!("bs-{what}"));
    let r = run_cmd({
        let mut c = Command::new("cp");
        c.arg("-a")
            .arg(format!("{}/.", root().join("tests/data/project").display()))
            .arg(t.path());
        c
    });
    r.ok();
    std::fs::create_dir(t.path().join(".distcc")).unwrap();
    let before = d.stat("dcc_compile_ok");
    let mut c = Command::new("bash");
    c.args([
        "--norc",
        "-e",
        "-c",
        &format!(". '{}/shell/distcc.sh'\n{script}", root().display()),
    ])
    .current_dir(t.path())
    .env(
        "PATH",
        format!(
            "{}:{}",
            std::path::Path::new(BIN).parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    )
    .env_remove("DISTCC_HOSTS")
    .env("DISTCC_DIR", t.path().join(".distcc"))
    .env("CCACHE_DIR", t.path().join(".ccache"))
    .env("DISTCC_AUTO_HOSTS", d.entry())
    .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1");
    let r = run_cmd(c);
    let n = d.grown("dcc_compile_ok", before, want);
    (r, n)
}

fn assert_built(what: &str, r: &Run, remote: u64, want: u64) {
    r.ok();
    assert_eq!(remote, want, "{what}: compiles on the worker\n{}", r.show());
    check!(
        r,
        r.stdout.contains("hello from C++") || r.stdout.contains("42"),
        "{what}: the program runs"
    );
}

#[test]
fn make() {
    let (r, n) = recipe("make", "distcc_build make -f Makefile.plain\n./hello", 2);
    assert_built("make", &r, n, 2);
}

#[test]
fn ninja() {
    let (r, n) = recipe("ninja", "distcc_build ninja\n./hello", 2);
    assert_built("ninja", &r, n, 2);
}

#[test]
fn cmake_with_compiler_launchers() {
    let (r, n) = recipe(
        "cmake",
        "cmake -S . -B build -DCMAKE_C_COMPILER_LAUNCHER=distcc -DCMAKE_CXX_COMPILER_LAUNCHER=distcc\n\
         distcc_build cmake --build build\n./build/hello",
        2,
    );
    assert_built("cmake launcher", &r, n, 2);
}

#[test]
fn cmake_with_the_masquerade_directory() {
    let (r, n) = recipe(
        "cmake-masq",
        "PATH=/usr/lib/distcc:$PATH cmake -S . -B build\n\
         PATH=/usr/lib/distcc:$PATH distcc_build cmake --build build\n./build/hello",
        2,
    );
    assert_built("cmake masquerade", &r, n, 2);
}

#[test]
fn cmake_with_ccache_as_launcher_and_distcc_as_its_prefix() {
    let (r, n) = recipe(
        "cmake-ccache",
        "cmake -S . -B build -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache\n\
         CCACHE_PREFIX=distcc distcc_build cmake --build build\n./build/hello",
        2,
    );
    assert_built("cmake ccache", &r, n, 2);
}

#[test]
fn meson() {
    let (r, n) = recipe(
        "meson",
        "CC='distcc gcc' CXX='distcc g++' meson setup build\n\
         distcc_build meson compile -C build\n./build/hello",
        2,
    );
    assert_built("meson", &r, n, 2);
}

#[test]
fn autotools() {
    let (r, n) = recipe(
        "autotools",
        "autoreconf -i >/dev/null 2>&1\n./configure CC='distcc gcc' CXX='distcc g++' >/dev/null\n\
         distcc_build make\n./hello",
        2,
    );
    assert_built("autotools", &r, n, 2);
}

#[test]
fn cargo_with_the_cc_crate() {
    // The cc crate comes from crates.io, as any user's would.
    let (r, n) = recipe(
        "cargo",
        "cd cargo\nCC='distcc cc' CXX='distcc c++' CARGO_TARGET_DIR=$PWD/target distcc_build cargo build -q\n\
         ./target/debug/hello",
        2,
    );
    assert_built("cargo", &r, n, 2);
}
