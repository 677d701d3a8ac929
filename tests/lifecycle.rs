//! Tunnels and processes: nothing we start outlives its use, nothing we did
//! not start is signalled, and machine limits cost time, never workers.
//! Real sshd and distccd in test-made namespaces; these need root.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

fn client(w: &SshWorker, script: &str, hosts: &str) -> Command {
    let mut c = shell("bash", Some(&w.lan.client), script);
    c.env("DISTCC_AUTO_HOSTS", hosts)
        .env("DISTCC_AUTO_SSH_COMMAND", w.ssh_command())
        .env("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "1");
    c
}

/// No ssh process of this worker is left, nor any process whose command
/// line holds `needle` (something ssh started), when one is given.
fn assert_none_left(w: &SshWorker, needle: &str, what: &str) {
    let until = Instant::now() + Duration::from_secs(3);
    let left = || {
        let mut v = w.ssh_processes();
        if !needle.is_empty() {
            v.extend(
                processes(needle)
                    .into_iter()
                    .filter(|l| !l.contains(" ps ")),
            );
        }
        v
    };
    while !left().is_empty() && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        left(),
        Vec::<String>::new(),
        "{what}: processes left behind"
    );
}

fn line<'a>(r: &'a Run, prefix: &str) -> &'a str {
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix}: {}", r.show()))
}

