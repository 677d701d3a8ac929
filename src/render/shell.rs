//! Rendering a plan: shell code for `eval`, the one-line summary, and the
//! cells that the tables (`table`) and the JSON (`json`) share. This module
//! is the only caller of `shell_escape`: everything `eval` reads is built
//! here, in a fixed order.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write;

use crate::plan::{Plan, Worker};
use crate::worker::found::TunnelInfo;

/// The shell that reads `env` and `kill` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// POSIX sh, bash, zsh: `export NAME='VALUE';`
    Sh,
    /// fish: `set -gx NAME 'VALUE';`
    Fish,
}

fn quote(s: &str) -> Cow<'_, str> {
    // The unix function directly: the top-level escape() follows the
    // build target's shell, and `eval` is always a POSIX shell.
    shell_escape::unix::escape(Cow::Borrowed(s))
}

/// The variables `env` sets, in the order it prints them.
const NAMES: [&str; 6] = [
    "DISTCC_HOSTS",
    "DISTCC_AUTO_JOBS",
    "DISTCC_AUTO_TUNNEL_PIDS",
    "DISTCC_AUTO_TUNNEL_IDS",
    "DISTCC_AUTO_COUNTERS",
    "DISTCC_AUTO_CCACHE_PREFIX",
];

/// The lines `eval "$(distcc-auto env)"` (or fish's `| source`) reads.
/// Only values we built are emitted, each quoted; the names are fixed.
/// `ccache_prefix` is what `distcc_build` gives CCACHE_PREFIX (`ccache`).
pub fn env_script(
    plan: &Plan,
    tunnels: &[TunnelInfo],
    ccache_prefix: Option<&str>,
    shell: Shell,
) -> String {
    variables(plan, tunnels, ccache_prefix, shell, "")
}

/// What `distcc_build` (bash, zsh) evals: the same variables, each line
/// led by `\builtin` so that no function or alias of the user's stands in
/// for `export`, then `\builtin set -- ARGS;`, the build's argument list
/// with the job count already placed (`plan::jobs`), each quoted.
pub fn build_script(
    plan: &Plan,
    tunnels: &[TunnelInfo],
    ccache_prefix: Option<&str>,
    argv: &[std::ffi::OsString],
    live: Option<&LiveVars>,
) -> Vec<u8> {
    let mut vars = variables(plan, tunnels, ccache_prefix, Shell::Sh, "\\builtin ");
    if let Some(l) = live {
        // The build reads its workers from DISTCC_DIR/hosts, which the
        // conductor keeps current: no DISTCC_HOSTS (the shell unsets it).
        vars = vars
            .lines()
            .filter(|l| !l.contains("export DISTCC_HOSTS="))
            .map(|l| format!("{l}\n"))
            .collect();
        let extra = [
            ("DISTCC_AUTO_DISTCC_DIR", Some(&l.distcc_dir)),
            ("DISTCC_AUTO_MAKEFLAGS", l.makeflags.as_ref()),
            ("DISTCC_AUTO_JOBSERVER_FIFO", l.fifo.as_ref()),
        ];
        for (name, value) in extra {
            if let Some(v) = value {
                let _ = writeln!(vars, "\\builtin export {name}={};", quote(v));
            }
        }
    }
    let mut out = vars.into_bytes();
    out.extend_from_slice(b"\\builtin set --");
    for a in argv {
        out.push(b' ');
        out.extend(quote_bytes(std::os::unix::ffi::OsStrExt::as_bytes(
            a.as_os_str(),
        )));
    }
    out.extend_from_slice(b";\n");
    out
}

/// What a live build's environment gets (see `live`): its DISTCC_DIR,
/// and with a jobserver the MAKEFLAGS and (for make 4.3's descriptors)
/// the FIFO the shell opens for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVars {
    pub distcc_dir: String,
    pub makeflags: Option<String>,
    pub fifo: Option<String>,
}

