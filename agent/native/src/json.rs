//! A validating JSON scanner into a flat arena of spans, and a writer with orjson's output rules.
//!
//! `Doc::parse` checks the whole line as orjson would take it, and answers None (the caller
//! declines the line) both where orjson would refuse it and where this module does not want to
//! decide: a byte order mark, an escaped object key, a duplicate key, `-0`, nesting deeper than
//! `MAX_DEPTH`. Values are never built: a node is a kind and a span of the line, and writing a
//! node writes its canonical form (strings without escapes are copied as they are).

use std::collections::HashSet;

pub const MAX_DEPTH: u32 = 128;
pub const NONE: u32 = u32::MAX;
const LINEAR_KEYS: usize = 16; // objects up to this size check duplicate keys pairwise

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Null,
    True,
    False,
    Int,   // an integer orjson reads as an int (64 bits); copied as written
    Float, // a number orjson reads as a float (also an integer beyond 64 bits)
    Str,   // no escapes: the span's inside is the string
    EscapedStr,
    Array,
    Object,
}

#[derive(Clone, Copy, Debug)]
pub struct Node {
    pub kind: Kind,
    pub start: u32, // the value's span (a string's includes its quotes)
    pub end: u32,
    pub key_start: u32, // the member's key inside its quotes (objects' members only)
    pub key_end: u32,
    pub first: u32, // first child (arrays and objects)
    pub next: u32,  // next sibling
}

pub struct Doc<'a> {
    pub line: &'a [u8],
    pub nodes: Vec<Node>,
}

impl<'a> Doc<'a> {
    /// The nodes of `line`, the root first; None when the line is declined (see the module).
    pub fn parse(line: &'a [u8], nodes: Vec<Node>) -> Result<Doc<'a>, Vec<Node>> {
        let mut doc = Doc { line, nodes };
        doc.nodes.clear();
        if line.len() >= u32::MAX as usize || std::str::from_utf8(line).is_err() {
            return Err(doc.nodes);
        }
        let mut p = Parser {
            s: line,
            i: 0,
            nodes: &mut doc.nodes,
        };
        p.ws();
        let ok = p.value(0).is_some() && {
            p.ws();
            p.i == line.len()
        };
        if ok {
            Ok(doc)
        } else {
            Err(doc.nodes)
        }
    }

    pub fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    pub fn key(&self, n: &Node) -> &'a [u8] {
        &self.line[n.key_start as usize..n.key_end as usize]
    }

    /// The members of the object `obj`, in order.
    pub fn members(&self, obj: u32) -> Members<'_, 'a> {
        Members {
            doc: self,
            next: self.node(obj).first,
        }
    }

    /// The member `key` of the object `obj`.
    pub fn get(&self, obj: u32, key: &[u8]) -> Option<u32> {
        if self.node(obj).kind != Kind::Object {
            return None;
        }
        self.members(obj).find(|&m| self.key(self.node(m)) == key)
    }

    /// The inside of a string node, unescaped.
    pub fn text(&self, i: u32) -> std::borrow::Cow<'a, str> {
        let n = self.node(i);
        let inside = &self.line[n.start as usize + 1..n.end as usize - 1];
        if n.kind == Kind::Str {
            // the line is valid UTF-8 and the span ends at quotes: a char boundary
            std::borrow::Cow::Borrowed(std::str::from_utf8(inside).unwrap_or(""))
        } else {
            std::borrow::Cow::Owned(unescape(inside))
        }
    }

    /// Write node `i` as orjson writes the value; false for a value this module does not write.
    #[must_use]
    pub fn write(&self, i: u32, out: &mut Vec<u8>) -> bool {
        let n = self.node(i);
        let span = &self.line[n.start as usize..n.end as usize];
        match n.kind {
            Kind::Null | Kind::True | Kind::False | Kind::Int | Kind::Str => {
                out.extend_from_slice(span)
            }
            Kind::Float => return write_f64(out, parse_f64(span)),
            Kind::EscapedStr => write_str(out, &self.text(i)),
            Kind::Array => {
                out.push(b'[');
                let mut child = n.first;
                while child != NONE {
                    if child != n.first {
                        out.push(b',');
                    }
                    if !self.write(child, out) {
                        return false;
                    }
                    child = self.node(child).next;
                }
                out.push(b']');
            }
            Kind::Object => {
                out.push(b'{');
                for (k, m) in self.members(i).enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    self.write_key(m, out);
                    if !self.write(m, out) {
                        return false;
                    }
                }
                out.push(b'}');
            }
        }
        true
    }

    /// `"key":` of member node `m` (keys are never escaped: `parse` declines those).
    pub fn write_key(&self, m: u32, out: &mut Vec<u8>) {
        let n = self.node(m);
        out.push(b'"');
        out.extend_from_slice(self.key(n));
        out.extend_from_slice(b"\":");
    }
}

