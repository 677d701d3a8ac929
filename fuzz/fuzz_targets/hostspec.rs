//! DISTCC_AUTO_HOSTS parsing: never panics; whatever it accepts is made of
//! characters no shell or ssh reads as syntax, and reads back the same.
#![no_main]

use distcc_auto::config::hostspec::{Transport, parse_entry, parse_hosts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = parse_hosts(s) else {
        return;
    };
    for spec in parsed.specs {
        let host = spec.host.to_string();
        assert!(!host.starts_with('-'));
        assert!(host.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:[]".contains(&b)), "{host}");
        if spec.transport == Transport::Tcp {
            let again = parse_entry(&format!("{host}:{}:{}", spec.distcc_port, spec.stats_port)).unwrap();
            assert_eq!((again.host, again.distcc_port, again.stats_port), (spec.host, spec.distcc_port, spec.stats_port));
        }
    }
});
