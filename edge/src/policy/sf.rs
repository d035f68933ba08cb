//! Just enough of Structured Field Values (RFC 8941, extended by RFC 9651) for
//! the cache: parsing a Dictionary, which is what a targeted cache-control
//! field is (RFC 9213 §2.2), and serialising the tokens, strings and integers
//! that `Cache-Status` (RFC 9211) is made of.
//!
//! Parsing is all or nothing, as RFC 8941 §4.2 requires: one syntax error and
//! the whole field is refused, so the caller falls back to `Cache-Control`.

/// A member's value, reduced to what cache directives need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    /// `?1` or a bare key (true), `?0` (false).
    Bool(bool),
    /// An Integer.
    Int(i64),
    /// A String or a Token, with escapes undone.
    Text(String),
    /// Anything a cache directive has no use for: Decimal, Byte Sequence,
    /// Date, Display String, Inner List.
    Other,
}

/// Parses a Dictionary (RFC 8941 §4.2.2). A key given twice keeps its first
/// position and its last value, as §4.2.2 says. `None` on any syntax error.
pub(crate) fn parse_dictionary(input: &[u8]) -> Option<Vec<(String, Value)>> {
    let mut p = Parser { s: input, i: 0 };
    p.skip_sp();
    let mut out: Vec<(String, Value)> = Vec::new();
    while !p.at_end() {
        let key = p.key()?;
        let value = if p.eat(b'=') {
            p.item_or_inner_list()?
        } else {
            p.parameters()?;
            Value::Bool(true)
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
        p.skip_ows();
        if p.at_end() {
            break;
        }
        if !p.eat(b',') {
            return None;
        }
        p.skip_ows();
        if p.at_end() {
            // A trailing comma is an error (§4.2.2).
            return None;
        }
    }
    Some(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
    fn key(&mut self) -> Option<String> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return None,
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || matches!(c, b'_' | b'-' | b'.' | b'*'))
        {
            self.i += 1;
        }
        Some(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn item_or_inner_list(&mut self) -> Option<Value> {
        if self.peek() == Some(b'(') {
            self.inner_list()?;
            return Some(Value::Other);
        }
        let v = self.bare_item()?;
        self.parameters()?;
        Some(v)
    }

    fn inner_list(&mut self) -> Option<()> {
        self.eat(b'(');
        loop {
            self.skip_sp();
            if self.eat(b')') {
                return self.parameters();
            }
            self.bare_item()?;
            self.parameters()?;
            match self.peek() {
                Some(b' ' | b')') => {}
                _ => return None,
            }
        }
    }

    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn bare_item(&mut self) -> Option<Value> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string().map(Value::Text),
            b'*' | b'A'..=b'Z' | b'a'..=b'z' => Some(Value::Text(self.token())),
            b':' => self.byte_sequence(),
            b'?' => self.boolean(),
            b'@' => {
                // RFC 9651 Date: "@" Integer.
                self.i += 1;
                match self.number()? {
                    Value::Int(_) => Some(Value::Other),
                    _ => None,
                }
            }
            b'%' => self.display_string(),
            _ => None,
        }
    }

    /// RFC 8941 §4.2.4: at most 15 integer digits; decimals have at most 12
    /// integer and 1 to 3 fractional digits.
    fn number(&mut self) -> Option<Value> {
        let negative = self.eat(b'-');
        let start = self.i;
        if !matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            return None;
        }
        let mut dot = None;
        while let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.i += 1;
            } else if c == b'.' && dot.is_none() {
                if self.i - start > 12 {
                    return None;
                }
                dot = Some(self.i);
                self.i += 1;
            } else {
                break;
            }
            if dot.is_none() && self.i - start > 15 {
                return None;
            }
            if dot.is_some() && self.i - start > 16 {
                return None;
            }
        }
        match dot {
            None => {
                let digits = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                let n: i64 = digits.parse().ok()?;
                Some(Value::Int(if negative { -n } else { n }))
            }
            Some(d) => {
                let frac = self.i - d - 1;
                if frac == 0 || frac > 3 {
                    return None;
                }
                Some(Value::Other)
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"');
        let mut out = String::new();
        loop {
            match self.next()? {
                b'\\' => match self.next()? {
                    c @ (b'"' | b'\\') => out.push(char::from(c)),
                    _ => return None,
                },
                b'"' => return Some(out),
                c @ 0x20..=0x7e => out.push(char::from(c)),
                _ => return None,
            }
        }
    }

    /// sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )
    fn token(&mut self) -> String {
        let start = self.i;
        self.i += 1;
        while matches!(self.peek(), Some(c) if is_tchar(c) || c == b':' || c == b'/') {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn byte_sequence(&mut self) -> Option<Value> {
        self.eat(b':');
        loop {
            match self.next()? {
                b':' => return Some(Value::Other),
                c if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') => {}
                _ => return None,
            }
        }
    }

    fn boolean(&mut self) -> Option<Value> {
        self.eat(b'?');
        match self.next()? {
            b'1' => Some(Value::Bool(true)),
            b'0' => Some(Value::Bool(false)),
            _ => None,
        }
    }

    /// RFC 9651 Display String: `%"` then printable ASCII or `%xx` (lowercase hex).
    fn display_string(&mut self) -> Option<Value> {
        self.eat(b'%');
        if !self.eat(b'"') {
            return None;
        }
        loop {
            match self.next()? {
                b'"' => return Some(Value::Other),
                b'%' => {
                    for _ in 0..2 {
                        match self.next()? {
                            b'0'..=b'9' | b'a'..=b'f' => {}
                            _ => return None,
                        }
                    }
                }
                0x20..=0x7e => {}
                _ => return None,
            }
        }
    }
}

/// tchar (RFC 9110 §5.6.2).
pub(crate) fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Whether `s` serialises as an sf-token as it is.
pub(crate) fn is_token(s: &str) -> bool {
    let b = s.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'*')
        && b[1..]
            .iter()
            .all(|&c| is_tchar(c) || c == b':' || c == b'/')
}

/// Serialises an sf-string. Characters a String cannot hold (controls and
/// non-ASCII) become `?`: the value is for people and logs, not for parsing back.
pub(crate) fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// Serialises a token when `s` is one, else a string.
pub(crate) fn token_or_string(s: &str) -> String {
    if is_token(s) {
        s.to_string()
    } else {
        string(s)
    }
}

/// The range an sf-integer can hold (RFC 8941 §3.3.1).
pub(crate) const INTEGER_MAX: i64 = 999_999_999_999_999;

/// Clamps to the range of an sf-integer.
pub(crate) fn integer(n: i64) -> i64 {
    n.clamp(-INTEGER_MAX, INTEGER_MAX)
}