pub struct Members<'d, 'a> {
    doc: &'d Doc<'a>,
    next: u32,
}

impl Iterator for Members<'_, '_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.next == NONE {
            return None;
        }
        let here = self.next;
        self.next = self.doc.node(here).next;
        Some(here)
    }
}

struct Parser<'s, 'n> {
    s: &'s [u8],
    i: usize,
    nodes: &'n mut Vec<Node>,
}

impl Parser<'_, '_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn push(&mut self, kind: Kind, start: usize) -> u32 {
        self.nodes.push(Node {
            kind,
            start: start as u32,
            end: self.i as u32,
            key_start: 0,
            key_end: 0,
            first: NONE,
            next: NONE,
        });
        (self.nodes.len() - 1) as u32
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Option<u32> {
        let start = self.i;
        if self.s.get(start..start + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(self.push(kind, start))
    }

    fn value(&mut self, depth: u32) -> Option<u32> {
        match *self.s.get(self.i)? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => {
                let start = self.i;
                let escaped = self.string()?;
                Some(self.push(if escaped { Kind::EscapedStr } else { Kind::Str }, start))
            }
            b't' => self.literal(b"true", Kind::True),
            b'f' => self.literal(b"false", Kind::False),
            b'n' => self.literal(b"null", Kind::Null),
            _ => self.number(),
        }
    }

    /// Skip a string at `self.i` (its opening quote); Some(whether it holds escapes).
    fn string(&mut self) -> Option<bool> {
        self.i += 1;
        let mut escaped = false;
        loop {
            self.i += special(self.s.get(self.i..)?)?;
            match self.s[self.i] {
                b'"' => {
                    self.i += 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    self.i += 1;
                    match *self.s.get(self.i)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                        b'u' => {
                            let unit = self.hex4()?;
                            if (0xDC00..0xE000).contains(&unit) {
                                return None; // a low surrogate alone
                            }
                            if (0xD800..0xDC00).contains(&unit) {
                                if self.s.get(self.i..self.i + 2)? != b"\\u" {
                                    return None;
                                }
                                self.i += 1;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return None;
                                }
                            }
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a control character
            }
        }
    }

    /// At a `u` of `\uXXXX`: the code unit, `self.i` after it.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i + 1..self.i + 5)?;
        let mut unit = 0;
        for &c in digits {
            unit = unit * 16 + char::from(c).to_digit(16)?;
        }
        self.i += 5;
        Some(unit)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.i;
        let negative = self.s.get(self.i) == Some(&b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        let int_digits = self.digits();
        if int_digits == 0 || (int_digits > 1 && self.s[int_start] == b'0') {
            return None;
        }
        let mut float = false;
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            float = true;
            exponent = true;
        }
        let span = &self.s[start..self.i];
        if !float {
            if negative && int_digits == 1 && self.s[int_start] == b'0' {
                return None; // -0: orjson's integer 0, which this module leaves to Python
            }
            let text = std::str::from_utf8(span).ok()?;
            if text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok() {
                return Some(self.push(Kind::Int, start));
            }
        }
        if (exponent || int_digits > 300) && !parse_f64(span).is_finite() {
            return None; // orjson refuses a number out of a double's range
        }
        Some(self.push(Kind::Float, start))
    }

