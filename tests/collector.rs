//! Collector integration tests against the fake FreeSWITCH event socket
//! (tests/support/fake_esl.rs) and a UDP SIP responder: the ESL client
//! through a real socket, then `run()` with a recording sink.

mod support;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pdns_ha::collector::freeswitch::{self, Registrations};
use pdns_ha::collector::{
    self, CollectorConfig, EslClient, EslError, EslTarget, MetricSink, Target,
};
use pdns_ha::metrics::{Health, Metric};
use pdns_ha::net::Prefix;
use support::fake_esl::{self, FakeEsl, FakeEslConfig, Heartbeat, Mode};
use support::sip_responder::SipResponder;

const CT: Duration = Duration::from_millis(500);
const RT: Duration = Duration::from_millis(1500);

fn connect(fake: &FakeEsl) -> EslClient {
    EslClient::connect(&fake.addr_string(), "ClueCon", CT, RT)
        .expect("authenticate to the fake ESL")
}

fn reachable(regs: &Registrations) -> Vec<(IpAddr, f64)> {
    regs.reachable.iter().map(|r| (r.ip, r.ping_ms)).collect()
}

fn default_regs() -> Vec<(IpAddr, f64)> {
    vec![
        ("24.64.1.7".parse().unwrap(), 23.45),
        ("2001:db8::7".parse().unwrap(), 8.0),
    ]
}

/// Auth, api status / show calls count / fsctl / xmlstatus, one heartbeat.
fn exercise_client(fake: &FakeEsl) {
    let mut c = connect(fake);
    let load = freeswitch::status_load(&c.api("status").unwrap()).unwrap();
    assert_eq!(
        (load.sessions, load.max_sessions, load.idle_cpu),
        (17, Some(1000), Some(97.53))
    );
    assert_eq!(
        freeswitch::calls_count(&c.api("show calls count").unwrap()).unwrap(),
        17
    );
    assert_eq!(
        freeswitch::fsctl_max_sessions(&c.api("fsctl max_sessions").unwrap()).unwrap(),
        1000
    );
    let xml = c.api("sofia xmlstatus profile internal reg").unwrap();
    let regs = freeswitch::xmlstatus_registrations(&xml).unwrap();
    assert_eq!(reachable(&regs), default_regs());
    assert_eq!(regs.unreachable, 1);
    assert_eq!(
        regs.reachable[0].contact,
        "\"alice\" <sip:alice@24.64.1.7:5060;fs_nat=yes>"
    );
    c.subscribe("HEARTBEAT").unwrap();
    let ev = c
        .next_event(Duration::from_secs(3))
        .unwrap()
        .expect("a HEARTBEAT within 3 s");
    assert_eq!(ev.name(), "HEARTBEAT");
    assert_eq!(ev.header("Event-Info"), Some("System Ready"));
    let hb = freeswitch::heartbeat_load(|n| ev.header(n)).unwrap();
    assert_eq!((hb.sessions, hb.max_sessions), (17, Some(1000)));
    assert!((hb.idle_cpu.unwrap() - 97.533333).abs() < 1e-6);
}

fn fast_heartbeat(mode: Mode) -> FakeEslConfig {
    FakeEslConfig {
        mode,
        heartbeat_every: Duration::from_millis(100),
        ..Default::default()
    }
}

#[test]
fn client_against_a_well_behaved_server() {
    let fake = FakeEsl::start(fast_heartbeat(Mode::Normal));
    exercise_client(&fake);
    let mut c = connect(&fake);
    match c.api("no_such_command") {
        Err(EslError::Api(body)) => assert!(body.starts_with("-ERR no_such_command"), "{body}"),
        other => panic!("expected an -ERR api error, got {other:?}"),
    }
    // The connection is still usable after an -ERR.
    assert!(c.api("status").unwrap().contains("session(s) max"));
    assert_eq!(fake.stats.auth_ok.load(Ordering::SeqCst), 2);
}

#[test]
fn client_with_crlf_line_ends() {
    let fake = FakeEsl::start(FakeEslConfig {
        crlf: true,
        ..fast_heartbeat(Mode::Normal)
    });
    exercise_client(&fake);
}

#[test]
fn frames_split_byte_by_byte() {
    let fake = FakeEsl::start(fast_heartbeat(Mode::ByteByByte));
    exercise_client(&fake);
}

