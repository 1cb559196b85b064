//! The memcached lookup cache, end to end: real `pdns-ha pipe`
//! coprocesses driven over stdin/stdout (ABI 5), a real memcached started
//! here on a free port of 127.0.0.1, and fake memcacheds that never answer
//! or answer nonsense. Every answer is compared with the answer of a
//! coprocess without memcached.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use support::memcached::Memcached;
use support::{Coproc, Db};

const SRV: &str = "_sip._udp.voip.example.com";
const POOL: &str = "sip.voip.example.com";
/// `--memcached-timeout-ms` used by the tests.
const TIMEOUT_MS: u64 = 3;
/// The timeout of the tests that count hits exactly: a loaded machine may
/// delay memcached by more than 3 ms, which would (rightly) be a miss.
const RELAXED_MS: u64 = 200;
/// Allowed on top of the timeout for one answer (a debug build, tests in
/// parallel).
const MARGIN_MS: u64 = 50;

/// The site (tests/fixtures/three_nodes_latency.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("three_nodes_latency"));

// ---------------------------------------------------------------- fixtures

/// A database with the site above and latency for 10.0.0.0/8: van1 5 ms,
/// mtl1 20 ms, tor1 40 ms (three tiers).
fn site_db(tag: &str) -> Db {
    let db = Db::new(&format!("mc-{tag}"));
    db.apply_ok(&SITE);
    db.ingest_ok(
        "latency van1 10.0.0.0/8 5\nlatency mtl1 10.0.0.0/8 20\nlatency tor1 10.0.0.0/8 40\n",
    );
    db
}

fn with_memcached(db: &Db, servers: &str, timeout_ms: u64, backoff_ms: u64) -> Coproc {
    Coproc::start(
        &db.path,
        5,
        &[
            "--memcached",
            servers,
            "--memcached-timeout-ms",
            &timeout_ms.to_string(),
            "--memcached-backoff-ms",
            &backoff_ms.to_string(),
        ],
    )
}

trait Ask {
    /// Asks ANY for `qname` from `client` (no ECS: the subnet is
    /// client/32); the answer's lines up to END, and how long it took.
    fn ask(&mut self, qname: &str, client: &str) -> (Vec<String>, Duration);
}

impl Ask for Coproc {
    fn ask(&mut self, qname: &str, client: &str) -> (Vec<String>, Duration) {
        let start = Instant::now();
        let lines = self.query(qname, "ANY", client, &format!("{client}/32"));
        (lines, start.elapsed())
    }
}

fn status_prometheus(db: &Db) -> String {
    let out = db.run(&["status", "--prometheus"]);
    support::assert_ok("pdns-ha status --prometheus", &out);
    support::stdout(&out)
}

fn counter(status: &serde_json::Value, name: &str) -> u64 {
    status["memcached"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no memcached.{name} in {status}"))
}

/// The SRV targets of an answer, in order, with their priorities.
fn srv_order(lines: &[String]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter(|l| l.contains("\tSRV\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[8].to_string(),
                f[9].rsplit(' ').next().unwrap().to_string(),
            )
        })
        .collect()
}

