//! Configuration from `DISTCC_AUTO_*` variables. Reading is separated from
//! the environment (a lookup function is passed in) so that every rule is
//! tested without touching the process environment.

pub mod hostspec;
pub mod vars;

use std::time::Duration;

use crate::error::Error;
use hostspec::Parsed;

/// The default bound on the probing phase.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `+zeroconf` collects answers by default.
pub const DEFAULT_REPROBE: Duration = Duration::from_secs(5);
pub const DEFAULT_ZEROCONF_TIMEOUT: Duration = Duration::from_millis(500);
/// The default bound on the compile check.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The default bound on setting up and probing through an ssh tunnel.
pub const DEFAULT_SSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Slots of a worker without `--stats`: distcc's own default for a host
/// written without `/N`.
pub const DEFAULT_NO_STATS_SLOTS: u32 = 4;
/// How long a worker that let the deadline pass is not waited for, like
/// distcc's own DISTCC_BACKOFF_PERIOD.
pub const DEFAULT_BACKOFF_PERIOD: u32 = 60;
/// The largest accepted job count in any `*_JOBS` variable.
pub const MAX_JOBS: u32 = 65536;
const MAX_TIMEOUT_SECS: f64 = 3600.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub hosts: Parsed,
    /// MiB one compiler needs; 0 turns every memory scaling off.
    pub compiler_memory_mib: u64,
    pub early_local_jobs: u32,
    pub fallback_local_jobs: u32,
    pub preprocessor_jobs: u32,
    /// Slots of a worker without a stats port; 0 drops such workers.
    pub no_stats_slots: u32,
    /// Seconds a worker that let the deadline pass is not waited for.
    pub backoff_period: u64,
    /// Whether `distcc_build` and `exec` add `-j N` to the command.
    pub append_jobs: bool,
    /// Bound on the whole probing phase.
    pub timeout: Duration,
    pub ssh: SshSettings,
    /// Compile check: the compiler to ask for, and its bound.
    pub check: Option<Check>,
    /// Reduce slots by how busy a worker already is.
    pub load_aware: bool,
    /// distcc's pump mode: workers preprocess (`,cpp,lzo`), the build runs
    /// under distcc-pump.
    pub pump: bool,
    /// With `+zeroconf`: how long answers are collected (inside `timeout`).
    pub zeroconf_timeout: Duration,
    /// Keep announced workers whose compiler differs from this machine's.
    pub zeroconf_any: bool,
    pub debug: bool,
    /// Live builds (DISTCC_AUTO_LIVE): a conductor follows the cluster
    /// while `distcc_build` and `exec` run the build.
    pub live: bool,
    /// Seconds between a live build's re-probes.
    pub reprobe: Duration,
    /// After a live build, a table per worker (DISTCC_AUTO_SUMMARY).
    pub summary: bool,
    /// Where a live build's timeline goes (DISTCC_AUTO_TRACE), as given.
    pub trace: Option<std::path::PathBuf>,
    /// This machine's CPUs, the default for two job counts.
    pub cpus: u32,
}

/// How `ssh://` workers are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSettings {
    /// The client and its options, run by `sh -c` like git's GIT_SSH_COMMAND.
    pub command: String,
    /// Bound on setting up one tunnel (ssh handshake and forwards).
    pub timeout: Duration,
    /// DISTCC_AUTO_SSH_PERSIST: seconds a shared master stays after its
    /// last use; 0, a tunnel of its own per run.
    pub persist: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The compiler's name as distcc sends it (its base name).
    pub compiler: String,
    pub timeout: Duration,
    pub kind: CheckKind,
    /// With the toolchain check: what a worker whose compiler differs gets.
    pub on_mismatch: OnMismatch,
}

/// How much the check proves; ordered from less to more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckKind {
    /// The worker compiles the check file.
    Compile,
    /// ... and its compiler is the one this machine has.
    Toolchain,
}

/// DISTCC_AUTO_CHECK_TOOLCHAIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMismatch {
    Drop,
    Warn,
}

