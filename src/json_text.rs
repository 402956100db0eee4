//! JSON strings written straight into a byte buffer, for the two texts written on every admission
//! review: the patch and the log line.
//!
//! serde_json escapes a string byte by byte and writes it in three `io::Write` calls; the patch holds
//! about 130 short strings, and that was a tenth of a review's instructions. Here plain runs are
//! found eight bytes at a time and copied whole.

/// Appends `value` as a quoted JSON string.
pub fn push_str(out: &mut Vec<u8>, value: &str) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    push_escaped(out, value);
    out.push(b'"');
}

/// Appends `value` escaped for the inside of a JSON string (RFC 8259: `"`, `\` and control
/// characters; everything else, non-ASCII included, is copied as it is).
pub fn push_escaped(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let mut plain_from = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(chunk) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            if !may_need_escape(word) {
                at += 8;
                continue;
            }
        }
        let byte = bytes[at];
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[plain_from..at]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 0xf)]);
                at += 1;
                plain_from = at;
                continue;
            }
            _ => {
                at += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[plain_from..at]);
        out.extend_from_slice(escape);
        at += 1;
        plain_from = at;
    }
    out.extend_from_slice(&bytes[plain_from..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes may be `"`, `\` or below 0x20. May say yes for a word that needs
/// nothing (then the bytes are looked at one by one); never says no for one that does.
fn may_need_escape(word: u64) -> bool {
    special_bytes(word) != 0
}

/// The high bit of each byte of `word` (little-endian) that is `"`, `\` or below 0x20, and
/// possibly of later bytes too: the lowest set bit is exact, so `trailing_zeros() / 8` is the
/// offset of the first such byte. Borrows only run upwards, from a byte that matched.
#[inline]
pub(crate) fn special_bytes(word: u64) -> u64 {
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH_BITS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH_BITS;
    below_space
        | has_zero(word ^ (ONES * u64::from(b'"')))
        | has_zero(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(value: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, value);
        String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
    }

    #[test]
    fn output_matches_serde_json_for_every_byte_in_every_position() {
        // Each escapable byte, and a multi-byte character, at every offset of a 17-byte string, so
        // that both the word-at-a-time scan and the byte tail see it.
        let specials = [
            "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}", "é", "\u{2028}", "😀",
        ];
        for special in specials {
            for at in 0..17 {
                let value = format!("{}{special}{}", "a".repeat(at), "b".repeat(16 - at));
                assert_eq!(
                    quoted(&value),
                    serde_json::to_string(&value).expect("a string serialises"),
                    "{value:?}"
                );
            }
        }
        for byte in 0u8..0x80 {
            let value = format!("0123456{}89abcdef", byte as char);
            assert_eq!(
                quoted(&value),
                serde_json::to_string(&value).expect("serialises")
            );
        }
    }

    #[test]
    fn the_word_check_never_misses_a_byte_that_needs_escaping() {
        for byte in 0u8..=255 {
            for position in 0..8 {
                let mut word = [b'a'; 8];
                word[position] = byte;
                let needs = byte < 0x20 || byte == b'"' || byte == b'\\';
                if needs {
                    assert!(
                        may_need_escape(u64::from_le_bytes(word)),
                        "{byte:#x} at {position}"
                    );
                }
            }
        }
        assert!(!may_need_escape(u64::from_le_bytes(*b"/spec/co")));
    }
}
