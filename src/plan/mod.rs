//! Every decision about slots lives here, as a pure function of the
//! configuration, the probe results and the local machine. The rules are
//! the reference tool's:
//!
//! 1. With memory scaling on and a reported `dcc_free_mem`, a worker gets
//!    min(dcc_max_kids, free_mem / COMPILER_MEMORY) slots; 0 drops it.
//!    Without a report it gets dcc_max_kids.
//!    With DISTCC_AUTO_LOAD_AWARE=1, those slots are reduced by how busy the
//!    worker already is (see `busy`), never below 1.
//! 2. Workers are ordered by slots (most first), mean load (lowest first),
//!    free memory (most first, unknown last), then configuration order.
//! 3. Local slots are EARLY_LOCAL_JOBS when a worker is up, else
//!    FALLBACK_LOCAL_JOBS; with memory scaling on, at most
//!    MemAvailable / COMPILER_MEMORY.
//! 4. No worker up and no local slot: nothing to build on (exit 97).
//! 5. Preprocessor slots are PREPROCESSOR_SATURATION_JOBS when a worker is up.
//! 6. -j is remote slots + local slots + preprocessor slots.

pub mod jobs;

use std::cmp::Ordering;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::hostspec::{Host, HostSpec};
use crate::config::{CheckKind, Config, OnMismatch};
use crate::error::Error;
use crate::worker::fault::Code;
use crate::worker::found::TunnelInfo;
use crate::worker::found::{Outcome, Probe, Target};
use crate::worker::stats::Stats;

/// Facts about the machine the build runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// `MemAvailable` from /proc/meminfo, when known.
    pub mem_available_mib: Option<u64>,
    /// With the toolchain check: this machine's compiler, as its object for
    /// the check file shows it (`toolchain::identify`).
    pub compiler: Option<String>,
    /// With workers found by `+zeroconf`: this machine's `cc -dumpmachine`
    /// and `cc -dumpversion`, to compare with what they announce.
    pub cc: Option<(String, String)>,
}

/// One configured worker, where it was asked and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub spec: HostSpec,
    pub target: Target,
    pub probe: Probe,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    /// For people.
    pub why: String,
    /// For machines (`hosts --json`'s `reason_code`, the memory of
    /// unanswered workers).
    pub code: Code,
}

/// A worker as planned: what it answered and the slots it gets.
#[derive(Debug, Clone, PartialEq)]
pub struct Worker {
    pub spec: HostSpec,
    /// Where it was asked (for ssh workers, the tunnel's local end).
    pub target: Target,
    pub address: Option<SocketAddr>,
    pub stats: Option<Stats>,
    /// Why it gets no jobs; `None` when it is used.
    pub dropped: Option<Dropped>,
    /// Its compiler, when the compile check ran.
    pub compiler: Option<String>,
    /// Said about a worker that is used all the same.
    pub warning: Option<String>,
    pub slots: u32,
    pub elapsed: Duration,
    /// The ssh tunnel it is reached through.
    pub tunnel: Option<TunnelInfo>,
    /// Set for a worker without a stats port (distccd without `--stats`):
    /// what that port said. Its slots are DISTCC_AUTO_NO_STATS_SLOTS.
    pub no_stats: Option<String>,
}

impl Worker {
    pub fn is_up(&self) -> bool {
        self.dropped.is_none()
    }

    /// This worker's entry in DISTCC_HOSTS: the address that answered,
    /// not the name, since distcc would try the name's first address, which
    /// may be dead (a dual-stack name with a broken IPv6 route).
    /// With `pump`, the worker also preprocesses (distcc's pump mode).
    pub fn distcc_host(&self, pump: bool) -> String {
        let (host, port) = self.distcc_address();
        let cpp = if pump { ",cpp" } else { "" };
        format!("{host}:{port}/{}{cpp},lzo", self.slots)
    }

