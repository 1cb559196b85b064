//! SIP OPTIONS prober against a real Kamailio on loopback (UDP and TCP):
//! 200 = up with an RTT, 503 = overloaded, killed = failure within the
//! timeout, and the hysteresis tracker through up -> overloaded -> down -> up.
//! Also: stray responses are ignored, and many silent targets do not add up.

mod support;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use pdns_ha::collector::health::{HealthTracker, ProbeResult};
use pdns_ha::collector::sip::{self, ProbeOutcome, SipTarget};
use pdns_ha::metrics::Health;
use support::kamailio::{self, Kamailio};

const TIMEOUT: Duration = Duration::from_millis(500);

fn skip() -> bool {
    if kamailio::available() {
        return false;
    }
    eprintln!(
        "SKIPPED: {} is not installed; this test did not run",
        kamailio::KAMAILIO
    );
    true
}

fn assert_answered(o: &ProbeOutcome, status: u16) {
    match o {
        ProbeOutcome::Answered { status: s, rtt_ms } => {
            assert_eq!(*s, status);
            assert!(
                *rtt_ms > 0.0 && *rtt_ms < TIMEOUT.as_secs_f64() * 1000.0,
                "rtt {rtt_ms}"
            );
        }
        other => panic!("expected {status}, got {other:?}"),
    }
}

#[test]
fn kamailio_200_over_udp_and_tcp_is_up_with_an_rtt() {
    if skip() {
        return;
    }
    let k = Kamailio::start(200);
    let out = sip::probe_all(&[k.udp(), k.tcp()], TIMEOUT);
    assert_answered(&out[0], 200);
    assert_answered(&out[1], 200);
    assert_eq!(out[0].result(), ProbeResult::Answered);
}

#[test]
fn kamailio_503_is_overloaded() {
    if skip() {
        return;
    }
    let k = Kamailio::start(503);
    for t in [k.udp(), k.tcp()] {
        let o = sip::probe(&t, TIMEOUT);
        assert!(
            matches!(o, ProbeOutcome::Overloaded { rtt_ms } if rtt_ms > 0.0),
            "{t}: {o:?}"
        );
        assert_eq!(o.result(), ProbeResult::Overloaded);
    }
}

#[test]
fn killed_kamailio_fails_within_the_timeout() {
    if skip() {
        return;
    }
    let mut k = Kamailio::start(200);
    let (udp, tcp) = (k.udp(), k.tcp());
    k.stop();
    for t in [udp, tcp] {
        let t0 = Instant::now();
        let o = sip::probe(&t, TIMEOUT);
        let took = t0.elapsed();
        assert!(matches!(&o, ProbeOutcome::Failed(_)), "{t}: {o:?}");
        assert!(took < TIMEOUT + Duration::from_millis(100), "{t}: {took:?}");
        assert_eq!(o.rtt_ms(), None);
    }
}

/// One probe round over UDP and TCP into both trackers; returns their states.
fn round(targets: &[SipTarget], trackers: &mut [HealthTracker]) -> Vec<Option<Health>> {
    let outcomes = sip::probe_all(targets, TIMEOUT);
    trackers
        .iter_mut()
        .zip(outcomes)
        .map(|(t, o)| {
            t.observe(o.result());
            t.state()
        })
        .collect()
}

#[test]
fn tracker_follows_kamailio_up_overloaded_down_up() {
    if skip() {
        return;
    }
    let (down_after, up_after) = (3, 2);
    let mut tr = vec![HealthTracker::new(down_after, up_after); 2];
    let mut k = Kamailio::start(200);
    let port = k.port;
    let targets = [k.udp(), k.tcp()];
    let both = |h: Health| vec![Some(h), Some(h)];

    assert_eq!(round(&targets, &mut tr), both(Health::Up));

    k.stop();
    let mut k = Kamailio::start_on(port, 503);
    assert_eq!(round(&targets, &mut tr), both(Health::Overloaded));

    k.stop();
    for _ in 1..down_after {
        assert_eq!(
            round(&targets, &mut tr),
            both(Health::Overloaded),
            "not down before {down_after} failures"
        );
    }
    assert_eq!(round(&targets, &mut tr), both(Health::Down));

    let _k = Kamailio::start_on(port, 200);
    for _ in 1..up_after {
        assert_eq!(
            round(&targets, &mut tr),
            both(Health::Down),
            "not up before {up_after} answers"
        );
    }
    assert_eq!(round(&targets, &mut tr), both(Health::Up));
}

