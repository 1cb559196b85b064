//! Untrusted text at the edges: reading lines with a bound on memory, and
//! echoing input back in a message as a short, escaped quote.
//!
//! Every reader of lines from outside (metric lines, PowerDNS questions) and
//! every error message that repeats what it was given goes through here, so a
//! 10 MB line neither grows a process nor floods a terminal or a log.

use std::io::{self, BufRead};

/// The most characters of a value that a message repeats.
pub const QUOTE_CHARS: usize = 48;

/// `value` in single quotes for a message: at most [`QUOTE_CHARS`]
/// characters, control characters escaped, and the full length in bytes
/// when it was cut (`'abc…' (10485760 bytes)`).
pub fn quote(value: &str) -> String {
    let (text, cut) = excerpt_of(value);
    if cut {
        format!("'{text}' ({} bytes)", value.len())
    } else {
        format!("'{text}'")
    }
}

/// The start of `value` for a message that quotes it itself: at most
/// [`QUOTE_CHARS`] characters, control characters escaped, `…` if cut.
pub fn excerpt(value: &str) -> String {
    excerpt_of(value).0
}

/// All of `value` with its control characters escaped (`\n`, `\u{1b}`):
/// for text stored from outside and printed whole on one line.
pub fn escape_controls(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn excerpt_of(value: &str) -> (String, bool) {
    let mut out = String::with_capacity(value.len().min(QUOTE_CHARS * 2));
    for (i, c) in value.chars().enumerate() {
        if i == QUOTE_CHARS {
            out.push('…');
            return (out, true);
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    (out, false)
}

/// One line read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A line without its newline (and any `\r` before it).
    Text(&'a [u8]),
    /// A line of this many bytes (without its newline), longer than the
    /// bound: read and dropped.
    TooLong(usize),
}

/// Reads lines of at most `max` bytes into one buffer reused for every line.
pub struct LineReader {
    buf: Vec<u8>,
    max: usize,
}

impl LineReader {
    pub fn new(max: usize) -> LineReader {
        LineReader {
            buf: Vec::with_capacity(max),
            max,
        }
    }

    /// The next line, or None at the end of the input. A last line without
    /// a newline is a line.
    pub fn read(&mut self, input: &mut impl BufRead) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        // Bytes of this line seen so far (without the newline); beyond
        // `max` they are only counted.
        let mut len = 0usize;
        let mut started = false;
        loop {
            let avail = match input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !started {
                    return Ok(None);
                }
                break;
            }
            started = true;
            let newline = find_newline(avail);
            let part = &avail[..newline.unwrap_or(avail.len())];
            if len + part.len() <= self.max {
                self.buf.extend_from_slice(part);
            }
            len += part.len();
            let used = newline.map_or(avail.len(), |i| i + 1);
            input.consume(used);
            if newline.is_some() {
                break;
            }
        }
        if len > self.max {
            self.buf.clear();
            return Ok(Some(Line::TooLong(len)));
        }
        while self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(Some(Line::Text(&self.buf)))
    }

    /// The buffer's allocation (it never grows beyond `max`).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// The position of the first `\n`, eight bytes at a time.
fn find_newline(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes")) ^ (ONES * u64::from(b'\n'));
        // The lowest flagged byte is exactly the first zero byte (borrows
        // only propagate upwards).
        let zero = x.wrapping_sub(ONES) & !x & HIGH;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'\n')
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    #[test]
    fn quote_bounds_and_escapes() {
        assert_eq!(quote("mtl1"), "'mtl1'");
        assert_eq!(quote("a\tb\u{1b}"), "'a\\tb\\u{1b}'");
        let big = "x".repeat(10 << 20);
        let q = quote(&big);
        assert!(q.len() < 100, "{q}");
        assert!(q.ends_with("…' (10485760 bytes)"), "{q}");
        // Cut on a character boundary, never inside one.
        let multi = "é".repeat(100);
        assert!(quote(&multi).starts_with(&format!("'{}…'", "é".repeat(QUOTE_CHARS))));
    }

    #[test]
    fn escape_controls_keeps_everything_else() {
        let long = "é".repeat(200);
        assert_eq!(escape_controls(&long), long);
        assert_eq!(escape_controls("a\nb\u{1b}[2Jc"), "a\\nb\\u{1b}[2Jc");
    }

    /// Every line of `input`, read through a buffer of `cap` bytes.
    fn lines(input: &[u8], max: usize, cap: usize) -> (Vec<Result<Vec<u8>, usize>>, usize) {
        let mut r = BufReader::with_capacity(cap, Cursor::new(input.to_vec()));
        let mut reader = LineReader::new(max);
        let mut out = Vec::new();
        while let Some(l) = reader.read(&mut r).unwrap() {
            out.push(match l {
                Line::Text(t) => Ok(t.to_vec()),
                Line::TooLong(n) => Err(n),
            });
            assert_eq!(reader.capacity(), max, "the buffer never grows");
        }
        (out, reader.capacity())
    }

    #[test]
    fn reads_lines_of_up_to_the_bound_whatever_the_buffering() {
        for cap in [1, 3, 8, 64, 8192] {
            let (l, _) = lines(b"HELO\t5\nQ\ta\r\n\n\r\nlast", 8, cap);
            assert_eq!(
                l,
                [
                    Ok(b"HELO\t5".to_vec()),
                    Ok(b"Q\ta".to_vec()),
                    Ok(vec![]),
                    Ok(vec![]),
                    Ok(b"last".to_vec())
                ],
                "buffer {cap}"
            );
            // Exactly the bound is a line; one more byte is too long.
            let (l, _) = lines(b"12345678\n123456789\nok\n", 8, cap);
            assert_eq!(l, [Ok(b"12345678".to_vec()), Err(9), Ok(b"ok".to_vec())]);
        }
        assert_eq!(lines(b"", 8, 8).0, []);
    }

    #[test]
    fn drops_a_huge_line_without_keeping_it() {
        let mut input = b"Q\t".to_vec();
        input.extend(std::iter::repeat_n(b'a', 1 << 20));
        input.extend_from_slice(b"\tIN\tANY\nHELO\t5\n");
        input.extend(std::iter::repeat_n(0xffu8, 5000)); // no newline at the end
        for cap in [7, 8192] {
            let (l, capacity) = lines(&input, 4096, cap);
            assert_eq!(
                l,
                [Err(2 + (1 << 20) + 7), Ok(b"HELO\t5".to_vec()), Err(5000)]
            );
            assert_eq!(capacity, 4096);
        }
    }

    #[test]
    fn finds_the_first_newline_at_every_position() {
        for len in 0..40 {
            for pos in 0..len {
                let mut b = vec![b'x'; len];
                b[pos] = b'\n';
                if pos + 3 < len {
                    b[pos + 3] = b'\n';
                }
                // Bytes around '\n' (0x0a) that a sloppy test would flag.
                b.iter_mut()
                    .take(pos)
                    .enumerate()
                    .for_each(|(i, c)| *c = [0x0b, 0x09, 0x8a, 0x00, 0x0a ^ 0x80][i % 5]);
                assert_eq!(find_newline(&b), Some(pos), "{b:?}");
            }
            assert_eq!(find_newline(&vec![b'x'; len]), None);
        }
    }
}
