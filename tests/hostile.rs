//! Hostile input, generated: thousands of lines of random bytes, huge
//! lines, control characters, bad and good lines mixed, into `ingest` and
//! into the pipe coprocess. Nothing crashes or hangs, every good line is
//! stored or answered, every bad one is reported once, and what is written
//! back stays bounded. The generator is seeded: a failure repeats.

mod support;

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::time::Duration;

use support::{Coproc, Db};

/// The site (tests/fixtures/two_nodes.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("two_nodes"));

/// xorshift64*: small, seeded, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// `len` random bytes, none a newline.
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| match self.below(256) as u8 {
                b'\n' => b'x',
                b => b,
            })
            .collect()
    }
}

#[test]
fn ingest_stores_every_good_line_and_reports_every_bad_one() {
    let db = Db::new("hostile-ingest");
    db.apply_ok(&SITE);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = pdns_ha::metrics::now();
    let (mut input, mut good, mut bad) = (Vec::new(), 0usize, BTreeSet::new());
    for n in 1..=3000usize {
        let node = ["mtl1", "van1"][rng.below(2) as usize];
        let line: Vec<u8> = match rng.below(12) {
            0..=3 => {
                good += 1;
                format!(
                    "latency {node} {}.{}.{}.{} {}",
                    1 + rng.below(223),
                    rng.below(256),
                    rng.below(256),
                    rng.below(256),
                    rng.below(500)
                )
                .into_bytes()
            }
            4 => {
                good += 1;
                format!("load {node} {} 1000 {}", rng.below(1000), rng.below(101)).into_bytes()
            }
            5 => {
                good += 1;
                // Dated a little in the past, or a little ahead (skew).
                format!("health {node} up {}", t - 30 + rng.below(60) as i64).into_bytes()
            }
            6 => b"# a comment".to_vec(),
            7 => {
                // Random bytes after a letter no metric starts with.
                bad.insert(n);
                let mut l = b"z".to_vec();
                let len = rng.below(200) as usize;
                l.extend(rng.bytes(len));
                l
            }
            8 => {
                // Huge: up to 300 KB.
                bad.insert(n);
                let len = 5000 + rng.below(300_000) as usize;
                let mut l = b"latency mtl1 ".to_vec();
                l.extend(std::iter::repeat_n(b'9', len));
                l
            }
            9 => {
                // A good line with one byte made a control character or
                // not UTF-8.
                bad.insert(n);
                let mut l = format!("latency {node} 10.0.0.1 5").into_bytes();
                let at = 8 + rng.below(4) as usize;
                l[at] = [0u8, 0x1b, 0xff, 0xc3][rng.below(4) as usize];
                l
            }
            10 => {
                // Too old, or too far ahead.
                bad.insert(n);
                let ts = if rng.below(2) == 0 { 1000 } else { t + 3600 };
                format!("latency {node} 10.0.0.1 5 {ts}").into_bytes()
            }
            _ => {
                bad.insert(n);
                format!("load {node} -1 {}", rng.next()).into_bytes()
            }
        };
        input.extend(line);
        input.extend(if rng.below(10) == 0 {
            &b"\r\n"[..]
        } else {
            &b"\n"[..]
        });
    }
    let o = support::pdns_ha_stdin_bytes(&db.path, &["ingest"], &input);
    let err = support::stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        &err[err.len().saturating_sub(2000)..]
    );
    let summary = format!("{good} metric(s) stored, {} bad line(s)", bad.len());
    assert!(
        err.contains(&summary),
        "want '{summary}':\n{}",
        &err[err.len().saturating_sub(500)..]
    );
    // Each bad line reported once, by its number; nothing else reported.
    let reported: Vec<usize> = err
        .lines()
        .filter_map(|l| l.strip_prefix("stdin:")?.split(':').next()?.parse().ok())
        .collect();
    assert_eq!(reported.len(), bad.len());
    assert_eq!(reported.into_iter().collect::<BTreeSet<_>>(), bad);
    assert!(
        err.lines().all(|l| l.len() < 400),
        "a message quotes too much"
    );
}

