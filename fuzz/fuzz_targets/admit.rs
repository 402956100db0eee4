//! Whole admission path: arbitrary bytes through `Admitter::admit`, response contract checked.
#![no_main]

use std::sync::OnceLock;

use azwi_webhook_fuzz::Harness;
use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<Harness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let harness = HARNESS.get_or_init(Harness::new);
    // The last byte picks classic or native sidecars so both injection layouts are explored; it
    // stays part of the body too (trailing whitespace or garbage is itself a useful case).
    let native = data.last().is_some_and(|b| b & 1 == 1);
    harness.admit_and_check(data, native);
});
