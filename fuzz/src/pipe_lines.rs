//! Feeds `pipe::serve` (with an `Engine` on a small site: a zone, two nodes,
//! a latency service, a load pool, static records, stored once in a
//! temporary database) `HELO\tN` (N from 1 to 5, from the first byte) then
//! the other bytes as lines, the way `text::LineReader` splits them.
//!
//! Invariants, per input line (the output is cut at each flush, one per
//! line): `serve` returns `Ok`; a valid `HELO` gets one `OK` line and
//! nothing else; any other line gets exactly one `END` or `FAIL`, as its
//! last output line; a line longer than `proto::MAX_LINE` gets `FAIL`; a
//! SOA question never gets `FAIL` (a `Q` that `proto::parse` reads as a
//! question of type SOA or refuses only for its name, or one of that shape
//! that is not UTF-8); every `DATA` line has the ABI's field count (9 from
//! ABI 3, 7 before, one more for an MX or SRV priority) and no empty field;
//! no output line holds a control character other than tab.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use pdns_ha::answer::Engine;
use pdns_ha::proto::{self, MAX_LINE, Request};

const SITE: &str = r#"
[zone."voip.example.com"]
ns = ["ns1.voip.example.com", "ns2.voip.example.com"]
hostmaster = "hostmaster.example.com"

[node.mtl1]
host = "mtl1.voip.example.com"
ipv4 = ["198.51.100.10"]
ipv6 = ["2001:db8:10::10"]

[node.van1]
host = "van1.voip.example.com"
ipv4 = ["203.0.113.20"]

[service."_sip._udp.voip.example.com"]
policy = "latency"
port = 5060
nodes = ["mtl1", "van1"]

[pool."sip.voip.example.com"]
policy = "load"
nodes = ["mtl1", "van1"]
answers = 1

[[record]]
name = "voip.example.com"
type = "MX"
content = "10 mail.voip.example.com"

[[record]]
name = "www.voip.example.com"
type = "TXT"
content = '"v=spf1 -all"'
"#;

/// The database, shared by every run and applied once per process.
fn database() -> &'static PathBuf {
    static DB: OnceLock<PathBuf> = OnceLock::new();
    DB.get_or_init(|| {
        // One directory for every run, applied again (no change if it is
        // there): a process killed by the fuzzer leaves nothing behind.
        let dir = std::env::temp_dir().join("pdns-ha-fuzz-pipe-lines");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("site.db");
        let site = pdns_ha::site::parse("site.toml", SITE).expect("site");
        let mut store = pdns_ha::store::Store::open_or_create(&path).expect("database");
        pdns_ha::store::apply_site(&mut store, &site).expect("apply");
        path
    })
}

/// Cuts the output at every flush: `serve` flushes once per line read.
#[derive(Default)]
struct Flushes {
    current: Vec<u8>,
    done: Vec<Vec<u8>>,
}

impl Write for Flushes {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.current.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.done.push(std::mem::take(&mut self.current));
        Ok(())
    }
}

/// What a line read by `LineReader` is.
enum Input<'a> {
    Text(&'a [u8]),
    TooLong,
}

/// The input's lines as `text::LineReader` reads them.
fn lines(data: &[u8]) -> Vec<Input<'_>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (mut line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        if line.len() > MAX_LINE {
            out.push(Input::TooLong);
            continue;
        }
        while let Some((b'\r', head)) = line.split_last() {
            line = head;
        }
        out.push(Input::Text(line));
    }
    out
}

/// A HELO line as `proto::parse` reads it, whatever its version.
fn helo(line: &[u8]) -> Option<u8> {
    match proto::parse(std::str::from_utf8(line).ok()?, 1) {
        Ok(Request::Helo(v)) => Some(v),
        _ => None,
    }
}

/// A SOA question: a `Q` line that `proto::parse` reads as a question of
/// type SOA, or that it refuses only for its name, or one with the shape of
/// a SOA question that is not UTF-8 (its name cannot exist).
fn soa_question(line: &[u8], abi: u8) -> bool {
    match std::str::from_utf8(line) {
        Err(_) => proto::is_soa_question(line),
        Ok(text) => match proto::parse(text, abi) {
            Ok(Request::Query(q)) => q.qtype.eq_ignore_ascii_case("SOA"),
            Ok(_) => false,
            Err(e) => e.soa,
        },
    }
}

thread_local! {
    /// One engine for the process, as one coprocess serves many questions.
    static ENGINE: std::cell::RefCell<Engine> = std::cell::RefCell::new(Engine::new(database()));
}

/// The invariants above, for one input.
pub fn check(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut abi = 1 + first % 5;
    // A HELO for an ABI this build does not speak ends `serve`: drop it.
    let mut input = format!("HELO\t{abi}\n").into_bytes();
    let mut kept = Vec::new();
    for line in rest.split(|&b| b == b'\n') {
        let mut bare = line;
        while let Some((b'\r', head)) = bare.split_last() {
            bare = head;
        }
        if helo(bare).is_some_and(|v| !(1..=5).contains(&v)) {
            continue;
        }
        kept.push(line);
    }
    input.extend_from_slice(&kept.join(&b'\n'));
    if rest.ends_with(b"\n") && !input.ends_with(b"\n") {
        input.push(b'\n');
    }

    let mut out = Flushes::default();
    let mut commands = |_: &mut Engine, text: &str| vec!["END".to_string(), text.to_string()];
    ENGINE.with_borrow_mut(|engine| {
        pdns_ha::pipe::serve(engine, &mut &input[..], &mut out, &mut commands)
            .expect("serve ends only at EOF")
    });
    assert!(out.current.is_empty(), "output after the last flush");

    let read = lines(&input);
    assert_eq!(read.len(), out.done.len(), "one flush per line read");
    for (line, answer) in read.iter().zip(&out.done) {
        let text = String::from_utf8_lossy(answer);
        assert!(text.ends_with('\n'), "{text:?}");
        let out_lines: Vec<&str> = text.lines().collect();
        for l in &out_lines {
            assert!(
                l.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f)),
                "control character in {l:?}"
            );
        }
        if let Input::Text(l) = line
            && let Some(v) = helo(l)
        {
            assert_eq!(out_lines.len(), 1, "{text:?}");
            assert!(out_lines[0].starts_with("OK\t"), "{text:?}");
            abi = v;
            continue;
        }
        let terminators = out_lines
            .iter()
            .filter(|l| **l == "END" || **l == "FAIL")
            .count();
        assert_eq!(terminators, 1, "{text:?}");
        let last = *out_lines.last().expect("a terminator");
        assert!(last == "END" || last == "FAIL", "{text:?}");
        match line {
            Input::TooLong => assert_eq!(last, "FAIL", "{text:?}"),
            Input::Text(l) if soa_question(l, abi) => {
                assert_eq!(last, "END", "SOA question {l:?} failed: {text:?}")
            }
            Input::Text(_) => {}
        }
        for l in out_lines.iter().filter(|l| l.starts_with("DATA\t")) {
            let fields: Vec<&str> = l.split('\t').collect();
            let base = if abi >= 3 { 9 } else { 7 };
            let qtype = fields.get(base - 4).copied().unwrap_or("");
            let with_prio = matches!(qtype, "MX" | "SRV");
            assert_eq!(
                fields.len(),
                base + usize::from(with_prio),
                "{l:?} (ABI {abi})"
            );
            assert!(fields.iter().all(|f| !f.is_empty()), "{l:?}");
        }
    }
}
