//! `make bench`: what distcc-auto costs, measured, in one Markdown table
//! (printed, and written to target/bench.md). Every figure comes from this
//! run; a row that cannot run here says "not run" and why.
//!
//! Everything happens on this machine: the bench enters a network namespace
//! of its own (so that 127.0.x.y addresses, firewall rules and listeners
//! on 0.0.0.0 are private to it), plus the two namespaces of the ssh worker
//! from the test support code.

// The bench uses part of the test fixtures.
#[allow(dead_code, unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const RUNS: usize = 21;

/// Median, min and max of repeated measurements.
struct Spread {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn spread(mut v: Vec<Duration>) -> Spread {
    v.sort();
    Spread {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
    }
}

fn repeat(runs: usize, mut f: impl FnMut() -> Duration) -> Spread {
    f(); // warm-up: page cache, ARP, known_hosts
    spread((0..runs).map(|_| f()).collect())
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Table {
    rows: String,
}

impl Table {
    fn row(&mut self, what: &str, n: &str, s: &Spread, goal: &str, verdict: &str) {
        let _ = writeln!(
            self.rows,
            "| {what} | {n} | {} | {} | {} | {goal} | {verdict} |",
            ms(s.median),
            ms(s.min),
            ms(s.max)
        );
        eprintln!("bench: {what}, N={n}: median {} ms", ms(s.median));
    }

    fn not_run(&mut self, what: &str, why: &str) {
        let _ = writeln!(self.rows, "| {what} | - | not run | - | - | - | {why} |");
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

/// Time one `distcc-auto env` with `hosts`; fails loudly when it fails.
fn time_env(hosts: &str, vars: &[(&str, &str)]) -> Duration {
    let mut all = vec![("DISTCC_AUTO_HOSTS", hosts)];
    all.extend_from_slice(vars);
    let mut c = cmd(&["env"], &all);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    let status = c.status().unwrap();
    let took = start.elapsed();
    assert!(
        status.success(),
        "distcc-auto env failed for {} workers",
        hosts.split(' ').count()
    );
    took
}

/// Peak RSS of one run, from the binary's own trace (VmHWM).
fn peak_kib(hosts: &str) -> u64 {
    run(&["-v", "env"], &[("DISTCC_AUTO_HOSTS", hosts)]).peak_kib()
}

/// A listener with a backlog large enough for 1024 simultaneous connects
/// (std's is 128).
fn big_listener(addr: std::net::SocketAddrV4) -> TcpListener {
    // SO_REUSEPORT, so that a live build's relays (127.200.x.y on the
    // same port) can bind beside this wildcard listener.
    distcc_auto::sys::listen_tcp(addr, 4096, true).unwrap()
}

/// FAKE: many workers for the scaling rows. One stats listener and one job
/// listener on 0.0.0.0 inside the bench namespace answer for every
/// 127.0.x.y; the stats reply is the real distccd 3.4 reply captured in
/// tests/data. Real daemons serve the N=1 row and the end-to-end build.
fn fake_cluster(stats_port: u16, job_port: u16) {
    let reply = std::fs::read(root().join("tests/data/stats/distccd-3.4-debian.txt")).unwrap();
    let stats = big_listener(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        stats_port,
    ));
    let jobs = big_listener(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::UNSPECIFIED,
        job_port,
    ));
    for _ in 0..4 {
        let (stats, reply) = (stats.try_clone().unwrap(), reply.clone());
        thread::spawn(move || {
            for mut c in stats.incoming().flatten() {
                let _ = c.write_all(&reply);
            }
        });
        let jobs = jobs.try_clone().unwrap();
        thread::spawn(move || for _c in jobs.incoming() {});
    }
}

fn hosts(n: usize, first_octet3: usize, ports: &str) -> String {
    (0..n)
        .map(|i| format!("127.0.{}.{}{ports}", first_octet3 + i / 250, 1 + i % 250))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What every row may use: the real distccd of rows 1-3 and 5, and
/// whether this run has a network namespace of its own (root).
struct Ctx {
    d: Distccd,
    netns: bool,
    cpus: usize,
}

/// The rows, in the order of the table.
const ROWS: [fn(&mut Table, &Ctx); 16] = [
    row_one_worker,
    row_scaling,
    row_blackholed,
    row_tunnels,
    |t, c| end_to_end(t, &c.d, c.cpus),
    |t, _| shared_worker(t),
    |t, _| pending_logins(t),
    |t, _| toolchain_check(t),
    persistent_masters,
    zeroconf,
    |t, c| {
        live_row(t, c, "11. live build: overhead", |t, c| {
            live_overhead(t, &c.d)
        })
    },
    |t, c| live_row(t, c, "12. live build: a worker dies", |t, _| live_death(t)),
    |t, c| live_row(t, c, "13. live build: a worker joins", |t, _| live_join(t)),
    |t, c| live_account(t, &c.d),
    |t, c| live_row(t, c, "15. `distcc_build true`", |t, _| build_true(t)),
    // Last: its fake listens on the default ports, on every address.
    |t, c| {
        live_row(t, c, "16. `env` with 10,000 workers", |t, _| {
            ten_thousand(t)
        })
    },
];

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let mut t = Table {
        rows: String::new(),
    };
    let started = Instant::now();
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or("?".into(), |k| {
            format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0)
        });

    let ns = if let Some(why) = netns_unavailable() {
        eprintln!("bench: rows that need a namespace are not run: {why}");
        None
    } else {
        let ns = Netns::new("bench");
        // The bench itself moves into its namespace, so that what it runs
        // needs no `ip netns exec` (which would add its own start-up time).
        enter_netns(&format!("/var/run/netns/{}", ns.name));
        Some(ns)
    };
    let ctx = Ctx {
        d: Distccd::start(4),
        netns: ns.is_some(),
        cpus,
    };
    // BENCH_ROWS=4,9 runs only those rows (while working on one).
    let only: Option<Vec<usize>> = std::env::var("BENCH_ROWS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect());
    for (i, row) in ROWS.iter().enumerate() {
        if only.as_ref().is_none_or(|o| o.contains(&(i + 1))) {
            row(&mut t, &ctx);
        }
    }
    drop(ctx);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| measurement | N | median ms | min ms | max ms | goal | result |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    out.push_str(&t.rows);
    let _ = writeln!(
        out,
        "\n{RUNS} runs per row (5 for rows 2-4 at N > 1, for rows 5 and 11, interleaved, for rows 9 and 16 and for the reference driver in row 15; 1 for rows 12 to 14), after one warm-up. Machine: {cpus} CPUs, {mem} RAM, {}. Took {:.0} s.",
        uname(),
        started.elapsed().as_secs_f64()
    );
    print!("{out}");
    std::fs::create_dir_all(root().join("target")).unwrap();
    std::fs::write(root().join("target/bench.md"), &out).unwrap();
    drop(ns);
}

/// Rows 1 and 2 for one live real distccd: distcc-auto and lsdistcc.
fn row_one_worker(t: &mut Table, c: &Ctx) {
    let one = repeat(RUNS, || time_env(&c.d.entry(), &[]));
    t.row(
        "1. `distcc-auto env`, live real distccd",
        "1",
        &one,
        "-",
        "",
    );
    let lsd_one = repeat(RUNS, || {
        time_cmd(Command::new("lsdistcc").args([
            "-c1000",
            "-k0",
            &format!("-r{}", c.d.port),
            "127.0.0.1",
        ]))
    });
    t.row(
        "2. `lsdistcc` (connect only), same worker",
        "1",
        &lsd_one,
        "-",
        &format!("{:.2}× distcc-auto", ratio(&lsd_one, &one)),
    );
}

/// Rows 1 and 2 at 16, 256 and 1024 workers (a fake stats server on many
/// loopback addresses of the bench's own namespace).
fn row_scaling(t: &mut Table, c: &Ctx) {
    if !c.netns {
        t.not_run(
            "1. `distcc-auto env`, 16/256/1024 workers",
            "needs root for a network namespace",
        );
        t.not_run(
            "2. `lsdistcc`, 16/256/1024 workers",
            "needs root for a network namespace",
        );
        return;
    }
    {
        fake_cluster(5633, 5632);
        // 1024 workers: at most 50 ms, and at most 1.5 times 256 workers'
        // time four times over (the cost grows linearly or better).
        let mut at_256 = Duration::ZERO;
        for (n, goal) in [(16usize, 5.0), (256, 0.0), (1024, 50.0)] {
            let h = hosts(n, 1, ":5632:5633");
            let s = repeat(RUNS, || time_env(&h, &[]));
            if n == 256 {
                at_256 = s.median;
            }
            let (goal_s, verdict) = match goal {
                g if g > 0.0 && n == 1024 => {
                    let growth = s.median.as_secs_f64() / (4.0 * at_256.as_secs_f64());
                    (
                        format!("≤ {g} ms; ≤ 1.5× (256 workers × 4)"),
                        format!(
                            "{}; {growth:.2}× (256 workers × 4) ({})",
                            met(s.median.as_secs_f64() * 1000.0 <= g),
                            met(growth <= 1.5)
                        ),
                    )
                }
                g if g > 0.0 => (
                    format!("≤ {g} ms"),
                    met(s.median.as_secs_f64() * 1000.0 <= g).to_string(),
                ),
                _ => ("-".into(), String::new()),
            };
            let kib = peak_kib(&h);
            let rss = if n == 1024 {
                format!(
                    "peak RSS {:.1} MiB ({})",
                    kib as f64 / 1024.0,
                    met(kib <= 16 * 1024)
                )
            } else {
                format!("peak RSS {:.1} MiB", kib as f64 / 1024.0)
            };
            let verdict = [verdict, rss]
                .into_iter()
                .filter(|v| !v.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            t.row(
                "1. `distcc-auto env`, live workers (fake stats server)",
                &n.to_string(),
                &s,
                &goal_s,
                &verdict,
            );
            let ips: Vec<String> = h
                .split(' ')
                .map(|e| e.split(':').next().unwrap().to_string())
                .collect();
            let lsd = repeat(5, || {
                time_cmd(
                    Command::new("lsdistcc")
                        .args(["-c1000", "-k0", "-r5632"])
                        .args(&ips),
                )
            });
            let listed = Command::new("lsdistcc")
                .args(["-c1000", "-k0", "-r5632"])
                .args(&ips)
                .output()
                .unwrap();
            let listed = String::from_utf8_lossy(&listed.stdout).lines().count();
            // A tool that did not do the job has no time to compare.
            let verdict = match listed {
                0 => format!("failed: listed none of {n}"),
                l if l < n => format!(
                    "{:.2}× distcc-auto; listed only {l} of {n}",
                    ratio(&lsd, &s)
                ),
                _ => format!("{:.2}× distcc-auto", ratio(&lsd, &s)),
            };
            t.row(
                "2. `lsdistcc` (connect only), same workers",
                &n.to_string(),
                &lsd,
                "-",
                &verdict,
            );
        }
    }
}

/// Row 3: any number of blackholed workers costs one deadline.
fn row_blackholed(t: &mut Table, c: &Ctx) {
    if !c.netns {
        t.not_run(
            "3. blackholed workers",
            "needs root for a network namespace and iptables",
        );
        return;
    }
    {
        // Undone at the end of the row: the live rows build on 127.0.9.x.
        let drop_rule = |op: &str| {
            let mut c = Command::new("iptables");
            c.args([op, "INPUT", "-p", "tcp", "-d", "127.0.9.0/24", "-j", "DROP"]);
            run_cmd(c).expect(0, format_args!("iptables {op}"));
        };
        drop_rule("-A");
        for n in [1usize, 8, 64] {
            let h = format!("{} {}", c.d.entry(), hosts(n, 9, ""));
            let s = repeat(5, || time_env(&h, &[("DISTCC_AUTO_TIMEOUT", "1")]));
            let ok = s.max <= Duration::from_millis(1200);
            t.row(
                "3. 1 live + N blackholed workers, deadline 1 s",
                &n.to_string(),
                &s,
                "≤ 1200 ms",
                met(ok),
            );
        }
        // The same 8 dead workers remembered (DISTCC_AUTO_BACKOFF_PERIOD):
        // the first run waits for them once, the next ones do not.
        let rt = TempDir::new("bench-runtime");
        let rt_s = rt.path().display().to_string();
        let h = format!("{} {}", c.d.entry(), hosts(8, 9, ""));
        let vars = [
            ("DISTCC_AUTO_TIMEOUT", "1"),
            ("DISTCC_AUTO_BACKOFF_PERIOD", "60"),
            ("XDG_RUNTIME_DIR", rt_s.as_str()),
        ];
        let first = time_env(&h, &vars);
        let first = Spread {
            median: first,
            min: first,
            max: first,
        };
        t.row(
            "3. the same with 8 dead workers remembered: first run",
            "8",
            &first,
            "about 1 s",
            met(first.median <= Duration::from_millis(1200)),
        );
        let next = spread((0..5).map(|_| time_env(&h, &vars)).collect());
        t.row(
            "3. the same with 8 dead workers remembered: the runs after it",
            "8",
            &next,
            "≤ 300 ms",
            met(next.max <= Duration::from_millis(300)),
        );
        drop_rule("-D");
    }
}

/// Row 4: ssh tunnels against a real sshd in a namespace.
fn row_tunnels(t: &mut Table, c: &Ctx) {
    if !c.netns {
        t.not_run("4. ssh tunnels", "needs root for network namespaces");
        return;
    }
    {
        let w = worker_with_aliases(16);
        // ssh's default key exchange in OpenSSH 9.x (sntrup761x25519, post-
        // quantum) costs far more CPU than curve25519; both are shown, the
        // second being what a user can opt in to.
        for (kex, label) in [
            (None, "default key exchange"),
            (Some("curve25519-sha256"), "KexAlgorithms=curve25519-sha256"),
        ] {
            let command = match kex {
                None => w.ssh_command(),
                Some(k) => format!("{} -o KexAlgorithms={k}", w.ssh_command()),
            };
            let mut base = None;
            for n in [1usize, 4, 16] {
                let h = (1..=n)
                    .map(|i| format!("ssh://w{i}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let s = repeat(5, || time_tunnels(&w, &command, &h, n, &[]));
                let verdict = match base {
                    None => {
                        base = Some(s.median);
                        String::new()
                    }
                    Some(b) => {
                        let x = s.median.as_secs_f64() / b.as_secs_f64();
                        if n == 16 {
                            format!("{x:.2}× one tunnel ({})", met(x <= 2.0))
                        } else {
                            format!("{x:.2}× one tunnel")
                        }
                    }
                };
                t.row(
                    &format!("4. `env` with N `ssh://` workers (real sshd), {label}, incl. `ip netns exec`"),
                    &n.to_string(),
                    &s,
                    if n == 16 { "≤ 2× one tunnel" } else { "-" },
                    &verdict,
                );
            }
        }
    }
}

/// A real sshd worker reachable as the ssh hosts w1 ... wN (N workers as
/// far as distcc-auto can tell, one machine behind them).
fn worker_with_aliases(n: usize) -> SshWorker {
    let w = SshWorker::start();
    let mut aliases = String::new();
    for i in 1..=n {
        let _ = write!(
            aliases,
            "Host w{i}\n  HostName {WORKER_IP}\n  Port {SSH_PORT}\n  User root\n  IdentityFile {}\n",
            w.path("userkey")
        );
    }
    let cfg = std::fs::read_to_string(w.path("ssh_config")).unwrap();
    std::fs::write(w.path("ssh_config"), format!("{aliases}{cfg}")).unwrap();
    w
}

fn ratio(a: &Spread, b: &Spread) -> f64 {
    a.median.as_secs_f64() / b.median.as_secs_f64()
}

fn time_cmd(c: &mut Command) -> Duration {
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let start = Instant::now();
    c.status().unwrap();
    start.elapsed()
}

/// `env` with ssh workers in the client namespace; its tunnels are then
/// stopped (outside the timing) so that runs do not pile up.
fn time_tunnels(
    w: &SshWorker,
    command: &str,
    hosts: &str,
    n: usize,
    extra: &[(&str, &str)],
) -> Duration {
    let mut vars = vec![
        ("DISTCC_AUTO_HOSTS", hosts),
        ("DISTCC_AUTO_SSH_COMMAND", command),
    ];
    vars.extend_from_slice(extra);
    let start = Instant::now();
    let out = cmd_in(Some(&w.lan.client), &["env"], &vars)
        .output()
        .unwrap();
    let took = start.elapsed();
    let env = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
        what: "env".into(),
    };
    let pids = env.export("DISTCC_AUTO_TUNNEL_PIDS");
    let up = pids.split(' ').filter(|p| !p.is_empty()).count();
    if up != n {
        // Say why, and count the run anyway: the table is what happened.
        eprintln!("bench: only {up} of {n} tunnels came up: {}", env.stderr);
    }
    let ids = env.export("DISTCC_AUTO_TUNNEL_IDS");
    let r = run(
        &["kill"],
        &[
            ("DISTCC_AUTO_TUNNEL_PIDS", &pids),
            ("DISTCC_AUTO_TUNNEL_IDS", &ids),
        ],
    );
    r.expect(0, format_args!(""));
    took
}

/// Row 9: `env` with 4 ssh workers and DISTCC_AUTO_SSH_PERSIST, the first
/// run (4 logins, 4 masters) and the second (reusing them); every sample
/// starts with no master (`kill --all` after it, outside the timing).
/// Row 10: `env` with 3 workers found by `+zeroconf` (real avahi-daemon
/// and `distccd --zeroconf` per worker), against the same 3 listed.
fn zeroconf(t: &mut Table, c: &Ctx) {
    const WHAT: &str = "10. `env` with 3 workers";
    if !c.netns {
        t.not_run(WHAT, "needs root for network namespaces");
        return;
    }
    let mut link = Link::new();
    let workers: Vec<AnnouncedWorker> = (1..=3)
        .map(|i| {
            let how = Announcing {
                jobs: 2,
                stats: true,
                gcc11: false,
            };
            AnnouncedWorker::start(&mut link, &format!("bw{i}"), how)
        })
        .collect();
    let listed: String = workers
        .iter()
        .map(|w| format!("{}:3632", w.ip))
        .collect::<Vec<_>>()
        .join(" ");
    let env = |hosts: &str| {
        let mut c = link.client.cmd(BIN);
        c.arg("env")
            .env("DISTCC_AUTO_HOSTS", hosts)
            .env("DISTCC_AUTO_BACKOFF_PERIOD", "0");
        c
    };
    // Until all three are heard.
    for _ in 0..100 {
        let out = env("+zeroconf").output().unwrap();
        if String::from_utf8_lossy(&out.stdout)
            .matches("/2,lzo")
            .count()
            == 3
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let found = repeat(RUNS, || time_cmd(&mut env("+zeroconf")));
    let named = repeat(RUNS, || time_cmd(&mut env(&listed)));
    t.row(
        &format!("{WHAT} found by `+zeroconf` (DISTCC_AUTO_ZEROCONF_TIMEOUT=0.5)"),
        "3",
        &found,
        "-",
        &format!(
            "{:.0}× listed; the wait for answers is the timeout",
            ratio(&found, &named)
        ),
    );
    t.row(&format!("{WHAT} listed by address"), "3", &named, "-", "");
}

fn persistent_masters(t: &mut Table, c: &Ctx) {
    const WHAT: &str = "9. `env` with 4 `ssh://` workers, DISTCC_AUTO_SSH_PERSIST=60";
    if !c.netns {
        t.not_run(WHAT, "needs root for network namespaces");
        return;
    }
    let w = worker_with_aliases(4);
    let rt = TempDir::private("bench-runtime");
    let rt_path = rt.path().display().to_string();
    let extra = [
        ("DISTCC_AUTO_SSH_PERSIST", "60"),
        ("XDG_RUNTIME_DIR", rt_path.as_str()),
    ];
    let hosts = "ssh://w1 ssh://w2 ssh://w3 ssh://w4";
    let command = w.ssh_command();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for i in 0..6 {
        let a = time_tunnels(&w, &command, hosts, 4, &extra);
        let b = time_tunnels(&w, &command, hosts, 4, &extra);
        let r = run(&["kill", "--all"], &extra);
        r.expect(0, format_args!(""));
        assert_eq!(
            r.stderr.matches("stopped ssh master").count(),
            4,
            "{}",
            r.show()
        );
        // The first sample warms up (page cache, known_hosts).
        if i > 0 {
            first.push(a);
            second.push(b);
        }
    }
    let (first, second) = (spread(first), spread(second));
    t.row(&format!("{WHAT}: first run"), "4", &first, "-", "");
    let x = ratio(&second, &first);
    let ok = second.median <= Duration::from_millis(150) && x <= 1.0 / 3.0;
    t.row(
        &format!("{WHAT}: second run"),
        "4",
        &second,
        "≤ 150 ms and ≤ 1/3 of the first",
        &format!("{x:.2}× the first ({})", met(ok)),
    );
}

fn uname() -> String {
    Command::new("uname")
        .args(["-srm"])
        .output()
        .map_or("?".into(), |o| {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        })
}

/// Row 6: two `distcc_build make` at once against the same real worker,
/// without and with DISTCC_AUTO_LOAD_AWARE, the second starting one second
/// after the first: wall time until both end, and the daemon's
/// dcc_rej_overload and compile counters.
fn shared_worker(t: &mut Table) {
    let d = Distccd::start(4);
    let dirs = [TempDir::new("shared-a"), TempDir::new("shared-b")];
    for dir in &dirs {
        generate_project(dir.path());
        std::fs::create_dir_all(dir.path().join(".distcc")).unwrap();
    }
    let mut results: Vec<(&str, Vec<Duration>, u64, u64)> =
        vec![("0", vec![], 0, 0), ("1", vec![], 0, 0)];
    for round in 0..4 {
        for r in results.iter_mut() {
            let (rej, ok) = (d.stat("dcc_rej_overload"), d.stat("dcc_compile_ok"));
            let start = Instant::now();
            let children: Vec<_> = dirs
                .iter()
                .enumerate()
                .map(|(i, dir)| {
                    if i > 0 {
                        thread::sleep(Duration::from_secs(1));
                    }
                    make_clean(dir.path());
                    let mut c = shell("bash", None, "distcc_build make -s");
                    c.env("DISTCC_AUTO_HOSTS", d.entry())
                        .env("DISTCC_AUTO_LOAD_AWARE", r.0);
                    c.env("DISTCC_AUTO_COMPILER_MEMORY", "0")
                        .env("DISTCC_DIR", dir.path().join(".distcc"));
                    c.current_dir(dir.path())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null());
                    c.spawn().unwrap()
                })
                .collect();
            for mut c in children {
                assert!(c.wait().unwrap().success());
            }
            if round > 0 {
                // the first round is a warm-up
                r.1.push(start.elapsed());
                r.2 += d.stat("dcc_rej_overload") - rej;
                r.3 += d.stat("dcc_compile_ok") - ok;
            }
        }
    }
    for (aware, times, rej, ok) in results {
        let what = if aware == "1" {
            "with DISTCC_AUTO_LOAD_AWARE=1"
        } else {
            "without load-aware slots"
        };
        t.row(
            &format!("6. two `distcc_build make` at once on one real distccd (4 slots), {what}"),
            "1",
            &spread(times),
            "-",
            &format!(
                "dcc_rej_overload +{rej}, remote compiles {ok} of {} over 3 rounds",
                3 * 2 * (FILES + 1)
            ),
        );
    }
}

fn make_clean(dir: &std::path::Path) {
    let clean = Command::new("make")
        .args(["-s", "clean"])
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(clean.success());
}

/// A generated C project: FILES translation units, each heavy enough to
/// take a noticeable fraction of a second at -O2.
const FILES: usize = 48;

/// One generated translation unit, heavy enough to take a noticeable
/// fraction of a second at -O2.
fn unit_source(i: usize) -> String {
    let mut src =
        "/* generated for the distcc-auto benchmark */\n#include <stddef.h>\n".to_string();
    for j in 0..12 {
        let _ = writeln!(
            src,
            "static long f{j}(long x) {{ long s = 0; for (int k = 0; k < 64; k++) {{ s += (x * {a} + k) ^ (s >> 3); if (s % {b} == 0) s += f{p}(x - 1); }} return s; }}",
            a = i * 7 + j + 3,
            b = j + 5,
            p = if j == 0 { 0 } else { j - 1 }
        );
    }
    let _ = writeln!(src, "long unit{i}(long x) {{ return f11(x) + f6(x + 1); }}");
    src
}

fn generate_project(dir: &std::path::Path) {
    let mut objs = Vec::new();
    for i in 0..FILES {
        std::fs::write(dir.join(format!("u{i}.c")), unit_source(i)).unwrap();
        objs.push(format!("u{i}.o"));
    }
    let main: String = (0..FILES)
        .map(|i| format!("long unit{i}(long);\n"))
        .collect::<String>()
        + "int main(void) { long s = 0;\n"
        + &(0..FILES)
            .map(|i| format!("s += unit{i}(3);\n"))
            .collect::<String>()
        + "return (int)(s & 1); }\n";
    std::fs::write(dir.join("main.c"), main).unwrap();
    std::fs::write(
        dir.join("Makefile"),
        format!(
            "CC = distcc cc\nCFLAGS = -O2\nOBJS = main.o {}\nprog: $(OBJS)\n\tcc -o $@ $(OBJS)\n%.o: %.c\n\t$(CC) $(CFLAGS) -c -o $@ $<\nclean:\n\trm -f prog $(OBJS)\n",
            objs.join(" ")
        ),
    )
    .unwrap();
}

fn end_to_end(t: &mut Table, d: &Distccd, cpus: usize) {
    let dir = TempDir::new("e2e");
    generate_project(dir.path());
    std::fs::create_dir_all(dir.path().join(".distcc")).unwrap();
    let hosts = d.entry();
    // What distcc-auto decides, so that the hand-written run uses the same.
    let r = run(&["env"], &[("DISTCC_AUTO_HOSTS", &hosts)]);
    let get = |name: &str| r.export(name);
    let (distcc_hosts, jobs) = (get("DISTCC_HOSTS"), get("DISTCC_AUTO_JOBS"));
    let build = |c: &mut Command| {
        make_clean(dir.path());
        c.current_dir(dir.path())
            .env("DISTCC_DIR", dir.path().join(".distcc"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let start = Instant::now();
        let ok = c.status().unwrap().success();
        assert!(ok, "build failed: {c:?}");
        start.elapsed()
    };
    // Interleaved, so that drift on the machine hits all three alike.
    let runs = 5;
    let (mut auto, mut hand, mut local) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=runs {
        let a = build(shell("bash", None, "distcc_build make -s").env("DISTCC_AUTO_HOSTS", &hosts));
        let h = build(
            Command::new("make")
                .args(["-s", "-j", &jobs])
                .env("DISTCC_HOSTS", &distcc_hosts),
        );
        let l = build(Command::new("make").args(["-s", "-j", &cpus.to_string(), "CC=cc"]));
        if i > 0 {
            // the first round is a warm-up
            auto.push(a);
            hand.push(h);
            local.push(l);
        }
    }
    let (auto, hand, local) = (spread(auto), spread(hand), spread(local));
    let what = format!(
        "5. build of a generated C project ({FILES} + 1 files) through one real distccd on loopback"
    );
    let over = (auto.median.as_secs_f64() / hand.median.as_secs_f64() - 1.0) * 100.0;
    t.row(
        &format!("{what}: `distcc_build make`"),
        "1",
        &auto,
        "≤ 1% over hand-written",
        &format!("{over:+.1}% ({})", met(over <= 1.0)),
    );
    t.row(
        &format!("{what}: hand-written DISTCC_HOSTS, `make -j {jobs}`"),
        "1",
        &hand,
        "-",
        &format!("DISTCC_HOSTS='{distcc_hosts}'"),
    );
    t.row(
        &format!("{what}: plain local `make -j {cpus}`"),
        "-",
        &local,
        "-",
        "no distcc",
    );
}

/// Row 7: 50 ssh logins that never complete (a ProxyCommand that only
/// sleeps) for the whole ssh deadline, and the CPU that distcc-auto itself
/// uses while it waits for them (its utime + stime from /proc, read until
/// it exits; ssh's own CPU is not counted). Needs no namespace.
fn pending_logins(t: &mut Table) {
    const N: usize = 50;
    const WAIT: f64 = 3.0;
    let hosts: Vec<String> = (0..N).map(|i| format!("ssh://pending-{i}")).collect();
    let mut c = Command::new(BIN);
    c.arg("env")
        .env("DISTCC_AUTO_HOSTS", hosts.join(" "))
        .env("DISTCC_AUTO_SSH_COMMAND", "ssh -o ProxyCommand='sleep 60'")
        .env("DISTCC_AUTO_SSH_TIMEOUT", WAIT.to_string())
        .env("DISTCC_DIR", std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let start = Instant::now();
    let mut child = c.spawn().expect("distcc-auto");
    // SAFETY: sysconf reads a system constant.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut cpu_ticks = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", child.id())) {
            let f: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            // utime and stime are fields 14 and 15 (11 and 12 after ')').
            if let (Some(u), Some(s)) = (f.get(11), f.get(12)) {
                cpu_ticks = u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed();
    let cpu = cpu_ticks as f64 / ticks_per_s;
    let share = cpu / wall.as_secs_f64() * 100.0;
    let s = Spread {
        median: wall,
        min: wall,
        max: wall,
    };
    t.row(
        "7. `env` while ssh logins are pending (ProxyCommand that never connects), distcc-auto's own CPU",
        &N.to_string(),
        &s,
        "< 5% of a core",
        &format!("{cpu:.2} CPU s = {share:.1}% of a core ({})", met(share < 5.0)),
    );
}

/// Row 8: what the compile and toolchain checks cost: `env` against N real
/// distccd with no check, the compile check, and the toolchain check (one
/// compile on each worker, concurrently, plus one on this machine).
fn toolchain_check(t: &mut Table) {
    let daemons: Vec<Distccd> = (0..16).map(|_| Distccd::start(2)).collect();
    for n in [1usize, 4, 16] {
        let hosts: Vec<String> = daemons[..n].iter().map(Distccd::entry).collect();
        let hosts = hosts.join(" ");
        let mut base = None;
        for check in ["none", "compile", "toolchain"] {
            let s = repeat(5, || time_env(&hosts, &[("DISTCC_AUTO_CHECK", check)]));
            let verdict = match base {
                None => {
                    base = Some(s.median);
                    String::new()
                }
                Some(b) => format!(
                    "+{:.1} ms over no check",
                    (s.median.as_secs_f64() - b.as_secs_f64()) * 1000.0
                ),
            };
            t.row(
                &format!("8. `env` with DISTCC_AUTO_CHECK={check}, real distccd"),
                &n.to_string(),
                &s,
                "-",
                &verdict,
            );
        }
    }
}

/// Rows 11 to 13: live builds, each against the same build with
/// DISTCC_AUTO_LIVE=0 in the same run: what the conductor and the relays
/// cost on a build that needs neither (11); a worker blackholed mid-build
/// (12); a worker that starts 3 s into the build (13).
fn live_row(t: &mut Table, c: &Ctx, what: &str, row: fn(&mut Table, &Ctx)) {
    if c.netns {
        row(t, c);
    } else {
        t.not_run(what, "needs a network namespace (root)");
    }
}

/// The running conductor's /proc directory (named `distcc-conduct`).
fn conductor_dir() -> Option<std::path::PathBuf> {
    let name = distcc_auto::process::identity::CONDUCTOR_NAME.to_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::read(p.join("comm")).is_ok_and(|c| c.strip_suffix(b"\n") == Some(name)))
}

/// The CPU time (utime + stime, seconds) in a /proc `stat` file.
fn cpu_in(stat: &std::path::Path) -> Option<f64> {
    let tick = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(stat).ok()?;
    let f: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let (u, s): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((u + s) / tick)
}

/// The conductor's CPU time so far (seconds).
fn conductor_cpu() -> Option<f64> {
    cpu_in(&conductor_dir()?.join("stat"))
}

/// The conductor's follower thread's CPU time so far (seconds): the part
/// of the conductor that keeps the build's account.
fn follower_cpu() -> Option<f64> {
    let tasks = std::fs::read_dir(conductor_dir()?.join("task")).ok()?;
    let follow = tasks
        .flatten()
        .map(|t| t.path())
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "follow"))?;
    cpu_in(&follow.join("stat"))
}

fn live_overhead(t: &mut Table, d: &Distccd) {
    let dir = TempDir::new("live-e2e");
    generate_project(dir.path());
    let hosts = d.entry();
    let build = |live: &str, cpu: &mut f64| {
        make_clean(dir.path());
        let mut c = shell("bash", None, "distcc_build make -s");
        c.env("DISTCC_AUTO_HOSTS", &hosts)
            .env("DISTCC_AUTO_LIVE", live)
            .current_dir(dir.path())
            .env("DISTCC_DIR", dir.path().join(".distcc"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let start = Instant::now();
        let mut child = c.spawn().unwrap();
        while child.try_wait().unwrap().is_none() {
            if let Some(s) = conductor_cpu() {
                *cpu = cpu.max(s);
            }
            thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    };
    let (mut on, mut off, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=5 {
        let mut used = 0.0;
        let a = build("1", &mut used);
        let b = build("0", &mut 0.0);
        if i > 0 {
            cpu.push(used / a.as_secs_f64() * 100.0);
            on.push(a);
            off.push(b);
        }
    }
    let (on, off) = (spread(on), spread(off));
    let over = (on.median.as_secs_f64() / off.median.as_secs_f64() - 1.0) * 100.0;
    let most = cpu.iter().copied().fold(0.0, f64::max);
    t.row(
        &format!("11. `distcc_build make`, {FILES} + 1 files, one real distccd: live (conductor, relay, jobserver)"),
        "1",
        &on,
        "conductor CPU < 1% of one core",
        &format!(
            "{over:+.1}% against DISTCC_AUTO_LIVE=0; conductor CPU at most {most:.2}% of the build's time ({})",
            met(most < 1.0)
        ),
    );
    t.row(
        "11. the same with DISTCC_AUTO_LIVE=0",
        "1",
        &off,
        "-",
        "snapshot: DISTCC_HOSTS and -j N",
    );
}

/// Row 14: live builds of 400 files through one real distccd: the
/// conductor follows every state file; its CPU over the build's time, the
/// follower's part, and the line it gives. Twice: row 5's generated units
/// (a fraction of a second each), and one-line files, where the fixed cost
/// per compile is all there is.
fn live_account(t: &mut Table, d: &Distccd) {
    account_row(t, d, "generated units like row 5's", &unit_source);
    account_row(t, d, "one-line files (the worst case)", &|i| {
        format!("int s{i}(int x) {{ return x * {i} + 1; }}\n")
    });
}

fn account_row(t: &mut Table, d: &Distccd, what: &str, source: &dyn Fn(usize) -> String) {
    const N: usize = 400;
    let dir = TempDir::new("account-400");
    let mut objs = Vec::new();
    for i in 0..N {
        std::fs::write(dir.path().join(format!("s{i}.c")), source(i)).unwrap();
        objs.push(format!("s{i}.o"));
    }
    std::fs::write(
        dir.path().join("Makefile"),
        format!(
            "all: {}\n%.o: %.c\n\tdistcc cc -O2 -c -o $@ $<\nclean:\n\trm -f *.o\n",
            objs.join(" ")
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join(".distcc")).unwrap();
    let mut c = shell("bash", None, "distcc_build make -s");
    c.env("DISTCC_AUTO_HOSTS", d.entry())
        .env("DISTCC_AUTO_LIVE", "1")
        .current_dir(dir.path())
        .env("DISTCC_DIR", dir.path().join(".distcc"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    let (mut cpu, mut follow) = (0.0f64, 0.0f64);
    while child.try_wait().unwrap().is_none() {
        if let Some(s) = conductor_cpu() {
            cpu = cpu.max(s);
        }
        if let Some(s) = follower_cpu() {
            follow = follow.max(s);
        }
        thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    let line = said
        .lines()
        .find(|l| l.contains(" compiles: "))
        .unwrap_or("no line")
        .trim_start_matches("distcc-auto: ")
        .to_string();
    let share = cpu / took.as_secs_f64() * 100.0;
    let follow_share = follow / took.as_secs_f64() * 100.0;
    t.row(
        &format!("14. live build of {N} {what}, one real distccd: the conductor following distcc's state files"),
        "1",
        &spread(vec![took]),
        "conductor CPU < 1% of one core; every compile counted",
        &format!(
            "conductor CPU {share:.2}% of the build's time ({}), of which the state-file follower {follow_share:.2}% (the rest: the relays); said: {line} ({})",
            met(share < 1.0),
            met(line.starts_with(&format!("{N} compiles: {N} remote")))
        ),
    );
}

/// Row 15: `distcc_build true` with 16 workers (the fake stats server),
/// distcc-auto against the reference driver (distcc-driver's distcc.sh,
/// at DISTCC_DRIVER: a checkout of github.com/whisperity/DistCC-Driver;
/// nothing of it is kept here), in the same run.
fn build_true(t: &mut Table) {
    fake_cluster(6633, 6632);
    let hosts = hosts(16, 1, ":6632:6633");
    let home = TempDir::new("build-true");
    // One bash runs `distcc_build true` N times and prints each time in
    // microseconds: what the function costs, not bash's start (nor a
    // clock's: EPOCHREALTIME is read without starting `date`).
    let times = |file: &str, runs: usize, vars: &[(&str, &str)]| -> Spread {
        let script = format!(
            ". '{file}'\ndistcc_build true 2>/dev/null\nfor i in $(seq {runs}); do s=$EPOCHREALTIME; distcc_build true 2>/dev/null; e=$EPOCHREALTIME; echo $(( ${{e/[.,]/}} - ${{s/[.,]/}} )); done"
        );
        let mut c = Command::new("bash");
        c.args(["--noprofile", "--norc", "-c", &script]);
        without_distcc_vars(&mut c);
        let bin_dir = std::path::Path::new(BIN)
            .parent()
            .unwrap()
            .display()
            .to_string();
        c.env("PATH", format!("{bin_dir}:/usr/bin:/bin:/usr/sbin:/sbin"))
            .env("DISTCC_AUTO_HOSTS", &hosts)
            .env("DISTCC_DIR", home.path())
            .stdin(Stdio::null());
        for (k, v) in vars {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        let v: Vec<Duration> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .map(Duration::from_micros)
            .collect();
        assert!(!v.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
        spread(v)
    };
    let ours_file = root().join("shell/distcc.sh").display().to_string();
    let live = times(&ours_file, RUNS, &[("DISTCC_AUTO_LIVE", "1")]);
    let snap = times(&ours_file, RUNS, &[("DISTCC_AUTO_LIVE", "0")]);
    let driver = std::env::var("DISTCC_DRIVER")
        .ok()
        .filter(|f| std::path::Path::new(f).is_file())
        .map(|f| times(&f, 5, &[]));
    let ratio = |s: &Spread| {
        driver
            .as_ref()
            .map(|d| d.median.as_secs_f64() / s.median.as_secs_f64())
    };
    let verdict = |s: &Spread| match ratio(s) {
        Some(r) => format!(
            "{r:.0}x faster than the reference driver ({})",
            met(r >= 100.0)
        ),
        None => "reference driver not run: set DISTCC_DRIVER to its distcc.sh".into(),
    };
    t.row(
        "15. `distcc_build true`, 16 workers (fake stats server): live build",
        "16",
        &live,
        "≥ 100x faster than the reference driver",
        &verdict(&live),
    );
    t.row(
        "15. the same with DISTCC_AUTO_LIVE=0",
        "16",
        &snap,
        "≥ 100x faster than the reference driver",
        &verdict(&snap),
    );
    match &driver {
        Some(d) => t.row(
            "15. the reference driver (distcc-driver), same workers",
            "16",
            d,
            "-",
            "bash, curl per worker",
        ),
        None => t.not_run(
            "15. the reference driver (distcc-driver)",
            "set DISTCC_DRIVER=/path/to/distcc-driver/distcc.sh",
        ),
    }
}

/// Row 16: `env` with 10,000 listed workers (the fake stats server, on
/// the default ports: with ports written out the list would not fit in
/// one environment variable, which Linux caps at 128 KiB).
fn ten_thousand(t: &mut Table) {
    const N: usize = 10_000;
    fake_cluster(3633, 3632);
    let h = hosts(N, 1, "");
    let r = run(&["env"], &[("DISTCC_AUTO_HOSTS", &h)]);
    let found = r.stderr.contains(&format!("remote on {N} workers"));
    let s = repeat(5, || time_env(&h, &[]));
    let kib = peak_kib(&h);
    t.row(
        "16. `distcc-auto env`, 10,000 listed workers (fake stats server), deadline 2 s",
        &N.to_string(),
        &s,
        "every live one found, within the deadline",
        &format!(
            "{} ({}); peak RSS {:.1} MiB",
            if found {
                "all 10,000 found"
            } else {
                "not all found"
            },
            met(found && s.max < Duration::from_secs(2)),
            kib as f64 / 1024.0
        ),
    );
}

/// Wait until the worker on `addr` answers stats.
fn answering(addr: &str) {
    wait_for(10, addr, || stat(None, addr, "dcc_max_kids") > 0);
}

fn live_death(t: &mut Table) {
    let (mut took, mut out) = (Vec::new(), None);
    for (live, n) in [("1", 1), ("0", 2)] {
        // Fresh addresses: the last run's daemons may still hold theirs.
        let (a1, a2) = (format!("127.0.9.{n}"), format!("127.0.8.{n}"));
        let hosts = format!("{a1} {a2}");
        let _w1 = worker(None, &a1, 2);
        let _w2 = worker(None, &a2, 2);
        answering(&a1);
        answering(&a2);
        let p = project();
        let vars = [("DISTCC_AUTO_LIVE", live)];
        let mut b = start_in(None, p.path(), &hosts, "make", "", None, &vars);
        let until = Instant::now() + Duration::from_secs(20);
        while stat(None, &a1, "dcc_compile_ok") < 2 {
            assert!(Instant::now() < until, "no compiles on {a1}:\n{}", b.said());
            thread::sleep(Duration::from_millis(50));
        }
        let cut = now();
        blackhole(None, &a1, "-A");
        let (rc, secs) = b.wait(900);
        blackhole(None, &a1, "-D");
        assert_eq!(rc, 0, "{}", b.said());
        took.push(secs);
        if live == "1" {
            out = b
                .when(&format!("worker '{a1}' left the build"))
                .map(|l| l - cut);
        }
    }
    let d = |s: f64| spread(vec![Duration::from_secs_f64(s)]);
    t.row(
        "12. a worker blackholed with compiles in flight (40 one-second compiles, 2 workers): live build",
        "1",
        &d(took[0]),
        "not distcc's 300 s",
        &format!(
            "out of the build {} after its death; {:.1}x faster than DISTCC_AUTO_LIVE=0 ({})",
            out.map_or("never".into(), |s| format!("{s:.1} s")),
            took[1] / took[0],
            met(took[0] < 60.0)
        ),
    );
    t.row(
        "12. the same with DISTCC_AUTO_LIVE=0",
        "1",
        &d(took[1]),
        "-",
        "distcc waits out DISTCC_IO_TIMEOUT for the compiles in flight",
    );
}

fn live_join(t: &mut Table) {
    let mut took = Vec::new();
    let mut first = None;
    for (live, n) in [("1", 1), ("0", 2)] {
        // Fresh addresses: the last run's daemons may still hold theirs.
        let (a1, a2) = (format!("127.0.9.{n}"), format!("127.0.8.{n}"));
        let hosts = format!("{a1} {a2}");
        let _w1 = worker(None, &a1, 2);
        answering(&a1);
        let p = project();
        let vars = [("DISTCC_AUTO_LIVE", live)];
        let mut b = start_in(None, p.path(), &hosts, "make", "", None, &vars);
        thread::sleep(Duration::from_secs(3));
        let _w2 = worker(None, &a2, 2);
        let joined = now();
        let mut seen = None;
        while b.child.try_wait().unwrap().is_none() {
            if seen.is_none() && stat(None, &a2, "dcc_compile_ok") > 0 {
                seen = Some(now() - joined);
            }
            thread::sleep(Duration::from_millis(50));
        }
        let (rc, secs) = b.wait(300);
        assert_eq!(rc, 0, "{}", b.said());
        took.push(secs);
        if live == "1" {
            first = seen;
        }
    }
    let d = |s: f64| spread(vec![Duration::from_secs_f64(s)]);
    t.row(
        "13. a worker that starts 3 s into the build (40 one-second compiles): live build",
        "1",
        &d(took[0]),
        "it compiles part of the build",
        &format!(
            "first compile done {} after it started (a compile takes 1 s); {:+.0}% build time against DISTCC_AUTO_LIVE=0 ({})",
            first.map_or("never".into(), |s| format!("{s:.1} s")),
            (took[0] / took[1] - 1.0) * 100.0,
            met(first.is_some())
        ),
    );
    t.row(
        "13. the same with DISTCC_AUTO_LIVE=0",
        "1",
        &d(took[1]),
        "-",
        "the new worker is never used",
    );
}
