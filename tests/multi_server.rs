//! Several DNS servers for one zone (README, "Several DNS servers"): each
//! with its own PowerDNS, its own database made by `apply` of the same site
//! file, its own collector measuring the whole fleet, and one memcached
//! shared by both.
//!
//! - `two_dns_servers_each_with_its_database_and_collector`: two real
//!   `pdns_server` (pipe backend, `--memcached` to one real memcached), two
//!   `pdns-ha collect` against one fake fleet of three FreeSWITCH event
//!   sockets with SIP OPTIONS responders. The same client network gets the
//!   same answer from both; a node that stops answering probes leaves both
//!   servers' answers within the documented time; one collector killed with
//!   SIGKILL: that server keeps its last measurements (a node it saw down
//!   stays out) until `health_max_age_s`, then fails open (the node is
//!   answered again, latency order kept), while the other keeps measuring
//!   (a node that goes down afterwards leaves its answers only).
//! - `a_decision_shared_by_another_database_is_answered_only_if_it_agrees_on_health`:
//!   two databases with the same site, generation and health epoch but a node
//!   down in one of them, so the same memcached keys: a decision the other
//!   server made is served only where it agrees on which nodes are down
//!   (counted as rejected otherwise), and served as is where it does.

mod support;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use support::collect::Collect;
use support::fake_esl::{FakeEsl, FakeEslConfig, registration_xml, xmlstatus_body};
use support::memcached::Memcached;
use support::sip_responder::SipResponder;
use support::{Coproc, Db, Dig, Pdns, PdnsOpts, Srv, poll};

const SRV: &str = "_sip._udp.voip.example.com";

/// Client networks: NEAR_FS1 measures fs1 10 ms, fs2 30 ms, fs3 60 ms;
/// NEAR_FS3 fs3 8 ms, fs2 25 ms, fs1 50 ms (one SRV tier each).
const NEAR_FS1: &str = "24.64.1.0/24";
const NEAR_FS3: &str = "203.0.113.0/24";

// The site's settings (tests/fixtures/multi_server.toml), from which the
// documented times below are computed.
const PROBE_INTERVAL: Duration = Duration::from_millis(300);
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
const DOWN_AFTER: u32 = 2;
const BATCH_INTERVAL: Duration = Duration::from_millis(100);
const HEALTH_MAX_AGE: Duration = Duration::from_secs(5);
/// README, "How an answer is chosen": a change in the database shows in
/// the answers of every coprocess within 2 s.
const ANSWERS_FOLLOW: Duration = Duration::from_secs(2);

/// README, "The `[collector]` table": a dead server is out of the answers
/// at most one probe interval (to the next probe), `down_after` failed
/// probes one interval apart, the last timing out, one batch to the
/// database and about 1 s to the answers after it died.
fn documented_down_time() -> Duration {
    PROBE_INTERVAL * DOWN_AFTER + PROBE_TIMEOUT + BATCH_INTERVAL + Duration::from_secs(1)
}

/// README, "How an answer is chosen": health older than `health_max_age_s`
/// counts as unknown (a whole second: ages are counted in seconds), and
/// metric changes show in answers within 2 s. The collector writes every
/// probe's outcome, so the last health was written just before it died.
fn documented_fail_open_time() -> Duration {
    HEALTH_MAX_AGE + Duration::from_secs(1) + Duration::from_secs(2)
}

/// What a loaded 2-core test machine adds to a documented time: processes
/// scheduled late, `dig` itself, the 100 ms between two polls.
const SCHEDULING_SLACK: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------- the fleet

struct Fleet {
    esl: Vec<FakeEsl>,
    sip: Vec<SipResponder>,
}

