//! The mDNS side of discovery: one socket per interface address that can
//! multicast, a legacy unicast query (from an ephemeral port: responders
//! answer to it by unicast), the answers collected until the deadline, and
//! one follow-up for what responders left out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

use super::dns::{self, TYPE_PTR};
use super::found::{Announced, Answers, SERVICE};
use crate::sys::{self, LinkAddr};

const MDNS_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
const MDNS_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
/// Responses read per socket, at most (a flooding responder is bounded).
const MAX_MESSAGES: usize = 512;

/// Whether `a` is on the link of `on` (its subnet): only such addresses
/// are ever probed, whatever a responder says.
fn on_link(a: IpAddr, on: &LinkAddr) -> bool {
    match (a, on.addr, on.netmask) {
        (IpAddr::V4(a), IpAddr::V4(me), IpAddr::V4(mask)) => {
            let m = u32::from(mask);
            !a.is_loopback() && u32::from(a) & m == u32::from(me) & m && a != me
        }
        (IpAddr::V6(a), IpAddr::V6(me), IpAddr::V6(mask)) => {
            let m = u128::from(mask);
            u128::from(a) & m == u128::from(me) & m && a != me
        }
        _ => false,
    }
}

/// Ask every link for `_distcc._tcp` and collect what answers until
/// `deadline`.
pub fn discover(deadline: Instant) -> Vec<Announced> {
    let links = sys::multicast_addrs();
    let socks: Vec<(UdpSocket, SocketAddr, LinkAddr)> = links
        .iter()
        .filter_map(|l| {
            let (bind, to): (SocketAddr, SocketAddr) = match l.addr {
                IpAddr::V4(a) => ((a, 0).into(), (MDNS_V4, 5353).into()),
                IpAddr::V6(_) => (
                    (Ipv6Addr::UNSPECIFIED, 0).into(),
                    SocketAddrV6::new(MDNS_V6, 5353, 0, l.index).into(),
                ),
            };
            let s = UdpSocket::bind(bind).ok()?;
            sys::multicast_out(&s, l).ok()?;
            Some((s, to, *l))
        })
        .collect();
    let id = (std::process::id() & 0xffff) as u16 | 1;
    let ask = |questions: &[(&str, u16)]| {
        let q = dns::query(id, questions);
        for (s, to, _) in &socks {
            let _ = s.send_to(&q, to);
        }
    };
    ask(&[(SERVICE, TYPE_PTR)]);
    let mut answers = Answers::default();
    let follow_up = Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2;
    let mut asked_again = false;
    let mut read = vec![0usize; socks.len()];
    let mut buf = vec![0u8; 9000];
    while Instant::now() < deadline {
        let mut heard = false;
        for (i, (s, _, link)) in socks.iter().enumerate() {
            let _ = s.set_read_timeout(Some(Duration::from_millis(10)));
            while read[i] < MAX_MESSAGES {
                let Ok((n, _)) = s.recv_from(&mut buf) else {
                    break;
                };
                read[i] += 1;
                heard = true;
                if let Ok((rid, recs)) = dns::parse(&buf[..n])
                    && rid == id
                {
                    answers.add(recs, |a| on_link(a, link));
                }
            }
        }
        if !asked_again && Instant::now() >= follow_up {
            let missing = answers.missing();
            if !missing.is_empty() {
                let q: Vec<(&str, u16)> = missing.iter().map(|(n, t)| (n.as_str(), *t)).collect();
                ask(&q);
            }
            asked_again = true;
        }
        if !heard {
            std::thread::sleep(
                Duration::from_millis(5).min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }
    answers.workers()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_on_the_link_count() {
        let link = LinkAddr {
            addr: "10.1.0.2".parse().unwrap(),
            netmask: "255.255.255.0".parse().unwrap(),
            index: 2,
        };
        assert!(on_link("10.1.0.9".parse().unwrap(), &link));
        for off in ["10.1.1.9", "8.8.8.8", "127.0.0.1", "10.1.0.2", "::1"] {
            assert!(!on_link(off.parse().unwrap(), &link), "{off}");
        }
    }
}
