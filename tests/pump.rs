//! DISTCC_AUTO_PUMP=1 with Debian's distcc-pump and a real distccd: the
//! workers are written `,cpp,lzo`, the build runs under distcc-pump (its
//! include server runs for the build), compiles go to the worker, and
//! nothing is left running after the build or after Ctrl-C.

use std::process::Command;

use crate::support::*;

fn include_servers() -> usize {
    processes("include_server.py").len()
}

fn bin_dir() -> String {
    std::path::Path::new(BIN)
        .parent()
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn a_pump_build_runs_under_distcc_pump_and_compiles_remotely() {
    let d = Distccd::start(2);
    let src = demo_copy("pump");
    let before = d.stat("dcc_compile_ok");
    let mut c = Command::new("bash");
    c.args([
        "--norc",
        "-c",
        &format!(
            ". '{}/shell/distcc.sh'; distcc_build make && \
             distcc_build sh -c 'echo \"hosts=$DISTCC_HOSTS port=$INCLUDE_SERVER_PORT\"'",
            root().display()
        ),
    ])
    .current_dir(src.path())
    .env("PATH", format!("{}:/usr/bin:/bin", bin_dir()))
    .env("DISTCC_DIR", src.path().join(".distcc"))
    .env("DISTCC_AUTO_HOSTS", d.entry())
    .env("DISTCC_AUTO_PUMP", "1");
    let r = run_cmd(c);
    r.ok();
    assert_eq!(d.grown("dcc_compile_ok", before, 4), 4, "{}", r.show());
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("hosts="))
        .unwrap_or_default();
    check!(
        r,
        line.contains(&format!("127.0.0.1:{}/2,cpp,lzo", d.port)),
        "the worker in pump mode"
    );
    check!(
        r,
        line.contains("port=/") && line.contains("socket"),
        "the include server's socket"
    );
    // No local preprocessor slots: the workers preprocess.
    check!(r, !line.contains("--localslots_cpp"));
    check!(
        r,
        r.stdout
            .contains("Shutting down distcc-pump include server")
    );
    wait_for(5, "no include server left", || include_servers() == 0);
}

#[test]
fn pump_mode_without_distcc_pump_is_a_configuration_error() {
    let d = Distccd::start(1);
    let mut c = Command::new(BIN);
    c.args(["exec", "/bin/true"])
        .env("PATH", bin_dir())
        .env("DISTCC_AUTO_HOSTS", d.entry())
        .env("DISTCC_AUTO_PUMP", "1");
    let r = run_cmd(c);
    r.expect(96, format_args!(""));
    check!(
        r,
        r.stderr.contains("distcc-pump") && r.stderr.contains("DISTCC_AUTO_PUMP")
    );
}

#[test]
fn ctrl_c_during_a_pump_build_leaves_no_include_server() {
    let d = Distccd::start(1);
    let t = TempDir::new("pump-int");
    let line = format!(
        "PATH='{}':$PATH DISTCC_AUTO_PUMP=1 DISTCC_AUTO_HOSTS='{}' '{BIN}' exec sh -c 'sleep 3144'",
        bin_dir(),
        d.entry()
    );
    wait_for(5, "no include server of another test", || {
        include_servers() == 0
    });
    let s = crate::signals::ctrl_c_on_a_terminal("pump", &t, &line, 3144);
    assert!(!s.contains("exit=0"), "{s}");
    wait_for(5, "no include server left", || include_servers() == 0);
}