impl Fleet {
    fn start() -> Fleet {
        // (NEAR_FS1 ms, NEAR_FS3 ms) per node.
        let rtts = [(10.0, 50.0), (30.0, 25.0), (60.0, 8.0)];
        let esl = rtts
            .iter()
            .enumerate()
            .map(|(i, &(near1, near3))| {
                let regs = [
                    registration_xml(&format!("a{i}"), "24.64.1.7", "Reachable", near1),
                    registration_xml(&format!("b{i}"), "203.0.113.7", "Reachable", near3),
                ];
                FakeEsl::start(FakeEslConfig {
                    heartbeat_every: Duration::from_millis(200),
                    xmlstatus: vec![("internal".into(), xmlstatus_body(&regs))],
                    ..Default::default()
                })
            })
            .collect();
        let sip = (0..3).map(|_| SipResponder::start(200)).collect();
        Fleet { esl, sip }
    }

    fn site(&self) -> String {
        let keys: Vec<(String, String)> = (0..3)
            .flat_map(|i| {
                [
                    (format!("FS{}_ESL", i + 1), self.esl[i].addr_string()),
                    (format!("FS{}_PROBE", i + 1), self.sip[i].probe_spec()),
                ]
            })
            .collect();
        let keys: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        support::fixture_with("multi_server", &keys)
    }

    /// Node `fsN` stops answering SIP OPTIONS (as a dead server).
    fn silence(&self, n: usize) {
        self.sip[n - 1].set_status(0);
    }
}

/// One DNS server: its database, its collector, its PowerDNS.
struct DnsServer {
    name: &'static str,
    db: Db,
    collect: Collect,
    pdns: Pdns,
}

impl DnsServer {
    fn start(name: &'static str, site: &str, memcached: &Memcached) -> DnsServer {
        let db = Db::new(&format!("multi-{name}"));
        db.apply_ok(site);
        let collect = Collect::start(&db);
        let pdns = Pdns::start(
            &db.path,
            PdnsOpts {
                pipe_args: vec![
                    "--memcached".into(),
                    format!("127.0.0.1:{}", memcached.port),
                    // A loaded test machine may take more than the default
                    // 3 ms to answer: a miss, which is correct but hides
                    // what is shared.
                    "--memcached-timeout-ms".into(),
                    "200".into(),
                ],
                ..PdnsOpts::default()
            },
        );
        DnsServer {
            name,
            db,
            collect,
            pdns,
        }
    }

    fn ask(&self, subnet: &str) -> Dig {
        self.pdns.dig(&[SRV, "SRV", &format!("+subnet={subnet}")])
    }
}