impl Config {
    /// Read the configuration. `cpus` is the default for the fallback and
    /// preprocessor job counts, as in the reference tool.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>, cpus: u32) -> Result<Config, Error> {
        Self::read(get, cpus, None)
    }

    /// Read the configuration; `cli_check` (hosts --check[=KIND]) turns a
    /// check on, the more thorough of it and DISTCC_AUTO_CHECK winning.
    pub fn read(
        get: impl Fn(&str) -> Option<String>,
        cpus: u32,
        cli_check: Option<CheckKind>,
    ) -> Result<Config, Error> {
        let get = &get;
        let hosts = match get(vars::HOSTS) {
            Some(v) => hostspec::parse_hosts(&v)?,
            None => {
                return Err(Error::Config(
                    "DISTCC_AUTO_HOSTS is not set: set it to the workers to use, e.g. \
                     export DISTCC_AUTO_HOSTS=\"worker-1 worker-2:3632:3633 ssh://user@worker-3\""
                        .into(),
                ));
            }
        };
        let compiler_memory_mib = match set(get, vars::COMPILER_MEMORY) {
            None => 1024,
            Some(v) => whole(&v).ok_or_else(|| {
                bad(
                    vars::COMPILER_MEMORY,
                    &v,
                    "a whole number of MiB (0 turns memory scaling off)",
                )
            })?,
        };
        let persist = period(get, vars::SSH_PERSIST, 0)?;
        let ssh = SshSettings {
            command: ssh_command(set(get, vars::SSH_COMMAND), persist > 0)?,
            timeout: secs(get, vars::SSH_TIMEOUT, DEFAULT_SSH_TIMEOUT)?,
            persist,
        };
        Ok(Config {
            hosts,
            compiler_memory_mib,
            early_local_jobs: jobs(get, vars::EARLY_LOCAL_JOBS, 0)?,
            fallback_local_jobs: jobs(get, vars::FALLBACK_LOCAL_JOBS, cpus)?,
            preprocessor_jobs: jobs(get, vars::PREPROCESSOR_JOBS, cpus)?,
            no_stats_slots: jobs(get, vars::NO_STATS_SLOTS, DEFAULT_NO_STATS_SLOTS)?,
            backoff_period: period(get, vars::BACKOFF_PERIOD, DEFAULT_BACKOFF_PERIOD)?.into(),
            append_jobs: set(get, vars::APPEND_JOBS).is_none() || flag(get, vars::APPEND_JOBS)?,
            timeout: secs(get, vars::TIMEOUT, DEFAULT_TIMEOUT)?,
            ssh,
            check: check(get, cli_check)?,
            load_aware: flag(get, vars::LOAD_AWARE)?,
            pump: flag(get, vars::PUMP)?,
            zeroconf_timeout: secs(get, vars::ZEROCONF_TIMEOUT, DEFAULT_ZEROCONF_TIMEOUT)?,
            zeroconf_any: flag(get, vars::ZEROCONF_ANY)?,
            debug: flag(get, vars::DEBUG)?,
            live: set(get, vars::LIVE).is_none() || flag(get, vars::LIVE)?,
            reprobe: reprobe(get)?,
            summary: flag(get, vars::SUMMARY)?,
            trace: set(get, vars::TRACE)
                .filter(|v| v != "none")
                .map(std::path::PathBuf::from),
            cpus,
        })
    }
}

/// A job count: a whole number up to MAX_JOBS.
fn jobs(get: impl Fn(&str) -> Option<String>, name: &str, default: u32) -> Result<u32, Error> {
    match set(&get, name) {
        None => Ok(default),
        Some(v) => match whole::<u64>(&v) {
            Some(n) if n <= u64::from(MAX_JOBS) => Ok(n as u32),
            _ => Err(bad(
                name,
                &v,
                &format!("a whole number from 0 to {MAX_JOBS}"),
            )),
        },
    }
}

/// A time in seconds, decimals allowed.
fn secs(
    get: impl Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
) -> Result<Duration, Error> {
    match set(&get, name) {
        None => Ok(default),
        Some(v) => seconds(&v).ok_or_else(|| {
            bad(
                name,
                &v,
                &format!("a number of seconds from 0 to {MAX_TIMEOUT_SECS}, such as 2 or 0.5"),
            )
        }),
    }
}

