//! The structural index of a JSON text: where every token starts, found 64 bytes at a time before
//! the text is walked, as simdjson does.
//!
//! Reading token after token, a reader cannot start on the next one before it has found where the
//! current string ends: each review's 500-odd strings make a chain of dependent loads and compares.
//! The index is built without that chain (each block's bit masks depend on the block's bytes and on
//! three carried bits), and the walk then takes each token's position from the lowest bit left.
//! The index stays as bits, one word per block: writing out each position cost more than the walk
//! spends finding it.
//!
//! Tokens are: `{ } [ ] : ,` outside strings, both quotes of each string, and the first byte of each
//! run of other bytes outside strings (numbers, literals, and anything invalid, which the walk
//! refuses).
//!
//! Building declines (`None`) what no valid text holds: a string left open, a control byte in a
//! string or outside one (other than tab, newline and carriage return there), an escape serde_json
//! would refuse (also when a backslash is outside any string: no valid text has one there).

/// What the walk needs to know of the text beyond its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Texture {
    /// A backslash is somewhere: strings must then be checked for escapes before being handed out.
    pub escapes: bool,
    /// A byte outside ASCII is somewhere: strings must then be checked for UTF-8.
    pub non_ascii: bool,
}

/// Fills `blocks` (cleared first) with one word per 64 bytes of the text, whose bit k is set when
/// a token starts at byte k of the block; the bit of the text's length (in the last block, or in
/// one more) is set too, so that the walk meets the end as a token.
pub(super) fn build(text: &[u8], blocks: &mut Vec<u64>) -> Option<Texture> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
    {
        // SAFETY: the processor has both features, checked just above.
        return unsafe { avx2::build(text, blocks) };
    }
    build_with(text, blocks, classify, prefix_xor)
}

/// [`build`] with one set of instructions, inlined into each caller so that they are too.
#[inline(always)]
fn build_with(
    text: &[u8],
    blocks: &mut Vec<u64>,
    classify: impl Fn(&[u8; 64]) -> Classes,
    prefix_xor: impl Fn(u64) -> u64,
) -> Option<Texture> {
    blocks.clear();
    blocks.reserve(text.len() / 64 + 1);
    let mut carry = Carry::default();
    let (whole, rest) = text.as_chunks::<64>();
    for (n, chunk) in whole.iter().enumerate() {
        blocks.push(carry.block(text, n * 64, &classify(chunk), &prefix_xor)?);
    }
    let mut last = 0;
    if !rest.is_empty() {
        // Padded with spaces, which are never tokens.
        let mut padded = [b' '; 64];
        padded[..rest.len()].copy_from_slice(rest);
        last = carry.block(text, whole.len() * 64, &classify(&padded), &prefix_xor)?;
    }
    if carry.in_string != 0 || carry.escape {
        return None;
    }
    blocks.push(last | 1 << rest.len());
    Some(Texture {
        escapes: carry.backslashes != 0,
        non_ascii: carry.non_ascii != 0,
    })
}

/// One bit per byte of a 64-byte block, byte 0 in bit 0, for each class of byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Classes {
    quote: u64,
    backslash: u64,
    /// Below 0x20.
    control: u64,
    /// `{ } [ ] : ,`
    operator: u64,
    /// What ends a run of scalar bytes: operators, quotes, space and control bytes.
    separator: u64,
    non_ascii: u64,
}

/// Whether `byte` ends a run of scalar bytes (the [`Classes::separator`] class): an operator, a
/// quote, a space or a control byte.
#[inline]
pub(super) fn separates(byte: u8) -> bool {
    matches!(byte, b'{' | b'}' | b'[' | b']' | b':' | b',' | b'"') || byte <= b' '
}

/// What one block leaves to the next.
#[derive(Default)]
struct Carry {
    /// The next block's first byte is escaped.
    escape: bool,
    /// All ones while a string is open at the block's end.
    in_string: u64,
    /// 1 when the block ended inside a run of scalar bytes.
    scalar: u64,
    /// Any backslash or byte outside ASCII so far, as the union of the blocks' masks.
    backslashes: u64,
    non_ascii: u64,
}

impl Carry {
    /// The block's tokens, as bits.
    #[inline(always)]
    fn block(
        &mut self,
        text: &[u8],
        base: usize,
        classes: &Classes,
        prefix_xor: impl Fn(u64) -> u64,
    ) -> Option<u64> {
        let escaped = if classes.backslash == 0 && !self.escape {
            0
        } else {
            let escaped = escaped_bytes(classes.backslash, &mut self.escape);
            check_escapes(text, base, escaped)?;
            escaped
        };
        let quote = classes.quote & !escaped;
        // From each opening quote up to (not including) its closing one.
        let in_string = prefix_xor(quote) ^ self.in_string;
        self.in_string = ((in_string as i64) >> 63) as u64;
        if classes.control != 0 {
            check_controls(text, base, classes.control, in_string)?;
        }
        // An escaped quote outside a string counts as a separator here: only a text with a
        // backslash outside any string has one, and the walk refuses that backslash.
        let scalar = !(classes.separator | in_string);
        let scalar_starts = scalar & !(scalar << 1 | self.scalar);
        self.scalar = scalar >> 63;
        self.backslashes |= classes.backslash;
        self.non_ascii |= classes.non_ascii;
        Some((classes.operator & !in_string) | quote | scalar_starts)
    }
}

