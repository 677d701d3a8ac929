//! Knowing the cluster: the compile check against the real distccd, load-
//! aware slots, and `hosts --watch` on a real terminal and on a pipe.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use crate::support::*;

#[test]
fn compile_check_passes_on_a_real_worker() {
    let d = Distccd::start(2);
    let before = d.stat("dcc_compile_ok");
    let r = run(
        &["hosts", "--check", "--wide"],
        &[("DISTCC_AUTO_HOSTS", &d.entry())],
    );
    r.ok();
    check!(r, r.stdout.lines().nth(1).unwrap().contains(" up "));
    assert_eq!(
        d.grown("dcc_compile_ok", before, 1),
        1,
        "the worker compiled the check file"
    );

    let r = run(
        &["env"],
        &[
            ("DISTCC_AUTO_HOSTS", &d.entry()),
            ("DISTCC_AUTO_CHECK", "compile"),
            ("DISTCC_AUTO_CHECK_COMPILER", "gcc"),
        ],
    );
    r.ok();
    check!(r, r.stdout.contains(&format!("127.0.0.1:{}/2,lzo", d.port)));
}

#[test]
fn compile_check_drops_a_worker_without_the_compiler() {
    // Debian's distccd runs only compilers linked in /usr/lib/distcc; it
    // refuses others by closing the connection, and says why in its log.
    let d = Distccd::start(2);
    let r = run(
        &["hosts", "--wide"],
        &[
            ("DISTCC_AUTO_HOSTS", &d.entry()),
            ("DISTCC_AUTO_CHECK", "compile"),
            ("DISTCC_AUTO_CHECK_COMPILER", "cc-not-allowed"),
        ],
    );
    r.ok();
    let row = r.stdout.lines().nth(1).unwrap();
    check!(r, row.contains(" down "));
    check!(r, row.contains("compile check: the worker closed the connection without compiling: 'cc-not-allowed' is probably not in its allowed compilers (/usr/lib/distcc"));
    wait_for(5, "the daemon's log", || {
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("cc-not-allowed not in /usr/lib/distcc")
    });
}

#[test]
fn compile_check_against_garbage_and_silence() {
    // FAKE job ports: a real distccd answers in its protocol or closes;
    // these answer with something else, or not at all. The stats port is
    // a real daemon's.
    let d = Distccd::start(2);
    let garbage = FakeStats::new(|mut c| {
        let mut buf = [0u8; 256];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    });
    let silent = FakeStats::new(|c| {
        thread::sleep(Duration::from_secs(20));
        drop(c);
    });
    for (job, want) in [
        (garbage.port, "compile check: not a distcc reply"),
        (
            silent.port,
            "timed out after 1 s (compiling the check file)",
        ),
    ] {
        let hosts = format!("127.0.0.1:{job}:{}", d.stats_port);
        let r = run(
            &["hosts", "--check", "--wide"],
            &[
                ("DISTCC_AUTO_HOSTS", &hosts),
                ("DISTCC_AUTO_TIMEOUT", "0.5"),
                ("DISTCC_AUTO_CHECK_TIMEOUT", "1"),
            ],
        );
        assert!(r.took < Duration::from_millis(2000), "{:?}", r.took);
        let row = r.stdout.lines().nth(1).unwrap();
        check!(
            r,
            row.contains(" down ") && row.contains(want),
            "want {want:?}\n"
        );
    }
}

#[test]
fn load_aware_slots_take_what_a_busy_worker_can_spare() {
    // FAKE: a worker that reports a load of 5.3 on 8 slots; a real idle
    // daemon cannot be made to report a chosen load.
    let fake = FakeStats::replying(stats_reply(
        "dcc_max_kids 8\ndcc_avg_kids1 2\ndcc_load1 5.30\ndcc_load2 1\ndcc_load3 1\n",
    ));
    let hosts = fake.entry();
    let go = |args: &[&str], aware| {
        run(
            args,
            &[
                ("DISTCC_AUTO_HOSTS", &hosts),
                ("DISTCC_AUTO_LOAD_AWARE", aware),
                ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "0"),
            ],
        )
    };
    let r = go(&["env"], "1");
    check!(
        r,
        r.stdout.contains(&format!(
            "export DISTCC_HOSTS='127.0.0.1:{}/3,lzo';",
            fake.job_port
        )),
        "8 - 5 busy"
    );
    let r = go(&["hosts", "--wide"], "1");
    let row = r.cells(1);
    assert_eq!(
        (row[3], row[6]),
        ("8", "3"),
        "advertised and granted: {}",
        r.show()
    );
    let r = go(&["env"], "0");
    check!(
        r,
        r.stdout
            .contains(&format!("127.0.0.1:{}/8,lzo", fake.job_port))
    );
}

#[test]
fn watch_appends_rounds_on_a_pipe_and_exits_0_on_ctrl_c() {
    let d = Distccd::start(2);
    let mut c = cmd(
        &["hosts", "--watch", "2", "--wide"],
        &[("DISTCC_AUTO_HOSTS", &d.entry())],
    );
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = std::sync::Arc::clone(&seen);
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    wait_for(15, "three rounds", || {
        seen.lock().unwrap().contains("round 3,")
    });
    signal(child.id() as i32, libc::SIGINT);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let text = seen.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no terminal control on a pipe: {text:?}"
    );
    for round in 1..=3 {
        assert!(
            text.contains(&format!("every 2 s, round {round}, 1 of 1 workers up")),
            "{text}"
        );
    }
    assert_eq!(
        text.matches(&format!("{}  up", d.entry())).count(),
        3,
        "{text}"
    );
}

#[test]
fn watch_redraws_in_place_on_a_terminal() {
    let d = Distccd::start(3);
    let t = TempDir::new("watch");
    let session = format!("dauto-watch-{}", std::process::id());
    let script = t.path().join("run.sh");
    std::fs::write(
        &script,
        format!("DISTCC_AUTO_HOSTS='{} 127.0.0.1:{}' '{BIN}' hosts --watch 2\necho \"exit=$?\"\nsleep 30\n", d.entry(), closed_port()),
    )
    .unwrap();
    let tmux = |args: &[&str]| {
        let mut c = Command::new("tmux");
        c.args(["-L", &session]).args(args);
        run_cmd(c)
    };
    let r = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "150",
        "-y",
        "20",
        &format!("bash --norc {}", script.display()),
    ]);
    r.ok();
    let screen = || tmux(&["capture-pane", "-p", "-t", &session]).stdout;
    wait_for(10, "the third round on screen", || {
        screen().contains("round 3,")
    });
    let s = screen();
    // One round on screen at a time: the previous ones were cleared.
    assert_eq!(s.matches("distcc-auto hosts --watch").count(), 1, "{s}");
    assert!(
        s.contains(&format!("{}  up", d.entry())) && s.contains("connection refused"),
        "{s}"
    );
    tmux(&["send-keys", "-t", &session, "C-c"]);
    wait_for(5, "exit after Ctrl-C", || screen().contains("exit=0"));
    tmux(&["kill-server"]);
}

#[test]
fn watch_rejects_a_fast_interval() {
    let r = run(
        &["hosts", "--watch", "0.5"],
        &[("DISTCC_AUTO_HOSTS", "127.0.0.1")],
    );
    r.expect(2, format_args!(""));
    check!(
        r,
        r.stderr.contains("at least") || r.stderr.contains("from 2 to 86400")
    );
}