/// The compile check: DISTCC_AUTO_CHECK or `hosts --check`, the more
/// thorough of the two.
fn check(
    get: impl Fn(&str) -> Option<String>,
    cli_check: Option<CheckKind>,
) -> Result<Option<Check>, Error> {
    let from_env = match set(&get, vars::CHECK).as_deref() {
        None | Some("none") => None,
        Some("compile") => Some(CheckKind::Compile),
        Some("toolchain") => Some(CheckKind::Toolchain),
        Some(v) => {
            return Err(bad(vars::CHECK, v, "'compile', 'toolchain' or 'none'"));
        }
    };
    let on_mismatch = match set(&get, vars::CHECK_TOOLCHAIN).as_deref() {
        None | Some("drop") => OnMismatch::Drop,
        Some("warn") => OnMismatch::Warn,
        Some(v) => return Err(bad(vars::CHECK_TOOLCHAIN, v, "'drop' or 'warn'")),
    };
    let Some(kind) = from_env.max(cli_check) else {
        return Ok(None);
    };
    Ok(Some(Check {
        compiler: check_compiler(set(&get, vars::CHECK_COMPILER))?,
        timeout: secs(&get, vars::CHECK_TIMEOUT, DEFAULT_CHECK_TIMEOUT)?,
        kind,
        on_mismatch,
    }))
}

/// DISTCC_AUTO_SSH_COMMAND, run as `exec COMMAND "$@"` by /bin/sh: a `#`
/// would comment out, and a newline end, the arguments we append (every
/// forward and option), so such a value is refused.
fn ssh_command(v: Option<String>, persist: bool) -> Result<String, Error> {
    match v {
        None => Ok("ssh".into()),
        Some(c) if c.trim().is_empty() => Ok("ssh".into()),
        Some(c) if c.contains(['#', '\n', '\r']) => Err(bad(
            "DISTCC_AUTO_SSH_COMMAND",
            &c,
            "one line without '#' (the shell would drop the options distcc-auto appends)",
        )),
        // The master's socket and lifetime are ours to set: a
        // ControlPersist of the user's could outlive the persist time.
        Some(c) if persist && sets_connection_sharing(&c) => Err(bad(
            "DISTCC_AUTO_SSH_COMMAND",
            &c,
            "no -M, -S or -o Control* option when DISTCC_AUTO_SSH_PERSIST is set \
             (distcc-auto sets ControlMaster, ControlPath and ControlPersist itself)",
        )),
        Some(c) => Ok(c),
    }
}

/// Whether an ssh command line sets ControlMaster, ControlPath or
/// ControlPersist (`-M`, `-S PATH`, `-o Control...`, `-oControl...`).
fn sets_connection_sharing(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    words.iter().enumerate().any(|(i, w)| {
        let option = w
            .strip_prefix("-o")
            .map(|o| if o.is_empty() { words.get(i + 1).copied().unwrap_or("") } else { o });
        option.is_some_and(|o| o.to_ascii_lowercase().starts_with("control"))
            // Single-letter flags, alone or bundled (-NM, -MS path).
            || (w.starts_with('-')
                && !w.starts_with("--")
                && !w.starts_with("-o")
                && w[1..].chars().take_while(char::is_ascii_alphabetic).any(|c| c == 'M' || c == 'S'))
    })
}

/// Seconds as a whole number from 0 to a day, `default` when unset.
fn period(get: &impl Fn(&str) -> Option<String>, name: &str, default: u32) -> Result<u32, Error> {
    match set(get, name) {
        None => Ok(default),
        Some(v) => whole::<u32>(&v)
            .filter(|&s| s <= 86400)
            .ok_or_else(|| bad(name, &v, "a whole number of seconds from 0 (off) to 86400")),
    }
}

/// DISTCC_AUTO_REPROBE: at least 2 s, since distccd answers stats in
/// its main loop and polling it every second can stall it (distcc issue
/// 275).
fn reprobe(get: &impl Fn(&str) -> Option<String>) -> Result<Duration, Error> {
    match set(get, vars::REPROBE) {
        None => Ok(DEFAULT_REPROBE),
        Some(v) => seconds(&v)
            .filter(|d| (2.0..=3600.0).contains(&d.as_secs_f64()))
            .ok_or_else(|| bad(vars::REPROBE, &v, "seconds from 2 to 3600")),
    }
}

