//! The mDNS answer parser: never panics, and what it accepts is bounded.
#![no_main]

use distcc_auto::discover::dns::{self, MAX_RECORDS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, recs)) = dns::parse(data) {
        assert!(recs.len() <= MAX_RECORDS);
        for r in recs {
            assert!(r.name.len() <= 255 + 63);
        }
    }
});
