//! The `DISTCC_AUTO_HOSTS` grammar, as the reference tool defined it:
//!
//! ```text
//! [tcp://]HOST[:DISTCC_PORT[:STATS_PORT]]
//! ssh://[USER@]HOST[:SSH_PORT][/DISTCC_PORT[/STATS_PORT]]
//! ```
//!
//! HOST is a DNS name (or ssh alias), an IPv4 address, or an IPv6 address in
//! brackets. Unlike the reference, an entry that does not parse is an error:
//! a typo must not silently shrink the cluster. Everything accepted here is
//! later written into `DISTCC_HOSTS` or onto an ssh command line, so the
//! character set is strict: no shell metacharacter, no leading `-`.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::Error;

pub const DEFAULT_DISTCC_PORT: u16 = 3632;
pub const DEFAULT_STATS_PORT: u16 = 3633;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name or ssh alias, lower-cased (names are case-insensitive).
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl fmt::Display for Host {
    /// The form distcc and ssh accept: IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Ssh {
        user: Option<String>,
        port: Option<u16>,
    },
}

/// One worker as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The entry exactly as the user wrote it.
    pub entry: String,
    pub host: Host,
    pub transport: Transport,
    pub distcc_port: u16,
    pub stats_port: u16,
    /// For a worker found by `+zeroconf`: what it announced.
    pub announced: Option<Announcement>,
}

/// What a worker found by DNS-SD announced (its TXT record), as text from
/// the network: shown escaped, compared, never run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The service instance name.
    pub service: String,
    /// TXT `jobs`: its dcc_max_kids.
    pub jobs: Option<u32>,
    pub cc_machine: Option<String>,
    pub cc_version: Option<String>,
}

impl HostSpec {
    pub fn is_ssh(&self) -> bool {
        matches!(self.transport, Transport::Ssh { .. })
    }

    /// The ssh destination (`user@host`), for ssh entries.
    pub fn ssh_destination(&self) -> Option<String> {
        match &self.transport {
            Transport::Tcp => None,
            Transport::Ssh { user, .. } => {
                // ssh wants a bare IPv6 address, not the bracketed form.
                let host = match &self.host {
                    Host::V6(a) => a.to_string(),
                    h => h.to_string(),
                };
                Some(match user {
                    Some(u) => format!("{u}@{host}"),
                    None => host,
                })
            }
        }
    }

    /// Two entries naming the same worker share this key; the stats port
    /// does not take part, since the job port identifies the daemon.
    pub fn identity(&self) -> (Host, Transport, u16) {
        (self.host.clone(), self.transport.clone(), self.distcc_port)
    }
}

/// An entry dropped as naming a worker already listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The entry as written.
    pub entry: String,
    /// The earlier entry that names the same worker.
    pub first: String,
}

/// The result of parsing `DISTCC_AUTO_HOSTS`: distinct workers in the order
/// written, plus a note for every entry dropped as a duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub specs: Vec<HostSpec>,
    pub duplicates: Vec<Duplicate>,
    /// `+zeroconf` was listed: workers that announce themselves are used
    /// too.
    pub zeroconf: bool,
}

/// The entry that asks for the workers that announce themselves.
pub const ZEROCONF: &str = "+zeroconf";

/// Parse the whole variable. Any bad entry is a configuration error that
/// names the entry; entries naming the same worker count once.
pub fn parse_hosts(value: &str) -> Result<Parsed, Error> {
    let mut specs: Vec<HostSpec> = Vec::new();
    let mut duplicates = Vec::new();
    // Identity of each kept worker -> its index in `specs`.
    let mut seen: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    let mut zeroconf = false;
    for entry in value.split_whitespace() {
        if entry == ZEROCONF {
            zeroconf = true;
            continue;
        }
        let spec = parse_entry(entry).map_err(|why| {
            let hint =
                distcc_syntax_hint(entry).map_or(String::new(), |h| format!("\n  hint: {h}"));
            Error::Config(format!(
                "DISTCC_AUTO_HOSTS: bad entry '{}': {why}{hint}",
                entry.escape_debug()
            ))
        })?;
        match seen.get(&spec.identity()) {
            Some(&first) => duplicates.push(Duplicate {
                entry: spec.entry,
                first: specs[first].entry.clone(),
            }),
            None => {
                seen.insert(spec.identity(), specs.len());
                specs.push(spec);
            }
        }
    }
    if specs.is_empty() && !zeroconf {
        return Err(Error::Config(
            "DISTCC_AUTO_HOSTS is empty: set it to the workers to use, e.g. \
             DISTCC_AUTO_HOSTS=\"worker-1 worker-2:3632:3633 ssh://user@worker-3\""
                .into(),
        ));
    }
    Ok(Parsed {
        specs,
        duplicates,
        zeroconf,
    })
}

