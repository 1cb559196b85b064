//! A fake fleet for benchmarking the collector: N fake FreeSWITCH event
//! sockets (password ClueCon) and N UDP SIP responders answering OPTIONS 200,
//! all on 127.0.0.1. Prints one line per node and runs until killed:
//!
//! ```text
//! cargo run --example fake_fleet -- 200 [HEARTBEAT_MS [HANGUPS_PER_SEC]]
//! node001 esl=127.0.0.1:41234 sip=udp:127.0.0.1:51234
//! ```
//!
//! With HANGUPS_PER_SEC, each event socket also sends that many
//! CHANNEL_HANGUP_COMPLETE events a second (about 5 KB each: every channel
//! variable as a URL-encoded `variable_*` header), calls from 64 client
//! addresses in 16 IPv4 /24s and 4 IPv6 /48s.

#[path = "../tests/support/fake_esl.rs"]
mod fake_esl;
#[path = "../tests/support/sip_responder.rs"]
mod sip_responder;

use std::io::Write;
use std::time::Duration;

use fake_esl::{
    FakeEsl, FakeEslConfig, Hangup, Heartbeat, registration_xml, status_body, xmlstatus_body,
};
use sip_responder::SipResponder;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = match args.next().map(|a| a.parse()) {
        None => 3,
        Some(Ok(n)) if (1..=5000).contains(&n) => n,
        Some(_) => usage(),
    };
    let heartbeat_ms: u64 = match args.next().map(|a| a.parse()) {
        None => 20_000,
        Some(Ok(ms)) if ms > 0 => ms,
        Some(_) => usage(),
    };
    let hangups_per_sec: f64 = match args.next().map(|a| a.parse()) {
        None => 0.0,
        Some(Ok(r)) if (0.0..=100_000.0).contains(&r) => r,
        Some(_) => usage(),
    };
    let mut keep = Vec::new();
    let stdout = std::io::stdout();
    for i in 1..=n {
        let esl = FakeEsl::start(FakeEslConfig {
            hangups: calls(i),
            hangups_per_sec,
            ..node_config(i, Duration::from_millis(heartbeat_ms))
        });
        let sip = SipResponder::start(200);
        let mut out = stdout.lock();
        let _ = writeln!(out, "node{i:03} esl={} sip={}", esl.addr, sip.probe_spec());
        let _ = out.flush();
        keep.push((esl, sip));
    }
    loop {
        std::thread::park();
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: fake_fleet [NODES (1-5000, default 3)] [HEARTBEAT_MS (default 20000)] [HANGUPS_PER_SEC (per node, default 0)]"
    );
    std::process::exit(2);
}

/// Distinct, deterministic figures per node.
fn node_config(i: u32, heartbeat_every: Duration) -> FakeEslConfig {
    let sessions = (i * 37) % 900;
    let idle = 40.0 + f64::from(i % 60);
    let (a, b) = ((i >> 8) & 0xff, i & 0xff);
    FakeEslConfig {
        heartbeat: Some(Heartbeat {
            session_count: sessions,
            max_sessions: 1000,
            idle_cpu: idle,
        }),
        heartbeat_every,
        status_body: status_body(sessions, 1000, idle),
        xmlstatus: vec![(
            "internal".into(),
            xmlstatus_body(&[
                registration_xml(
                    "alice",
                    &format!("10.{a}.{b}.7"),
                    "Reachable",
                    5.0 + f64::from(i % 90),
                ),
                registration_xml("bob", &format!("2001:db8:{i:x}::7"), "Reachable", 12.5),
                registration_xml("carol", &format!("10.{a}.{b}.8"), "Unreachable", 2000.0),
            ]),
        )],
        ..Default::default()
    }
}

/// The calls a node reports, in turn: 64 client addresses (16 IPv4 /24s,
/// 4 IPv6 /48s), MOS from 2.5 to 4.4.
fn calls(i: u32) -> Vec<Hangup> {
    (0..64u32)
        .map(|k| {
            let ip = if k % 4 == 3 {
                format!("2001:db8:{:x}::{:x}", k % 16 / 4, k + 1)
            } else {
                format!("10.{}.{}.{}", i % 200, k % 16, k + 1)
            };
            Hangup::call(&ip, 2.5 + f64::from((i + k) % 20) / 10.0)
        })
        .collect()
}