#[test]
fn coalesced_frames_and_events_during_a_reply() {
    let fake = FakeEsl::start(fast_heartbeat(Mode::Coalesce));
    let mut c = connect(&fake);
    c.subscribe("HEARTBEAT").unwrap();
    std::thread::sleep(Duration::from_millis(250)); // the fake holds back two heartbeats
    let load = freeswitch::status_load(&c.api("status").unwrap()).unwrap();
    assert_eq!(load.sessions, 17);
    // Events written in the same segment as the reply were queued, so they
    // are there without waiting.
    let mut seqs = Vec::new();
    while let Some(ev) = c.next_event(Duration::ZERO).unwrap() {
        assert_eq!(ev.name(), "HEARTBEAT");
        seqs.push(ev.header("Event-Sequence").unwrap().parse::<u32>().unwrap());
    }
    assert!(seqs.len() >= 2, "queued events: {seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "events in order: {seqs:?}"
    );
    let xml = c.api("sofia xmlstatus profile internal reg").unwrap();
    assert_eq!(
        reachable(&freeswitch::xmlstatus_registrations(&xml).unwrap()),
        default_regs()
    );
}

#[test]
fn wrong_password_is_auth_rejected() {
    let fake = FakeEsl::start(FakeEslConfig::default());
    match EslClient::connect(&fake.addr_string(), "wrong", CT, RT) {
        Err(e @ EslError::AuthRejected(_)) => {
            assert!(e.to_string().contains("-ERR invalid"), "{e}");
            assert!(e.to_string().contains("esl_password"), "{e}");
        }
        Err(e) => panic!("expected AuthRejected, got {e:?}"),
        Ok(_) => panic!("a wrong password was accepted"),
    }
    assert_eq!(fake.stats.auth_failed.load(Ordering::SeqCst), 1);
}

#[test]
fn acl_rejection_is_distinct() {
    let fake = FakeEsl::start(FakeEslConfig {
        mode: Mode::RudeRejection,
        ..Default::default()
    });
    match EslClient::connect(&fake.addr_string(), "ClueCon", CT, RT) {
        Err(EslError::RudeRejection(body)) => assert!(body.contains("Access Denied")),
        Err(e) => panic!("expected RudeRejection, got {e:?}"),
        Ok(_) => panic!("connected through an ACL rejection"),
    }
}

#[test]
fn a_hanging_server_times_out() {
    let fake = FakeEsl::start(FakeEslConfig {
        mode: Mode::HangAfterAccept,
        ..Default::default()
    });
    let t0 = Instant::now();
    let r = EslClient::connect(
        &fake.addr_string(),
        "ClueCon",
        CT,
        Duration::from_millis(300),
    );
    let took = t0.elapsed();
    assert!(matches!(r, Err(EslError::Timeout(_))), "{:?}", r.err());
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}

#[test]
fn a_slow_server_within_the_timeout_is_fine_beyond_it_times_out() {
    let fake = FakeEsl::start(FakeEslConfig {
        mode: Mode::Slow(Duration::from_millis(150)),
        ..Default::default()
    });
    let mut c = connect(&fake);
    assert_eq!(
        freeswitch::status_load(&c.api("status").unwrap())
            .unwrap()
            .sessions,
        17
    );
    let t0 = Instant::now();
    let r = EslClient::connect(
        &fake.addr_string(),
        "ClueCon",
        CT,
        Duration::from_millis(50),
    );
    assert!(matches!(r, Err(EslError::Timeout(_))), "{:?}", r.err());
    assert!(t0.elapsed() < Duration::from_millis(500));
}

#[test]
fn a_server_closing_mid_frame_is_an_error() {
    let fake = FakeEsl::start(FakeEslConfig {
        mode: Mode::CloseMidFrame,
        ..Default::default()
    });
    let mut c = connect(&fake);
    let t0 = Instant::now();
    match c.api("sofia xmlstatus profile internal reg") {
        Err(EslError::Closed(why)) => assert!(why.contains("middle of a frame"), "{why}"),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_millis(1000));
}

#[test]
fn connection_refused_is_an_io_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = EslClient::connect(&format!("127.0.0.1:{port}"), "ClueCon", CT, RT);
    assert!(
        matches!(r, Err(EslError::Io(ref e)) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "{:?}",
        r.err()
    );
}

