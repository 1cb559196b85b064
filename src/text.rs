//! Untrusted text at the edges: reading a line with a bound on memory, and
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

/// Reads one line into `buf` (cleared first, without the `\n`), keeping at
/// most `max` bytes of it: the rest of a longer line is read and dropped, so
/// memory stays bounded whatever the input. Returns `None` at end of input,
/// else the full length of the line in bytes (more than `max` when it was
/// cut). A last line without `\n` counts as a line.
pub fn read_line(
    input: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<usize>> {
    buf.clear();
    let mut total = 0usize;
    let mut any = false;
    loop {
        let avail = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(any.then_some(total));
        }
        any = true;
        let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        total += chunk.len();
        input.consume(used);
        if done {
            return Ok(Some(total));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn lines_are_read_whole_or_cut() {
        let data = b"one\n\ntwo\r\nlong-long-long\nlast";
        // A tiny BufReader capacity makes lines span several fill_buf calls.
        let mut r = io::BufReader::with_capacity(3, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Some(3));
        assert_eq!(buf, b"one");
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Some(0));
        assert_eq!(buf, b"");
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Some(4));
        assert_eq!(buf, b"two\r");
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Some(14));
        assert_eq!(buf, b"long-lon");
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Some(4));
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), None);
    }

    #[test]
    fn a_huge_line_keeps_the_buffer_small() {
        let mut data = vec![b'a'; 5 << 20];
        data.extend_from_slice(b"\nnext\n");
        let mut r = io::BufReader::new(&data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), Some(5 << 20));
        assert!(buf.capacity() < 1024, "{}", buf.capacity());
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), Some(4));
        assert_eq!(buf, b"next");
    }

    #[test]
    fn non_utf8_bytes_are_kept_for_the_caller_to_judge() {
        let mut r = io::BufReader::new(&b"\xff\xfe\nok\n"[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), Some(2));
        assert_eq!(buf, b"\xff\xfe");
        assert_eq!(read_line(&mut r, &mut buf, 100).unwrap(), Some(2));
        assert_eq!(buf, b"ok");
    }
}
