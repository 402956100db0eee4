//! The review decoder's single scanned pass against serde's reading of the same body: the
//! scanner may decline a body, never read it differently. Checked on the bench's realistic reviews
//! (which it must take, or the fast path would never run) and on byte-level corruptions of them.

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use azwi_webhook::admission::wire::{decode, decode_with_serde, scanned};

/// Decoded by `decode`, the body reads exactly as serde alone reads it, errors included.
fn assert_same_reading(body: &[u8]) {
    assert_eq!(
        format!("{:?}", decode(body)),
        format!("{:?}", decode_with_serde(body)),
        "{}",
        String::from_utf8_lossy(body)
    );
}

#[test]
fn realistic_reviews_take_the_scanned_pass_and_read_as_serde_reads_them() {
    for (size, review) in fixtures::all() {
        assert!(scanned(&review), "{size} review declined by the scanner");
        assert_same_reading(&review);
        let pretty: serde_json::Value = serde_json::from_slice(&review).expect("fixture is JSON");
        let pretty = serde_json::to_vec_pretty(&pretty).expect("serialises");
        assert!(scanned(&pretty), "{size} review, pretty-printed");
        assert_same_reading(&pretty);
    }
}

/// A small deterministic generator (xorshift), so a failure names its seed and replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that change the meaning of JSON, plus a control character and broken UTF-8.
const SIGNIFICANT: &[u8] = b"{}[]\",:\\ 0123456789-+.eEtrufalsn\x01\x1f\x7f\xc3\xa9\xff";

#[test]
fn corrupted_reviews_read_as_serde_reads_them() {
    let reviews = [fixtures::small_review(), fixtures::typical_review()];
    let mut scanned_corruptions = 0;
    for seed in 1..=3000u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut body = reviews[rng.below(reviews.len())].clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(body.len());
            let byte = SIGNIFICANT[rng.below(SIGNIFICANT.len())];
            match rng.below(4) {
                0 => body[at] = byte,
                1 => body.insert(at, byte),
                2 => {
                    body.remove(at);
                }
                _ => {
                    // Repeats a span: duplicate keys, doubled separators, nested copies.
                    let end = (at + 1 + rng.below(64)).min(body.len());
                    let span = body[at..end].to_vec();
                    body.splice(at..at, span);
                }
            }
        }
        scanned_corruptions += usize::from(scanned(&body));
        assert_same_reading(&body);
    }
    // Many corruptions land in skipped values and still scan: the comparison is not vacuous.
    assert!(scanned_corruptions > 250, "{scanned_corruptions}");
}