// ---------------------------------------------------------------------------
// run()

#[derive(Clone, Default)]
struct Recorder {
    metrics: Arc<Mutex<Vec<Metric>>>,
    calls: Arc<AtomicUsize>,
    /// The first `fail_first` calls fail.
    fail_first: usize,
}

impl MetricSink for Recorder {
    fn store(&mut self, batch: &[Metric], heartbeat_ts: i64) -> anyhow::Result<()> {
        assert!(heartbeat_ts > 1_600_000_000);
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.fail_first {
            anyhow::bail!("database is locked (test)");
        }
        self.metrics.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

impl Recorder {
    fn snapshot(&self) -> Vec<Metric> {
        self.metrics.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the recorded samples.
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&[Metric]) -> bool) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if pred(&self.snapshot()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what}; recorded: {:#?}",
            self.snapshot()
        );
    }
}

fn test_config() -> CollectorConfig {
    CollectorConfig {
        probe_interval_ms: 200,
        probe_timeout_ms: 150,
        down_after: 2,
        up_after: 2,
        esl_connect_timeout_ms: 300,
        esl_reply_timeout_ms: 500,
        heartbeat_wait_ms: 5_000,
        registration_poll_interval_ms: 300,
        reconnect_min_ms: 100,
        reconnect_max_ms: 400,
        auth_retry_ms: 60_000,
        batch_interval_ms: 100,
        max_pending_samples: 100_000,
        http: None,
    }
}

fn esl_target(node: &str, fake: &FakeEsl, password: &str) -> Target {
    Target {
        node: node.into(),
        esl: Some(EslTarget::new(
            fake.addr_string().parse().unwrap(),
            password.parse().unwrap(),
        )),
        sip_probe: None,
        sip_tls: None,
    }
}

type Reload = Box<dyn FnMut() -> anyhow::Result<Option<(CollectorConfig, Vec<Target>)>> + Send>;

