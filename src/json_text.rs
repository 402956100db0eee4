//! JSON strings written straight into a byte buffer, for the two texts written on every admission
//! review: the patch and the log line.
//!
//! serde_json escapes a string byte by byte and writes it in three `io::Write` calls; the patch holds
//! about 130 short strings, and that was a tenth of a review's instructions. Here plain runs are
//! found sixteen bytes at a time and copied whole.

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
        let special = match bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
            Some(chunk) => masks16(chunk).special,
            // The last few bytes, padded with spaces (which need no escape): most strings written
            // are shorter than sixteen bytes, and one compare beats a loop over each byte.
            None => {
                let mut padded = [b' '; 16];
                padded[..bytes.len() - at].copy_from_slice(&bytes[at..]);
                masks16(&padded).special
            }
        };
        if special == 0 {
            at += 16;
            continue;
        }
        at += special.trailing_zeros() as usize;
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

/// Bytes 0..16 of a chunk, as bit masks: which are `"`, `\\` or below 0x20 (the bytes a JSON
/// string must escape, which end a plain run), and which are outside ASCII.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Masks16 {
    pub special: u32,
    pub non_ascii: u32,
}

/// Classifies 16 bytes at once: one SSE2 compare per class on x86_64, words of eight elsewhere.
#[inline]
fn masks16(chunk: &[u8; 16]) -> Masks16 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: `sse2::masks16` needs only SSE2, which this build enables (the cfg above), and
        // it reads no more than the sixteen bytes the reference holds.
        unsafe { sse2::masks16(chunk) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        words_masks16(chunk)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    use super::Masks16;

    #[target_feature(enable = "sse2")]
    pub(super) fn masks16(chunk: &[u8; 16]) -> Masks16 {
        // SAFETY: the chunk is sixteen readable bytes, and the load needs no alignment.
        let bytes = unsafe { _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>()) };
        let quote = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `byte <= 0x1f`: the minimum of the two is the byte itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(bytes, _mm_set1_epi8(0x1f)), bytes);
        let special = _mm_or_si128(_mm_or_si128(quote, backslash), control);
        Masks16 {
            special: _mm_movemask_epi8(special) as u32,
            non_ascii: _mm_movemask_epi8(bytes) as u32,
        }
    }
}

/// The chunk as two little-endian words.
#[inline]
fn split16(chunk: &[u8; 16]) -> (u64, u64) {
    let (low, high) = chunk.split_at(8);
    let word = |half: &[u8]| u64::from_le_bytes(half.try_into().unwrap_or_default());
    (word(low), word(high))
}

/// [`masks16`] with words of eight bytes, for targets without SSE2. Its `special` mask may also
/// flag bytes after the first special one; the first set bit is exact, and only it is used.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn words_masks16(chunk: &[u8; 16]) -> Masks16 {
    let (low, high) = split16(chunk);
    // One bit per byte from the high bit of each: bit k of the result is byte k's high bit.
    let gather = |flags: u64| ((flags >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
    Masks16 {
        special: gather(special_bytes(low)) | gather(special_bytes(high)) << 8,
        non_ascii: gather(low & HIGH_BITS) | gather(high & HIGH_BITS) << 8,
    }
}

/// The high bit of each byte of `word` (little-endian) that is `"`, `\\` or below 0x20, and
/// possibly of later bytes too: the lowest set bit is exact. Borrows only run upwards, from a
/// byte that matched.
#[inline]
fn special_bytes(word: u64) -> u64 {
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
        // Each escapable byte, and a multi-byte character, at every offset of a 33-byte string, so
        // that both the chunk-at-a-time scan and the byte tail see it.
        let specials = [
            "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}", "é", "\u{2028}", "😀",
        ];
        for special in specials {
            for at in 0..33 {
                let value = format!("{}{special}{}", "a".repeat(at), "b".repeat(32 - at));
                assert_eq!(
                    quoted(&value),
                    serde_json::to_string(&value).expect("a string serialises"),
                    "{value:?}"
                );
            }
        }
        // Short strings (the padded tail) with two escapes, at every pair of positions.
        for len in 1..18 {
            for first in 0..len {
                for second in first..len {
                    let mut value = vec!['x'; len];
                    value[first] = '"';
                    value[second] = '\u{1}';
                    let value: String = value.into_iter().collect();
                    assert_eq!(
                        quoted(&value),
                        serde_json::to_string(&value).expect("serialises")
                    );
                }
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
    fn both_classifiers_find_the_first_special_byte_and_every_non_ascii_one() {
        let fillers = [b'a', b' ', 0x7f, 0x80, 0xe9, 0xff];
        for byte in 0u8..=255 {
            for position in 0..16 {
                for filler in fillers {
                    let mut chunk = [filler; 16];
                    chunk[position] = byte;
                    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
                    let first = chunk.iter().position(|&b| special(b));
                    let non_ascii = chunk
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b >= 0x80)
                        .fold(0u32, |mask, (i, _)| mask | 1 << i);
                    for masks in [masks16(&chunk), words_masks16(&chunk)] {
                        let found = (masks.special != 0).then(|| masks.special.trailing_zeros());
                        assert_eq!(found, first.map(|f| f as u32), "{chunk:?}");
                        assert_eq!(masks.non_ascii, non_ascii, "{chunk:?}");
                    }
                }
            }
        }
    }
}
