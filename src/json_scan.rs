//! A JSON reader for the one document read on every admission review, walked by hand instead of
//! through serde's visitors. It reads in two passes: [`index`] finds where every token starts, 64
//! bytes at a time with SIMD, and the [`Scanner`] then walks those tokens.
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
//! keys and returned strings are (when the text holds any byte outside ASCII).

use std::cell::Cell;

use crate::thread_buffers::{give_back, take};

mod index;

/// Deepest nesting [`Scanner::skip_value`] follows: one bit per level records object or array.
pub const MAX_SKIP_DEPTH: u32 = 128;

/// Index buffers larger than this (in blocks of 64 bytes) are not kept for the next text: one huge
/// review should not hold memory on every worker thread.
const KEPT_BLOCKS: usize = 1 << 12;

thread_local! {
    /// The last scanner's index buffer, so a review does not allocate one.
    static SPARE_BLOCKS: Cell<Vec<u64>> = const { Cell::new(Vec::new()) };
}

/// A cursor over a JSON text's tokens (see [`index`]).
pub struct Scanner<'a> {
    bytes: &'a [u8],
    /// The tokens, a word of bits per 64 bytes; only the end's when the index declined the text.
    blocks: Vec<u64>,
    /// The block of the next token.
    block: usize,
    /// The tokens left in that block, the next one lowest; zero past the end.
    left: u64,
    /// `None` when the index declined the text.
    texture: Option<index::Texture>,
}

impl Drop for Scanner<'_> {
    fn drop(&mut self) {
        give_back(&SPARE_BLOCKS, std::mem::take(&mut self.blocks), KEPT_BLOCKS);
    }
}