#[test]
#[ignore = "needs root: network namespaces"]
fn a_reused_pid_is_never_signalled() {
    need_netns!();
    let w = SshWorker::start();
    // Two sessions' tunnels. The first one's recorded identity, given with
    // the second one's PID, is what a reused PID looks like to `kill`.
    let script = r#"
        eval "$(distcc-auto env)" || exit
        echo "a=$DISTCC_AUTO_TUNNEL_IDS"
        a_pids=$DISTCC_AUTO_TUNNEL_PIDS a_ids=$DISTCC_AUTO_TUNNEL_IDS
        eval "$(distcc-auto env)" || exit
        echo "b=$DISTCC_AUTO_TUNNEL_IDS"
        b=$DISTCC_AUTO_TUNNEL_PIDS
        a_start=${a_ids##*:}
        DISTCC_AUTO_TUNNEL_PIDS=$b DISTCC_AUTO_TUNNEL_IDS="$b:$(id -u):$a_start" distcc-auto kill >/dev/null
        echo "refused=$?"
        # The second tunnel still carries compiles' stats: probe through it.
        port=${DISTCC_HOSTS##*127.0.0.1:}; port=${port%%/*}
        (exec 3<>/dev/tcp/127.0.0.1/$port) && echo "b-alive=yes"
        DISTCC_AUTO_TUNNEL_PIDS="$a_pids $b" DISTCC_AUTO_TUNNEL_IDS="$a_ids $DISTCC_AUTO_TUNNEL_IDS" distcc-auto kill >/dev/null
        echo "stopped=$?"
    "#;
    let r = run_cmd(client(&w, script, "ssh://worker"));
    r.ok();
    assert_eq!(line(&r, "refused="), "1", "{}", r.show());
    check!(
        r,
        r.stderr
            .contains("is not the ssh tunnel that distcc-auto started")
    );
    assert_eq!(line(&r, "b-alive="), "yes", "{}", r.show());
    assert_eq!(line(&r, "stopped="), "0", "{}", r.show());
    assert_none_left(&w, "", "after kill");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn another_users_tunnel_is_not_permitted_at_once() {
    need_netns!();
    let w = SshWorker::start();
    let env = run_cmd(client(&w, "distcc-auto env", "ssh://worker"));
    env.ok();
    let strip = |name: &str| env.export(name);
    let (pids, ids) = (
        strip("DISTCC_AUTO_TUNNEL_PIDS"),
        strip("DISTCC_AUTO_TUNNEL_IDS"),
    );
    let (c, _copy) = cmd_as_nobody(
        &["kill"],
        &[
            ("DISTCC_AUTO_TUNNEL_PIDS", &pids),
            ("DISTCC_AUTO_TUNNEL_IDS", &ids),
        ],
    );
    let start = Instant::now();
    let r = run_cmd(c);
    r.expect(1, format_args!(""));
    check!(r, r.stderr.contains("not permitted"));
    assert!(
        start.elapsed() < Duration::from_millis(1000),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(w.ssh_processes().len(), 1, "the tunnel was not touched");
    let r = run(
        &["kill"],
        &[
            ("DISTCC_AUTO_TUNNEL_PIDS", &pids),
            ("DISTCC_AUTO_TUNNEL_IDS", &ids),
        ],
    );
    r.ok();
    assert_none_left(&w, "", "after the owner's kill");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn watch_into_a_closed_pipe_ends_and_closes_its_tunnels() {
    need_netns!();
    let w = SshWorker::start();
    let mut c = client(
        &w,
        // `timeout`: a watch that never notices would hang the suite.
        "timeout 20 distcc-auto hosts --watch 2 | head -n 1; echo \"rc=${PIPESTATUS[0]}\"",
        "ssh://worker",
    );
    c.stdout(Stdio::piped());
    let start = Instant::now();
    let r = run_cmd(c);
    check!(
        r,
        r.stdout.starts_with("distcc-auto hosts --watch") && r.stdout.ends_with("rc=0\n")
    );
    // It noticed at the second round's write at the latest.
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert_none_left(&w, "", "watch | head");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn env_whose_pids_reach_nobody_stops_its_tunnels() {
    need_netns!();
    let w = SshWorker::start();
    for redirect in [">&-", ">/dev/null"] {
        let r = run_cmd(client(
            &w,
            &format!("distcc-auto env {redirect}; echo \"rc=$?\" >&2"),
            "ssh://worker",
        ));
        check!(r, r.stderr.contains("rc=1"), "{redirect}");
        check!(
            r,
            r.stderr
                .contains("nobody would get the PIDs of the ssh tunnels"),
            "{redirect}"
        );
        assert_none_left(&w, "", redirect);
    }
    // Without ssh workers there is nothing to leak: /dev/null is fine.
    let d = Distccd::start(1);
    let r = run_cmd({
        let mut c = Command::new("bash");
        c.args(["-c", &format!("{BIN} env >/dev/null")])
            .env("DISTCC_AUTO_HOSTS", d.entry());
        c
    });
    r.ok();
}

#[test]
#[ignore = "needs root: network namespaces"]
fn everything_ssh_starts_is_stopped_with_it() {
    need_netns!();
    let w = SshWorker::start();
    let cfg = w.path("ssh_config");
    // A ProxyCommand that is slow to connect, stopped before login (ssh
    // itself would wait 30 s: the user's ConnectTimeout comes first).
    let slow = format!("ssh -F {cfg} -o ConnectTimeout=30 -o ProxyCommand='sleep 30.25'");
    let mut c = client(&w, "distcc-auto hosts", "ssh://worker");
    c.env("DISTCC_AUTO_SSH_COMMAND", &slow)
        .env("DISTCC_AUTO_SSH_TIMEOUT", "1")
        .env("DISTCC_AUTO_TIMEOUT", "1");
    let r = run_cmd(c);
    check!(r, r.row("ssh://worker").contains("down"));
    assert_none_left(&w, "sleep 30.25", "slow ProxyCommand");

    // A jump host (its `ssh -W` child, as ProxyJump starts it; spelled out
    // so that the child gets the same config), used and then stopped.
    let jump = format!(
        "ssh -F {cfg} -o ProxyCommand='ssh -F {cfg} -o StrictHostKeyChecking=accept-new -W %h:%p worker'"
    );
    let script = "eval \"$(distcc-auto env)\" || exit; echo \"hosts=$DISTCC_HOSTS\"; \
                  eval \"$(distcc-auto kill)\"";
    let mut c = client(&w, script, "ssh://worker");
    c.env("DISTCC_AUTO_SSH_COMMAND", &jump);
    let r = run_cmd(c);
    r.ok();
    check!(r, line(&r, "hosts=").contains("127.0.0.1:"));
    assert_none_left(&w, "-W 10.231.0.2", "ProxyJump");

    // A wrapper that runs ssh as its child instead of exec'ing it: the
    // worker is up (readiness by the group), and everything stops.
    let wrapper = format!("sh -c 'ssh -F {cfg} \"$@\"; true' wrapper");
    let mut c = client(&w, script, "ssh://worker");
    c.env("DISTCC_AUTO_SSH_COMMAND", &wrapper);
    let r = run_cmd(c);
    r.ok();
    check!(r, line(&r, "hosts=").contains("127.0.0.1:"), "up");
    check!(r, r.stderr.contains("stopped ssh tunnel"));
    assert_none_left(&w, "", "wrapper");

    // The user's own ssh_config shares connections for ever (ControlMaster
    // auto, ControlPersist yes) and reaches the worker through a jump
    // host: our options reach the tunnel's ssh but not the jump's, whose
    // lasting master leaves ssh's process group and session. It is still
    // stopped with the tunnel (the tunnel is a child subreaper).
    let shared = TempDir::private("user-mux");
    let mut c = client(&w, script, "ssh://worker");
    c.env(
        "DISTCC_AUTO_SSH_COMMAND",
        w.jump_with_lasting_masters(shared.path()),
    );
    let r = run_cmd(c);
    r.ok();
    check!(r, line(&r, "hosts=").contains("127.0.0.1:"));
    // The jump's master names itself by its socket ("ssh: PATH [mux]").
    assert_none_left(
        &w,
        &shared.path().display().to_string(),
        "ProxyJump under ControlPersist",
    );
}

#[test]
#[ignore = "needs root: network namespaces"]
fn an_ignored_sigterm_is_not_inherited_by_ssh() {
    need_netns!();
    let w = SshWorker::start();
    // Started with SIGTERM ignored (`trap '' TERM`, nohup-like launchers).
    let script = "trap '' TERM; eval \"$(distcc-auto env)\" || exit; \
                  start=$(date +%s%N); eval \"$(distcc-auto kill)\"; echo \"rc=$?\"; \
                  echo \"kill_ms=$(( ($(date +%s%N) - start) / 1000000 ))\"";
    let r = run_cmd(client(&w, script, "ssh://worker"));
    assert_eq!(line(&r, "rc="), "0", "{}", r.show());
    check!(r, r.stderr.contains("stopped ssh tunnel"));
    check!(r, !r.stderr.contains("did not stop"));
    let ms: u64 = line(&r, "kill_ms=").parse().unwrap();
    assert!(
        ms < 900,
        "SIGTERM did the work, not SIGKILL after a grace: {ms} ms"
    );

    // Ten ssh workers that are dropped (their distccd port is closed):
    // stopped in parallel, within the deadline.
    let hosts: Vec<String> = (0..10)
        .map(|i| format!("ssh://worker/{}/5998", 5100 + i))
        .collect();
    let mut c = client(
        &w,
        "trap '' TERM; distcc-auto env >/dev/null",
        &hosts.join(" "),
    );
    c.env("DISTCC_AUTO_SSH_TIMEOUT", "5");
    let start = Instant::now();
    let r = run_cmd(c);
    r.ok();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}: {}",
        start.elapsed(),
        r.show()
    );
    assert_none_left(&w, "", "ten dropped workers");
}

#[test]
#[ignore = "needs root: network namespaces"]
fn ssh_errors_no_retry_can_fix_are_said_at_once() {
    need_netns!();
    let w = SshWorker::start();
    let cfg = w.path("ssh_config");
    // A LocalForward in the host's ssh_config that another process holds.
    let held = w.lan.client.listen("127.0.0.1:7999");
    let with_forward = w.path("ssh_config_fwd");
    std::fs::write(
        &with_forward,
        format!(
            "Host worker\n  LocalForward 127.0.0.1:7999 localhost:3632\n{}",
            std::fs::read_to_string(&cfg).unwrap()
        ),
    )
    .unwrap();
    for (what, command) in [
        ("ssh -6", format!("ssh -6 -F {cfg}")),
        ("LocalForward", format!("ssh -F {with_forward}")),
    ] {
        let mut c = client(&w, "distcc-auto hosts", "ssh://worker");
        c.env("DISTCC_AUTO_SSH_COMMAND", &command);
        let r = run_cmd(c);
        let row = r.row("ssh://worker");
        check!(r, row.contains("down"), "{what}");
        check!(r, !row.contains("attempts"), "{what}: no retries");
        check!(r, row.contains("ssh:"), "{what}: in ssh's words");
        assert_none_left(&w, "", what);
    }
    drop(held);
}

#[test]
#[ignore = "needs root: network namespaces"]
fn no_tmpdir_is_needed() {
    need_netns!();
    let w = SshWorker::start();
    for tmp in ["/nonexistent/tmp", "/proc"] {
        let mut c = client(&w, "distcc-auto hosts", "ssh://worker");
        c.env("TMPDIR", tmp);
        let r = run_cmd(c);
        check!(r, r.row("ssh://worker").contains(" up "), "TMPDIR={tmp}");
        assert_none_left(&w, "", tmp);
    }
}

#[test]
fn a_file_limit_costs_time_not_workers() {
    // FAKE job ports: hundreds of listeners that accept, paired with one
    // real distccd's stats port (identity is the job port, so each entry
    // is a worker of its own); a real distccd cannot listen on 400 ports.
    let d = Distccd::start(1);
    let (_jobs, hosts) = fake_job_ports(400, d.stats_port);
    for limit in ["128:4096", "64:64"] {
        let mut c = Command::new("prlimit");
        c.arg(format!("--nofile={limit}")).arg(BIN).arg("env");
        c.env("DISTCC_AUTO_HOSTS", &hosts)
            .env("DISTCC_AUTO_TIMEOUT", "10")
            .env("DISTCC_DIR", std::env::temp_dir())
            .stdin(Stdio::null());
        let r = run_cmd(c);
        r.expect(0, format_args!("{limit}: "));
        let used = r.stdout.matches(",lzo").count();
        assert_eq!(
            used,
            400,
            "ulimit -n {limit}: {}",
            r.stderr.lines().take(5).collect::<Vec<_>>().join("\n")
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces"]
fn an_address_space_limit_costs_no_workers_and_no_abort() {
    need_netns!();
    // FAKE job ports, as above (in this namespace, where the listeners
    // are); then, under the same limit, an ssh worker whose tunnel must not
    // leak whatever happens.
    let w = SshWorker::start();
    let d = Distccd::start(1);
    let (_jobs, hosts) = fake_job_ports(600, d.stats_port);
    let mut c = Command::new("bash");
    c.args([
        "-c",
        &format!("ulimit -n 4096; ulimit -v 400000; exec {BIN} env"),
    ])
    .env("DISTCC_AUTO_HOSTS", &hosts)
    .env("DISTCC_AUTO_TIMEOUT", "10")
    .env("DISTCC_DIR", std::env::temp_dir())
    .stdin(Stdio::null());
    let r = run_cmd(c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.matches(",lzo").count(),
        600,
        "{}",
        r.stderr.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    // The same limit with an ssh worker: no abort, and no tunnel left.
    let mut c = client(&w, "ulimit -v 400000; distcc-auto hosts", "ssh://worker");
    c.stdin(Stdio::null());
    let r = run_cmd(c);
    check!(r, r.row("ssh://worker").contains(" up "));
    assert_none_left(&w, "", "ulimit -v");
}

#[test]
fn timeouts_name_the_right_step() {
    // An IP literal is never "resolving the name", even with no time at all.
    let r = run(
        &["hosts"],
        &[
            ("DISTCC_AUTO_HOSTS", "127.0.0.1:9:9"),
            ("DISTCC_AUTO_TIMEOUT", "0"),
        ],
    );
    check!(r, !r.stdout.contains("resolving the name"));
}