/// For an entry written in distcc's own `DISTCC_HOSTS` syntax (people paste
/// theirs), what to write instead.
fn distcc_syntax_hint(entry: &str) -> Option<String> {
    let computed = "slot counts and options are computed by distcc-auto";
    if entry == "--randomize" {
        return Some("distcc-auto orders the workers best first itself: leave it out".into());
    }
    if entry.starts_with("--localslots") {
        return Some(format!(
            "{computed}: set DISTCC_AUTO_EARLY_LOCAL_JOBS (local slots) or \
             DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS (preprocessor slots) instead"
        ));
    }
    if entry.starts_with('+') {
        return Some(
            "the only '+' entry is +zeroconf (the workers that announce themselves)".into(),
        );
    }
    if entry.starts_with("ssh://") || entry.contains("://") {
        return None;
    }
    let host = entry.split(['/', ',']).next().unwrap_or_default();
    if host == "localhost" {
        return Some(format!(
            "{computed}; in distcc-auto 'localhost' is a worker on 127.0.0.1: \
             set DISTCC_AUTO_EARLY_LOCAL_JOBS for compiles on this machine"
        ));
    }
    if let Some((user, host)) = host.split_once('@') {
        // distcc's ssh mode: USER@HOST[:COMMAND]
        let host = host.split(':').next().unwrap_or_default();
        return Some(format!(
            "for a worker reached through ssh write ssh://{user}@{host} \
             (distcc-auto's tunnels replace distcc's ssh mode)"
        ));
    }
    let pump = if entry.contains(",cpp") {
        "; for distcc's pump mode set DISTCC_AUTO_PUMP=1"
    } else {
        ""
    };
    (host.len() < entry.len() && !host.is_empty())
        .then(|| format!("{computed}: write '{host}' (HOST[:PORT[:STATS_PORT]]){pump}"))
}

/// Parse one entry; the error says what is wrong with it.
pub fn parse_entry(entry: &str) -> Result<HostSpec, String> {
    if let Some(rest) = entry.strip_prefix("ssh://") {
        return parse_ssh(entry, rest);
    }
    let rest = entry.strip_prefix("tcp://").unwrap_or(entry);
    if let Some(i) = rest.find("://") {
        return Err(format!(
            "unknown scheme '{}://' (use tcp:// or ssh://)",
            &rest[..i]
        ));
    }
    let (host, after) = split_host(rest)?;
    let mut host = parse_host(host)?;
    if host == Host::Name("localhost".into()) {
        // distcc reads the word `localhost` as "compile here"; a worker on
        // this machine must be written as an address.
        host = Host::V4(Ipv4Addr::LOCALHOST);
    }
    let ports = match after {
        None => vec![],
        Some(p) => p.split(':').collect(),
    };
    if ports.len() > 2 {
        return Err("too many ':' (expected HOST[:DISTCC_PORT[:STATS_PORT]]; \
                    write IPv6 addresses in brackets)"
            .into());
    }
    Ok(HostSpec {
        entry: entry.to_string(),
        host,
        transport: Transport::Tcp,
        distcc_port: port_or(ports.first(), DEFAULT_DISTCC_PORT, "distcc")?,
        announced: None,
        stats_port: port_or(ports.get(1), DEFAULT_STATS_PORT, "stats")?,
    })
}