    fn array(&mut self, depth: u32) -> Option<u32> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.i;
        self.i += 1;
        let me = self.push(Kind::Array, start);
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            self.nodes[me as usize].end = self.i as u32;
            return Some(me);
        }
        let mut last = NONE;
        loop {
            self.ws();
            let child = self.value(depth)?;
            self.link(me, last, child);
            last = child;
            self.ws();
            match *self.s.get(self.i)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    self.nodes[me as usize].end = self.i as u32;
                    return Some(me);
                }
                _ => return None,
            }
        }
    }

    fn link(&mut self, parent: u32, last: u32, child: u32) {
        if last == NONE {
            self.nodes[parent as usize].first = child;
        } else {
            self.nodes[last as usize].next = child;
        }
    }

    fn object(&mut self, depth: u32) -> Option<u32> {
        if depth > MAX_DEPTH {
            return None;
        }
        let start = self.i;
        self.i += 1;
        let me = self.push(Kind::Object, start);
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            self.nodes[me as usize].end = self.i as u32;
            return Some(me);
        }
        let mut last = NONE;
        let mut keys: Vec<(u32, u32)> = Vec::new();
        let mut many: Option<HashSet<&[u8]>> = None;
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return None;
            }
            let key_start = self.i + 1;
            if self.string()? {
                return None; // an escaped key: left to Python
            }
            let key_end = self.i - 1;
            let key = &self.s[key_start..key_end];
            // a duplicate key: orjson keeps the first position and the last value; left to Python
            match &mut many {
                None if keys.len() < LINEAR_KEYS => {
                    if keys
                        .iter()
                        .any(|&(a, b)| &self.s[a as usize..b as usize] == key)
                    {
                        return None;
                    }
                    keys.push((key_start as u32, key_end as u32));
                }
                None => {
                    let mut set: HashSet<&[u8]> = keys
                        .iter()
                        .map(|&(a, b)| &self.s[a as usize..b as usize])
                        .collect();
                    if !set.insert(key) {
                        return None;
                    }
                    many = Some(set);
                }
                Some(set) => {
                    if !set.insert(key) {
                        return None;
                    }
                }
            }
            self.ws();
            if self.s.get(self.i) != Some(&b':') {
                return None;
            }
            self.i += 1;
            self.ws();
            let child = self.value(depth)?;
            let node = &mut self.nodes[child as usize];
            node.key_start = key_start as u32;
            node.key_end = key_end as u32;
            self.link(me, last, child);
            last = child;
            self.ws();
            match *self.s.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    self.nodes[me as usize].end = self.i as u32;
                    return Some(me);
                }
                _ => return None,
            }
        }
    }
}

/// Where the first `"`, `\\` or control character of `s` is: eight bytes at a time.
fn special(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8) {
        let x = u64::from_le_bytes(chunk.try_into().ok()?);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // a zero byte in `quote` or `backslash`, or a byte below 0x20 in `x`
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        if found & HIGHS != 0 {
            break;
        }
        at += 8;
    }
    s[at..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|i| at + i)
}

pub fn parse_f64(span: &[u8]) -> f64 {
    std::str::from_utf8(span)
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(f64::NAN)
}

/// An integer literal (optional `-`, digits) as orjson writes the float it converts to: the
/// literal and `.0` when it has at most 15 digits (exact as a double, below 1e16).
#[must_use]
pub fn write_int_as_f64(out: &mut Vec<u8>, span: &[u8]) -> bool {
    let digits = span.len() - usize::from(span.first() == Some(&b'-'));
    if digits <= 15 {
        out.extend_from_slice(span);
        out.extend_from_slice(b".0");
        return true;
    }
    write_f64(out, parse_f64(span))
}

/// The string a validated JSON string's inside stands for.
fn unescape(inside: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(inside.len());
    let mut i = 0;
    while i < inside.len() {
        let c = inside[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let hex = |at: usize| {
            inside
                .get(at..at + 4)
                .and_then(|h| u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
                .unwrap_or(0xFFFD)
        };
        let simple = match inside.get(i + 1) {
            Some(b'b') => Some(0x08),
            Some(b'f') => Some(0x0c),
            Some(b'n') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            Some(&other) if other != b'u' => Some(other),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
            continue;
        }
        let mut unit = hex(i + 2);
        i += 6;
        if (0xD800..0xDC00).contains(&unit) {
            let low = hex(i + 2);
            unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
        }
        let ch = char::from_u32(unit).unwrap_or('\u{FFFD}');
        let mut utf8 = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
    }
    String::from_utf8(out).unwrap_or_default()
}

const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 0x20 {
        table[c] = b'u';
        c += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// A string as orjson writes it: `"` and `\` escaped, control characters as `\b \t \n \f \r` or
/// `\u00xx`, everything else (DEL, U+2028, any non-ASCII) as it is.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(c)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(escape);
        if escape == b'u' {
            out.extend_from_slice(b"00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// A finite double as orjson writes it: the shortest digits that read back the same (ryu), in
/// fixed notation from 1e-5 up to below 1e16 (`0.00001`, `1000000000000000.0`), which is ryu's
/// range too, else as ryu writes it but for a `+` before a positive exponent (`1e+16`, `1e-6`,
/// `1.5e+300`). False for -0.0, which this module leaves to Python, and for what is not finite.
#[must_use]
pub fn write_f64(out: &mut Vec<u8>, f: f64) -> bool {
    if !f.is_finite() {
        return false;
    }
    if f == 0.0 {
        out.extend_from_slice(b"0.0");
        return f.is_sign_positive();
    }
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(f).as_bytes();
    match text.iter().position(|&c| c == b'e') {
        None => out.extend_from_slice(text),
        Some(e) => {
            out.extend_from_slice(&text[..=e]);
            if text.get(e + 1) != Some(&b'-') {
                out.push(b'+');
            }
            out.extend_from_slice(&text[e + 1..]);
        }
    }
    true
}
