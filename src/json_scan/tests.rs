use serde::de::IgnoredAny;

use super::*;

/// Skips one value and requires the end of the text, as `serde_json::from_slice` does.
fn skips(text: &[u8]) -> bool {
    let mut s = Scanner::new(text);
    s.skip_value().is_some() && s.finish().is_some()
}

fn serde_skips(text: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(text).is_ok()
}

#[test]
fn skips_what_serde_json_accepts() {
    let valid: &[&str] = &[
        "0",
        "-0",
        "-12.5e+3",
        "1E9",
        "0.0",
        "true",
        "false",
        "null",
        r#""""#,
        r#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00""#,
        r#""\uDEAD""#,
        "\"h\u{e9}llo \u{1F600}\"",
        "[]",
        "{}",
        " [ 1 , [ ] , { } , \"x\" ] ",
        r#"{"a":{"b":[{"c":null}]},"d":[true,false]}"#,
        "\t\r\n{\"k\"\n:\r1}\n",
        r#"{"a":1,"a":2}"#,
        r#""0123456789abcdef0123456789abcdef""#,
        r#""0123456\"89abcdef""#,
    ];
    for text in valid {
        assert!(serde_skips(text.as_bytes()), "serde refuses {text}");
        assert!(skips(text.as_bytes()), "refused {text}");
    }
}

#[test]
fn refuses_what_serde_json_refuses() {
    let invalid: &[&[u8]] = &[
        b"",
        b" ",
        b"01",
        b"-",
        b"1.",
        b".5",
        b"1e",
        b"1e+",
        b"+1",
        b"tru",
        b"nul",
        b"True",
        b"\"",
        b"\"abc",
        b"\"\\x\"",
        b"\"\\u12\"",
        b"\"\\u12g4\"",
        b"\"a\x01b\"",
        b"\"tab\tinside\"",
        b"[",
        b"[1,]",
        b"[,1]",
        b"[1 2]",
        b"{",
        b"{\"a\"}",
        b"{\"a\":}",
        b"{\"a\":1,}",
        b"{a:1}",
        b"{1:1}",
        b"{\"a\":1]",
        b"[1}",
        b"[]]",
        b"1 2",
        b"{} x",
        b"\"a\"\"b\"",
    ];
    for text in invalid {
        assert!(
            !serde_skips(text),
            "serde accepts {:?}",
            String::from_utf8_lossy(text)
        );
        assert!(!skips(text), "accepted {:?}", String::from_utf8_lossy(text));
    }
}