/// The bytes escaped by a backslash: each backslash not itself escaped escapes the next byte.
/// `carry` says the block's first byte is escaped, and is set when its last byte escapes the next
/// block's first. Only blocks with a backslash come here: a loop over them is cheap enough.
fn escaped_bytes(backslash: u64, carry: &mut bool) -> u64 {
    let mut escaped = u64::from(*carry);
    let mut escaping = backslash & !escaped;
    *carry = false;
    while escaping != 0 {
        let at = escaping.trailing_zeros();
        escaping &= escaping - 1;
        if at == 63 {
            *carry = true;
        } else {
            let next = 1u64 << (at + 1);
            escaped |= next;
            escaping &= !next;
        }
    }
    escaped
}

/// Each escaped byte must make an escape serde_json accepts: `\uXXXX` with any code unit, as it
/// accepts in the strings it skips, or one of `" \ / b f n r t`.
fn check_escapes(text: &[u8], base: usize, mut escaped: u64) -> Option<()> {
    while escaped != 0 {
        let at = base + escaped.trailing_zeros() as usize;
        escaped &= escaped - 1;
        match text.get(at)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
            b'u' if text.get(at + 1..at + 5)?.iter().all(u8::is_ascii_hexdigit) => {}
            _ => return None,
        }
    }
    Some(())
}

/// No control byte inside a string; outside, only the three that are JSON whitespace.
fn check_controls(text: &[u8], base: usize, control: u64, in_string: u64) -> Option<()> {
    if control & in_string != 0 {
        return None;
    }
    let mut outside = control;
    while outside != 0 {
        let at = base + outside.trailing_zeros() as usize;
        outside &= outside - 1;
        if !matches!(text.get(at)?, b'\t' | b'\n' | b'\r') {
            return None;
        }
    }
    Some(())
}

/// Bit k of the result is the parity of bits 0..=k of `bits`.
#[inline(always)]
fn prefix_xor(mut bits: u64) -> u64 {
    bits ^= bits << 1;
    bits ^= bits << 2;
    bits ^= bits << 4;
    bits ^= bits << 8;
    bits ^= bits << 16;
    bits ^= bits << 32;
    bits
}