    /// The host and port this worker has in DISTCC_HOSTS.
    pub fn distcc_address(&self) -> (Host, u16) {
        let host = match self.address.map(|a| a.ip()) {
            Some(IpAddr::V4(a)) => Host::V4(a),
            Some(IpAddr::V6(a)) => Host::V6(a),
            None => self.target.host.clone(),
        };
        (host, self.target.distcc_port)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Used workers best first, then dropped ones in configuration order.
    pub workers: Vec<Worker>,
    pub local_slots: u32,
    pub preprocessor_slots: u32,
    /// Why there is nothing to build on, if so.
    pub nothing: Option<String>,
    /// Pump mode (DISTCC_AUTO_PUMP=1): workers are written `,cpp,lzo`.
    pub pump: bool,
    /// Each decision, for `--verbose`.
    pub decisions: Vec<String>,
}

impl Plan {
    pub fn up(&self) -> impl Iterator<Item = &Worker> {
        self.workers.iter().filter(|w| w.is_up())
    }

    pub fn remote_slots(&self) -> u32 {
        self.up().map(|w| w.slots).sum()
    }

    pub fn jobs(&self) -> u32 {
        self.remote_slots() + self.local_slots + self.preprocessor_slots
    }

    /// The value for DISTCC_HOSTS.
    pub fn distcc_hosts(&self) -> String {
        let mut parts = Vec::new();
        if self.local_slots > 0 {
            parts.push(format!("localhost/{0} --localslots={0}", self.local_slots));
        }
        if self.preprocessor_slots > 0 {
            parts.push(format!("--localslots_cpp={}", self.preprocessor_slots));
        }
        parts.extend(self.up().map(|w| w.distcc_host(self.pump)));
        parts.join(" ")
    }

