//! The coprocess loop: one line in, one answer out, strictly in turn.
//!
//! Rules from PowerDNS's behaviour: exactly one END or FAIL per question;
//! never FAIL a SOA question (malformed lines get `LOG` + `FAIL`, they are
//! not questions; a SOA question for a name too long to exist gets `LOG` +
//! `END`); exit only on EOF; nothing but protocol lines on stdout.
//!
//! Memory: a line is read into one buffer of [`MAX_LINE`] bytes; a longer
//! one is dropped unread (`LOG` + `FAIL`: it is not a question, PowerDNS
//! cannot send it). Answers are written into one buffer kept up to
//! [`OUT_KEEP`] bytes.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};

use super::proto::MAX_LINE;
use super::proto::{self, Request};
use crate::answer::Engine;
use crate::bounded::Scratch;
use crate::report;
use crate::text::{Line, LineReader};

/// The answer buffer's first allocation: an answer is a few DATA lines.
const OUT_INITIAL: usize = 4096;
/// The answer buffer keeps its allocation up to this size: a large ANY
/// answer (tens of records) does not reallocate at every question; after an
/// AXFR or a `status` larger than this it goes back to [`OUT_INITIAL`].
pub const OUT_KEEP: usize = 64 * 1024;

/// Runs the pipe protocol on `input`/`output` until EOF.
pub fn serve(engine: &mut Engine, input: &mut impl BufRead, output: &mut impl Write) -> Result<()> {
    let mut abi: u8 = 0;
    let mut reader = LineReader::new(MAX_LINE);
    let mut out = Scratch::new(OUT_INITIAL, OUT_KEEP);
    loop {
        let Some(line) = reader.read(input).context("reading from PowerDNS")? else {
            engine.housekeeping_now();
            return Ok(());
        };
        match line {
            Line::TooLong(n) => malformed(
                &mut out,
                &format!("a line of {n} bytes, longer than {MAX_LINE}: dropped unread"),
            ),
            Line::Text(l) => answer_line(engine, &mut abi, l, &mut out),
        }
        output.write_all(&out).context("writing to PowerDNS")?;
        output.flush().context("writing to PowerDNS")?;
        out.reset();
        engine.housekeeping();
    }
}

/// Answers one line read whole.
fn answer_line(engine: &mut Engine, abi: &mut u8, line: &[u8], out: &mut Vec<u8>) {
    match std::str::from_utf8(line) {
        Err(_) => malformed(out, "the line is not UTF-8"),
        Ok(text) => match proto::parse(text, *abi) {
            Ok(Request::Helo(v)) => {
                if !(1..=5).contains(&v) {
                    log::error!(
                        "PowerDNS asked for pipe ABI {v}; pdns-ha speaks 1 to 5: set pipe-abi-version=5"
                    );
                    std::process::exit(1);
                }
                *abi = v;
                engine.refresh();
                out.extend_from_slice(
                    format!("OK\tpdns-ha {} (ABI {v})\n", env!("CARGO_PKG_VERSION")).as_bytes(),
                );
            }
            Ok(Request::Query(q)) => {
                engine.refresh();
                engine.answer(&q, *abi, out);
            }
            Ok(Request::Axfr { id, zone }) => {
                engine.refresh();
                if engine.axfr(id, zone, *abi, out) {
                    proto::write_end(out);
                } else {
                    out.clear();
                    proto::write_log(out, &format!("pdns-ha: AXFR of an unknown zone (id {id})"));
                    proto::write_fail(out);
                }
            }
            Ok(Request::Cmd(text)) => {
                engine.refresh();
                for l in command(engine, text) {
                    proto::write_cmd_line(out, &l);
                }
                proto::write_end(out);
            }
            Err(e) if e.soa => {
                // Well formed, but no zone can hold this name: no SOA
                // here, and a SOA question never gets FAIL.
                log::warn!("SOA question for an impossible name: {e}");
                proto::write_log(out, &format!("pdns-ha: {e}: no such zone"));
                proto::write_end(out);
            }
            Err(e) => malformed(out, &e.why),
        },
    }
}

fn malformed(out: &mut Vec<u8>, why: &str) {
    log::warn!("malformed line from PowerDNS: {why}");
    proto::write_log(out, &format!("pdns-ha: malformed line: {why}"));
    proto::write_fail(out);
}

/// `pdnsutil backend-cmd pipe TEXT` (ABI 5).
fn command(engine: &mut Engine, text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["status"] => match engine.store() {
            // Every coprocess's memcached counters (pdnsutil runs its own).
            Some(store) => crate::cache::memcached::stats_from_store(store)
                .map(|s| s.or_else(|| engine.shared_stats()))
                .and_then(|shared| report::status(store, &engine.topo, shared))
                .map(|s| s.text())
                .unwrap_or_else(|e| vec![format!("error: {e:#}")]),
            None => vec!["error: the database is not open (see the PowerDNS log)".into()],
        },
        ["explain", qname, rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
            let (qtype, client) = if rest.len() == 2 {
                (rest[0], rest[1])
            } else {
                ("ANY", rest[0])
            };
            match client.parse() {
                Ok(client) => report::explain(engine, qname, qtype, &client).text(),
                Err(e) => vec![format!("error: client: {e}")],
            }
        }
        _ => vec![
            "pdns-ha commands:".into(),
            "  status                          nodes, health, load, latency coverage".into(),
            "  explain QNAME [QTYPE] CLIENT    the answer for CLIENT (IP or IP/LEN) and why".into(),
            "  help                            this text".into(),
        ],
    }
}