/// A yes/no variable: 1 or 0.
fn flag(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<bool, Error> {
    match set(get, name).as_deref() {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(v) => Err(bad(name, v, "1 or 0")),
    }
}

/// The compiler for the compile check, as distcc sends it when
/// masquerading: the base name, which distccd looks up in /usr/lib/distcc.
fn check_compiler(v: Option<String>) -> Result<String, Error> {
    let raw = v.unwrap_or_else(|| "cc".into());
    let base = raw.rsplit('/').next().unwrap_or_default();
    // A name, not `.`, `..` or an option: it starts like one.
    let ok = base.starts_with(|c: char| c.is_ascii_alphanumeric())
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        Ok(base.to_string())
    } else {
        Err(bad(
            "DISTCC_AUTO_CHECK_COMPILER",
            &raw,
            "a compiler name such as cc, gcc-12 or g++",
        ))
    }
}

/// A variable's value; set but empty counts as unset, as in the shell tool.
fn set(get: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    get(name).filter(|v| !v.is_empty())
}

fn bad(name: &str, value: &str, want: &str) -> Error {
    Error::Config(format!(
        "{name}='{}' is not valid: expected {want}",
        value.escape_debug()
    ))
}

/// A whole number written as digits only: no sign, space or `0x` (which
/// `str::parse` would take or which a shell might): for every number read
/// from the environment or from our own state files.
pub fn whole<T: std::str::FromStr>(v: &str) -> Option<T> {
    if v.bytes().all(|b| b.is_ascii_digit()) {
        v.parse().ok()
    } else {
        None
    }
}

fn seconds(v: &str) -> Option<Duration> {
    // Plain decimal only: no sign, exponent, "inf" or "nan".
    if !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') || v.matches('.').count() > 1 || v == "."
    {
        return None;
    }
    let s: f64 = v.parse().ok()?;
    (s <= MAX_TIMEOUT_SECS).then(|| Duration::from_secs_f64(s))
}