/// `run()` in a thread; stop it with the returned flag.
struct Running {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    fn start(
        config: CollectorConfig,
        targets: Vec<Target>,
        mut reload: Reload,
        mut sink: Recorder,
    ) -> Running {
        // RUST_LOG=debug cargo test -- --nocapture shows the collector's log.
        let _ = env_logger::builder().is_test(true).try_init();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            collector::run(config, targets, &mut *reload, &mut sink, &s)
        });
        Running {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops and asserts it returned Ok within 2 s.
    fn stop(mut self) {
        let t0 = Instant::now();
        self.stop.store(true, Ordering::SeqCst);
        let h = self.handle.take().unwrap();
        while !h.is_finished() {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "run() did not stop within 2 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        h.join().unwrap().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn no_reload() -> Reload {
    Box::new(|| Ok(None))
}

fn loads(ms: &[Metric], node: &str) -> Vec<(u32, u32, Option<f64>)> {
    ms.iter()
        .filter_map(|m| match m {
            Metric::Load {
                node: n,
                sessions,
                max_sessions,
                idle_cpu,
                ..
            } if n == node => Some((*sessions, *max_sessions, *idle_cpu)),
            _ => None,
        })
        .collect()
}

fn latencies(ms: &[Metric], node: &str) -> Vec<(Prefix, f64)> {
    ms.iter()
        .filter_map(|m| match m {
            Metric::Latency {
                node: n,
                client,
                rtt_ms,
                ..
            } if n == node => Some((*client, *rtt_ms)),
            _ => None,
        })
        .collect()
}

fn healths(ms: &[Metric], node: &str) -> Vec<(Health, Option<f64>)> {
    ms.iter()
        .filter_map(|m| match m {
            Metric::Health {
                node: n,
                state,
                probe_rtt_ms,
                ..
            } if n == node => Some((*state, *probe_rtt_ms)),
            _ => None,
        })
        .collect()
}

fn host(ip: &str) -> Prefix {
    Prefix::host(ip.parse().unwrap())
}

#[test]
fn run_collects_load_latency_and_health_from_two_nodes() {
    let a = FakeEsl::start(FakeEslConfig {
        heartbeat: Some(Heartbeat {
            session_count: 42,
            max_sessions: 500,
            idle_cpu: 80.25,
        }),
        heartbeat_every: Duration::from_millis(200),
        ..Default::default()
    });
    let b = FakeEsl::start(FakeEslConfig {
        heartbeat: Some(Heartbeat {
            session_count: 3,
            max_sessions: 0,
            idle_cpu: 99.0,
        }),
        heartbeat_every: Duration::from_millis(200),
        status_body: fake_esl::status_body(4, 250, 12.5),
        xmlstatus: vec![
            (
                "internal".into(),
                fake_esl::xmlstatus_body(&[fake_esl::registration_xml(
                    "dave",
                    "203.0.113.9",
                    "Reachable",
                    41.5,
                )]),
            ),
            (
                "external".into(),
                fake_esl::xmlstatus_body(&[
                    fake_esl::registration_xml("erin", "2001:db8:5::1", "Reachable", 55.25),
                    fake_esl::registration_xml("frank", "203.0.113.10", "Unreachable", 3000.0),
                ]),
            ),
        ],
        ..Default::default()
    });
    let sip = SipResponder::start(200);
    let mut tb = esl_target("b", &b, "ClueCon");
    if let Some(e) = tb.esl.as_mut() {
        e.profiles = vec!["internal".parse().unwrap(), "external".parse().unwrap()];
    }
    let ta = Target {
        sip_probe: Some(sip.probe_spec().parse().unwrap()),
        sip_tls: None,
        ..esl_target("a", &a, "ClueCon")
    };
    let rec = Recorder::default();
    let running = Running::start(test_config(), vec![ta, tb], no_reload(), rec.clone());

    rec.wait_for(
        "loads, latencies and health of a and b",
        Duration::from_secs(5),
        |ms| {
            loads(ms, "a").contains(&(42, 500, Some(80.25)))
                && loads(ms, "b").contains(&(3, 0, Some(99.0)))
                && latencies(ms, "a").len() >= 2
                && latencies(ms, "b").len() >= 2
                && healths(ms, "a").len() >= 2
        },
    );
    running.stop();
    let ms = rec.snapshot();
    // The first load of each node comes from api status, then heartbeats.
    assert_eq!(loads(&ms, "a")[0], (17, 1000, Some(97.53)));
    assert_eq!(loads(&ms, "b")[0], (4, 250, Some(12.5)));
    let la = latencies(&ms, "a");
    assert_eq!(
        &la[..2],
        &[(host("24.64.1.7"), 23.45), (host("2001:db8::7"), 8.0)]
    );
    assert!(
        la.iter().all(|(p, _)| *p != host("198.51.100.3")),
        "Unreachable must not be a sample"
    );
    let lb = latencies(&ms, "b");
    assert_eq!(
        &lb[..2],
        &[(host("203.0.113.9"), 41.5), (host("2001:db8:5::1"), 55.25)]
    );
    assert!(lb.iter().all(|(p, _)| *p != host("203.0.113.10")));
    let ha = healths(&ms, "a");
    assert!(
        ha.iter()
            .all(|(s, rtt)| *s == Health::Up && rtt.is_some_and(|r| r > 0.0 && r < 150.0)),
        "{ha:?}"
    );
    assert!(healths(&ms, "b").is_empty(), "b has no sip_probe");
    assert!(sip.answered() >= 2);
}

#[test]
fn run_polls_api_status_without_heartbeats() {
    let fake = FakeEsl::start(FakeEslConfig {
        heartbeat: None,
        status_body: fake_esl::status_body(9, 300, 55.5),
        ..Default::default()
    });
    let rec = Recorder::default();
    let config = CollectorConfig {
        heartbeat_wait_ms: 200,
        ..test_config()
    };
    let running = Running::start(
        config,
        vec![esl_target("n", &fake, "ClueCon")],
        no_reload(),
        rec.clone(),
    );
    rec.wait_for("three polled loads", Duration::from_secs(4), |ms| {
        loads(ms, "n").len() >= 3
    });
    running.stop();
    assert!(
        loads(&rec.snapshot(), "n")
            .iter()
            .all(|l| *l == (9, 300, Some(55.5)))
    );
    assert!(fake.count_commands("api status") >= 3);
    assert!(
        fake.count_commands("event plain HEARTBEAT") == 1,
        "one connection, one subscription"
    );
}

#[test]
fn run_falls_back_to_show_calls_count() {
    let fake = FakeEsl::start(FakeEslConfig {
        heartbeat: None,
        status_body: "-ERR status Command not found!\n".into(),
        calls_count_body: "\n23 total.\n".into(),
        max_sessions_body: "+OK max sessions: 777\n".into(),
        ..Default::default()
    });
    let rec = Recorder::default();
    let running = Running::start(
        test_config(),
        vec![esl_target("n", &fake, "ClueCon")],
        no_reload(),
        rec.clone(),
    );
    rec.wait_for(
        "a load from show calls count",
        Duration::from_secs(3),
        |ms| !loads(ms, "n").is_empty(),
    );
    running.stop();
    assert_eq!(loads(&rec.snapshot(), "n")[0], (23, 777, None));
}

#[test]
fn run_does_not_hammer_a_server_that_rejects_the_password() {
    let fake = FakeEsl::start(FakeEslConfig {
        password: "s3cret".into(),
        ..Default::default()
    });
    let rec = Recorder::default();
    // Even with a tiny reconnect delay a rejected password waits auth_retry_ms.
    let config = CollectorConfig {
        reconnect_min_ms: 10,
        reconnect_max_ms: 20,
        auth_retry_ms: 700,
        ..test_config()
    };
    let running = Running::start(
        config,
        vec![esl_target("n", &fake, "wrong")],
        no_reload(),
        rec.clone(),
    );
    std::thread::sleep(Duration::from_millis(1000));
    running.stop();
    let tries = fake.stats.auth_failed.load(Ordering::SeqCst);
    assert_eq!(tries, 2, "one try at start, one after 700 ms");
    assert!(loads(&rec.snapshot(), "n").is_empty());
}

#[test]
fn run_reconnects_with_backoff_to_a_hanging_server() {
    let fake = FakeEsl::start(FakeEslConfig {
        mode: Mode::HangAfterAccept,
        ..Default::default()
    });
    let rec = Recorder::default();
    let config = CollectorConfig {
        esl_reply_timeout_ms: 100,
        reconnect_min_ms: 100,
        reconnect_max_ms: 800,
        ..test_config()
    };
    let running = Running::start(
        config,
        vec![esl_target("n", &fake, "ClueCon")],
        no_reload(),
        rec.clone(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    running.stop();
    // 0 ms: try 1, times out at 100; waits 100, 200, 400 between tries:
    // tries at about 0, 200, 500, 1000 ms: 4, never a tight loop.
    let n = fake.connections();
    assert!((3..=5).contains(&n), "{n} connections in 1.5 s");
}

#[test]
fn run_backs_off_from_a_server_that_authenticates_then_breaks_every_session() {
    // Found by the soak: the delay went back to reconnect_min_ms after every
    // accepted password, so such a server was reconnected ten times a
    // second (with reconnect_min_ms 100) for as long as it was broken.
    let fake = FakeEsl::start(FakeEslConfig {
        mode: Mode::CloseMidFrame,
        ..Default::default()
    });
    let rec = Recorder::default();
    let config = CollectorConfig {
        reconnect_min_ms: 100,
        reconnect_max_ms: 800,
        ..test_config()
    };
    let running = Running::start(
        config,
        vec![esl_target("n", &fake, "ClueCon")],
        no_reload(),
        rec.clone(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    running.stop();
    // Sessions at about 0, 100, 300, 700 ms (then 1500): 4 or 5, not 15.
    let n = fake.connections();
    assert!((3..=5).contains(&n), "{n} connections in 1.5 s");
    assert!(fake.stats.auth_ok.load(Ordering::SeqCst) >= 3);
}

#[test]
fn run_keeps_samples_while_the_store_fails() {
    let fake = FakeEsl::start(FakeEslConfig {
        heartbeat: None,
        ..Default::default()
    });
    let rec = Recorder {
        fail_first: 5,
        ..Default::default()
    };
    let running = Running::start(
        test_config(),
        vec![esl_target("n", &fake, "ClueCon")],
        no_reload(),
        rec.clone(),
    );
    rec.wait_for(
        "the first load, after the store recovered",
        Duration::from_secs(4),
        |ms| !loads(ms, "n").is_empty() && latencies(ms, "n").len() >= 2,
    );
    running.stop();
    assert!(rec.calls.load(Ordering::SeqCst) > 5);
    assert_eq!(loads(&rec.snapshot(), "n")[0], (17, 1000, Some(97.53)));
}

#[test]
fn run_applies_reloaded_targets() {
    let a = FakeEsl::start(FakeEslConfig::default());
    let b = FakeEsl::start(FakeEslConfig {
        status_body: fake_esl::status_body(8, 80, 70.0),
        ..Default::default()
    });
    let sip = SipResponder::start(503);
    let (ta, tb) = (
        esl_target("a", &a, "ClueCon"),
        esl_target("b", &b, "ClueCon"),
    );
    let tb = Target {
        sip_probe: Some(sip.probe_spec().parse().unwrap()),
        sip_tls: None,
        ..tb
    };
    // Shared "site": the test edits it, reload hands out changes once.
    let site: Arc<Mutex<Option<Vec<Target>>>> = Arc::new(Mutex::new(None));
    let s = site.clone();
    let reload: Reload = Box::new(move || Ok(s.lock().unwrap().take().map(|t| (test_config(), t))));
    let rec = Recorder::default();
    let running = Running::start(test_config(), vec![ta.clone()], reload, rec.clone());
    rec.wait_for("a's first load", Duration::from_secs(3), |ms| {
        !loads(ms, "a").is_empty()
    });
    assert!(loads(&rec.snapshot(), "b").is_empty());

    *site.lock().unwrap() = Some(vec![ta, tb.clone()]);
    rec.wait_for(
        "b's load and health after reload",
        Duration::from_secs(5),
        |ms| loads(ms, "b").contains(&(8, 80, Some(70.0))) && !healths(ms, "b").is_empty(),
    );
    assert!(
        healths(&rec.snapshot(), "b")
            .iter()
            .all(|(s, rtt)| *s == Health::Overloaded && rtt.is_some())
    );

    // Drop a: its worker stops and its connection closes.
    *site.lock().unwrap() = Some(vec![tb]);
    let end = Instant::now() + Duration::from_secs(5);
    while a.open_connections() > 0 {
        assert!(
            Instant::now() < end,
            "a's connection still open after reload"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = loads(&rec.snapshot(), "a").len() + latencies(&rec.snapshot(), "a").len();
    std::thread::sleep(Duration::from_millis(700));
    let after = loads(&rec.snapshot(), "a").len() + latencies(&rec.snapshot(), "a").len();
    running.stop();
    assert_eq!(before, after, "no samples for a removed node");
    assert_eq!(a.connections(), 1);
    assert_eq!(b.connections(), 1);
}

fn qualities(ms: &[Metric], node: &str) -> Vec<(Prefix, f64, Option<f64>)> {
    ms.iter()
        .filter_map(|m| match m {
            Metric::Quality {
                node: n,
                client,
                mos,
                loss_pct,
                ..
            } if n == node => Some((*client, *mos, *loss_pct)),
            _ => None,
        })
        .collect()
}

#[test]
fn hangup_events_split_byte_by_byte_parse() {
    let fake = FakeEsl::start(FakeEslConfig {
        mode: Mode::ByteByByte,
        heartbeat: None,
        ..Default::default()
    });
    let mut c = connect(&fake);
    c.subscribe("CHANNEL_HANGUP_COMPLETE").unwrap();
    let body = fake_esl::hangup_body(&fake_esl::Hangup::call("2001:db8:5::9", 3.87), 1);
    assert!(body.len() > 4000, "a realistic size: {}", body.len());
    fake.push_event(body);
    let ev = c
        .next_event(Duration::from_secs(5))
        .unwrap()
        .expect("the hang-up event");
    assert_eq!(ev.name(), "CHANNEL_HANGUP_COMPLETE");
    let q = freeswitch::hangup_quality(|n| ev.header(n)).unwrap();
    assert_eq!(q.client, "2001:db8:5::9".parse::<IpAddr>().unwrap());
    assert_eq!(q.mos, 3.87);
    // URL-decoded: the SDP's line breaks are back.
    assert!(
        ev.header("variable_switch_r_sdp")
            .unwrap()
            .contains("\r\nm=audio")
    );
}

#[test]
fn run_turns_hangups_into_quality_samples_and_ignores_the_rest() {
    use fake_esl::{Hangup, hangup_body};
    let fake = FakeEsl::start(FakeEslConfig {
        heartbeat_every: Duration::from_millis(100),
        ..Default::default()
    });
    let stats = Arc::new(pdns_ha::collector::CollectorStats::new());
    let rec = Recorder::default();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (stats, stop, mut rec) = (stats.clone(), stop.clone(), rec.clone());
        let targets = vec![esl_target("n", &fake, "ClueCon")];
        std::thread::spawn(move || {
            collector::run_with_stats(
                test_config(),
                targets,
                &mut || Ok(None),
                &mut rec,
                &stop,
                stats,
            )
        })
    };
    // Hostile events first: each is ignored, none ends the session.
    let good = Hangup::call("198.51.100.7", 4.1);
    let mut outbound = good.clone();
    outbound.direction = "outbound".into();
    let mut no_media = good.clone();
    no_media.mos = None;
    let mut zero_media = good.clone();
    zero_media.media_packets = 0;
    let bad_mos: Vec<Hangup> = ["NaN", "inf", "9.9", "0.5", "-1", "four", ""]
        .iter()
        .map(|m| Hangup {
            mos: Some(m.to_string()),
            ..good.clone()
        })
        .collect();
    let mut bad_addr = good.clone();
    bad_addr.client_ip = "not-an-address".into();
    rec.wait_for("the subscription", Duration::from_secs(5), |_| {
        fake.count_commands("event plain HEARTBEAT CHANNEL_HANGUP_COMPLETE") == 1
    });
    for h in [&outbound, &no_media, &zero_media, &bad_addr]
        .into_iter()
        .chain(&bad_mos)
    {
        fake.push_event(hangup_body(h, 7));
    }
    // Missing everything but the name; a huge one (1 MB of variables); one
    // with bytes that are not UTF-8 once decoded; no event name at all.
    fake.push_event("Event-Name: CHANNEL_HANGUP_COMPLETE\n\n".into());
    let mut huge = hangup_body(&Hangup::call("203.0.113.5", 2.5), 8);
    huge.pop();
    for i in 0..10_000 {
        huge.push_str(&format!("variable_pad_{i}: {}\n", "x%20".repeat(20)));
    }
    huge.push('\n');
    assert!(huge.len() > 1_000_000);
    fake.push_event(huge);
    fake.push_event(hangup_body(&good, 9).replace(
        "Caller-Network-Addr: 198.51.100.7",
        "Caller-Network-Addr: %FF%FE",
    ));
    fake.push_event("Unique-ID: x\n\n".into());
    // Then calls from two networks.
    fake.update(|c| {
        c.hangups = vec![
            Hangup::call("198.51.100.7", 4.3),
            Hangup::call("2001:db8:7::1", 3.2),
        ];
        c.hangups_per_sec = 200.0;
    });
    rec.wait_for("100 quality samples", Duration::from_secs(10), |ms| {
        qualities(ms, "n").len() >= 100
    });
    stop.store(true, Ordering::SeqCst);
    handle.join().unwrap().unwrap();
    let q = qualities(&rec.snapshot(), "n");
    // The huge event is a good call (its padding is ignored).
    assert_eq!((q[0].0, q[0].1), (host("203.0.113.5"), 2.5));
    let rest = &q[1..];
    assert!(
        rest.iter().all(|(c, mos, loss)| {
            (*c == host("198.51.100.7") && *mos == 4.3
                || *c == host("2001:db8:7::1") && *mos == 3.2)
                && loss.is_some_and(|l| l > 0.0 && l < 100.0)
        }),
        "{rest:?}"
    );
    assert!(rest.iter().any(|(_, mos, _)| *mos == 3.2));
    let snap = stats.snapshot();
    let h = &snap.nodes[0].1.esl.as_ref().unwrap().hangups;
    assert_eq!((h.not_inbound, h.no_media), (1, 2), "{h:?}");
    // 7 bad MOS values, a bad address, the empty event, the non-UTF-8 address.
    assert_eq!(h.bad, 10, "{h:?}");
    assert_eq!(h.sampled as usize, q.len());
    assert_eq!(fake.connections(), 1, "the session survived every event");
}
