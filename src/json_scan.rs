//! A JSON reader for the one document read on every admission review, walked by hand instead of
//! through serde's visitors.
//!
//! It has no error messages: whatever it is not sure of, it declines (`None`), and the caller then
//! decodes with serde_json, whose errors say what is wrong. So it only has to be at least as strict
//! as serde_json and read what it accepts the same way; a differential test and a fuzz target hold
//! it to that. It declines:
//! - any syntax serde_json would refuse: bad literals, numbers, escapes, control characters in
//!   strings, missing or trailing separators, trailing text;
//! - escapes inside the keys and the strings it returns (the caller's serde path decodes those);
//! - values nested more than [`MAX_SKIP_DEPTH`] deep inside a skipped value.
//!
//! Skipped strings are not checked for UTF-8, as serde_json does not check the strings it ignores;
//! keys and returned strings are.

use crate::json_text::masks16;

/// Deepest nesting [`Scanner::skip_value`] follows: one bit per level records object or array.
pub const MAX_SKIP_DEPTH: u32 = 128;

/// A cursor over a JSON text.
pub struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Scanner { bytes, at: 0 }
    }

    /// Succeeds when nothing but whitespace is left.
    pub fn finish(mut self) -> Option<()> {
        self.skip_whitespace();
        (self.at == self.bytes.len()).then_some(())
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed. The API server sends JSON without
    /// whitespace between tokens, so one compare usually settles it.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let next = *self.bytes.get(self.at)?;
        if next > b' ' {
            return Some(next);
        }
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    /// Consumes `byte` if it comes next (after whitespace).
    #[inline]
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Consumes `null` if it comes next.
    pub fn null(&mut self) -> bool {
        if self.peek() == Some(b'n') && self.bytes[self.at..].starts_with(b"null") {
            self.at += 4;
            return true;
        }
        false
    }

    /// `null` as `None`, anything else read by `read`.
    pub fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        read(self).map(Some)
    }

    pub fn bool(&mut self) -> Option<bool> {
        self.skip_whitespace();
        let rest = &self.bytes[self.at..];
        if rest.starts_with(b"true") {
            self.at += 4;
            Some(true)
        } else if rest.starts_with(b"false") {
            self.at += 5;
            Some(false)
        } else {
            None
        }
    }

    /// A string without escapes, borrowed from the text: checked for UTF-8 only when not plain
    /// ASCII, which the scan for its closing quote has already told.
    pub fn str(&mut self) -> Option<&'a str> {
        let (bytes, ascii) = self.unchecked_bytes()?;
        if ascii {
            // SAFETY: every byte is below 0x80 (the scanner's classification of the string found
            // none at or above it), and a sequence of ASCII bytes is valid UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            std::str::from_utf8(bytes).ok()
        }
    }

    /// [`Scanner::str`] as bytes, for the many short strings (keys, names) compared but not
    /// handed out.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        self.str().map(str::as_bytes)
    }

    /// A string without escapes as its bytes, not checked for UTF-8, and whether it is ASCII.
    /// Most keys and names end within sixteen bytes of their opening quote: those are read with
    /// one classification of the bytes after it, inlined into the caller.
    #[inline]
    fn unchecked_bytes(&mut self) -> Option<(&'a [u8], bool)> {
        let bytes = self.bytes;
        let start = self.at + 1;
        if let (Some(b'"'), Some(chunk)) = (
            bytes.get(self.at),
            bytes.get(start..).and_then(<[u8]>::first_chunk::<16>),
        ) {
            let masks = masks16(chunk);
            let len = masks.special.trailing_zeros() as usize;
            if chunk.get(len) == Some(&b'"') {
                self.at = start + len + 1;
                let ascii = masks.non_ascii & ((1 << len) - 1) == 0;
                return Some((&bytes[start..start + len], ascii));
            }
        }
        self.unchecked_bytes_slow()
    }

    #[inline(never)]
    fn unchecked_bytes_slow(&mut self) -> Option<(&'a [u8], bool)> {
        self.expect(b'"')?;
        let start = self.at;
        let body = self.string_body()?;
        if body.escaped {
            return None;
        }
        Some((&self.bytes[start..self.at - 1], body.ascii))
    }

    /// An object, calling `field` with each key (without escapes, valid UTF-8), which must consume
    /// its value. Keys come as bytes, to be matched without building a `str` of each.
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.bytes()?;
            self.expect(b':')?;
            field(self, key)?;
            if !self.eat(b',') {
                return self.expect(b'}');
            }
        }
    }

    /// An array, calling `element` for each element, which must consume it.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            element(self)?;
            if !self.eat(b',') {
                return self.expect(b']');
            }
        }
    }

    /// Skips one value and returns its text (checked for UTF-8, as it is handed out as a `str`).
    pub fn raw_value(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        self.skip_value()?;
        std::str::from_utf8(&self.bytes[start..self.at]).ok()
    }

    /// Skips one value of any kind, checking its syntax, without recursion: the open containers
    /// are a stack of bits, 1 for an object.
    pub fn skip_value(&mut self) -> Option<()> {
        let mut open: u128 = 0;
        let mut depth: u32 = 0;
        loop {
            // A value is expected here.
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    self.string_body()?;
                }
                b'{' => {
                    self.at += 1;
                    if !self.eat(b'}') {
                        depth += 1;
                        if depth > MAX_SKIP_DEPTH {
                            return None;
                        }
                        open = open << 1 | 1;
                        self.skip_key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.at += 1;
                    if !self.eat(b']') {
                        depth += 1;
                        if depth > MAX_SKIP_DEPTH {
                            return None;
                        }
                        open <<= 1;
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return None,
            }
            // A value has ended: close what it ended, until a comma starts the next value.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = open & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if in_object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                self.at += 1;
                open >>= 1;
                depth -= 1;
            }
        }
    }

    /// A key inside a skipped object and its colon. Not checked for UTF-8: serde_json does not
    /// check the keys of the values it ignores either.
    fn skip_key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.string_body()?;
        self.expect(b':')
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..].starts_with(word).then(|| {
            self.at += word.len();
        })
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as RFC 8259 and serde_json have it.
    /// A digit right after a leading zero ends the number here, and the caller then refuses it.
    fn skip_number(&mut self) -> Option<()> {
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.skip_digits(),
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.one_or_more_digits()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            self.one_or_more_digits()?;
        }
        Some(())
    }

    fn one_or_more_digits(&mut self) -> Option<()> {
        let start = self.at;
        self.skip_digits();
        (self.at > start).then_some(())
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// Moves past the closing quote of a string whose opening quote is consumed, sixteen bytes at
    /// a time, noting on the way whether it held escapes or bytes outside ASCII. Inlined into its
    /// three callers: a typical review has some 580 strings, mostly short, and a call's setup cost
    /// a third of the work per string.
    #[inline(always)]
    fn string_body(&mut self) -> Option<StringBody> {
        let bytes = self.bytes;
        let mut at = self.at;
        let mut escaped = false;
        // A bit set for each byte passed outside ASCII (at some offset: only zero matters).
        let mut non_ascii = 0u32;
        loop {
            while let Some(chunk) = bytes.get(at..).and_then(<[u8]>::first_chunk::<16>) {
                let masks = masks16(chunk);
                if masks.special != 0 {
                    let offset = masks.special.trailing_zeros();
                    non_ascii |= masks.non_ascii & ((1 << offset) - 1);
                    at += offset as usize;
                    break;
                }
                non_ascii |= masks.non_ascii;
                at += 16;
            }
            match *bytes.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some(StringBody {
                        escaped,
                        ascii: non_ascii == 0,
                    });
                }
                b'\\' => {
                    escaped = true;
                    at += escape_len(&bytes[at + 1..])? + 1;
                }
                0x00..=0x1f => return None,
                byte => {
                    non_ascii |= u32::from(byte >= 0x80);
                    at += 1;
                }
            }
        }
    }
}

/// What [`Scanner::string_body`] saw in a string.
struct StringBody {
    escaped: bool,
    ascii: bool,
}

/// Length of a valid escape after its backslash: `\uXXXX` takes 5 bytes, the others 1. Any
/// code unit is accepted, as serde_json accepts it in the strings it skips.
fn escape_len(after_backslash: &[u8]) -> Option<usize> {
    match after_backslash.first()? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(1),
        b'u' => after_backslash
            .get(1..5)?
            .iter()
            .all(u8::is_ascii_hexdigit)
            .then_some(5),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