/// The environment as a lookup function; a value that is not UTF-8 is
/// returned lossily so that the parsers reject it by name.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_default_is_the_one_applied() {
        let base = [(vars::HOSTS, "w1")];
        let plain = cfg(&base).unwrap();
        for v in vars::ALL {
            let Some(d) = v.default else { continue };
            // "CPUs" is what the docs say for the machine's count (6 here).
            let d = if d == "CPUs" { "6" } else { d };
            let with = cfg(&[base[0], (v.name, d)]).unwrap();
            assert_eq!(with, plain, "{} set to its documented default {d}", v.name);
        }
    }

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, Error> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(
            |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
            6,
        )
    }

    #[test]
    fn defaults_follow_the_reference() {
        let c = cfg(&[("DISTCC_AUTO_HOSTS", "w1")]).unwrap();
        assert_eq!(c.compiler_memory_mib, 1024);
        assert_eq!(
            (
                c.early_local_jobs,
                c.fallback_local_jobs,
                c.preprocessor_jobs
            ),
            (0, 6, 6)
        );
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.timeout <= Duration::from_secs(3));
        assert_eq!(
            c.ssh,
            SshSettings {
                command: "ssh".into(),
                timeout: DEFAULT_SSH_TIMEOUT,
                persist: 0,
            }
        );
        assert!(!c.debug);
    }

    #[test]
    fn values_are_read() {
        let c = cfg(&[
            ("DISTCC_AUTO_HOSTS", "w1 w2"),
            ("DISTCC_AUTO_COMPILER_MEMORY", "0"),
            ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "2"),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "0"),
            ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", "3"),
            ("DISTCC_AUTO_TIMEOUT", "0.25"),
            ("DISTCC_AUTO_DEBUG", "1"),
            ("DISTCC_AUTO_SSH_COMMAND", "ssh -F './my config'"),
            ("DISTCC_AUTO_SSH_TIMEOUT", "12.5"),
        ])
        .unwrap();
        assert_eq!(
            c.ssh,
            SshSettings {
                command: "ssh -F './my config'".into(),
                timeout: Duration::from_millis(12500),
                persist: 0,
            }
        );
        assert_eq!(c.hosts.specs.len(), 2);
        assert_eq!(c.compiler_memory_mib, 0);
        assert_eq!(
            (
                c.early_local_jobs,
                c.fallback_local_jobs,
                c.preprocessor_jobs
            ),
            (2, 0, 3)
        );
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert!(c.debug);
        // Empty means unset.
        let c = cfg(&[
            ("DISTCC_AUTO_HOSTS", "w1"),
            ("DISTCC_AUTO_TIMEOUT", ""),
            ("DISTCC_AUTO_DEBUG", "0"),
        ])
        .unwrap();
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(!c.debug);
        assert_eq!(
            cfg(&[("DISTCC_AUTO_HOSTS", "w"), ("DISTCC_AUTO_TIMEOUT", "3")])
                .unwrap()
                .timeout,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn a_master_of_the_users_own_is_refused_only_with_persist() {
        let with = |persist: &str| {
            cfg(&[
                ("DISTCC_AUTO_HOSTS", "ssh://w1"),
                ("DISTCC_AUTO_SSH_COMMAND", "ssh -o ControlPersist=yes"),
                ("DISTCC_AUTO_SSH_PERSIST", persist),
            ])
        };
        assert!(with("0").is_ok());
        let e = with("30").unwrap_err();
        assert_eq!(e.exit_code(), 96);
        assert!(e.to_string().contains("DISTCC_AUTO_SSH_PERSIST"), "{e}");
        assert_eq!(
            cfg(&[
                ("DISTCC_AUTO_HOSTS", "w1"),
                ("DISTCC_AUTO_SSH_PERSIST", "30")
            ])
            .unwrap()
            .ssh
            .persist,
            30
        );
    }

    #[test]
    fn connection_sharing_options_are_found() {
        for yes in [
            "ssh -M",
            "ssh -NM",
            "ssh -S /tmp/s",
            "ssh -o ControlPersist=yes",
            "ssh -oControlMaster=auto",
            "ssh -o controlpath=/x",
        ] {
            assert!(sets_connection_sharing(yes), "{yes}");
        }
        for no in [
            "ssh",
            "ssh -F cfg -i key",
            "ssh -o ProxyJump=j -J jump",
            "ssh -4 -v",
            "/opt/My-SSH/bin/ssh",
        ] {
            assert!(!sets_connection_sharing(no), "{no}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("DISTCC_AUTO_COMPILER_MEMORY", "-1"),
            ("DISTCC_AUTO_COMPILER_MEMORY", "1G"),
            ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "two"),
            ("DISTCC_AUTO_EARLY_LOCAL_JOBS", "1.5"),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "99999999999"),
            ("DISTCC_AUTO_FALLBACK_LOCAL_JOBS", "65537"),
            ("DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS", " 4"),
            ("DISTCC_AUTO_TIMEOUT", "-1"),
            ("DISTCC_AUTO_TIMEOUT", "nan"),
            ("DISTCC_AUTO_TIMEOUT", "inf"),
            ("DISTCC_AUTO_TIMEOUT", "1e3"),
            ("DISTCC_AUTO_TIMEOUT", "1.2.3"),
            ("DISTCC_AUTO_TIMEOUT", "."),
            ("DISTCC_AUTO_TIMEOUT", "3601"),
            ("DISTCC_AUTO_TIMEOUT", "$(reboot)"),
            ("DISTCC_AUTO_SSH_TIMEOUT", "-5"),
            ("DISTCC_AUTO_DEBUG", "false"),
            ("DISTCC_AUTO_DEBUG", "no"),
            ("DISTCC_AUTO_DEBUG", "off"),
            ("DISTCC_AUTO_APPEND_JOBS", "yes"),
            ("DISTCC_AUTO_NO_STATS_SLOTS", "-1"),
            ("DISTCC_AUTO_BACKOFF_PERIOD", "1.5"),
            ("DISTCC_AUTO_BACKOFF_PERIOD", "86401"),
            ("DISTCC_AUTO_SSH_COMMAND", "ssh # my options"),
            ("DISTCC_AUTO_SSH_COMMAND", "ssh\n-v"),
            ("DISTCC_AUTO_SSH_PERSIST", "-1"),
            ("DISTCC_AUTO_SSH_PERSIST", "1.5"),
            ("DISTCC_AUTO_SSH_PERSIST", "86401"),
            ("DISTCC_AUTO_SSH_PERSIST", "60s"),
        ] {
            let e = cfg(&[("DISTCC_AUTO_HOSTS", "w1"), (name, value)]).unwrap_err();
            assert_eq!(e.exit_code(), 96);
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("{name}='{}' is not valid", value.escape_debug())),
                "{msg}"
            );
        }
    }

    #[test]
    fn check_and_load_aware() {
        let c = cfg(&[("DISTCC_AUTO_HOSTS", "w")]).unwrap();
        assert_eq!((c.check, c.load_aware), (None, false));
        let c = cfg(&[
            ("DISTCC_AUTO_HOSTS", "w"),
            ("DISTCC_AUTO_CHECK", "compile"),
            ("DISTCC_AUTO_CHECK_COMPILER", "/usr/lib/distcc/g++"),
            ("DISTCC_AUTO_LOAD_AWARE", "1"),
        ])
        .unwrap();
        assert_eq!(
            c.check,
            Some(Check {
                compiler: "g++".into(),
                timeout: DEFAULT_CHECK_TIMEOUT,
                kind: CheckKind::Compile,
                on_mismatch: OnMismatch::Drop,
            })
        );
        assert!(c.load_aware);
        let c = cfg(&[("DISTCC_AUTO_HOSTS", "w"), ("DISTCC_AUTO_CHECK", "compile")]).unwrap();
        assert_eq!(c.check.unwrap().compiler, "cc");
        let c = cfg(&[
            ("DISTCC_AUTO_HOSTS", "w"),
            ("DISTCC_AUTO_CHECK", "toolchain"),
            ("DISTCC_AUTO_CHECK_TOOLCHAIN", "warn"),
        ])
        .unwrap()
        .check
        .unwrap();
        assert_eq!(
            (c.kind, c.on_mismatch),
            (CheckKind::Toolchain, OnMismatch::Warn)
        );
        // hosts --check=toolchain over DISTCC_AUTO_CHECK=compile.
        let get = |n: &str| match n {
            "DISTCC_AUTO_HOSTS" => Some("w".to_string()),
            "DISTCC_AUTO_CHECK" => Some("compile".to_string()),
            _ => None,
        };
        let c = Config::read(get, 2, Some(CheckKind::Toolchain)).unwrap();
        assert_eq!(c.check.unwrap().kind, CheckKind::Toolchain);
        for (name, value) in [
            ("DISTCC_AUTO_CHECK", "yes"),
            ("DISTCC_AUTO_CHECK_TOOLCHAIN", "ignore"),
            ("DISTCC_AUTO_LOAD_AWARE", "true"),
            ("DISTCC_AUTO_CHECK_COMPILER", "cc;rm"),
            ("DISTCC_AUTO_CHECK_COMPILER", "-v"),
            ("DISTCC_AUTO_CHECK_TIMEOUT", "x"),
        ] {
            // The first value given for a name wins in `cfg`.
            let e = cfg(&[
                (name, value),
                ("DISTCC_AUTO_HOSTS", "w"),
                ("DISTCC_AUTO_CHECK", "compile"),
            ])
            .unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("{name}='{value}'")),
                "{e}"
            );
        }
    }

    #[test]
    fn hosts_are_required() {
        let e = cfg(&[]).unwrap_err();
        assert_eq!(e.exit_code(), 96);
        assert!(e.to_string().contains("DISTCC_AUTO_HOSTS is not set"));
        assert_eq!(
            cfg(&[("DISTCC_AUTO_HOSTS", "w:0")])
                .unwrap_err()
                .exit_code(),
            96
        );
    }
}