    /// Ok when there is something to build on, else the exit-97 error.
    pub fn usable(&self) -> Result<(), Error> {
        match &self.nothing {
            None => Ok(()),
            Some(why) => Err(Error::NoWorkers(why.clone())),
        }
    }
}

/// Decide the slots. `workers` pairs each configured spec with where it was
/// probed and what the probe found, in configuration order.
pub fn plan(config: &Config, local: Local, workers: Vec<Probed>) -> Plan {
    let mut decisions = Vec::new();
    let mut all: Vec<Worker> = workers
        .into_iter()
        .map(|p| {
            let (w, said) = size(config, p);
            decisions.extend(said);
            w
        })
        .collect();
    if let Some(here) = &local.cc {
        decisions.extend(check_announced(&mut all, here, config.zeroconf_any));
    }
    if let (Some(check), Some(here)) = (&config.check, &local.compiler)
        && check.kind == CheckKind::Toolchain
    {
        decisions.extend(check_toolchains(&mut all, here, check.on_mismatch));
    }
    order(&mut all);
    let up = all.iter().filter(|w| w.is_up()).count();
    let (local_slots, memory_cap, said) = local_slots(config, &local, up, all.len());
    decisions.extend(said);
    // In pump mode the workers preprocess: no local preprocessing to keep
    // busy while compiles wait.
    let preprocessor_slots = if up > 0 && !config.pump {
        config.preprocessor_jobs
    } else {
        0
    };
    decisions.push(if config.pump {
        "0 preprocessor slots: pump mode, the workers preprocess".to_string()
    } else {
        format!("{preprocessor_slots} preprocessor slots")
    });
    let nothing = (up == 0 && local_slots == 0).then(|| {
        let why = match memory_cap {
            Some(avail) => format!(
                "not enough memory to compile here: {avail} MiB available, \
                 DISTCC_AUTO_COMPILER_MEMORY is {} MiB per compiler",
                config.compiler_memory_mib
            ),
            None => "DISTCC_AUTO_FALLBACK_LOCAL_JOBS is 0".into(),
        };
        format!(
            "no worker is up ({} configured) and {why}: nothing to build on",
            all.len()
        )
    });
    Plan {
        workers: all,
        local_slots,
        preprocessor_slots,
        nothing,
        decisions,
        pump: config.pump,
    }
}

/// One worker's slots from what its probe found, and the decisions that
/// gave them.
fn size(config: &Config, p: Probed) -> (Worker, Vec<String>) {
    let Probed {
        spec,
        target,
        probe,
    } = p;
    let mut said = Vec::new();
    let mut no_stats = None;
    let (stats, dropped, slots) = match probe.outcome {
        Outcome::Down { reason, code } => (None, Some(Dropped { why: reason, code }), 0),
        Outcome::NoStats { why } => {
            no_stats = Some(why);
            // A worker that announced itself said how many jobs it takes.
            let announced = spec.announced.as_ref().and_then(|a| a.jobs);
            match announced.unwrap_or(config.no_stats_slots) {
                0 => {
                    let why = "no stats port (distccd without --stats) and \
                               DISTCC_AUTO_NO_STATS_SLOTS is 0"
                        .to_string();
                    (
                        None,
                        Some(Dropped {
                            why,
                            code: Code::NoStats,
                        }),
                        0,
                    )
                }
                slots => {
                    let from = match announced {
                        Some(_) => "its announced jobs",
                        None => "DISTCC_AUTO_NO_STATS_SLOTS",
                    };
                    said.push(format!(
                        "{}: {slots} slots = {from} (no stats port)",
                        spec.entry
                    ));
                    (None, None, slots)
                }
            }
        }
        Outcome::Up { stats } => {
            let (slots, dropped) = up_slots(config, &spec.entry, &stats, &mut said);
            (Some(stats), dropped, slots)
        }
    };
    let w = Worker {
        spec,
        target,
        address: probe.address,
        stats,
        dropped,
        slots,
        elapsed: probe.elapsed,
        tunnel: probe.tunnel,
        no_stats,
        compiler: probe.compiler,
        warning: None,
    };
    (w, said)
}

/// The slots of a worker that answered with its stats (rule 1).
fn up_slots(
    config: &Config,
    entry: &str,
    stats: &Stats,
    said: &mut Vec<String>,
) -> (u32, Option<Dropped>) {
    let mem = config.compiler_memory_mib;
    let Sizing { slots, dropped } = worker_slots(stats, mem);
    let why = match (&dropped, stats.free_mem_mib) {
        (Some(d), _) => d.clone(),
        (None, Some(free)) if mem > 0 => format!(
            "{slots} slots = min(dcc_max_kids {}, {free} MiB free / {mem} MiB)",
            stats.max_kids
        ),
        _ => format!("{slots} slots = dcc_max_kids"),
    };
    said.push(format!("{entry}: {why}"));
    if let Some(why) = dropped {
        return (
            slots,
            Some(Dropped {
                why,
                code: Code::NoMemory,
            }),
        );
    }
    match (config.load_aware, busy(stats)) {
        (true, Some(busy)) => {
            let granted = load_aware_slots(slots, busy);
            said.push(format!(
                "{entry}: load-aware: {granted} slots = max(1, {slots} - {busy} busy)"
            ));
            (granted, None)
        }
        _ => (slots, None),
    }
}

/// The toolchain check: workers whose compiler is not `here`'s are dropped
/// or warned about. Returns the decisions.
fn check_toolchains(all: &mut [Worker], here: &str, on_mismatch: OnMismatch) -> Vec<String> {
    let mut said = Vec::new();
    for w in all.iter_mut().filter(|w| w.is_up()) {
        let Some(why) = toolchain_differs(w.compiler.as_deref(), here) else {
            continue;
        };
        said.push(format!("{}: {why}", w.spec.entry));
        match on_mismatch {
            OnMismatch::Drop => {
                w.dropped = Some(Dropped {
                    why,
                    code: Code::Toolchain,
                });
                w.slots = 0;
            }
            OnMismatch::Warn => {
                w.warning = Some(format!("{why} (kept: DISTCC_AUTO_CHECK_TOOLCHAIN=warn)"));
            }
        }
    }
    said
}

/// Workers found by `+zeroconf` whose announced compiler (`cc_machine`,
/// `cc_version`) is not this machine's are dropped with both named, as
/// distcc's own subtype filter does, or kept with a warning (`any`).
fn check_announced(all: &mut [Worker], here: &(String, String), any: bool) -> Vec<String> {
    let mut said = Vec::new();
    for w in all.iter_mut().filter(|w| w.is_up()) {
        let Some(a) = &w.spec.announced else { continue };
        let theirs = (a.cc_machine.as_deref(), a.cc_version.as_deref());
        let differs = matches!(theirs.0, Some(m) if m != here.0)
            || matches!(theirs.1, Some(v) if v != here.1);
        if !differs {
            continue;
        }
        // The announced values were made showable where they came in.
        let why = format!(
            "announced compiler {} {} differs from this machine's {} {}",
            theirs.0.unwrap_or("?"),
            theirs.1.unwrap_or("?"),
            here.0,
            here.1
        );
        said.push(format!("{}: {why}", w.spec.entry));
        if any {
            w.warning = Some(format!("{why} (kept: DISTCC_AUTO_ZEROCONF_ANY=1)"));
        } else {
            w.dropped = Some(Dropped {
                why,
                code: Code::Toolchain,
            });
            w.slots = 0;
        }
    }
    said
}

/// Rule 2. A stable sort keeps configuration order among equals, and puts
/// dropped workers (0 slots) last in configuration order.
fn order(all: &mut [Worker]) {
    all.sort_by(|a, b| match (a.is_up(), b.is_up()) {
        // What a worker reports beats a default: reporting workers first.
        (true, true) => (a.no_stats.is_some())
            .cmp(&b.no_stats.is_some())
            .then_with(|| better(a, b)),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => Ordering::Equal,
    });
}

/// Rule 3: local slots, the MemAvailable that capped them (if it did),
/// and the decisions.
fn local_slots(
    config: &Config,
    local: &Local,
    up: usize,
    configured: usize,
) -> (u32, Option<u64>, Vec<String>) {
    let mem = config.compiler_memory_mib;
    let (mut slots, knob) = if up > 0 {
        (config.early_local_jobs, "DISTCC_AUTO_EARLY_LOCAL_JOBS")
    } else {
        (
            config.fallback_local_jobs,
            "DISTCC_AUTO_FALLBACK_LOCAL_JOBS",
        )
    };
    let mut said = vec![format!(
        "{up} of {configured} workers up: {slots} local slots from {knob}"
    )];
    let mut memory_cap = None;
    if let (true, Some(avail)) = (mem > 0, local.mem_available_mib) {
        let cap = u32::try_from(avail / mem).unwrap_or(u32::MAX);
        if cap < slots {
            said.push(format!(
                "local slots capped at {cap}: {avail} MiB available / {mem} MiB per compiler"
            ));
            slots = cap;
            memory_cap = Some(avail);
        }
    }
    (slots, memory_cap, said)
}

/// The toolchain check: why a worker's compiler is not this machine's.
fn toolchain_differs(worker: Option<&str>, here: &str) -> Option<String> {
    match worker {
        Some(w) if w == here => None,
        Some(w) => Some(format!(
            "compiler differs: worker has {w}, this machine {here}"
        )),
        None => Some(format!(
            "compiler unknown: the worker's check made no object to compare with this machine's {here}"
        )),
    }
}

/// Rule 1's answer for one worker.
struct Sizing {
    slots: u32,
    /// Why it gets none, when it gets none.
    dropped: Option<String>,
}

/// Rule 1: a worker's slots, or why it is dropped.
fn worker_slots(stats: &Stats, compiler_memory_mib: u64) -> Sizing {
    match stats.free_mem_mib {
        Some(free) if compiler_memory_mib > 0 => {
            let fit = u32::try_from(free / compiler_memory_mib).unwrap_or(u32::MAX);
            let slots = stats.max_kids.min(fit);
            let dropped = (slots == 0).then(|| {
                format!("not enough free memory ({free} MiB free, {compiler_memory_mib} MiB per compiler)")
            });
            Sizing { slots, dropped }
        }
        _ => Sizing {
            slots: stats.max_kids,
            dropped: None,
        },
    }
}

/// How many compilers' worth of work a worker is already doing, for
/// load-aware slots: its one-minute load average or distccd's own average
/// of busy compilers over the last minute, whichever is larger, rounded
/// down. `None` when it reports neither.
fn busy(stats: &Stats) -> Option<u32> {
    let b = match (stats.load[0], stats.avg_kids1) {
        (Some(l), Some(k)) => l.max(k),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => return None,
    };
    Some(b.min(f64::from(u32::MAX)) as u32)
}

/// Rule 1b, with DISTCC_AUTO_LOAD_AWARE=1: a shared worker grants what it
/// has left, and never less than one slot.
pub fn load_aware_slots(slots: u32, busy: u32) -> u32 {
    slots.saturating_sub(busy).max(1)
}

/// Rule 2: the better worker sorts first.
fn better(a: &Worker, b: &Worker) -> Ordering {
    let load = |w: &Worker| w.stats.as_ref().and_then(Stats::mean_load);
    let free = |w: &Worker| w.stats.as_ref().and_then(|s| s.free_mem_mib);
    b.slots
        .cmp(&a.slots)
        .then_with(|| match (load(a), load(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| match (free(a), free(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::hostspec::{Host, parse_entry};

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![("DISTCC_AUTO_HOSTS".to_string(), "w".to_string())];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_lookup(
            |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
            4,
        )
        .unwrap()
    }

    const LOCAL: Local = Local {
        mem_available_mib: Some(64 * 1024),
        compiler: None,
        cc: None,
    };

    fn up(entry: &str, kids: u32, load: f64, free: Option<u64>) -> Probed {
        let stats = Stats {
            max_kids: kids,
            load: [Some(load); 3],
            free_mem_mib: free,
            ..Stats::default()
        };
        with(entry, Outcome::Up { stats })
    }

    fn dead(entry: &str) -> Probed {
        with(
            entry,
            Outcome::Down {
                reason: "connection refused".into(),
                code: Code::Refused,
            },
        )
    }

    fn with(entry: &str, outcome: Outcome) -> Probed {
        let spec = parse_entry(entry).unwrap();
        let target = Target::of(&spec);
        let probe = Probe {
            address: None,
            outcome,
            elapsed: Duration::from_millis(1),
            tunnel: None,
            compiler: None,
        };
        Probed {
            spec,
            target,
            probe,
        }
    }

    fn order(p: &Plan) -> Vec<&str> {
        p.workers.iter().map(|w| w.spec.entry.as_str()).collect()
    }

    #[test]
    fn rule1_memory_scaling() {
        let p = plan(
            &config(&[]),
            LOCAL,
            vec![
                up("a", 16, 0.0, Some(4096)),   // 4096/1024 = 4 < 16
                up("b", 8, 0.0, Some(100_000)), // memory allows 97: kids win
                up("c", 8, 0.0, None),          // no report: kids
                up("d", 8, 0.0, Some(1023)),    // less than one compiler: dropped
            ],
        );
        let slots: Vec<(&str, u32)> = p
            .workers
            .iter()
            .map(|w| (w.spec.entry.as_str(), w.slots))
            .collect();
        assert_eq!(slots, [("b", 8), ("c", 8), ("a", 4), ("d", 0)]);
        assert!(
            p.workers[3]
                .dropped
                .as_ref()
                .unwrap()
                .why
                .contains("not enough free memory (1023 MiB free, 1024 MiB per compiler)")
        );
        assert_eq!(p.remote_slots(), 20);

        let off = plan(
            &config(&[("DISTCC_AUTO_COMPILER_MEMORY", "0")]),
            LOCAL,
            vec![up("a", 16, 0.0, Some(10)), up("d", 8, 0.0, Some(0))],
        );
        assert_eq!(off.remote_slots(), 24, "scaling off ignores free memory");
    }

    #[test]
    fn rule1b_load_aware() {
        assert_eq!(load_aware_slots(16, 4), 12);
        assert_eq!(load_aware_slots(16, 16), 1);
        assert_eq!(load_aware_slots(16, 99), 1);
        assert_eq!(load_aware_slots(16, 0), 16);
        let on = config(&[
            ("DISTCC_AUTO_LOAD_AWARE", "1"),
            ("DISTCC_AUTO_COMPILER_MEMORY", "0"),
        ]);
        let mut busy_kids = up("kids", 16, 2.0, None);
        if let Outcome::Up { stats } = &mut busy_kids.probe.outcome {
            stats.avg_kids1 = Some(6.0); // distccd's own count beats the load
        }
        let mut quiet = up("quiet", 8, 0.0, None);
        if let Outcome::Up { stats } = &mut quiet.probe.outcome {
            stats.load = [None; 3]; // nothing reported: nothing taken off
        }
        let p = plan(
            &on,
            LOCAL,
            vec![
                up("a", 16, 4.7, None),
                up("b", 8, 30.0, None),
                busy_kids,
                quiet,
            ],
        );
        let slots: Vec<(&str, u32)> = p
            .workers
            .iter()
            .map(|w| (w.spec.entry.as_str(), w.slots))
            .collect();
        assert_eq!(slots, [("a", 12), ("kids", 10), ("quiet", 8), ("b", 1)]);
        assert!(
            p.decisions
                .iter()
                .any(|d| d == "a: load-aware: 12 slots = max(1, 16 - 4 busy)"),
            "{:?}",
            p.decisions
        );
        // Off by default: the advertised slots.
        let off = plan(&config(&[]), LOCAL, vec![up("a", 16, 4.7, None)]);
        assert_eq!(off.workers[0].slots, 16);
    }

    #[test]
    fn rule2_ordering() {
        let p = plan(
            &config(&[]),
            LOCAL,
            vec![
                dead("z"),
                up("few", 2, 0.0, None),
                up("busy", 8, 5.0, None),
                up("idle", 8, 0.5, None),
                up("idle-nomem", 8, 0.5, None),
                up("idle-mem", 8, 0.5, Some(100_000)),
                up("idle-mem2", 8, 0.5, Some(200_000)),
                dead("y"),
            ],
        );
        assert_eq!(
            order(&p),
            [
                "idle-mem2",
                "idle-mem",
                "idle",
                "idle-nomem",
                "busy",
                "few",
                "z",
                "y"
            ]
        );
        // Unknown load sorts after any known load.
        let mut noload = up("noload", 8, 0.0, None);
        if let Outcome::Up { stats } = &mut noload.probe.outcome {
            stats.load = [None; 3];
        }
        let p = plan(
            &config(&[]),
            LOCAL,
            vec![noload, up("loaded", 8, 50.0, None)],
        );
        assert_eq!(order(&p), ["loaded", "noload"]);
    }

    #[test]
    fn rules3_to_6_local_preprocessor_and_jobs() {
        let c = config(&[
            ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "2"),
            ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "3"),
        ]);
        let p = plan(
            &c,
            LOCAL,
            vec![
                up("w1", 16, 0.0, None),
                up("[fd00::7]:4000", 8, 1.0, None),
                dead("w3"),
            ],
        );
        assert_eq!(
            (
                p.local_slots,
                p.preprocessor_slots,
                p.remote_slots(),
                p.jobs()
            ),
            (2, 3, 24, 29)
        );
        assert_eq!(
            p.distcc_hosts(),
            "localhost/2 --localslots=2 --localslots_cpp=3 w1:3632/16,lzo [fd00::7]:4000/8,lzo"
        );
        assert!(p.usable().is_ok());

        // No worker up: fallback local slots, no preprocessor slots.
        let p = plan(&c, LOCAL, vec![dead("w1")]);
        assert_eq!((p.local_slots, p.preprocessor_slots, p.jobs()), (4, 0, 4));
        assert_eq!(p.distcc_hosts(), "localhost/4 --localslots=4");

        // Defaults: no early local jobs, so only the cpp option and workers.
        let p = plan(
            &config(&[]),
            LOCAL,
            vec![up("localhost:5000", 3, 0.0, None)],
        );
        assert_eq!(p.distcc_hosts(), "--localslots_cpp=4 127.0.0.1:5000/3,lzo");
        assert_eq!(p.jobs(), 7);
        assert_eq!(
            p.workers[0].target.host,
            Host::V4(std::net::Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn toolchain_check_drops_or_warns_about_another_compiler() {
        let here = "GCC: (Debian 12.2.0-14) 12.2.0 (x86-64, ELF64, little-endian)";
        let local = Local {
            mem_available_mib: None,
            compiler: Some(here.into()),
            cc: None,
        };
        let with = |entry: &str, compiler: Option<&str>| {
            let mut p = up(entry, 4, 0.0, None);
            p.probe.compiler = compiler.map(String::from);
            p
        };
        let workers = || {
            vec![
                with("same", Some(here)),
                with(
                    "old",
                    Some("GCC: (Debian 11.3.0-12) 11.3.0 (x86-64, ELF64, little-endian)"),
                ),
                with("none", None),
            ]
        };
        let c = config(&[("DISTCC_AUTO_CHECK", "toolchain")]);
        let p = plan(&c, local.clone(), workers());
        let used: Vec<&str> = p.up().map(|w| w.spec.entry.as_str()).collect();
        assert_eq!(used, ["same"]);
        let old = p.workers.iter().find(|w| w.spec.entry == "old").unwrap();
        assert_eq!(old.dropped.as_ref().map(|d| d.code), Some(Code::Toolchain));
        assert_eq!(
            old.dropped.as_ref().map(|d| d.why.as_str()),
            Some(
                "compiler differs: worker has GCC: (Debian 11.3.0-12) 11.3.0 (x86-64, ELF64, little-endian), this machine GCC: (Debian 12.2.0-14) 12.2.0 (x86-64, ELF64, little-endian)"
            )
        );
        let c = config(&[
            ("DISTCC_AUTO_CHECK", "toolchain"),
            ("DISTCC_AUTO_CHECK_TOOLCHAIN", "warn"),
        ]);
        let p = plan(&c, local.clone(), workers());
        assert_eq!(p.up().count(), 3);
        assert!(p.workers.iter().filter(|w| w.warning.is_some()).count() == 2);
        // The compile check alone compares nothing.
        let c = config(&[("DISTCC_AUTO_CHECK", "compile")]);
        assert_eq!(plan(&c, local, workers()).up().count(), 3);
    }

    #[test]
    fn rule3_local_memory_cap() {
        let low = Local {
            mem_available_mib: Some(2500),
            compiler: None,
            cc: None,
        };
        let p = plan(&config(&[]), low.clone(), vec![dead("w")]);
        assert_eq!(p.local_slots, 2, "2500 MiB / 1024 MiB");
        let c = config(&[("DISTCC_AUTO_EARLY_LOCAL_JOBS", "8")]);
        assert_eq!(
            plan(&c, low.clone(), vec![up("w", 1, 0.0, None)]).local_slots,
            2
        );
        let off = config(&[("DISTCC_AUTO_COMPILER_MEMORY", "0")]);
        assert_eq!(plan(&off, low, vec![dead("w")]).local_slots, 4);
        let unknown = Local {
            mem_available_mib: None,
            compiler: None,
            cc: None,
        };
        assert_eq!(plan(&config(&[]), unknown, vec![dead("w")]).local_slots, 4);
    }

    #[test]
    fn rule4_nothing_to_build_on() {
        let p = plan(
            &config(&[("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "0")]),
            LOCAL,
            vec![dead("w1"), dead("w2")],
        );
        let e = p.usable().unwrap_err();
        assert_eq!(e.exit_code(), 97);
        assert!(
            e.to_string().contains(
                "no worker is up (2 configured) and DISTCC_AUTO_FALLBACK_LOCAL_JOBS is 0"
            ),
            "{e}"
        );

        let tiny = Local {
            mem_available_mib: Some(500),
            compiler: None,
            cc: None,
        };
        let e = plan(&config(&[]), tiny, vec![dead("w1")])
            .usable()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("not enough memory to compile here: 500 MiB available"),
            "{e}"
        );

        // A worker dropped for memory is not up either.
        let p = plan(
            &config(&[("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "0")]),
            LOCAL,
            vec![up("w", 4, 0.0, Some(10))],
        );
        assert_eq!(p.usable().unwrap_err().exit_code(), 97);
        // Early local jobs alone never rescue a run with no worker.
        let p = plan(
            &config(&[
                ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "0"),
                ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "4"),
            ]),
            LOCAL,
            vec![dead("w")],
        );
        assert!(p.usable().is_err());
    }
}