fn expected_srv() -> Vec<(String, String)> {
    [
        ("0", "van1.voip.example.com"),
        ("1", "mtl1.voip.example.com"),
        ("2", "tor1.voip.example.com"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// A distinct /24 in 10.0.0.0/8 for question `i` (so that the in-process
/// cache never answers and every question goes to memcached).
fn client(i: usize) -> String {
    format!("10.{}.{}.7", 1 + i / 250, i % 250)
}

/// The 8-hex-digit network key of `client(i)`'s /24, as in the cache key.
fn key_suffix(i: usize) -> String {
    let net = (10u32 << 24) | (((1 + i / 250) as u32) << 16) | (((i % 250) as u32) << 8);
    format!(".4.{net:x}.24")
}

// ---------------------------------------------------------------- tests

#[test]
fn two_coprocesses_share_one_decision_through_memcached() {
    let db = site_db("share");
    let mc = Memcached::start(support::free_port());
    let servers = format!("127.0.0.1:{}", mc.port);
    let mut reference = Coproc::start(&db.path, 5, &[]);

    let mut a = with_memcached(&db, &servers, RELAXED_MS, 5000);
    let (srv_a, _) = a.ask(SRV, "10.20.30.40");
    let (pool_a, _) = a.ask(POOL, "10.20.30.40");
    assert_eq!(srv_order(&srv_a), expected_srv());
    assert_eq!(pool_a.len(), 2, "{pool_a:?}");
    assert!(pool_a[0].ends_with("\t203.0.113.20"), "{pool_a:?}");
    assert_eq!(srv_a, reference.ask(SRV, "10.20.30.40").0);
    assert_eq!(pool_a, reference.ask(POOL, "10.20.30.40").0);
    // A missed, computed and stored both decisions.
    mc.wait_stat("curr_items", 2);
    assert_eq!(mc.stat("get_misses"), 2);
    assert_eq!(mc.stat("get_hits"), 0);
    for k in mc.keys() {
        assert!(
            k.len() <= 250 && k.bytes().all(|b| b.is_ascii_graphic()),
            "{k}"
        );
    }

    // B: a second coprocess (another PowerDNS thread or server) gets the
    // same answers, read from memcached.
    let mut b = with_memcached(&db, &servers, RELAXED_MS, 5000);
    let (srv_b, _) = b.ask(SRV, "10.20.30.40");
    let (pool_b, _) = b.ask(POOL, "10.20.30.40");
    assert_eq!(srv_b, srv_a);
    assert_eq!(pool_b, pool_a);
    assert_eq!(mc.stat("get_hits"), 2, "B's answers came from memcached");
    assert_eq!(mc.stat("get_misses"), 2);
    // B's in-process cache is in front of memcached: asking again within
    // the decision cache lifetime does not reach memcached.
    let _ = b.ask(SRV, "10.20.30.40");
    assert_eq!(mc.stat("cmd_get"), 4);

    a.close();
    b.close();
    // The processes' own counters, summed by `status`.
    let s = db.status_json();
    assert_eq!(counter(&s, "hits"), 2, "{s}");
    assert_eq!(counter(&s, "misses"), 2, "{s}");
    assert_eq!(counter(&s, "errors"), 0, "{s}");
    assert_eq!(counter(&s, "rejected"), 0, "{s}");
    assert_eq!(s["memcached"]["backing_off"], false);
    let p = status_prometheus(&db);
    assert!(p.contains("\npdns_ha_memcached_hits_total 2\n"), "{p}");
    assert!(p.contains("\npdns_ha_memcached_misses_total 2\n"), "{p}");
    assert!(p.contains("\npdns_ha_memcached_backing_off 0\n"), "{p}");
}

#[test]
fn a_decision_is_shared_while_fresh_and_refused_once_older() {
    // decision_cache_ms = 0: a shared decision is fresh for 2000 ms.
    let db = Db::new("mc-fresh");
    db.apply_ok(&format!("{}\n[policy]\ndecision_cache_ms = 0\n", *SITE));
    db.ingest_ok(
        "latency van1 10.0.0.0/8 5\nlatency mtl1 10.0.0.0/8 20\nlatency tor1 10.0.0.0/8 40\n",
    );
    let mc = Memcached::start(support::free_port());
    let servers = format!("127.0.0.1:{}", mc.port);
    let mut a = with_memcached(&db, &servers, RELAXED_MS, 5000);
    let mut b = with_memcached(&db, &servers, RELAXED_MS, 5000);
    let mut c = with_memcached(&db, &servers, RELAXED_MS, 5000);

    // A's decision is stamped between `asked` and `made`.
    let asked = Instant::now();
    let (srv_a, _) = a.ask(SRV, "10.20.30.40");
    let made = Instant::now();
    mc.wait_stat("curr_items", 1);
    // At most 1.4 s later B is served A's decision: it is fresh for 2 s,
    // and memcached keeps it at least that long (written to expire in 3 s,
    // on a clock that ticks in whole seconds).
    std::thread::sleep(
        (asked + Duration::from_millis(1400)).saturating_duration_since(Instant::now()),
    );
    let (srv_b, _) = b.ask(SRV, "10.20.30.40");
    assert_eq!(srv_b, srv_a);
    assert_eq!(mc.stat("get_hits"), 1, "B was served A's decision");
    // More than 2 s after it was made, the decision is not answered, whether
    // memcached still has it or not: C decides again.
    std::thread::sleep(
        (made + Duration::from_millis(2100)).saturating_duration_since(Instant::now()),
    );
    let (srv_c, _) = c.ask(SRV, "10.20.30.40");
    assert_eq!(srv_c, srv_a);
    for p in [a, b, c] {
        assert!(p.close().success());
    }
    let s = db.status_json();
    assert_eq!(
        (counter(&s, "hits"), counter(&s, "misses")),
        (1, 2),
        "A missed, B hit, C found nothing fresh: {s}"
    );
    assert_eq!(counter(&s, "rejected"), 0, "{s}");
    assert_eq!(counter(&s, "errors"), 0, "{s}");
}

#[test]
fn memcached_killed_and_restarted_in_a_stream_of_questions() {
    let db = site_db("restart");
    let port = support::free_port();
    let mut mc = Memcached::start(port);
    let backoff = Duration::from_millis(600);
    let mut c = with_memcached(
        &db,
        &format!("127.0.0.1:{port}"),
        TIMEOUT_MS,
        backoff.as_millis() as u64,
    );
    let mut reference = Coproc::start(&db.path, 5, &[]);
    let limit = Duration::from_millis(TIMEOUT_MS + MARGIN_MS);
    let mut i = 0;
    let mut worst = Duration::ZERO;
    let mut ask = |c: &mut Coproc, reference: &mut Coproc| {
        let (got, took) = c.ask(SRV, &client(i));
        assert!(took < limit, "question {i} took {took:?}");
        worst = worst.max(took);
        assert_eq!(srv_order(&got), expected_srv(), "question {i}");
        assert_eq!(got, reference.ask(SRV, &client(i)).0, "question {i}");
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    };
    // Until memcached has served 40 gets (on a loaded machine a get can
    // miss its 3 ms deadline, and the coprocess then backs off a while).
    let mut asked = 0;
    while mc.stat("cmd_get") < 40 {
        assert!(asked < 1000, "memcached served {} gets", mc.stat("cmd_get"));
        ask(&mut c, &mut reference);
        asked += 1;
    }
    mc.kill();
    // Down: refused connections, for two back-off periods.
    let down = Instant::now();
    while down.elapsed() < 2 * backoff {
        ask(&mut c, &mut reference);
    }
    let mc = Memcached::start(port);
    // Up again: asked again once the back-off is over.
    let up = Instant::now();
    while up.elapsed() < backoff + Duration::from_millis(800) {
        ask(&mut c, &mut reference);
    }
    assert!(
        mc.stat("cmd_get") > 0 && mc.stat("curr_items") > 0,
        "memcached not used again after the back-off"
    );
    c.close();
    let s = db.status_json();
    assert!(counter(&s, "errors") >= 1, "{s}");
    assert!(counter(&s, "misses") >= 40, "{s}");
    eprintln!(
        "{i} questions, slowest {worst:?}, counters {}",
        s["memcached"]
    );
}

/// Accepts connections and keeps them open; never reads nor writes.
fn silent_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    port
}

/// Answers every line with something that is not memcached's protocol.
fn babbling_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0
                        || s.write_all(b"VALUE nothing 0 3\r\nDATA\tevil\r\nEND\r\n")
                            .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_memcached_that_never_answers_or_answers_nonsense_costs_at_most_the_timeout() {
    let db = site_db("silent");
    let mut reference = Coproc::start(&db.path, 5, &[]);
    let limit = Duration::from_millis(TIMEOUT_MS + MARGIN_MS);
    let refused = support::free_port();
    for (what, port) in [
        ("silent", silent_server()),
        ("babbling", babbling_server()),
        ("refusing", refused),
    ] {
        let backoff = 200;
        let mut c = with_memcached(&db, &format!("127.0.0.1:{port}"), TIMEOUT_MS, backoff);
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_millis(900) {
            let (got, took) = c.ask(SRV, &client(n));
            assert!(took < limit, "{what}: question {n} took {took:?}");
            assert_eq!(
                got,
                reference.ask(SRV, &client(n)).0,
                "{what}: question {n}"
            );
            assert!(!got.iter().any(|l| l.contains("evil")));
            n += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        c.close();
        let s = db.status_json();
        assert_eq!(counter(&s, "hits"), 0, "{what}: {s}");
        // An error, then a back-off, then a retry: several errors in 900 ms,
        // far fewer than questions.
        let errors = counter(&s, "errors");
        assert!(
            errors >= 2 && errors * 4 < n as u64,
            "{what}: {errors} errors for {n} questions"
        );
    }
}

#[test]
fn the_pipe_starts_and_status_shows_the_back_off_with_memcached_down() {
    let db = site_db("down");
    let mut c = with_memcached(
        &db,
        &format!("127.0.0.1:{}", support::free_port()),
        TIMEOUT_MS,
        60_000,
    );
    let (got, took) = c.ask(SRV, "10.1.1.1");
    assert_eq!(srv_order(&got), expected_srv());
    assert!(took < Duration::from_millis(TIMEOUT_MS + MARGIN_MS));
    c.close();
    let s = db.status_json();
    assert_eq!(counter(&s, "errors"), 1, "{s}");
    assert_eq!(s["memcached"]["backing_off"], true, "{s}");
    let p = status_prometheus(&db);
    assert!(p.contains("\npdns_ha_memcached_backing_off 1\n"), "{p}");
    assert!(p.contains("\npdns_ha_memcached_errors_total 1\n"), "{p}");
}

#[test]
fn garbage_oversized_and_foreign_values_are_ignored() {
    let db = site_db("planted");
    let mc = Memcached::start(support::free_port());
    let servers = format!("127.0.0.1:{}", mc.port);
    let mut reference = Coproc::start(&db.path, 5, &[]);
    let mut a = with_memcached(&db, &servers, RELAXED_MS, 5000);
    const K: usize = 7;
    let answers: Vec<Vec<String>> = (0..K).map(|i| a.ask(SRV, &client(i)).0).collect();
    mc.wait_stat("curr_items", K as u64);
    let keys = mc.keys();
    let key = |i: usize| {
        keys.iter()
            .find(|k| k.ends_with(&key_suffix(i)))
            .unwrap_or_else(|| panic!("no key for {} in {keys:?}", client(i)))
            .clone()
    };
    let valid = |i: usize| mc.get(&key(i)).unwrap();
    let v3 = valid(3);
    let v4 = valid(4);
    let v5 = valid(5);
    let v6 = valid(6);
    assert!(v3.starts_with("v1 "), "{v3}");
    let mut f4: Vec<String> = v4.split(' ').map(String::from).collect();
    f4[2] = (f4[2].parse::<i64>().unwrap() + 1).to_string();
    let mut f5: Vec<String> = v5.split(' ').map(String::from).collect();
    f5[7] = "999:0:100".into();
    let planted: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        vec![b'x'; 200_000],
        v3.into_bytes(), // goes to key 2: written for another key
        b"v1 0 0 0 0 0 0 0".to_vec(),
        f4.join(" ").into_bytes(), // another generation
        f5.join(" ").into_bytes(), // a node the site does not have
        format!("{v6}\nDATA\t0\t1\tevil.voip.example.com\tIN\tA\t1\t1\t6.6.6.6").into_bytes(),
    ];
    for (i, v) in planted.iter().enumerate() {
        mc.set(&key(i), v);
    }

    let mut b = with_memcached(&db, &servers, RELAXED_MS, 5000);
    for (i, want) in answers.iter().enumerate() {
        let (got, took) = b.ask(SRV, &client(i));
        assert_eq!(&got, want, "client {i}");
        assert_eq!(got, reference.ask(SRV, &client(i)).0);
        assert!(
            !got.iter()
                .any(|l| l.contains("evil") || l.contains("6.6.6.6"))
        );
        assert!(
            took < Duration::from_millis(TIMEOUT_MS + MARGIN_MS),
            "{took:?}"
        );
    }
    // The recomputed decisions replaced what was planted.
    for i in 0..K {
        let v = mc.get(&key(i)).unwrap();
        assert!(v.starts_with("v1 ") && !v.contains("999:"), "{i}: {v}");
    }
    a.close();
    b.close();
    let s = db.status_json();
    assert_eq!(counter(&s, "rejected"), K as u64, "{s}");
    assert_eq!(counter(&s, "hits"), 0, "{s}");
    assert_eq!(counter(&s, "errors"), 0, "{s}");
}
