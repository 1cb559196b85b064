//! SIP OPTIONS over TLS (`sip_probe = "tls:HOST:PORT"`) against a real
//! Kamailio with its TLS module on loopback, with certificates made by the
//! test (`openssl`, tests/support/test_ca.rs): one Kamailio, one TLS
//! listener per certificate.
//!
//! - `tls_probe_outcomes_against_kamailio`: a valid certificate answers 200
//!   (by name and by IP address, with its expiry); expired, wrong name and
//!   unknown CA fail with the reason in words; the system's CAs do not trust
//!   the test CA; Kamailio's plain TCP port, a server that answers in plain
//!   text, a server that accepts and never speaks, and a missing CA file all
//!   fail, each within the probe timeout, all probed at once.
//! - `collect_shows_tls_reasons_and_expiring_certificates`: `pdns-ha
//!   collect` probing those listeners: the valid and the soon-expiring node
//!   up, the others down; `status` gives each one's reason, the
//!   certificate's days left and a warning for the one that expires within
//!   14 days; `status --prometheus` its expiry as
//!   `pdns_ha_node_probe_cert_expiry_seconds`.

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use pdns_ha::collector::ProbeOutcome;
use pdns_ha::collector::sip::{self, Probed, SipTarget};
use pdns_ha::collector::tls::{self, TlsProbe};
use pdns_ha::endpoint::CaFile;
use support::kamailio::{self, Kamailio, TlsListen};
use support::test_ca::{Signer, TestCa, asn1_time};
use support::{Db, TempDir, poll};

const TIMEOUT: Duration = Duration::from_millis(1000);
/// Valid dates of the certificates that are not about expiry.
const FROM: &str = "20200101000000Z";
const UNTIL: &str = "20991231000000Z";
/// The expired certificate's end (2020-02-01 00:00:00Z).
const EXPIRED_AT: i64 = 1_580_515_200;
/// UNTIL as Unix seconds.
const UNTIL_AT: i64 = 4_102_358_400;

fn skip() -> bool {
    if kamailio::tls_available() {
        return false;
    }
    eprintln!(
        "SKIPPED: Kamailio's TLS module (kamailio-tls-modules) is not installed; this test did not run"
    );
    true
}

/// The test's certificates and the Kamailio presenting them.
struct Lab {
    _dir: TempDir,
    ca: TestCa,
    /// Not after, of the certificate that expires in 5 days.
    soon_at: i64,
    valid: u16,
    expired: u16,
    wrong_name: u16,
    unknown_ca: u16,
    soon: u16,
    /// Plain SIP over TCP.
    tcp: u16,
    _kamailio: Kamailio,
}

fn ports<const N: usize>() -> [u16; N] {
    // Held together so that no two are the same.
    let l: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    std::array::from_fn(|i| l[i].local_addr().unwrap().port())
}

fn trusting_test_ca(lab_ca: &TestCa) -> CaFile {
    lab_ca.ca_cert().to_str().unwrap().parse().unwrap()
}

fn target(port: u16) -> SipTarget {
    format!("tls:127.0.0.1:{port}").parse().unwrap()
}

impl Lab {
    fn start() -> Lab {
        let dir = TempDir::new("sip-tls");
        let ca = TestCa::new(dir.path());
        let now = pdns_ha::metrics::now();
        let soon_at = now + 5 * 86_400;
        let san = "DNS:sip.test,IP:127.0.0.1";
        let [valid, expired, wrong_name, unknown_ca, soon, tcp] = ports::<6>();
        let certs = [
            (valid, ca.leaf("valid", san, FROM, UNTIL, Signer::Test)),
            (
                expired,
                ca.leaf("expired", san, FROM, "20200201000000Z", Signer::Test),
            ),
            (
                wrong_name,
                ca.leaf("wrongname", "DNS:other.test", FROM, UNTIL, Signer::Test),
            ),
            (
                unknown_ca,
                ca.leaf("unknownca", san, FROM, UNTIL, Signer::Other),
            ),
            (
                soon,
                ca.leaf("soon", san, FROM, &asn1_time(soon_at), Signer::Test),
            ),
        ];
        let listens: Vec<TlsListen> = certs
            .into_iter()
            .map(|(port, l)| TlsListen {
                port,
                cert: l.cert,
                key: l.key,
            })
            .collect();
        let config = tls::client_config(Some(&trusting_test_ca(&ca))).expect("the test CA loads");
        let probe = TlsProbe::new("sip.test", None, Ok(config));
        let ready = || {
            matches!(
                sip::probe_with(&target(valid), Some(&probe), Duration::from_millis(300)).outcome,
                ProbeOutcome::Answered { .. }
            )
        };
        let kamailio = Kamailio::start_tls(&listens, tcp, ready);
        Lab {
            _dir: dir,
            ca,
            soon_at,
            valid,
            expired,
            wrong_name,
            unknown_ca,
            soon,
            tcp,
            _kamailio: kamailio,
        }
    }
}