/// Any bytes as one POSIX single-quoted word: arguments need not be UTF-8.
fn quote_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = vec![b'\''];
    for &c in b {
        if c == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(c);
        }
    }
    out.push(b'\'');
    out
}

fn variables(
    plan: &Plan,
    tunnels: &[TunnelInfo],
    ccache_prefix: Option<&str>,
    shell: Shell,
    lead: &str,
) -> String {
    let pids: Vec<String> = tunnels.iter().map(|t| t.pid.to_string()).collect();
    let ids: Vec<String> = tunnels.iter().map(TunnelInfo::identity).collect();
    let values = [
        plan.distcc_hosts(),
        plan.jobs().to_string(),
        pids.join(" "),
        ids.join(" "),
        crate::render::tally::render(plan),
        ccache_prefix.unwrap_or_default().into(),
    ];
    let mut out = String::new();
    for (name, value) in NAMES.iter().zip(values) {
        let _ = match shell {
            Shell::Sh => writeln!(out, "{lead}export {name}={};", quote(&value)),
            Shell::Fish => writeln!(out, "set -gx {name} {};", fish_quote(&value)),
        };
    }
    out
}

/// What `eval "$(distcc-auto kill)"` (or `| source` in fish) reads.
pub fn unset_script(shell: Shell) -> String {
    match shell {
        Shell::Sh => format!("unset {};\n", NAMES.join(" ")),
        Shell::Fish => NAMES.iter().map(|n| format!("set -e {n};\n")).collect(),
    }
}

/// A fish string literal: in single quotes only `\\` and `\'` are special.
pub fn fish_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `distcc-auto init` output: a shell file (`shell/distcc.*`) with its
/// `# >>> find` block (the search for the binary) replaced by `bin`, and
/// its `# >>> resource` block left out. Blocks run from `# >>> NAME` to
/// `# <<< NAME`, each marker alone on its line.
pub fn init_script(file: &str, bin: &str, shell: Shell) -> String {
    let mut out = String::with_capacity(file.len());
    let mut inside = false;
    for line in file.split_inclusive('\n') {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("# >>> ") {
            inside = true;
            if name.starts_with("find") {
                let indent = &line[..line.len() - line.trim_start().len()];
                let _ = match shell {
                    Shell::Sh => writeln!(out, "{indent}__distcc_auto_bin={}", quote(bin)),
                    Shell::Fish => writeln!(out, "{indent}builtin set -l bin {}", fish_quote(bin)),
                };
            }
            continue;
        }
        if t.starts_with("# <<< ") {
            inside = false;
            continue;
        }
        if !inside {
            out.push_str(line);
        }
    }
    out
}

/// DISTCC_HOSTS as a person may paste it into a shell.
pub(crate) fn quoted_hosts(plan: &Plan) -> String {
    quote(&plan.distcc_hosts()).into_owned()
}

/// One line for stderr: what -j is made of.
pub fn summary(plan: &Plan) -> String {
    let n = plan.up().count();
    format!(
        "-j {}: {} local, {} preprocessor, {} remote on {n} worker{}",
        plan.jobs(),
        plan.local_slots,
        plan.preprocessor_slots,
        plan.remote_slots(),
        if n == 1 { "" } else { "s" },
    )
}

/// Where a worker was asked, as a person wants to read it: for an ssh
/// worker, the destination and the tunnel's local job and stats ports.
pub(crate) fn address(w: &Worker) -> String {
    match (&w.tunnel, w.address) {
        (Some(t), _) => {
            let shared = t
                .master
                .map_or_else(String::new, |pid| format!(" (ssh master {pid})"));
            format!(
                "{} via 127.0.0.1:{},{}{shared}",
                t.destination, t.local_distcc_port, t.local_stats_port
            )
        }
        (None, Some(a)) => a.to_string(),
        // An ssh worker whose tunnel never came up.
        (None, None) if w.spec.is_ssh() => {
            format!("{} via ssh", w.spec.ssh_destination().unwrap_or_default())
        }
        (None, None) => format!("{}:{}", w.target.host, w.target.stats_port),
    }
}

