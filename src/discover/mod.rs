//! Finding workers that announce themselves (`+zeroconf` in
//! DISTCC_AUTO_HOSTS): one DNS-SD query for `_distcc._tcp.local` over
//! mDNS, from an ephemeral port so that responders answer by unicast, on
//! every interface that is up and can multicast; answers are collected
//! for DISTCC_AUTO_ZEROCONF_TIMEOUT. No daemon, no Avahi on this side.
//!
//! - `dns`: the query and a bounded parser of the answers (pure).
//! - `mdns`: the sockets, the interfaces, the wait.
//! - `found`: turning answers into workers (pure).

pub mod dns;
pub mod found;
pub mod mdns;
