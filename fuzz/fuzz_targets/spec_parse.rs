//! Any bytes → `parse_spec`: never panics; an invalid spec reports at least one problem, and
//! every problem names its JSON path unless it is about the document as a whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paasd::core::spec::{parse_spec, SpecError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_spec(text) {
        Ok(spec) => {
            for u in spec.users.values() {
                for g in &u.groups {
                    assert!(spec.groups.contains_key(g), "undeclared group accepted");
                }
            }
        }
        Err(SpecError::Invalid(problems)) => {
            assert!(!problems.is_empty());
            for p in problems {
                assert!(
                    !p.path.is_empty()
                        || p.message.starts_with("not valid JSON")
                        || p.message.starts_with("missing required key")
                        || p.message.starts_with("expected an object"),
                    "problem without a path: {p:?}"
                );
            }
        }
        Err(e) => panic!("read error from parse_spec: {e}"),
    }
});