fn parse_ssh(entry: &str, rest: &str) -> Result<HostSpec, String> {
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let (user, hostport) = match authority.split_once('@') {
        Some((u, h)) => (Some(parse_user(u)?), h),
        None => (None, authority),
    };
    let (host, after) = split_host(hostport)?;
    let host = parse_host(host)?;
    let port = match after {
        None => None,
        Some(p) if p.contains(':') => {
            return Err("too many ':' (expected ssh://[USER@]HOST[:SSH_PORT]\
                        [/DISTCC_PORT[/STATS_PORT]])"
                .into());
        }
        Some(p) => Some(parse_port(p, "ssh")?),
    };
    let ports: Vec<&str> = match path {
        None => vec![],
        Some(p) => p.split('/').collect(),
    };
    if ports.len() > 2 {
        return Err("too many '/' (expected ssh://[USER@]HOST[:SSH_PORT]\
                    [/DISTCC_PORT[/STATS_PORT]])"
            .into());
    }
    Ok(HostSpec {
        entry: entry.to_string(),
        host,
        transport: Transport::Ssh { user, port },
        distcc_port: port_or(ports.first(), DEFAULT_DISTCC_PORT, "distcc")?,
        announced: None,
        stats_port: port_or(ports.get(1), DEFAULT_STATS_PORT, "stats")?,
    })
}

/// Split `HOST[:REST]` or `[V6][:REST]` into the host text and what follows
/// the first ':' after it.
fn split_host(s: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = s.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return Err("unclosed '[' (write IPv6 addresses as [fd00::7])".into());
        };
        let host = &s[..close + 2];
        return match &inner[close + 1..] {
            "" => Ok((host, None)),
            r => match r.strip_prefix(':') {
                Some(p) => Ok((host, Some(p))),
                None => Err(format!("unexpected '{r}' after ']'")),
            },
        };
    }
    // A bare IPv6 address would be read as host:port:port; say so.
    if s.matches(':').count() >= 2 && s.parse::<Ipv6Addr>().is_ok() {
        return Err(format!("IPv6 addresses must be in brackets, as [{s}]"));
    }
    Ok(match s.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    })
}

fn parse_host(s: &str) -> Result<Host, String> {
    if let Some(inner) = s.strip_prefix('[') {
        let inner = inner.strip_suffix(']').unwrap_or(inner);
        return inner
            .parse::<Ipv6Addr>()
            .map(Host::V6)
            .map_err(|_| format!("'{inner}' is not an IPv6 address"));
    }
    if s.is_empty() {
        return Err("empty host name".into());
    }
    if s.len() > 253 {
        return Err(format!(
            "host name is {} characters long (at most 253)",
            s.len()
        ));
    }
    if s.starts_with(['-', '.']) {
        return Err("a host name cannot start with '-' or '.'".into());
    }
    name_chars(s, "host")?;
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err("every dot-separated part of a host name must be 1 to 63 characters".into());
    }
    // All-numeric names are addresses; the resolver would read a short form
    // such as `10.1` as 10.0.0.1, so only the full dotted quad is allowed.
    if name
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return name
            .parse::<Ipv4Addr>()
            .map(Host::V4)
            .map_err(|_| format!("'{s}' is not an IPv4 address"));
    }
    Ok(Host::Name(name.to_ascii_lowercase()))
}

fn parse_user(u: &str) -> Result<String, String> {
    if u.is_empty() {
        return Err("empty user name before '@'".into());
    }
    if u.len() > 64 {
        return Err("user name is longer than 64 characters".into());
    }
    if u.starts_with('-') {
        return Err("a user name cannot start with '-'".into());
    }
    name_chars(u, "user")?;
    Ok(u.to_string())
}

/// Host and user names: the characters DNS and login names use, and so
/// nothing a shell or ssh would read as syntax.
fn name_chars(s: &str, what: &str) -> Result<(), String> {
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        Some(c) => Err(format!(
            "'{}' cannot be part of a {what} name (letters, digits, '-', '.' and '_' only)",
            c.escape_debug()
        )),
        None => Ok(()),
    }
}

fn port_or(p: Option<&&str>, default: u16, what: &str) -> Result<u16, String> {
    p.map_or(Ok(default), |p| parse_port(p, what))
}

