//! Every `DISTCC_AUTO_*` variable a user sets: its name, its default as
//! people read it, and what it does, once. `--help` is made from this
//! table; a test checks that the README and the man page list exactly
//! these, with the same defaults, and that each default here is the one
//! `Config::read` applies.

pub struct Var {
    pub name: &'static str,
    /// The default as the docs say it (`None`: required).
    pub default: Option<&'static str>,
    /// One or two lines for `--help`.
    pub meaning: &'static str,
}

macro_rules! vars {
    ($($id:ident = $name:literal, $default:expr, $meaning:literal;)*) => {
        $(pub const $id: &str = $name;)*
        /// In the order `--help` and the docs list them.
        pub const ALL: &[Var] = &[$(Var { name: $name, default: $default, meaning: $meaning }),*];
    };
}

vars! {
    HOSTS = "DISTCC_AUTO_HOSTS", None,
        "workers: [tcp://]HOST[:PORT[:STATS_PORT]]\nor ssh://[USER@]HOST[:SSH_PORT][/PORT[/STATS_PORT]]";
    TIMEOUT = "DISTCC_AUTO_TIMEOUT", Some("2"), "seconds for the whole probe";
    COMPILER_MEMORY = "DISTCC_AUTO_COMPILER_MEMORY", Some("1024"),
        "MiB per compiler, 0 = no memory scaling";
    EARLY_LOCAL_JOBS = "DISTCC_AUTO_EARLY_LOCAL_JOBS", Some("0"), "local jobs when a worker is up";
    FALLBACK_LOCAL_JOBS = "DISTCC_AUTO_FALLBACK_LOCAL_JOBS", Some("CPUs"),
        "local jobs when no worker is up";
    PREPROCESSOR_JOBS = "DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", Some("CPUs"),
        "extra preprocessor jobs";
    SSH_COMMAND = "DISTCC_AUTO_SSH_COMMAND", Some("ssh"),
        "ssh client and options for ssh:// workers";
    SSH_TIMEOUT = "DISTCC_AUTO_SSH_TIMEOUT", Some("5"),
        "seconds to set up and probe an ssh worker";
    SSH_PERSIST = "DISTCC_AUTO_SSH_PERSIST", Some("0"),
        "seconds a shared ssh master per worker stays\nafter its last use, 0 = none";
    CHECK = "DISTCC_AUTO_CHECK", Some("none"),
        "compile: drop workers that cannot compile;\ntoolchain: also those whose compiler differs";
    CHECK_TOOLCHAIN = "DISTCC_AUTO_CHECK_TOOLCHAIN", Some("drop"),
        "drop or warn: what a differing compiler gets";
    CHECK_COMPILER = "DISTCC_AUTO_CHECK_COMPILER", Some("cc"),
        "compiler for the check, as distcc names it";
    CHECK_TIMEOUT = "DISTCC_AUTO_CHECK_TIMEOUT", Some("5"), "seconds for the compile check";
    LOAD_AWARE = "DISTCC_AUTO_LOAD_AWARE", Some("0"), "1: take slots a busy worker cannot spare";
    NO_STATS_SLOTS = "DISTCC_AUTO_NO_STATS_SLOTS", Some("4"),
        "slots of a worker without --stats, 0 = drop it";
    APPEND_JOBS = "DISTCC_AUTO_APPEND_JOBS", Some("1"),
        "0: distcc_build adds no -j N to the command";
    BACKOFF_PERIOD = "DISTCC_AUTO_BACKOFF_PERIOD", Some("60"),
        "seconds a worker that let the deadline pass\nis not waited for, 0 = off";
    PUMP = "DISTCC_AUTO_PUMP", Some("0"),
        "1: pump mode: workers preprocess (,cpp,lzo) and\ndistcc_build/exec run the build under distcc-pump";
    ZEROCONF_TIMEOUT = "DISTCC_AUTO_ZEROCONF_TIMEOUT", Some("0.5"),
        "seconds +zeroconf collects answers, inside the probe";
    ZEROCONF_ANY = "DISTCC_AUTO_ZEROCONF_ANY", Some("0"),
        "1: keep announced workers whose compiler differs";
    LIVE = "DISTCC_AUTO_LIVE", Some("1"),
        "0: distcc_build/exec decide once, before the build\n(no conductor, no relay, no jobserver)";
    REPROBE = "DISTCC_AUTO_REPROBE", Some("5"),
        "seconds between re-probes during a live build (2 to 3600)";
    SUMMARY = "DISTCC_AUTO_SUMMARY", Some("0"),
        "1: after a live build, also a table per worker\n(as with -v)";
    TRACE = "DISTCC_AUTO_TRACE", Some("none"),
        "FILE: a live build's timeline as Chrome trace JSON\nin FILE, and a picture of it in FILE.svg";
    DEBUG = "DISTCC_AUTO_DEBUG", Some("0"), "1 traces like --verbose";
}

/// The `Environment:` part of `--help`.
pub fn help() -> String {
    let width = ALL.iter().map(|v| v.name.len()).max().unwrap_or(0) + 2;
    let mut out = String::from("Environment:\n");
    for v in ALL {
        let mut lines = v.meaning.lines().peekable();
        let mut first = true;
        while let Some(line) = lines.next() {
            let name = if first { v.name } else { "" };
            let default = match (lines.peek(), v.default) {
                (None, Some(d)) => format!(" ({d})"),
                _ => String::new(),
            };
            out.push_str(&format!("  {name:width$}{line}{default}\n"));
            first = false;
        }
    }
    out
}
