//! From mDNS answers to workers: which services were announced, on which
//! port, at which addresses, with which TXT values (pure).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::dns::{Data, Record, TYPE_A, TYPE_AAAA, TYPE_SRV, TYPE_TXT};

/// The service distccd announces.
pub const SERVICE: &str = "_distcc._tcp.local";
/// Services kept from one discovery, at most.
pub const MAX_WORKERS: usize = 1024;

/// A worker as it announced itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// The service instance name (`w1._distcc._tcp.local`).
    pub instance: String,
    pub port: u16,
    pub addr: IpAddr,
    /// TXT `key=value` pairs (`jobs`, `cc_machine`, `cc_version`, ...).
    pub txt: BTreeMap<String, String>,
}

/// What the answers said so far. `link` tells whether an address is on
/// the link it was heard on (nothing else is ever probed).
#[derive(Debug, Default)]
pub struct Answers {
    instances: BTreeSet<String>,
    srv: BTreeMap<String, (u16, String)>,
    txt: BTreeMap<String, Vec<String>>,
    v4: BTreeMap<String, Vec<Ipv4Addr>>,
    v6: BTreeMap<String, Vec<Ipv6Addr>>,
}

impl Answers {
    /// Take the records of one response heard on an interface; an address
    /// for which `on_link` is false is dropped.
    pub fn add(&mut self, records: Vec<Record>, on_link: impl Fn(IpAddr) -> bool) {
        for r in records {
            // TTL 0 is a goodbye: the service is going away.
            if r.ttl == 0 {
                continue;
            }
            match r.data {
                Data::Ptr(inst)
                    if r.name == SERVICE
                        && inst.ends_with(&format!(".{SERVICE}"))
                        && self.instances.len() < MAX_WORKERS =>
                {
                    self.instances.insert(inst);
                }
                Data::Srv { port, target } if port > 0 => {
                    self.srv.entry(r.name).or_insert((port, target));
                }
                Data::Txt(strings) => {
                    self.txt.entry(r.name).or_insert(strings);
                }
                Data::A(a) if on_link(IpAddr::V4(a)) => {
                    let v = self.v4.entry(r.name).or_default();
                    if v.len() < 8 && !v.contains(&a) {
                        v.push(a);
                    }
                }
                Data::Aaaa(a) if on_link(IpAddr::V6(a)) => {
                    let v = self.v6.entry(r.name).or_default();
                    if v.len() < 8 && !v.contains(&a) {
                        v.push(a);
                    }
                }
                _ => {}
            }
        }
    }

    /// Questions for what responders left out: SRV and TXT of an instance,
    /// the addresses of its target.
    pub fn missing(&self) -> Vec<(String, u16)> {
        let mut q = Vec::new();
        for inst in &self.instances {
            match self.srv.get(inst) {
                None => q.push((inst.clone(), TYPE_SRV)),
                Some((_, target))
                    if !self.v4.contains_key(target) && !self.v6.contains_key(target) =>
                {
                    q.push((target.clone(), TYPE_A));
                    q.push((target.clone(), TYPE_AAAA));
                }
                Some(_) => {}
            }
            if !self.txt.contains_key(inst) {
                q.push((inst.clone(), TYPE_TXT));
            }
        }
        q.truncate(64);
        q
    }

    /// Every instance with a port and an address, once, at its first
    /// IPv4 address (else its first global IPv6 one: a link-local address
    /// would need its interface, which distcc's host list cannot carry).
    pub fn workers(&self) -> Vec<Announced> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for inst in &self.instances {
            let Some((port, target)) = self.srv.get(inst) else {
                continue;
            };
            let v4 = self
                .v4
                .get(target)
                .and_then(|v| v.first())
                .map(|a| IpAddr::V4(*a));
            let v6 = self
                .v6
                .get(target)
                .and_then(|v| v.iter().find(|a| (a.segments()[0] & 0xffc0) != 0xfe80))
                .map(|a| IpAddr::V6(*a));
            let Some(addr) = v4.or(v6) else { continue };
            // One worker announced twice (two interfaces, two names).
            if !seen.insert((addr, *port)) {
                continue;
            }
            let txt = self
                .txt
                .get(inst)
                .into_iter()
                .flatten()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect();
            out.push(Announced {
                instance: inst.clone(),
                port: *port,
                addr,
                txt,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::dns;

    #[test]
    fn one_response_makes_one_worker_and_off_link_addresses_are_dropped() {
        let (_, recs) = dns::parse(&dns::tests::response(1)).unwrap();
        let mut a = Answers::default();
        a.add(recs.clone(), |_| true);
        a.add(recs.clone(), |_| true); // heard on a second interface
        let w = a.workers();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].addr, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(w[0].port, 3632);
        assert_eq!(w[0].txt.get("jobs").map(String::as_str), Some("4"));
        assert!(a.missing().is_empty());
        let mut off = Answers::default();
        off.add(recs, |_| false);
        assert!(off.workers().is_empty());
        assert_eq!(off.missing().len(), 2, "its addresses are asked for");
    }
}