impl<'a> Scanner<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        let mut blocks = take(&SPARE_BLOCKS);
        let (bytes, texture) = match index::build(bytes, &mut blocks) {
            Some(texture) => (bytes, Some(texture)),
            None => {
                // An empty text, whose one token is its end: every read fails at once.
                blocks.clear();
                blocks.push(1);
                (&[][..], None)
            }
        };
        let left = blocks.first().copied().unwrap_or(0);
        let mut scanner = Scanner {
            bytes,
            blocks,
            block: 0,
            left,
            texture,
        };
        scanner.skip_empty_blocks();
        scanner
    }

    /// Succeeds when nothing but whitespace is left.
    pub fn finish(self) -> Option<()> {
        self.texture?;
        (self.position() == self.bytes.len()).then_some(())
    }

    /// Where the next token starts, or the text's length after the last one. The walk never
    /// consumes that last one (each read checks the byte at a token first), so a token is
    /// always left.
    #[inline]
    fn position(&self) -> usize {
        self.block * 64 + self.left.trailing_zeros() as usize
    }

    /// Consumes the next token.
    #[inline]
    fn advance(&mut self) {
        self.left &= self.left.wrapping_sub(1);
        if self.left == 0 {
            self.skip_empty_blocks();
        }
    }

    /// Moves on to the first block with a token left, if the current one has none.
    fn skip_empty_blocks(&mut self) {
        while self.left == 0 {
            self.block += 1;
            match self.blocks.get(self.block) {
                Some(&tokens) => self.left = tokens,
                None => return,
            }
        }
    }

    /// The next token's first byte, not consumed.
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position()).copied()
    }

    /// Consumes `byte` if it comes next.
    #[inline]
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        if next {
            self.advance();
        }
        next
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Consumes the scalar `word` if it is the next token, whole.
    #[inline]
    fn word(&mut self, word: &[u8]) -> bool {
        let at = self.position();
        let whole = self
            .bytes
            .get(at..)
            .is_some_and(|rest| rest.starts_with(word))
            && self.scalar_ends(at + word.len());
        if whole {
            self.advance();
        }
        whole
    }

    /// A scalar read up to `end` is the whole token: the next byte is not part of it.
    #[inline]
    fn scalar_ends(&self, end: usize) -> bool {
        self.bytes
            .get(end)
            .is_none_or(|&byte| index::separates(byte))
    }

    /// Consumes `null` if it comes next.
    pub fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.word(b"null")
    }

    /// `null` as `None`, anything else read by `read`.
    pub fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.null() {
            return Some(None);
        }
        read(self).map(Some)
    }

    pub fn bool(&mut self) -> Option<bool> {
        if self.word(b"true") {
            Some(true)
        } else if self.word(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// A string without escapes, borrowed from the text: checked for UTF-8 only when the text
    /// holds a byte outside ASCII somewhere.
    pub fn str(&mut self) -> Option<&'a str> {
        let bytes = self.string()?;
        let texture = self.texture?;
        if texture.escapes && bytes.contains(&b'\\') {
            return None;
        }
        if texture.non_ascii {
            std::str::from_utf8(bytes).ok()
        } else {
            // SAFETY: the index found no byte at or above 0x80 in the whole text, and a sequence
            // of ASCII bytes is valid UTF-8.
            Some(unsafe { std::str::from_utf8_unchecked(bytes) })
        }
    }

    /// [`Scanner::str`] as bytes, for the many short strings (keys, names) compared but not
    /// handed out.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        self.str().map(str::as_bytes)
    }

    /// The inside of the string that comes next, escapes and all: the index holds its closing
    /// quote as the next token.
    #[inline]
    fn string(&mut self) -> Option<&'a [u8]> {
        let open = self.position();
        if self.bytes.get(open) != Some(&b'"') {
            return None;
        }
        self.advance();
        let close = self.position();
        self.advance();
        self.bytes.get(open + 1..close)
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
        let start = self.position();
        self.skip_value()?;
        // Only whitespace lies between a value's end and the next token.
        let text = self.bytes.get(start..self.position())?.trim_ascii_end();
        std::str::from_utf8(text).ok()
    }

    /// Skips one value of any kind, checking its syntax, without recursion: the open containers
    /// are a stack of bits, 1 for an object.
    pub fn skip_value(&mut self) -> Option<()> {
        let mut open: u128 = 0;
        let mut depth: u32 = 0;
        loop {
            // A value is expected here.
            match self.peek()? {
                b'"' => self.skip_string(),
                b'{' => {
                    self.advance();
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
                    self.advance();
                    if !self.eat(b']') {
                        depth += 1;
                        if depth > MAX_SKIP_DEPTH {
                            return None;
                        }
                        open <<= 1;
                        continue;
                    }
                }
                b't' => self.word(b"true").then_some(())?,
                b'f' => self.word(b"false").then_some(())?,
                b'n' => self.word(b"null").then_some(())?,
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
                        self.advance();
                        if in_object {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                self.advance();
                open >>= 1;
                depth -= 1;
            }
        }
    }

    /// A key inside a skipped object and its colon. Not checked for UTF-8: serde_json does not
    /// check the keys of the values it ignores either.
    fn skip_key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.skip_string();
        self.expect(b':')
    }

    /// Consumes a string whose opening quote is the next token: its closing quote is the one
    /// after.
    #[inline]
    fn skip_string(&mut self) {
        self.advance();
        self.advance();
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as RFC 8259 and serde_json have it,
    /// and nothing else in the token.
    fn skip_number(&mut self) -> Option<()> {
        let mut at = self.position();
        let bytes = self.bytes;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        match bytes.get(at)? {
            b'0' => at += 1,
            b'1'..=b'9' => at = digits_end(bytes, at),
            _ => return None,
        }
        if bytes.get(at) == Some(&b'.') {
            at = one_or_more_digits(bytes, at + 1)?;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            at = one_or_more_digits(bytes, at)?;
        }
        self.scalar_ends(at).then(|| self.advance())
    }
}

fn one_or_more_digits(bytes: &[u8], start: usize) -> Option<usize> {
    let end = digits_end(bytes, start);
    (end > start).then_some(end)
}

fn digits_end(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b'0'..=b'9') = bytes.get(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests;