#[test]
fn stray_and_provisional_responses_are_ignored() {
    // A UAS that first answers with someone else's branch, then the right
    // Call-ID with a wrong branch, then 100 Trying, then the real 503.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 4096];
        let (n, peer) = sock.recv_from(&mut buf).unwrap();
        let req = String::from_utf8_lossy(&buf[..n]).to_string();
        let header = |name: &str| {
            req.lines()
                .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
                .unwrap()
                .to_string()
        };
        let (via, call_id, cseq) = (header("via"), header("call-id"), header("cseq"));
        let resp = |status: &str, via: &str, call_id: &str| {
            format!(
                "SIP/2.0 {status}\r\n{via}\r\n{call_id}\r\n{cseq}\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:y>;tag=2\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let wrong_branch = via.replace("branch=z9hG4bK", "branch=z9hG4bKstale");
        for msg in [
            resp("200 OK", &via, "Call-ID: stale@elsewhere"),
            resp("200 OK", &wrong_branch, &call_id),
            "garbage\r\n\r\n".to_string(),
            resp("100 Trying", &via, &call_id),
            resp("503 Service Unavailable", &via, &call_id),
        ] {
            sock.send_to(msg.as_bytes(), peer).unwrap();
        }
        req
    });
    let o = sip::probe(&format!("udp:127.0.0.1:{port}").parse().unwrap(), TIMEOUT);
    assert!(matches!(o, ProbeOutcome::Overloaded { .. }), "{o:?}");
    let req = server.join().unwrap();
    assert!(
        req.starts_with(&format!("OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n")),
        "{req}"
    );
    assert!(req.contains("\r\nMax-Forwards: 70\r\n"));
}

#[test]
fn many_silent_targets_time_out_together() {
    // 100 bound but silent UDP sockets: every probe times out, in parallel.
    let silent: Vec<UdpSocket> = (0..100)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let targets: Vec<SipTarget> = silent
        .iter()
        .map(|s| format!("udp:{}", s.local_addr().unwrap()).parse().unwrap())
        .collect();
    let t0 = Instant::now();
    let out = sip::probe_all(&targets, Duration::from_millis(300));
    let took = t0.elapsed();
    assert_eq!(out.len(), 100);
    assert!(
        out.iter()
            .all(|o| matches!(o, ProbeOutcome::Failed(m) if m.contains("no answer")))
    );
    assert!(took < Duration::from_millis(900), "took {took:?}");
}

/// Kamailio behind a relay that loses two probes in three: the node goes
/// down (an isolated answer does not forgive the failures), and comes back
/// only after `up_after` answers in a row once the loss stops. With one
/// probe in three lost, it stays up.
#[test]
fn kamailio_behind_a_lossy_link_goes_down_and_comes_back_when_it_heals() {
    if skip() {
        return;
    }
    let k = Kamailio::start(200);
    let relay = support::lossy_udp::LossyUdp::start(
        format!("127.0.0.1:{}", k.udp().port).parse().unwrap(),
        3,
    );
    let target: SipTarget = format!("udp:{}", relay.addr).parse().unwrap();
    let timeout = Duration::from_millis(300);
    let mut t = HealthTracker::new(3, 2);
    let mut seen = Vec::new();
    // Eleven probes: the 3rd, 6th and 9th reach Kamailio.
    for _ in 0..11 {
        let r = sip::probe(&target, timeout).result();
        t.observe(r);
        seen.push((r, t.state()));
    }
    let answered = seen
        .iter()
        .filter(|(r, _)| *r == ProbeResult::Answered)
        .count();
    assert_eq!(answered, 3, "one probe in three answered: {seen:?}");
    assert_eq!(t.state(), Some(Health::Down), "{seen:?}");

    // The link heals: up after two answers in a row.
    relay.keep_one_in(1);
    let healed: Vec<_> = (0..2)
        .map(|_| {
            t.observe(sip::probe(&target, timeout).result());
            t.state()
        })
        .collect();
    assert_eq!(healed, [Some(Health::Down), Some(Health::Up)]);

    // One probe in three lost (every third): up throughout.
    let mut t = HealthTracker::new(3, 2);
    let lossy_third = support::lossy_udp::LossyUdp::start(
        format!("127.0.0.1:{}", k.udp().port).parse().unwrap(),
        1,
    );
    let target: SipTarget = format!("udp:{}", lossy_third.addr).parse().unwrap();
    let mut states = Vec::new();
    for i in 0..12 {
        // Drop the third, sixth, ... probe: a relay forwarding all but those.
        lossy_third.keep_one_in(if i % 3 == 2 { usize::MAX } else { 1 });
        t.observe(sip::probe(&target, timeout).result());
        states.push(t.state());
    }
    assert!(states.iter().all(|s| *s == Some(Health::Up)), "{states:?}");
}