/// Every text of up to four bytes over JSON's significant bytes: whatever the scanner accepts,
/// serde_json accepts.
#[test]
fn never_accepts_a_short_text_serde_json_refuses() {
    let alphabet = b"{}[]\",:01-.eE+tnu\\ a\x01";
    let mut text = Vec::new();
    let mut accepted = 0;
    for len in 1..=4u32 {
        for mut n in 0..alphabet.len().pow(len) {
            text.clear();
            for _ in 0..len {
                text.push(alphabet[n % alphabet.len()]);
                n /= alphabet.len();
            }
            if skips(&text) {
                accepted += 1;
                assert!(serde_skips(&text), "{:?}", String::from_utf8_lossy(&text));
            }
            // The same text across the boundary of the index's first two blocks.
            let mut shifted = b" ".repeat(62);
            shifted.extend_from_slice(&text);
            assert_eq!(
                skips(&shifted),
                skips(&text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }
    // The alphabet makes valid texts too, so the check above is not vacuous.
    assert!(accepted > 100, "{accepted}");
}

#[test]
fn declines_nesting_deeper_than_its_stack() {
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let deepest = MAX_SKIP_DEPTH as usize;
    assert!(skips(nested(deepest).as_bytes()));
    assert!(!skips(nested(deepest + 1).as_bytes()));
    let objects = format!("{}1{}", r#"{"k":"#.repeat(deepest), "}".repeat(deepest));
    assert!(skips(objects.as_bytes()));
}

#[test]
fn raw_value_is_the_text_serde_json_hands_out() {
    let text = r#"{"ports": [ {"containerPort": 8080, "name": "h\u0074tp"} ] , "x": 1}"#;
    let mut s = Scanner::new(text.as_bytes());
    let mut raw = None;
    s.object(|s, key| {
        if key == b"ports" {
            raw = s.raw_value();
            raw.map(|_| ())
        } else {
            s.skip_value()
        }
    })
    .expect("scans");
    #[derive(serde::Deserialize)]
    struct Ports<'a> {
        #[serde(borrow)]
        ports: &'a serde_json::value::RawValue,
    }
    let ports: Ports = serde_json::from_str(text).expect("decodes");
    assert_eq!(raw, Some(ports.ports.get()));
}

#[test]
fn hands_out_strings_only_without_escapes_and_as_utf8() {
    let read = |text: &[u8]| Scanner::new(text).str().map(str::to_owned);
    assert_eq!(read(br#""plain""#).as_deref(), Some("plain"));
    assert_eq!(
        read("\"d\u{e9}j\u{e0}\"".as_bytes()).as_deref(),
        Some("d\u{e9}j\u{e0}")
    );
    assert_eq!(read(br#""esc\"aped""#), None);
    assert_eq!(read(b"\"\xff\xfe\""), None);
    assert_eq!(read(b"null"), None);
}

#[test]
fn object_keys_are_handed_out_and_escaped_keys_declined() {
    let keys_of = |text: &[u8]| {
        let mut keys = Vec::new();
        Scanner::new(text)
            .object(|s, key| {
                keys.push(key.to_vec());
                s.skip_value()
            })
            .map(|()| keys)
    };
    let keys = |text: &str| keys_of(text.as_bytes());
    assert_eq!(
        keys(r#"{"a": 1, "bb": [2], "c": {"d": 3}}"#),
        Some(vec![b"a".to_vec(), b"bb".to_vec(), b"c".to_vec()])
    );
    assert_eq!(keys(r#"{"\u0061": 1}"#), None);
    assert_eq!(
        keys("{\"\u{e9}\": 1}"),
        Some(vec!["\u{e9}".as_bytes().to_vec()])
    );
    assert_eq!(keys_of(b"{\"\xff\": 1}"), None);
    assert_eq!(keys("{}"), Some(Vec::new()));
}

/// Strings end where they end wherever they lie across the index's 64-byte blocks, whatever
/// follows them.
#[test]
fn string_ends_are_found_at_every_offset() {
    for start in 0..70 {
        for len in 0..70 {
            for tail in ["", " ", ",1", "\"\"", "\u{e9}"] {
                let mut text = " ".repeat(start);
                text.push('"');
                text.push_str(&"x".repeat(len));
                text.push('"');
                text.push_str(tail);
                let mut s = Scanner::new(text.as_bytes());
                assert_eq!(s.str().map(str::len), Some(len), "{text:?}");
            }
        }
    }
}

/// Feeds `read` strings of several lengths (within the first sixteen-byte chunk, at its edge, and
/// over several) with one character outside ASCII at every offset, each before either tail, and
/// checks that the valid ones come back whole and that a byte no UTF-8 allows (0xff) or a lone
/// continuation byte (0x80) is refused.
fn assert_checked_outside_ascii(tails: [&[u8]; 2], read: impl Fn(&[u8], &[u8]) -> Option<Vec<u8>>) {
    for len in [1, 15, 16, 17, 40] {
        for at in 0..len {
            for tail in tails {
                let mut valid = b"x".repeat(len);
                valid.splice(at..at + 1, "\u{e9}".bytes());
                assert_eq!(read(&valid, tail), Some(valid.clone()), "{len} {at}");
                for wrong in [0xff, 0x80] {
                    let mut invalid = b"x".repeat(len);
                    invalid[at] = wrong;
                    assert_eq!(read(&invalid, tail), None, "{len} {at} {wrong:#x}");
                }
            }
        }
    }
}

/// Keys are checked for UTF-8 whenever the text holds a byte outside ASCII, wherever it is in the
/// key and whatever follows.
#[test]
fn keys_outside_ascii_are_checked_at_every_offset() {
    assert_checked_outside_ascii([b"", b",\"padding-to-fill-whole-words\":2"], |key, tail| {
        let mut text = b"{\"".to_vec();
        text.extend_from_slice(key);
        text.extend_from_slice(b"\":1");
        text.extend_from_slice(tail);
        text.push(b'}');
        let mut seen = None;
        let read = Scanner::new(&text)
            .object(|s, key| {
                seen.get_or_insert_with(|| key.to_vec());
                s.skip_value()
            })
            .and(seen);
        read
    });
}

/// Strings handed out skip the UTF-8 check only when all ASCII: a byte outside it, wherever it
/// is, is still checked.
#[test]
fn strings_outside_ascii_are_checked_at_every_offset() {
    assert_checked_outside_ascii(
        [b"", b",\"padding-to-fill-a-whole-chunk\""],
        |body, tail| {
            let mut text = b"\"".to_vec();
            text.extend_from_slice(body);
            text.push(b'"');
            text.extend_from_slice(tail);
            let read = Scanner::new(&text).str().map(|v| v.as_bytes().to_vec());
            read
        },
    );
}

/// One of `from`, at random.
fn one_of<'a>(random: &mut fastrand::Rng, from: &[&'a str]) -> &'a str {
    from[random.usize(..from.len())]
}

/// A random value as JSON text, with whitespace, escapes and characters outside ASCII.
fn random_json(random: &mut fastrand::Rng, depth: u32, out: &mut Vec<u8>) {
    let space = |random: &mut fastrand::Rng, out: &mut Vec<u8>| {
        out.extend_from_slice(one_of(random, &["", "", "", " ", "\n  ", "\t"]).as_bytes())
    };
    let kind = if depth > 3 {
        random.u32(..4)
    } else {
        random.u32(..6)
    };
    match kind {
        0 => out.extend_from_slice(one_of(random, &["null", "true", "false"]).as_bytes()),
        1 => out.extend_from_slice(
            one_of(
                random,
                &["0", "-1", "12.5", "3e7", "-0.25E-3", "1234567890123"],
            )
            .as_bytes(),
        ),
        2 | 3 => {
            out.push(b'"');
            for _ in 0..random.u32(..40) {
                out.extend_from_slice(
                    one_of(
                        random,
                        &[
                            "a", "b", "-", "\\\"", "\\\\", "\\n", "\\u00e9", "\u{e9}", "x y", "/",
                        ],
                    )
                    .as_bytes(),
                );
            }
            out.push(b'"');
        }
        4 => {
            out.push(b'[');
            for n in 0..random.u32(..5) {
                if n > 0 {
                    out.push(b',');
                }
                space(random, out);
                random_json(random, depth + 1, out);
                space(random, out);
            }
            out.push(b']');
        }
        _ => {
            out.push(b'{');
            for n in 0..random.u32(..5) {
                if n > 0 {
                    out.push(b',');
                }
                space(random, out);
                out.extend_from_slice(one_of(random, &["\"k\"", "\"key\\\"\"", "\"\""]).as_bytes());
                space(random, out);
                out.push(b':');
                random_json(random, depth + 1, out);
            }
            out.push(b'}');
        }
    }
}

/// Random texts of up to a few hundred bytes, so values cross the index's blocks: each valid one
/// is skipped, and of its corruptions the scanner accepts none that serde_json refuses.
#[test]
fn skips_random_texts_and_never_accepts_their_corruptions_serde_json_refuses() {
    let corruptions: &[u8] = b"\"\\{}[],: 0-e.\x01\t\xff";
    let mut random = fastrand::Rng::with_seed(11);
    let mut accepted_corruptions = 0;
    for case in 0..20_000 {
        let mut text = Vec::new();
        random_json(&mut random, 0, &mut text);
        assert!(serde_skips(&text), "{:?}", String::from_utf8_lossy(&text));
        assert!(
            skips(&text),
            "case {case}: {:?}",
            String::from_utf8_lossy(&text)
        );
        let at = random.usize(..text.len());
        text[at] = corruptions[random.usize(..corruptions.len())];
        if skips(&text) {
            accepted_corruptions += 1;
            assert!(
                serde_skips(&text),
                "case {case}: {:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }
    assert!(accepted_corruptions > 1_000, "{accepted_corruptions}");
}