fn expect(t: &[&[&str]]) -> Vec<Vec<String>> {
    t.iter()
        .map(|g| g.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// Polls `server` for `subnet` until it answers these tiers (NOERROR, the
/// client's /24 as scope); returns the answer and how long it took.
#[track_caller]
fn wait_tiers(
    server: &DnsServer,
    subnet: &str,
    want: &[&[&str]],
    within: Duration,
) -> (Dig, Duration) {
    let want = expect(want);
    let start = Instant::now();
    let d = poll(
        &format!("{}: {SRV} for {subnet} answers {want:?}", server.name),
        within,
        || {
            let d = server.ask(subnet);
            if d.status == "NOERROR" && d.srv_tiers() == want && d.scope() == Some(24) {
                Ok(d)
            } else {
                Err(format!("{} {:?}\n{d}", d.status, d.srv_tiers()))
            }
        },
    );
    (d, start.elapsed())
}

/// The whole SRV answer, as a client sees it.
fn records(d: &Dig) -> Vec<Srv> {
    d.srvs()
}

#[test]
fn two_dns_servers_each_with_its_database_and_collector() {
    require_pdns!();
    let fleet = Fleet::start();
    let site = fleet.site();
    let memcached = Memcached::start(support::free_port());
    let mut a = DnsServer::start("A", &site, &memcached);
    let b = DnsServer::start("B", &site, &memcached);

    // Both measured the fleet: the same client network gets the same
    // answer from both, record for record.
    let startup = Duration::from_secs(15);
    for (subnet, want) in [
        (NEAR_FS1, &[&["fs1"][..], &["fs2"], &["fs3"]][..]),
        (NEAR_FS3, &[&["fs3"], &["fs2"], &["fs1"]]),
    ] {
        let (da, _) = wait_tiers(&a, subnet, want, startup);
        let (db, _) = wait_tiers(&b, subnet, want, startup);
        assert_eq!(records(&da), records(&db), "A:\n{da}\nB:\n{db}");
        // And again, a moment later, each asked several times: the answers
        // stay equal (no flapping between the two measurements).
        for _ in 0..5 {
            assert_eq!(records(&a.ask(subnet)), records(&b.ask(subnet)));
        }
    }

    // fs2 stops answering probes: both collectors see it, and both
    // servers leave it out within the documented time.
    let down_within = documented_down_time();
    fleet.silence(2);
    let start = Instant::now();
    let mut took = Vec::new();
    for server in [&a, &b] {
        let (d, _) = wait_tiers(
            server,
            NEAR_FS1,
            &[&["fs1"], &["fs3"]],
            down_within + SCHEDULING_SLACK,
        );
        took.push(start.elapsed());
        assert_eq!(d.srvs().len(), 2, "{d}");
    }
    eprintln!(
        "fs2 out of A's answers after {:?}, of B's after {:?} (documented: at most {down_within:?})",
        took[0], took[1]
    );
    for server in [&a, &b] {
        wait_tiers(server, NEAR_FS3, &[&["fs3"], &["fs1"]], SCHEDULING_SLACK);
    }

    // A's collector dies (SIGKILL: nothing flushed). Right after, fs3 stops
    // answering too: only B sees it.
    a.collect.kill();
    let killed = Instant::now();
    fleet.silence(3);
    // A answers from what its collector last wrote: fs2 still out (its
    // "down" is fresh), fs3 in, in measured latency order. fs2 went down
    // about a second ago: a coprocess PowerDNS had not asked since may still
    // give one answer from before (README: changes show within 2 s).
    let (d, _) = wait_tiers(&a, NEAR_FS1, &[&["fs1"], &["fs3"]], ANSWERS_FOLLOW);
    assert_eq!(d.srvs().len(), 2, "{d}");
    // B keeps measuring: fs3 leaves B's answers within the documented time,
    // and stays in A's (A's health of fs3 is "up", fresh, and no longer
    // measured).
    let (d, b_took) = wait_tiers(&b, NEAR_FS1, &[&["fs1"]], down_within + SCHEDULING_SLACK);
    assert_eq!(d.srvs().len(), 1, "{d}");
    eprintln!("fs3 out of B's answers {b_took:?} after A's collector died");
    if killed.elapsed() < HEALTH_MAX_AGE - Duration::from_secs(1) {
        let (d, _) = wait_tiers(&a, NEAR_FS1, &[&["fs1"], &["fs3"]], Duration::ZERO);
        assert_eq!(d.srvs().len(), 2, "{d}");
    }
    // Then A's health expires: every node counts as up again (fail open),
    // fs2 is answered again in its measured place (latency is still fresh:
    // stale data, not no data), while B, which measures, keeps fs2 and fs3
    // out. Polled every 100 ms, so both bounds are checked.
    let fail_open_within = documented_fail_open_time();
    let mut seen_b = 0;
    let a_open = poll(
        "A fails open once its health is older than health_max_age_s",
        fail_open_within + SCHEDULING_SLACK,
        || {
            let db = b.ask(NEAR_FS1);
            if db.srv_tiers() != expect(&[&["fs1"]]) {
                panic!("B, which measures, answered {:?}:\n{db}", db.srv_tiers());
            }
            seen_b += 1;
            let da = a.ask(NEAR_FS1);
            match da.srv_tiers() {
                t if t == expect(&[&["fs1"], &["fs2"], &["fs3"]]) => Ok(killed.elapsed()),
                t if t == expect(&[&["fs1"], &["fs3"]]) => Err(format!("{t:?}")),
                t => panic!("A answered {t:?} after its collector died:\n{da}"),
            }
        },
    );
    eprintln!(
        "A failed open {a_open:?} after its collector died (health_max_age_s {HEALTH_MAX_AGE:?}, documented: at most {fail_open_within:?}); B checked {seen_b} times meanwhile"
    );
    assert!(
        a_open >= HEALTH_MAX_AGE - Duration::from_secs(2),
        "A's last health counted as fresh for only {a_open:?}"
    );
    // The other network too: A in its measured order, B only fs1.
    wait_tiers(
        &a,
        NEAR_FS3,
        &[&["fs3"], &["fs2"], &["fs1"]],
        SCHEDULING_SLACK,
    );
    wait_tiers(&b, NEAR_FS3, &[&["fs1"]], Duration::ZERO);

    // `status` on each database says what happened: A's collector is silent,
    // B's is alive and sees fs2 and fs3 down.
    let sa = a.db.status_json();
    assert!(
        sa["collector_heartbeat_age_s"]
            .as_i64()
            .is_some_and(|s| s >= HEALTH_MAX_AGE.as_secs() as i64 - 1),
        "{sa}"
    );
    let sb = b.db.status_json();
    assert!(
        sb["collector_heartbeat_age_s"]
            .as_i64()
            .is_some_and(|s| s <= 2),
        "{sb}"
    );
    let health = |st: &serde_json::Value, node: &str| {
        st["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["name"] == node))
            .map(|n| n["health"].clone())
            .unwrap_or_default()
    };
    assert_eq!(health(&sb, "fs2"), "down", "{sb}");
    assert_eq!(health(&sb, "fs3"), "down", "{sb}");
    for server in [&a, &b] {
        server.pdns.assert_no_backend_trouble();
    }
}

// ------------------------------------------------ shared decisions and health

/// The site of memcached.rs: mtl1, van1, tor1 in a latency service.
/// Three nodes, a latency service; a shared decision is read for up to
/// 2000 - 100 ms after it was written, so a loaded test machine does not
/// turn a hit into a miss between two questions.
static SITE3: LazyLock<String> = LazyLock::new(|| {
    support::fixture("three_nodes_latency") + "\n[policy]\ndecision_cache_ms = 100\n"
});

/// `(generation, health_epoch)` of a database: with the site digest, what
/// the memcached keys of its decisions are made of.
fn version(db: &Db) -> (i64, i64) {
    let c = rusqlite::Connection::open(&db.path).expect("open the test database");
    let get = |k: &str| -> i64 {
        c.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
            .unwrap()
    };
    (get("generation"), get("health_epoch"))
}

/// A database with SITE3, latency for 10.0.0.0/8 (van1 5 ms, mtl1 20 ms,
/// tor1 40 ms) and these health states, all in one `ingest` run (one
/// transaction: health epoch 1).
fn db_with_health(tag: &str, health: &str) -> Db {
    let db = Db::new(tag);
    db.apply_ok(&SITE3);
    db.ingest_ok(&format!(
        "latency van1 10.0.0.0/8 5\nlatency mtl1 10.0.0.0/8 20\nlatency tor1 10.0.0.0/8 40\n{health}"
    ));
    db
}

fn coproc(db: &Db, memcached: &Memcached) -> Coproc {
    Coproc::start(
        &db.path,
        5,
        &[
            "--memcached",
            &format!("127.0.0.1:{}", memcached.port),
            "--memcached-timeout-ms",
            "200",
        ],
    )
}

/// The SRV targets' first labels of a coprocess answer, in order.
fn order(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("\tSRV\t"))
        .map(|l| {
            let target = l.rsplit(' ').next().unwrap();
            target.split('.').next().unwrap().to_string()
        })
        .collect()
}

fn ask(c: &mut Coproc, client: &str) -> Vec<String> {
    order(&c.query(SRV, "ANY", client, &format!("{client}/32")))
}

fn counter(db: &Db, name: &str) -> u64 {
    let s = db.status_json();
    s["memcached"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no memcached.{name} in {s}"))
}

#[test]
fn a_decision_shared_by_another_database_is_answered_only_if_it_agrees_on_health() {
    let memcached = Memcached::start(support::free_port());
    let all_up = "health mtl1 up\nhealth van1 up\nhealth tor1 up\n";
    // A and C: every node up. B: van1 down. Each database counted one
    // health change (one ingest transaction), so all three have the same
    // generation and health epoch, and the same memcached keys.
    let a = db_with_health("multi-a", all_up);
    let b = db_with_health(
        "multi-b",
        "health mtl1 up\nhealth van1 down\nhealth tor1 up\n",
    );
    let c = db_with_health("multi-c", all_up);
    assert_eq!(version(&a), (1, 1));
    assert_eq!(version(&b), version(&a));
    assert_eq!(version(&c), version(&a));
    let (mut ca, mut cb, mut cc) = (
        coproc(&a, &memcached),
        coproc(&b, &memcached),
        coproc(&c, &memcached),
    );

    // Decisions are written with `noreply`: before another coprocess reads
    // one, the test waits until memcached has stored it (`sets`, the
    // number of writes so far, is checked as it goes).
    let sets = |n: u64| memcached.wait_stat("cmd_set", n);

    // A decides for 10.1.2.0/24 and shares it; B reads it, but van1 is
    // down here: B answers without van1, and writes its own decision.
    assert_eq!(ask(&mut ca, "10.1.2.7"), ["van1", "mtl1", "tor1"]);
    sets(1);
    assert_eq!(memcached.keys().len(), 1, "{:?}", memcached.keys());
    assert_eq!(ask(&mut cb, "10.1.2.7"), ["mtl1", "tor1"]);
    sets(2);
    assert_eq!(memcached.keys().len(), 1, "B asked under A's key");
    assert_eq!(memcached.stat("get_hits"), 1, "B found A's decision");
    // The other way: B decides for 10.3.4.0/24; A, where van1 is up, does
    // not leave it out.
    assert_eq!(ask(&mut cb, "10.3.4.7"), ["mtl1", "tor1"]);
    sets(3);
    assert_eq!(ask(&mut ca, "10.3.4.7"), ["van1", "mtl1", "tor1"]);
    sets(4);
    assert_eq!(memcached.stat("get_hits"), 2, "A found B's decision");
    // C agrees with A on every node: it answers A's decision as shared. For
    // 10.1.2.0/24 the value is B's now (written after it refused A's), so
    // C refuses it too and answers as A does.
    assert_eq!(ask(&mut cc, "10.3.4.7"), ["van1", "mtl1", "tor1"]);
    assert_eq!(ask(&mut cc, "10.1.2.7"), ["van1", "mtl1", "tor1"]);
    sets(5);
    assert_eq!(ask(&mut ca, "10.5.6.7"), ["van1", "mtl1", "tor1"]);
    sets(6);
    assert_eq!(ask(&mut cc, "10.5.6.7"), ["van1", "mtl1", "tor1"]);
    assert_eq!(memcached.stat("get_hits"), 5, "C found three decisions");
    assert_eq!(
        memcached.stat("cmd_set"),
        6,
        "a decision served is not written again"
    );

    // The counters (written when a coprocess exits): every disagreement
    // was refused, every agreement served.
    for p in [ca, cb, cc] {
        assert!(p.close().success());
    }
    assert_eq!(
        (counter(&a, "hits"), counter(&a, "rejected")),
        (0, 1),
        "A refused B's decision"
    );
    assert_eq!(
        (counter(&b, "hits"), counter(&b, "rejected")),
        (0, 1),
        "B refused A's decision"
    );
    assert_eq!(
        (counter(&c, "hits"), counter(&c, "rejected")),
        (2, 1),
        "C served A's decisions and refused B's"
    );
}