#[inline(always)]
fn classify(block: &[u8; 64]) -> Classes {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        // SAFETY: `sse2::classify` needs only SSE2, which this build enables (the cfg above), and
        // it reads no more than the 64 bytes the reference holds.
        unsafe { sse2::classify(block) }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        bytewise_classify(block)
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    use super::Classes;

    #[target_feature(enable = "sse2")]
    #[inline]
    pub(super) fn classify(block: &[u8; 64]) -> Classes {
        let mut classes = Classes::default();
        for (lane, bytes) in block.chunks_exact(16).enumerate() {
            // SAFETY: the lane is sixteen readable bytes, and the load needs no alignment.
            let bytes = unsafe { _mm_loadu_si128(bytes.as_ptr().cast::<__m128i>()) };
            let is = |byte: u8| _mm_cmpeq_epi8(bytes, _mm_set1_epi8(byte as i8));
            // Unsigned `byte <= limit`: the minimum of the two is the byte itself.
            let at_most =
                |limit: u8| _mm_cmpeq_epi8(_mm_min_epu8(bytes, _mm_set1_epi8(limit as i8)), bytes);
            // `[` and `]` differ from `{` and `}` in bit 5 alone.
            let folded = _mm_or_si128(bytes, _mm_set1_epi8(0x20));
            let brace = |byte: u8| _mm_cmpeq_epi8(folded, _mm_set1_epi8(byte as i8));
            let operator = _mm_or_si128(
                _mm_or_si128(brace(b'{'), brace(b'}')),
                _mm_or_si128(is(b':'), is(b',')),
            );
            let quote = is(b'"');
            let separator = _mm_or_si128(_mm_or_si128(operator, quote), at_most(b' '));
            let mask = |v: __m128i| u64::from(_mm_movemask_epi8(v) as u16) << (16 * lane);
            classes.quote |= mask(quote);
            classes.backslash |= mask(is(b'\\'));
            classes.control |= mask(at_most(0x1f));
            classes.operator |= mask(operator);
            classes.separator |= mask(separator);
            classes.non_ascii |= mask(bytes);
        }
        classes
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set1_epi8, _mm_clmulepi64_si128, _mm_cvtsi128_si64, _mm_set1_epi8,
        _mm_set_epi64x,
    };

    use super::{build_with, Classes, Texture};

    #[target_feature(enable = "avx2,pclmulqdq")]
    pub(super) fn build(text: &[u8], blocks: &mut Vec<u64>) -> Option<Texture> {
        build_with(
            text,
            blocks,
            |block| classify(block),
            |bits| prefix_xor(bits),
        )
    }

    /// A carry-less multiplication by all ones: bit k of the product is the parity of bits
    /// 0..=k.
    #[target_feature(enable = "pclmulqdq")]
    #[inline]
    fn prefix_xor(bits: u64) -> u64 {
        let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, bits as i64), _mm_set1_epi8(-1), 0);
        _mm_cvtsi128_si64(product) as u64
    }

    /// Two lanes of 32 bytes. Backslashes, control bytes and bytes outside ASCII are rare in a
    /// review: one mask tells whether the block has any, and only then are they told apart.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn classify(block: &[u8; 64]) -> Classes {
        let mut classes = Classes::default();
        let mut rare = 0;
        for (lane, bytes) in lanes(block) {
            let is = |byte: u8| _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(byte as i8));
            // `[` and `]` differ from `{` and `}` in bit 5 alone.
            let folded = _mm256_or_si256(bytes, _mm256_set1_epi8(0x20));
            let brace = |byte: u8| _mm256_cmpeq_epi8(folded, _mm256_set1_epi8(byte as i8));
            let operator = _mm256_or_si256(
                _mm256_or_si256(brace(b'{'), brace(b'}')),
                _mm256_or_si256(is(b':'), is(b',')),
            );
            let quote = is(b'"');
            let separator = _mm256_or_si256(_mm256_or_si256(operator, quote), at_most(bytes, b' '));
            classes.quote |= mask(lane, quote);
            classes.operator |= mask(lane, operator);
            classes.separator |= mask(lane, separator);
            // A byte's high bit is set outside ASCII, as a compare sets it on a match.
            let unusual = _mm256_or_si256(is(b'\\'), at_most(bytes, 0x1f));
            rare |= mask(lane, _mm256_or_si256(unusual, bytes));
        }
        if rare != 0 {
            for (lane, bytes) in lanes(block) {
                classes.backslash |= mask(
                    lane,
                    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b'\\' as i8)),
                );
                classes.control |= mask(lane, at_most(bytes, 0x1f));
                classes.non_ascii |= mask(lane, bytes);
            }
        }
        classes
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn lanes(block: &[u8; 64]) -> impl Iterator<Item = (usize, __m256i)> + '_ {
        block.chunks_exact(32).enumerate().map(|(lane, bytes)| {
            // SAFETY: the lane is 32 readable bytes, and the load needs no alignment.
            (lane, unsafe {
                _mm256_loadu_si256(bytes.as_ptr().cast::<__m256i>())
            })
        })
    }

    /// Unsigned `byte <= limit`: the minimum of the two is the byte itself.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn at_most(bytes: __m256i, limit: u8) -> __m256i {
        _mm256_cmpeq_epi8(_mm256_min_epu8(bytes, _mm256_set1_epi8(limit as i8)), bytes)
    }

    /// The high bit of each byte, as bits 32 * lane and up.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn mask(lane: usize, bytes: __m256i) -> u64 {
        u64::from(_mm256_movemask_epi8(bytes) as u32) << (32 * lane)
    }

    #[cfg(test)]
    pub(super) fn classify_for_test(block: &[u8; 64]) -> Option<Classes> {
        // SAFETY: only called when the processor has AVX2, checked here.
        std::arch::is_x86_feature_detected!("avx2").then(|| unsafe { classify(block) })
    }

    #[cfg(test)]
    pub(super) fn prefix_xor_for_test(bits: u64) -> Option<u64> {
        // SAFETY: only called when the processor has PCLMULQDQ, checked here.
        std::arch::is_x86_feature_detected!("pclmulqdq").then(|| unsafe { prefix_xor(bits) })
    }
}

/// [`classify`] a byte at a time: for targets without SSE2, and the reference in tests.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
fn bytewise_classify(block: &[u8; 64]) -> Classes {
    let mut classes = Classes::default();
    for (at, &byte) in block.iter().enumerate() {
        let bit = 1u64 << at;
        let set = |class: &mut u64, is: bool| *class |= if is { bit } else { 0 };
        let operator = matches!(byte, b'{' | b'}' | b'[' | b']' | b':' | b',');
        set(&mut classes.quote, byte == b'"');
        set(&mut classes.backslash, byte == b'\\');
        set(&mut classes.control, byte < 0x20);
        set(&mut classes.operator, operator);
        set(&mut classes.separator, separates(byte));
        set(&mut classes.non_ascii, byte >= 0x80);
    }
    classes
}

#[cfg(test)]
mod tests;
