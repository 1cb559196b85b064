//! The coprocess loop: one line in, one answer out, strictly in turn.
//!
//! Rules from PowerDNS's behaviour: exactly one END or FAIL per question;
//! never FAIL a SOA question (malformed lines get `LOG` + `FAIL`, they are
//! not questions); exit only on EOF; nothing but protocol lines on stdout.

use std::io::{BufRead, Write};

use anyhow::{Context, Result};

use super::proto::{self, Request};
use crate::answer::Engine;
use crate::report;

/// Runs the pipe protocol on `input`/`output` until EOF.
pub fn serve(engine: &mut Engine, input: &mut impl BufRead, output: &mut impl Write) -> Result<()> {
    let mut abi: u8 = 0;
    let mut line: Vec<u8> = Vec::with_capacity(512);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("reading from PowerDNS")?
            == 0
        {
            engine.housekeeping_now();
            return Ok(());
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        out.clear();
        match std::str::from_utf8(&line) {
            Err(_) => malformed(&mut out, "the line is not UTF-8"),
            Ok(text) => match proto::parse(text, abi) {
                Ok(Request::Helo(v)) => {
                    if !(1..=5).contains(&v) {
                        log::error!(
                            "PowerDNS asked for pipe ABI {v}; pdns-ha speaks 1 to 5: set pipe-abi-version=5"
                        );
                        std::process::exit(1);
                    }
                    abi = v;
                    engine.refresh();
                    out.extend_from_slice(
                        format!("OK\tpdns-ha {} (ABI {v})\n", env!("CARGO_PKG_VERSION")).as_bytes(),
                    );
                }
                Ok(Request::Query(q)) => {
                    engine.refresh();
                    engine.answer(&q, abi, &mut out);
                }
                Ok(Request::Axfr { id, zone }) => {
                    engine.refresh();
                    if engine.axfr(id, zone, abi, &mut out) {
                        proto::write_end(&mut out);
                    } else {
                        out.clear();
                        proto::write_log(
                            &mut out,
                            &format!("pdns-ha: AXFR of an unknown zone (id {id})"),
                        );
                        proto::write_fail(&mut out);
                    }
                }
                Ok(Request::Cmd(text)) => {
                    engine.refresh();
                    for l in command(engine, text) {
                        proto::write_cmd_line(&mut out, &l);
                    }
                    proto::write_end(&mut out);
                }
                Err(e) => malformed(&mut out, &e),
            },
        }
        output.write_all(&out).context("writing to PowerDNS")?;
        output.flush().context("writing to PowerDNS")?;
        engine.housekeeping();
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
