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

/// The word check finds the first special byte exactly, wherever it is and whatever follows.
#[test]
fn string_ends_are_found_at_every_offset() {
    for at in 0..40 {
        for tail in ["", "\"", "\\\\", "\u{1}", "\u{e9}"] {
            let mut text = String::from("\"");
            text.push_str(&"x".repeat(at));
            text.push('"');
            text.push_str(tail);
            let mut s = Scanner::new(text.as_bytes());
            assert_eq!(s.str().map(str::len), Some(at), "{text:?}");
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

/// Keys are checked for UTF-8 exactly when they hold a byte outside ASCII, wherever it is: in the
/// chunk read after the quote, in a later one, or in the byte-at-a-time tail.
#[test]
fn keys_outside_ascii_are_checked_at_every_offset() {
    assert_checked_outside_ascii([b"", b",\"padding-to-fill-whole-words\":2"], |key, tail| {
        let mut text = b"{\"".to_vec();
        text.extend_from_slice(key);
        text.extend_from_slice(b"\":1");
        text.extend_from_slice(tail);
        text.push(b'}');
        let mut seen = None;
        Scanner::new(&text)
            .object(|s, key| {
                seen.get_or_insert_with(|| key.to_vec());
                s.skip_value()
            })
            .and(seen)
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
            Scanner::new(&text).str().map(|v| v.as_bytes().to_vec())
        },
    );
}