#[track_caller]
fn failed_with(p: &Probed, words: &[&str]) {
    match &p.outcome {
        ProbeOutcome::Failed(why) => {
            for w in words {
                assert!(why.contains(w), "{why:?} should say {w:?}");
            }
        }
        other => panic!("expected a failure saying {words:?}, got {other:?}"),
    }
}

#[test]
fn tls_probe_outcomes_against_kamailio() {
    if skip() {
        return;
    }
    let lab = Lab::start();
    let config = tls::client_config(Some(&trusting_test_ca(&lab.ca)));
    let by_name = TlsProbe::new("sip.test", None, config.clone());
    let by_ip = TlsProbe::new("127.0.0.1", None, config.clone());
    let system = TlsProbe::new("sip.test", None, tls::client_config(None));
    let missing: CaFile = "/nonexistent/pdns-ha-ca.pem".parse().unwrap();
    let no_ca = TlsProbe::new(
        "sip.test",
        Some(&missing),
        tls::client_config(Some(&missing)),
    );
    // Accepts connections (the kernel does) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    // Answers anything with plain SIP text.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = plain.accept() {
            let _ = c.write_all(b"SIP/2.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            std::thread::sleep(Duration::from_secs(2));
        }
    });

    let cases: Vec<(SipTarget, Option<TlsProbe>)> = vec![
        (target(lab.valid), Some(by_name.clone())),
        (target(lab.valid), Some(by_ip)),
        (target(lab.expired), Some(by_name.clone())),
        (target(lab.wrong_name), Some(by_name.clone())),
        (target(lab.unknown_ca), Some(by_name.clone())),
        (target(lab.soon), Some(by_name.clone())),
        (target(lab.valid), Some(system)),
        (target(lab.tcp), Some(by_name.clone())),
        (target(silent_port), Some(by_name.clone())),
        (target(lab.valid), Some(no_ca)),
        (target(lab.valid), None),
        (target(plain_port), Some(by_name.clone())),
    ];
    let t0 = Instant::now();
    let out = sip::probe_all_with(&cases, TIMEOUT);
    let took = t0.elapsed();
    for (i, p) in out.iter().enumerate() {
        eprintln!("{}: {:?}", cases[i].0, p);
    }

    // Valid, by name and by address: 200 with an RTT and the expiry.
    for p in &out[0..2] {
        assert!(
            matches!(p.outcome, ProbeOutcome::Answered { status: 200, rtt_ms } if rtt_ms > 0.0),
            "{p:?}"
        );
        assert_eq!(p.cert_not_after, Some(UNTIL_AT));
    }
    failed_with(
        &out[2],
        &["TLS handshake failed", "certificate expired", "2020-02-01"],
    );
    assert_eq!(
        out[2].cert_not_after,
        Some(EXPIRED_AT),
        "learnt from the refusal"
    );
    failed_with(
        &out[3],
        &[
            "TLS handshake failed",
            "name mismatch",
            "sip.test",
            "other.test",
        ],
    );
    failed_with(&out[4], &["TLS handshake failed", "unknown CA"]);
    assert_eq!(out[4].cert_not_after, None);
    // Expiring within 14 days: still up; the expiry tells.
    assert!(
        matches!(out[5].outcome, ProbeOutcome::Answered { status: 200, .. }),
        "{:?}",
        out[5]
    );
    let left = out[5].cert_not_after.unwrap() - pdns_ha::metrics::now();
    assert!((4 * 86_400..=5 * 86_400).contains(&left), "{left} s left");
    assert_eq!(out[5].cert_not_after, Some(lab.soon_at));
    // The system's CAs do not know the test CA (or there are none).
    match &out[6].outcome {
        ProbeOutcome::Failed(why) => assert!(
            why.contains("unknown CA") || why.contains("no CA certificates"),
            "{why}"
        ),
        other => panic!("the system's CAs trusted the test CA: {other:?}"),
    }
    // Kamailio's plain SIP over TCP on the probed port waits for a SIP
    // message: no handshake; a server that answers in plain text: not TLS;
    // a silent one: no handshake by the deadline.
    failed_with(&out[7], &["no TLS handshake within 1000 ms"]);
    failed_with(&out[11], &["TLS handshake failed", "not a TLS server?"]);
    failed_with(&out[8], &["no TLS handshake within 1000 ms"]);
    failed_with(
        &out[9],
        &["cannot read sip_probe_ca", "/nonexistent/pdns-ha-ca.pem"],
    );
    failed_with(&out[10], &["no TLS settings"]);
    // All at once: the slowest is the silent one, at the timeout.
    assert!(took < TIMEOUT + Duration::from_millis(700), "took {took:?}");
    drop(silent);
}

