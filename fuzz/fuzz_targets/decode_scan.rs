//! The review decoder's scanned pass against serde's reading: on any bytes, `wire::decode` must
//! read exactly what `wire::decode_with_serde` reads, errors included. The scanner may decline a
//! body (serde then reads it), never read it differently.
#![no_main]

use azwi_webhook::admission::wire::{decode, decode_with_serde};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    assert_eq!(
        format!("{:?}", decode(data)),
        format!("{:?}", decode_with_serde(data)),
    );
});