pub(crate) fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

pub(crate) fn load(w: &Worker) -> Option<String> {
    w.stats.as_ref()?.mean_load().map(|l| format!("{l:.2}"))
}

pub(crate) fn free_mem(w: &Worker) -> Option<String> {
    w.stats.as_ref()?.free_mem_mib.map(|m| format!("{m} MiB"))
}

/// How long a probe took, as a person reads it: "0.4 ms", "12 ms", "2.0 s".
pub(crate) fn took(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// Entries dropped as naming a worker already listed.
pub type Duplicates = [crate::config::hostspec::Duplicate];

/// Why an up worker's slots are a default, and how to fix that.
pub fn no_stats_note(w: &Worker) -> Option<String> {
    let why = w.no_stats.as_ref().filter(|_| w.is_up())?;
    let from = match w.spec.announced.as_ref().and_then(|a| a.jobs) {
        Some(_) => "as it announced (TXT jobs)",
        None => "by default (DISTCC_AUTO_NO_STATS_SLOTS)",
    };
    Some(format!(
        "no stats port ({why}): {} slots {from}; \
         start its distccd with --stats (Debian: add DAEMON_ARGS=\"$DAEMON_ARGS --stats\" \
         to /etc/default/distcc)",
        w.slots
    ))
}

/// Why a worker was dropped, or a note on one that is up.
pub(crate) fn reason(w: &Worker) -> String {
    w.dropped
        .as_ref()
        .map(|d| d.why.clone())
        .or_else(|| no_stats_note(w))
        .or_else(|| w.warning.clone())
        .unwrap_or_default()
}

pub(crate) fn state(w: &Worker) -> String {
    if w.is_up() { "up" } else { "down" }.into()
}

pub(crate) fn slots(w: &Worker) -> String {
    if w.is_up() {
        w.slots.to_string()
    } else {
        "-".into()
    }
}

pub(crate) fn totals(plan: &Plan) -> String {
    format!(
        "-j {}: {} local, {} preprocessor, {} remote slots; {} of {} workers up",
        plan.jobs(),
        plan.local_slots,
        plan.preprocessor_slots,
        plan.remote_slots(),
        plan.up().count(),
        plan.workers.len()
    )
}

/// Compiles a worker had done when last seen: (ok, failed), by entry.
pub type Counters = HashMap<String, (u64, u64)>;

pub fn counters(plan: &Plan) -> Counters {
    plan.workers
        .iter()
        .filter_map(|w| Some((w.spec.entry.clone(), compiles(w)?)))
        .collect()
}

pub(crate) use crate::render::tally::compiles;

/// Compiles since the previous round: (ok, failed), by `tally::delta`.
pub(crate) fn since(w: &Worker, previous: &Counters) -> Option<(u64, u64)> {
    let now = compiles(w)?;
    Some(match previous.get(&w.spec.entry) {
        Some(&p) => crate::render::tally::delta(now, p),
        None => now,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn init_pins_the_binary_and_leaves_out_the_search_and_the_re_sourcing() {
        for (file, shell) in [
            (include_str!("../../shell/distcc.sh"), Shell::Sh),
            (include_str!("../../shell/distcc.zsh"), Shell::Sh),
            (include_str!("../../shell/distcc.fish"), Shell::Fish),
        ] {
            assert!(file.contains("# >>> find"));
            let text = init_script(file, "/opt/it's here/distcc-auto", shell);
            for gone in ["# >>>", "# <<<", "../../bin", "builtin source", "whence -p"] {
                assert!(!text.contains(gone), "{gone}: {text}");
            }
            let pinned = match shell {
                Shell::Sh => "__distcc_auto_bin='/opt/it'\\''s here/distcc-auto'\n",
                Shell::Fish => "builtin set -l bin '/opt/it\\'s here/distcc-auto'\n",
            };
            assert_eq!(text.matches(pinned).count(), 1, "{text}");
            assert!(text.contains("distcc_build"));
        }
    }

    use super::*;
    use crate::config::Config;
    use crate::config::hostspec::parse_entry;
    use crate::plan::{Local, Probed, plan};
    use crate::worker::found::{Outcome, Probe, Target};
    use crate::worker::stats::Stats;
    use std::time::Duration;

    /// Two workers: w1 up with 16 slots, [fd00::7] timed out.
    pub(crate) fn sample_plan(fallback: &str) -> Plan {
        let vars = [
            ("DISTCC_AUTO_HOSTS", "w"),
            ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "2"),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", fallback),
        ];
        let config = Config::from_lookup(
            |n| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            },
            3,
        )
        .unwrap();
        let mk = |entry: &str, outcome| {
            let spec = parse_entry(entry).unwrap();
            let target = Target::of(&spec);
            Probed {
                spec,
                target,
                probe: Probe {
                    address: None,
                    outcome,
                    elapsed: Duration::from_micros(1234),
                    tunnel: None,
                    compiler: None,
                },
            }
        };
        let stats = Stats {
            max_kids: 16,
            load: [Some(0.5); 3],
            ..Stats::default()
        };
        plan(
            &config,
            Local {
                mem_available_mib: None,
                compiler: None,
                cc: None,
            },
            vec![
                mk("w1", Outcome::Up { stats }),
                mk(
                    "[fd00::7]",
                    Outcome::Down {
                        reason: "timed out after 2 s (connecting to the stats port)".into(),
                        code: crate::worker::fault::Code::Timeout,
                    },
                ),
            ],
        )
    }

    #[test]
    fn env_is_quoted_shell_in_fixed_order() {
        let p = sample_plan("0");
        assert_eq!(
            env_script(&p, &[], Some("distcc"), Shell::Sh),
            "export DISTCC_HOSTS='localhost/2 --localslots=2 --localslots_cpp=3 w1:3632/16,lzo';\n\
             export DISTCC_AUTO_JOBS=21;\n\
             export DISTCC_AUTO_TUNNEL_PIDS='';\n\
             export DISTCC_AUTO_TUNNEL_IDS='';\n\
             export DISTCC_AUTO_COUNTERS=-;\n\
             export DISTCC_AUTO_CCACHE_PREFIX=distcc;\n"
        );
        let tunnel = |pid| TunnelInfo {
            pid,
            uid: 1000,
            start: 77,
            destination: "w".into(),
            master: None,
            local_distcc_port: 1,
            local_stats_port: 2,
        };
        let with_tunnels = env_script(&p, &[tunnel(41), tunnel(42)], None, Shell::Sh);
        assert!(with_tunnels.contains("export DISTCC_AUTO_TUNNEL_PIDS='41 42';\n"));
        assert!(with_tunnels.contains("export DISTCC_AUTO_TUNNEL_IDS='41:1000:77 42:1000:77';\n"));
        assert!(with_tunnels.ends_with("export DISTCC_AUTO_CCACHE_PREFIX='';\n"));
        let fish = env_script(&p, &[tunnel(41)], Some("distcc"), Shell::Fish);
        assert!(fish.starts_with("set -gx DISTCC_HOSTS 'localhost/2 --localslots=2 --localslots_cpp=3 w1:3632/16,lzo';\n"), "{fish}");
        assert!(
            fish.contains("set -gx DISTCC_AUTO_TUNNEL_PIDS '41';\n"),
            "{fish}"
        );
        assert_eq!(fish_quote("a'b\\c $x"), "'a\\'b\\\\c $x'");
        assert_eq!(
            unset_script(Shell::Fish).lines().next(),
            Some("set -e DISTCC_HOSTS;")
        );
        assert_eq!(
            summary(&p),
            "-j 21: 2 local, 3 preprocessor, 16 remote on 1 worker"
        );
    }
}