#[test]
fn collect_shows_tls_reasons_and_expiring_certificates() {
    if skip() {
        return;
    }
    let lab = Lab::start();
    let ca = lab.ca.ca_cert();
    let ca = ca.to_str().unwrap();
    let node = |name: &str, port: u16, extra: &str| {
        format!(
            "[node.{name}]\nhost = \"sip.test\"\nsip_probe = \"tls:127.0.0.1:{port}\"\nsip_probe_ca = \"{ca}\"\n{extra}\n"
        )
    };
    let site = [
        "[zone.\"voip.example.com\"]\nns = [\"ns1.voip.example.com\"]\nhostmaster = \"hostmaster.example.com\"\n".to_string(),
        node("good", lab.valid, ""),
        node("soon", lab.soon, ""),
        node("expired", lab.expired, ""),
        node("unknown", lab.unknown_ca, ""),
        node("named", lab.valid, "sip_probe_server_name = \"other.test\""),
        "[node.noca]\nhost = \"sip.test\"\nsip_probe = \"tls:127.0.0.1:1\"\nsip_probe_ca = \"/nonexistent/ca.pem\"\n".replace(":1\"", &format!(":{}\"", lab.valid)),
        "[service.\"_sips._tcp.voip.example.com\"]\npolicy = \"static\"\nport = 5061\nnodes = [\"good\", \"soon\", \"expired\", \"unknown\", \"named\", \"noca\"]\n".to_string(),
        "[collector]\nprobe_interval_ms = 500\nprobe_timeout_ms = 500\ndown_after = 2\nup_after = 1\nbatch_interval_ms = 100\n".to_string(),
    ]
    .concat();
    let db = Db::new("sip-tls-collect");
    let o = db.apply(&site);
    support::assert_ok("apply", &o);
    let warned = support::stderr(&o);
    assert!(
        warned.contains("warning: node noca: cannot read sip_probe_ca '/nonexistent/ca.pem'")
            && !warned.contains("node good:"),
        "apply warns about the CA file it cannot load, and only that one:\n{warned}"
    );
    let mut collect = support::collect::Collect::start(&db);
    let want = [
        ("good", "up"),
        ("soon", "up"),
        ("expired", "down"),
        ("unknown", "down"),
        ("named", "down"),
        ("noca", "down"),
    ];
    let st = poll(
        "every node up or down as its certificate says",
        Duration::from_secs(15),
        || {
            collect.assert_running();
            let st = db.status_json();
            for (n, h) in want {
                let got = &st["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|x| x["name"] == n)
                    .unwrap()["health"];
                if got != h {
                    return Err(format!("{n} is {got}, not {h}: {st}"));
                }
            }
            Ok(st)
        },
    );
    let node = |n: &str| {
        st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == n)
            .unwrap()
            .clone()
    };
    let detail = |n: &str| node(n)["probe_detail"].as_str().unwrap_or("").to_string();
    let good = node("good");
    assert_eq!(good["probe_cert_not_after"], UNTIL_AT);
    assert_eq!(good["probe_cert_expiring"], false);
    assert!(detail("good").contains("answered 200"), "{good}");
    let soon = node("soon");
    assert_eq!(soon["probe_cert_not_after"], lab.soon_at);
    assert!(
        matches!(soon["probe_cert_days_left"].as_i64(), Some(4 | 5)),
        "{soon}"
    );
    assert_eq!(soon["probe_cert_expiring"], true);
    assert!(
        detail("expired").contains("certificate expired"),
        "{}",
        detail("expired")
    );
    assert_eq!(node("expired")["probe_cert_not_after"], EXPIRED_AT);
    assert!(
        detail("unknown").contains("unknown CA"),
        "{}",
        detail("unknown")
    );
    assert!(
        detail("named").contains("not valid for other.test"),
        "{}",
        detail("named")
    );
    assert!(
        detail("noca").contains("cannot read sip_probe_ca"),
        "{}",
        detail("noca")
    );
    assert!(
        collect
            .log()
            .contains("node noca: cannot read sip_probe_ca"),
        "the collector logs the CA it cannot load:\n{}",
        collect.log()
    );

    let text = support::stdout(&db.run(&["status"]));
    assert!(
        text.contains("soon: WARNING: the TLS certificate expires")
            && (text.contains("(in 4 days)") || text.contains("(in 5 days)")),
        "{text}"
    );
    assert!(
        text.contains("expired: WARNING: the TLS certificate expired"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("  unknown: ") && l.contains("unknown CA")),
        "{text}"
    );
    assert!(!text.contains("good: WARNING"), "{text}");
    let prom = support::stdout(&db.run(&["status", "--prometheus"]));
    for (n, at) in [
        ("good", UNTIL_AT),
        ("soon", lab.soon_at),
        ("expired", EXPIRED_AT),
    ] {
        let line = format!("pdns_ha_node_probe_cert_expiry_seconds{{node=\"{n}\"}} {at}");
        assert!(prom.lines().any(|l| l == line), "no {line:?} in:\n{prom}");
    }
    assert!(
        !prom.contains("pdns_ha_node_probe_cert_expiry_seconds{node=\"unknown\"}"),
        "{prom}"
    );
    let (st, _) = collect.terminate(Duration::from_secs(5));
    assert!(st.success());
}
