//! The coprocess PowerDNS runs (`pdns-ha pipe`): the synchronous,
//! single-threaded loop that reads one line, answers it, strictly in turn.
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

use crate::answer::Engine;
use crate::bounded::Scratch;
use crate::proto::{self, MAX_LINE, Request};
use crate::text::{Line, LineReader};

/// The answer buffer's first allocation: an answer is a few DATA lines.
const OUT_INITIAL: usize = 4096;
/// The answer buffer keeps its allocation up to this size: a large ANY
/// answer (tens of records) does not reallocate at every question; after an
/// AXFR or a `status` larger than this it goes back to [`OUT_INITIAL`].
pub const OUT_KEEP: usize = 64 * 1024;

/// What answers a `CMD` line (`pdnsutil backend-cmd pipe TEXT`, ABI 5): the
/// lines to send back before `END`.
pub type Commands<'a> = &'a mut dyn FnMut(&mut Engine, &str) -> Vec<String>;

/// Runs the pipe protocol on `input`/`output` until EOF. The only error
/// besides I/O: PowerDNS asks for an ABI this build does not speak.
pub fn serve(
    engine: &mut Engine,
    input: &mut impl BufRead,
    output: &mut impl Write,
    commands: Commands,
) -> Result<()> {
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
            Line::Text(l) => answer_line(engine, &mut abi, l, &mut out, commands)?,
        }
        output.write_all(&out).context("writing to PowerDNS")?;
        output.flush().context("writing to PowerDNS")?;
        out.reset();
        engine.housekeeping();
    }
}

/// Answers one line read whole.
fn answer_line(
    engine: &mut Engine,
    abi: &mut u8,
    line: &[u8],
    out: &mut Vec<u8>,
    commands: Commands,
) -> Result<()> {
    match std::str::from_utf8(line) {
        // PowerDNS writes names in ASCII (`\DDD` for other bytes); a SOA
        // question is still never failed.
        Err(_) if proto::is_soa_question(line) => {
            log::warn!("SOA question for a name that is not UTF-8");
            proto::write_log(
                out,
                "pdns-ha: SOA question for a name that is not UTF-8: no such zone",
            );
            proto::write_end(out);
        }
        Err(_) => malformed(out, "the line is not UTF-8"),
        Ok(text) => match proto::parse(text, *abi) {
            Ok(Request::Helo(v)) => {
                if !(1..=5).contains(&v) {
                    // Exiting is how a coprocess refuses an ABI.
                    anyhow::bail!(
                        "PowerDNS asked for pipe ABI {v}; pdns-ha speaks 1 to 5: set pipe-abi-version=5"
                    );
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
                for l in commands(engine, text) {
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
    Ok(())
}

fn malformed(out: &mut Vec<u8>, why: &str) {
    log::warn!("malformed line from PowerDNS: {why}");
    proto::write_log(out, &format!("pdns-ha: malformed line: {why}"));
    proto::write_fail(out);
}
