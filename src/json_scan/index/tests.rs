use super::*;

/// The index's rules applied a byte at a time: the reference the block-wise build must match.
fn bytewise_build(text: &[u8]) -> Option<(Vec<u32>, Texture)> {
    let mut tokens = Vec::new();
    let (mut in_string, mut escaped, mut in_scalar) = (false, false, false);
    for (at, &byte) in text.iter().enumerate() {
        let at32 = at as u32;
        if escaped {
            escaped = false;
            match byte {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' if text.get(at + 1..at + 5)?.iter().all(u8::is_ascii_hexdigit) => {}
                _ => return None,
            }
            // Outside a string, an escaped quote ends a scalar run (without being a token) and any
            // other escaped byte is a scalar byte.
            if !in_string {
                if byte == b'"' {
                    in_scalar = false;
                } else if !in_scalar {
                    tokens.push(at32);
                    in_scalar = true;
                }
            }
            continue;
        }
        if byte == b'\\' {
            escaped = true;
        }
        if in_string {
            match byte {
                b'"' => {
                    tokens.push(at32);
                    in_string = false;
                }
                0..=0x1f => return None,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => {
                tokens.push(at32);
                in_string = true;
                in_scalar = false;
            }
            b'{' | b'}' | b'[' | b']' | b':' | b',' => {
                tokens.push(at32);
                in_scalar = false;
            }
            b' ' | b'\t' | b'\n' | b'\r' => in_scalar = false,
            0..=0x1f => return None,
            _ => {
                if !in_scalar {
                    tokens.push(at32);
                }
                in_scalar = true;
            }
        }
    }
    if in_string || escaped {
        return None;
    }
    tokens.push(text.len() as u32);
    let texture = Texture {
        escapes: text.contains(&b'\\'),
        non_ascii: text.iter().any(|&b| b >= 0x80),
    };
    Some((tokens, texture))
}

/// The positions the index holds, in order.
fn built(text: &[u8]) -> Option<(Vec<u32>, Texture)> {
    let mut blocks = Vec::new();
    let texture = build(text, &mut blocks)?;
    let mut tokens = Vec::new();
    for (block, &bits) in blocks.iter().enumerate() {
        let mut bits = bits;
        while bits != 0 {
            tokens.push(block as u32 * 64 + bits.trailing_zeros());
            bits &= bits - 1;
        }
    }
    Some((tokens, texture))
}

#[test]
fn simd_and_bytewise_classes_agree_for_every_byte_at_every_position() {
    let fillers = [b'a', b' ', b'"', b'\\', 0x00, 0x7f, 0x80, 0xff];
    for byte in 0u8..=255 {
        for position in 0..64 {
            for filler in fillers {
                let mut block = [filler; 64];
                block[position] = byte;
                let expected = bytewise_classify(&block);
                assert_eq!(classify(&block), expected, "{block:?}");
                #[cfg(target_arch = "x86_64")]
                if let Some(avx2) = avx2::classify_for_test(&block) {
                    assert_eq!(avx2, expected, "{block:?}");
                }
            }
        }
    }
}

#[test]
fn matches_the_bytewise_rules_on_random_texts_across_blocks() {
    // Weighted towards the bytes that change the state: quotes, backslashes, separators.
    let alphabet: &[&[u8]] = &[
        b"\"",
        b"\"",
        b"\\",
        b"\\",
        b"\\\\",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b" ",
        b"a",
        b"1",
        b"-",
        b"u",
        b"ab12",
        b"\t",
        b"\n",
        b"\x01",
        b"\xc3\xa9",
        b"    ",
        b"\"key\":",
    ];
    let mut random = fastrand::Rng::with_seed(7);
    let mut valid = 0;
    for case in 0..40_000 {
        let len = random.usize(..200);
        let mut text = Vec::new();
        while text.len() < len {
            text.extend_from_slice(alphabet[random.usize(..alphabet.len())]);
        }
        let expected = bytewise_build(&text);
        valid += usize::from(expected.is_some());
        assert_eq!(
            built(&text),
            expected,
            "case {case}: {:?}",
            String::from_utf8_lossy(&text)
        );
    }
    // Both outcomes occur often, so neither side of the comparison is vacuous.
    assert!(valid > 1_000, "{valid}");
}

#[test]
fn backslash_runs_escape_across_block_ends() {
    for run in 0..5 {
        for start in 55..66 {
            let mut text = b"[\"".to_vec();
            text.resize(start, b'x');
            text.extend(std::iter::repeat_n(b'\\', run));
            text.extend_from_slice(b"\"x\"]");
            assert_eq!(
                built(&text),
                bytewise_build(&text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }
}

#[test]
fn declines_what_no_valid_text_holds() {
    let declined: &[&[u8]] = &[
        b"\"open",
        b"[\"a\x01\"]",
        b"[\"tab\tinside\"]",
        b"[1,\x0c2]",
        b"\"\\x\"",
        b"\"\\u12\"",
        b"\"\\u12g4\"",
        b"\"ends with a backslash\\",
    ];
    for text in declined {
        assert_eq!(built(text), None, "{:?}", String::from_utf8_lossy(text));
    }
}

#[test]
fn tokens_are_operators_quotes_and_scalar_starts() {
    let (tokens, texture) = built(b"{\"a\": [1, true,-2e5], \"b\\\"\":null}").expect("valid");
    assert_eq!(
        tokens,
        [0, 1, 3, 4, 6, 7, 8, 10, 14, 15, 19, 20, 22, 26, 27, 28, 32, 33]
    );
    assert!(texture.escapes);
    assert!(!texture.non_ascii);
}

#[test]
fn prefix_xor_is_the_running_parity() {
    let mut random = fastrand::Rng::with_seed(3);
    for case in 0..10_000 {
        let bits = random.u64(..) | if case % 2 == 0 { 1 << 63 } else { 0 };
        let mut parity = 0;
        let mut expected = 0u64;
        for k in 0..64 {
            parity ^= bits >> k & 1;
            expected |= parity << k;
        }
        assert_eq!(prefix_xor(bits), expected, "{bits:#x}");
        #[cfg(target_arch = "x86_64")]
        if let Some(clmul) = avx2::prefix_xor_for_test(bits) {
            assert_eq!(clmul, expected, "{bits:#x}");
        }
    }
}