/// Sends raw bytes and a newline; returns the answer up to END or FAIL.
fn exchange(p: &mut Coproc, line: &[u8]) -> Vec<String> {
    let mut l = line.to_vec();
    l.push(b'\n');
    p.send_bytes(&l);
    let mut out = Vec::new();
    loop {
        let a = p.line();
        let done = a == "END" || a == "FAIL";
        out.push(a);
        if done {
            return out;
        }
    }
}

#[test]
fn the_pipe_answers_every_hostile_line_once_and_keeps_answering() {
    let db = Db::new("hostile-pipe");
    db.apply_ok(&SITE);
    db.ingest_ok("latency mtl1 198.51.100.1 10\nlatency van1 198.51.100.1 80\n");
    let mut p = Coproc::start(&db.path, 5, &[]);
    p.answer_within = Duration::from_secs(10);
    let good =
        "Q\t_sip._udp.voip.example.com\tIN\tANY\t-1\t198.51.100.1\t127.0.0.1\t198.51.100.0/24";
    let reference = exchange(&mut p, good.as_bytes());
    assert_eq!(reference.len(), 3, "{reference:?}");
    let rss_before = p.status_kib("VmRSS");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for i in 0..3000 {
        let line: Vec<u8> = match rng.below(6) {
            0 => good.as_bytes().to_vec(),
            1 => {
                // "Q" and random fields (tabs likely), any bytes.
                let mut l = b"Q\t".to_vec();
                for _ in 0..rng.below(9) {
                    let len = rng.below(40) as usize;
                    l.extend(rng.bytes(len));
                    l.push(b'\t');
                }
                l
            }
            2 => {
                // A line of random bytes; none starts a line PowerDNS
                // could send (HELO, AXFR, CMD would be answered otherwise).
                let len = rng.below(300) as usize;
                let mut l = b"~".to_vec();
                l.extend(rng.bytes(len));
                l
            }
            3 => {
                // Huge: up to 200 KB, a name or garbage.
                let len = 5000 + rng.below(200_000) as usize;
                let mut l = b"Q\t".to_vec();
                l.extend(std::iter::repeat_n(b'a', len));
                l.extend_from_slice(b"\tIN\tANY\t-1\t1.2.3.4\t0.0.0.0\t1.2.3.0/24");
                l
            }
            4 => {
                // A real question with random letter case and a random
                // client, or a random type.
                let name: String = "_sip._udp.voip.example.com"
                    .chars()
                    .map(|c| {
                        if rng.below(2) == 0 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                let qtype =
                    ["ANY", "SRV", "A", "SOA", "NS", "TXT", "TYPE65534"][rng.below(7) as usize];
                format!(
                    "Q\t{name}\tIN\t{qtype}\t-1\t10.0.0.1\t127.0.0.1\t{}.{}.{}.0/24",
                    1 + rng.below(223),
                    rng.below(256),
                    rng.below(256)
                )
                .into_bytes()
            }
            _ => {
                // A SOA question for a name of random bytes.
                let len = rng.below(300) as usize;
                let mut l = b"Q\t".to_vec();
                l.extend(rng.bytes(len).into_iter().filter(|&b| b != b'\t'));
                l.extend_from_slice(b"\tIN\tSOA\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0");
                l
            }
        };
        let soa = line.windows(5).any(|w| w == b"\tSOA\t");
        let a = exchange(&mut p, &line);
        let (last, rest) = a.split_last().unwrap();
        for l in rest {
            assert!(
                l.starts_with("DATA\t") || l.starts_with("LOG\t"),
                "line {i}: {a:?}"
            );
            assert!(!l.chars().any(|c| c.is_control() && c != '\t'), "{l:?}");
            if l.starts_with("DATA\t") {
                assert_eq!(
                    l.split('\t').count(),
                    if l.contains("\tSRV\t") { 10 } else { 9 }
                );
            }
        }
        if soa {
            assert_eq!(
                last, "END",
                "a SOA question never gets FAIL: line {i}: {a:?}"
            );
        }
        if line == good.as_bytes() {
            assert_eq!(a, reference, "line {i}");
        }
    }
    assert_eq!(exchange(&mut p, good.as_bytes()), reference);
    let rss_after = p.status_kib("VmRSS");
    assert!(
        rss_after < rss_before + 3 * 1024,
        "VmRSS {rss_before} -> {rss_after} KiB"
    );
    assert!(p.close().success());
}