fn parse_port(p: &str, what: &str) -> Result<u16, String> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} port '{p}' is not a number from 1 to 65535"));
    }
    match p.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("{what} port '{p}' is not a number from 1 to 65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distcc_syntax_gets_a_hint() {
        for (entry, want) in [
            ("ci@build-1", "write ssh://ci@build-1"),
            ("build-2/8,lzo", "write 'build-2'"),
            ("w1:3632/16,lzo,cpp", "write 'w1:3632'"),
            ("w1/4,cpp,lzo", "set DISTCC_AUTO_PUMP=1"),
            ("w3,down", "write 'w3'"),
            ("localhost/2", "DISTCC_AUTO_EARLY_LOCAL_JOBS"),
            ("--randomize", "orders the workers"),
            ("--localslots=4", "DISTCC_AUTO_EARLY_LOCAL_JOBS"),
            (
                "--localslots_cpp=8",
                "DISTCC_AUTO_PREPROCESSOR_SATURATION_JOBS",
            ),
            ("+zeroconf_in_lan", "the only '+' entry is +zeroconf"),
        ] {
            let e = parse_hosts(entry).unwrap_err();
            assert_eq!(e.exit_code(), 96);
            let msg = e.to_string();
            assert!(msg.contains(&format!("bad entry '{entry}'")), "{msg}");
            assert!(
                msg.contains("hint: ") && msg.contains(want),
                "{entry}: {msg}"
            );
        }
        // Plain mistakes get no distcc hint.
        for entry in ["bad;host", "ssh://w/1/2/3", "w:99999"] {
            let msg = parse_hosts(entry).unwrap_err().to_string();
            assert!(!msg.contains("hint"), "{msg}");
        }
    }

    fn tcp(host: Host, d: u16, s: u16) -> (Host, Transport, u16, u16) {
        (host, Transport::Tcp, d, s)
    }

    fn parts(e: &str) -> (Host, Transport, u16, u16) {
        let s = parse_entry(e).unwrap_or_else(|why| panic!("{e}: {why}"));
        assert_eq!(s.entry, e);
        (s.host, s.transport, s.distcc_port, s.stats_port)
    }

    fn name(n: &str) -> Host {
        Host::Name(n.into())
    }

    #[test]
    fn tcp_forms() {
        assert_eq!(parts("worker-1"), tcp(name("worker-1"), 3632, 3633));
        assert_eq!(
            parts("w.example.org:4000"),
            tcp(name("w.example.org"), 4000, 3633)
        );
        assert_eq!(parts("tcp://w:1:2"), tcp(name("w"), 1, 2));
        assert_eq!(parts("W_1.Example."), tcp(name("w_1.example"), 3632, 3633));
        assert_eq!(
            parts("10.0.0.8:3632:3633"),
            tcp(Host::V4("10.0.0.8".parse().unwrap()), 3632, 3633)
        );
        assert_eq!(
            parts("[fd00::7]"),
            tcp(Host::V6("fd00::7".parse().unwrap()), 3632, 3633)
        );
        assert_eq!(
            parts("tcp://[::1]:5:6"),
            tcp(Host::V6(Ipv6Addr::LOCALHOST), 5, 6)
        );
        assert_eq!(
            parts("localhost:7"),
            tcp(Host::V4(Ipv4Addr::LOCALHOST), 7, 3633)
        );
    }

    #[test]
    fn ssh_forms() {
        let ssh = |user: Option<&str>, port| Transport::Ssh {
            user: user.map(String::from),
            port,
        };
        assert_eq!(parts("ssh://w3"), (name("w3"), ssh(None, None), 3632, 3633));
        assert_eq!(
            parts("ssh://ci@w3:2222/4000/4001"),
            (name("w3"), ssh(Some("ci"), Some(2222)), 4000, 4001)
        );
        assert_eq!(
            parts("ssh://w3/4000"),
            (name("w3"), ssh(None, None), 4000, 3633)
        );
        assert_eq!(
            parts("ssh://ci@[fd00::7]:22"),
            (
                Host::V6("fd00::7".parse().unwrap()),
                ssh(Some("ci"), Some(22)),
                3632,
                3633
            )
        );
        // ssh's `localhost` is the machine ssh reaches, kept as a name.
        assert_eq!(parts("ssh://localhost").0, name("localhost"));
        let s = parse_entry("ssh://ci@[fd00::7]:22").unwrap();
        assert_eq!(s.ssh_destination().unwrap(), "ci@fd00::7");
        assert!(s.is_ssh());
    }

    #[test]
    fn bad_entries_say_why() {
        for (e, why) in [
            ("http://w", "unknown scheme 'http://'"),
            ("w:0", "distcc port '0' is not a number from 1 to 65535"),
            ("w:99999", "distcc port '99999'"),
            ("w:3632:65536", "stats port '65536'"),
            ("w:", "distcc port ''"),
            ("w:+1", "distcc port '+1'"),
            ("w:1:2:3", "too many ':'"),
            ("[fd00::7", "unclosed '['"),
            ("[fd00::7]x", "unexpected 'x' after ']'"),
            ("[w1]", "'w1' is not an IPv6 address"),
            ("fd00::7", "must be in brackets, as [fd00::7]"),
            (":3632", "empty host name"),
            ("tcp://", "empty host name"),
            ("ssh://", "empty host name"),
            ("ssh://@w", "empty user name"),
            ("ssh://-oProxyCommand=x", "cannot start with '-'"),
            ("ssh://-x@w", "cannot start with '-'"),
            ("ssh://w:22:23", "too many ':'"),
            ("ssh://w/1/2/3", "too many '/'"),
            ("ssh://w:0", "ssh port '0'"),
            ("ssh://a;b@w", "';' cannot be part of a user name"),
            ("$(reboot)", "'$' cannot be part of a host name"),
            ("w;x", "';'"),
            ("w'x", "'\\''"),
            ("w`x`", "'`'"),
            ("w\\x", "'\\\\'"),
            ("(w)", "'('"),
            ("wörker", "'ö'"),
            ("a..b", "must be 1 to 63 characters"),
            ("-w", "cannot start with '-'"),
            ("10.1", "'10.1' is not an IPv4 address"),
            ("256.0.0.1", "is not an IPv4 address"),
        ] {
            let got = parse_entry(e).expect_err(e);
            assert!(got.contains(why), "{e}: got {got:?}, want {why:?}");
        }
        let long = "a".repeat(64);
        assert!(parse_entry(&long).unwrap_err().contains("1 to 63"));
        let longer = ["a"; 200].join(".");
        assert!(parse_entry(&longer).unwrap_err().contains("at most 253"));
    }

    #[test]
    fn whole_variable() {
        let p = parse_hosts(" w1\tw2:1\n\nssh://w3 ").unwrap();
        let entries: Vec<_> = p.specs.iter().map(|s| s.entry.as_str()).collect();
        assert_eq!(entries, ["w1", "w2:1", "ssh://w3"]);
        assert!(p.duplicates.is_empty());

        let err = parse_hosts("w1 w:0 w2").unwrap_err();
        assert_eq!(err.exit_code(), 96);
        assert!(err.to_string().contains("bad entry 'w:0'"), "{err}");

        for empty in ["", "  \n\t "] {
            let err = parse_hosts(empty).unwrap_err();
            assert_eq!(err.exit_code(), 96);
            assert!(err.to_string().contains("DISTCC_AUTO_HOSTS is empty"));
        }
    }

    #[test]
    fn same_worker_counts_once() {
        let p = parse_hosts("localhost:3632 127.0.0.1 tcp://127.0.0.1:3632:3633 W1 w1. [::1] [0::1]:3632 ssh://w1 ssh://w1/3632").unwrap();
        let entries: Vec<_> = p.specs.iter().map(|s| s.entry.as_str()).collect();
        assert_eq!(entries, ["localhost:3632", "W1", "[::1]", "ssh://w1"]);
        assert_eq!(p.duplicates.len(), 5);
        assert_eq!(
            p.duplicates[0],
            Duplicate {
                entry: "127.0.0.1".into(),
                first: "localhost:3632".into()
            }
        );
        // Different job ports are different daemons.
        assert_eq!(parse_hosts("w1 w1:4000").unwrap().specs.len(), 2);
    }
}
