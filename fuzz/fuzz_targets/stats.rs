//! The distccd --stats reply parser: never panics; what it accepts is in
//! range.
#![no_main]

use distcc_auto::worker::stats::{self, MAX_KIDS_CEILING};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = stats::is_complete(data);
    if let Ok(s) = stats::parse(data) {
        assert!((1..=MAX_KIDS_CEILING).contains(&s.max_kids));
        for l in s.load.iter().flatten() {
            assert!(l.is_finite() && *l >= 0.0);
        }
    }
});
