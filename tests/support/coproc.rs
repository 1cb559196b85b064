//! A `pdns-ha pipe` coprocess driven over stdin/stdout, as PowerDNS drives
//! it: `HELO`, then one line at a time, reading the answer up to its END or
//! FAIL. Killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use super::BIN;

pub struct Coproc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// The ABI given in `HELO`.
    pub abi: u8,
    /// How long one line of an answer may take before the test fails.
    pub answer_within: Duration,
}

impl Coproc {
    /// Starts `pdns-ha --db DB pipe EXTRA...` (stderr discarded) and checks
    /// its `OK` banner for `HELO abi`.
    pub fn start(db: &Path, abi: u8, extra: &[&str]) -> Coproc {
        let mut child = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .arg("pipe")
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pdns-ha pipe");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in stdout.lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut c = Coproc {
            stdin: child.stdin.take(),
            child,
            lines,
            abi,
            answer_within: Duration::from_secs(10),
        };
        let banner = c.exchange(&format!("HELO\t{abi}"));
        assert_eq!(banner.len(), 1, "{banner:?}");
        assert!(banner[0].starts_with("OK\t"), "{banner:?}");
        c
    }

    /// A figure of the coprocess's `/proc/PID/status`, in KiB (`VmRSS`,
    /// `VmHWM`, `RssAnon`).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the coprocess's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Writes raw bytes (a line that may not even be UTF-8).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let s = self.stdin.as_mut().expect("stdin open");
        s.write_all(bytes).unwrap();
        s.flush().unwrap();
    }

    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// The next line written, within [`Coproc::answer_within`].
    #[track_caller]
    pub fn line(&mut self) -> String {
        self.lines
            .recv_timeout(self.answer_within)
            .unwrap_or_else(|_| {
                panic!("no line from the coprocess within {:?}", self.answer_within)
            })
    }

    /// Asks `qname`/`qtype` as PowerDNS does at this coprocess's ABI, from
    /// `remote` with the ECS `subnet` (sent from ABI 3); the answer lines up
    /// to and including END or FAIL.
    pub fn query(&mut self, qname: &str, qtype: &str, remote: &str, subnet: &str) -> Vec<String> {
        let line = question(self.abi, qname, qtype, remote, subnet);
        self.exchange(&line)
    }

    /// Sends one line; returns the answer lines up to and including END or
    /// FAIL (or the OK banner).
    pub fn exchange(&mut self, line: &str) -> Vec<String> {
        self.send(line);
        let mut out = Vec::new();
        loop {
            let l = self
                .lines
                .recv_timeout(self.answer_within)
                .unwrap_or_else(|_| {
                    panic!(
                        "no answer to {line:?} within {:?} (got {out:?})",
                        self.answer_within
                    )
                });
            let done = l == "END" || l == "FAIL" || l.starts_with("OK\t");
            out.push(l);
            if done {
                return out;
            }
        }
    }

    /// Closes stdin and waits for the exit (seen networks and counters are
    /// written then); panics if it does not exit within 10 s.
    pub fn close(mut self) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the coprocess did not exit on EOF"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Coproc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `Q` line as PowerDNS writes it for `abi`: `Q NAME IN TYPE ID REMOTE`,
/// then the local address (ABI 2 and up), then the ECS subnet (ABI 3 and
/// up), tab-separated; local address 127.0.0.1, id -1.
pub fn question(abi: u8, qname: &str, qtype: &str, remote: &str, subnet: &str) -> String {
    match abi {
        1 => format!("Q\t{qname}\tIN\t{qtype}\t-1\t{remote}"),
        2 => format!("Q\t{qname}\tIN\t{qtype}\t-1\t{remote}\t127.0.0.1"),
        _ => format!("Q\t{qname}\tIN\t{qtype}\t-1\t{remote}\t127.0.0.1\t{subnet}"),
    }
}
