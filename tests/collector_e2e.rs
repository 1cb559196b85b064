//! The collector end to end: `pdns-ha collect` (the built binary, a
//! child process) measuring a real Kamailio and fake FreeSWITCH event
//! sockets on 127.0.0.1, writing the SQLite store, and a real PowerDNS
//! (`pdns-ha pipe`) answering from it.
//!
//! - `kamailio_health_through_collect_and_powerdns`: a Kamailio answering
//!   OPTIONS 200, then restarted answering 503, then stopped, then started
//!   with 200 again: the node goes up, overloaded (last in the answers), down
//!   (out of the answers) and up again only after `up_after` answers; the
//!   collector heartbeat; SIGTERM ends collect with status 0; health older
//!   than `policy.health_max_age_s` counts as unknown (the node comes back).
//! - `freeswitch_loads_and_registrations_through_collect_and_powerdns`: two
//!   fake FreeSWITCH nodes (HEARTBEAT loads, `sofia xmlstatus` registration
//!   ping times, an Unreachable one that must not count): the load and
//!   latency services answer accordingly per ECS network; the loads change and
//!   the load answer flips; `apply` adding a `sip_probe` is followed without
//!   restart; SIGTERM ends collect cleanly (ESL `exit`, status 0).
//! - `a_stored_probe_that_no_longer_parses_is_logged_and_the_rest_goes_on`:
//!   a node's stored `sip_probe` that no longer parses: the coprocess still
//!   answers with the node, the collector logs what it leaves out and
//!   probes the other node.
//!
//! Latency and load answers carry a non-zero ECS scope, so PowerDNS does not
//! cache them: the tests poll them with deadlines.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::collect::Collect;
use support::fake_esl::{FakeEsl, FakeEslConfig, registration_xml, xmlstatus_body};
use support::kamailio::{self, Kamailio};
use support::sip_responder::SipResponder;
use support::{Db, Dig, Pdns, PdnsOpts, poll};

/// The latency service of every site here.
const LAT: &str = "_sip._udp.voip.example.com";
/// The load service of every site here.
const LOAD: &str = "_sip._tcp.voip.example.com";

/// Deadline for a state the collector reaches within a few probe rounds
/// (plus the 2 s site reload, the 1 s decision cache of the coprocess).
const SOON: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Reading `status --json` and DNS answers.

fn status(db: &Db) -> Result<Value, String> {
    let o = db.run(&["status", "--json"]);
    if !o.status.success() {
        return Err(format!(
            "status --json failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    serde_json::from_slice(&o.stdout).map_err(|e| format!("status --json: {e}"))
}

fn node_status(st: &Value, node: &str) -> Value {
    st["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["name"] == node))
        .cloned()
        .unwrap_or_else(|| panic!("node {node} missing from status: {st}"))
}

/// Polls `status --json` until `node` has health `want`; returns its entry.
#[track_caller]
fn wait_health(db: &Db, node: &str, want: &str) -> Value {
    poll(&format!("status: {node} is {want}"), SOON, || {
        let n = node_status(&status(db)?, node);
        if n["health"] == want {
            Ok(n)
        } else {
            Err(n.to_string())
        }
    })
}

fn expect(t: &[&[&str]]) -> Vec<Vec<String>> {
    t.iter()
        .map(|g| g.iter().map(|s| s.to_string()).collect())
        .collect()
}

/// Asks `name` SRV (with ECS `subnet` if given) until its tiers are `want`.
#[track_caller]
fn wait_answer(pdns: &Pdns, name: &str, subnet: Option<&str>, want: &[&[&str]]) -> Dig {
    let want = expect(want);
    let ecs = subnet.map(|s| format!("+subnet={s}"));
    let mut args = vec![name, "SRV"];
    args.extend(ecs.as_deref());
    poll(
        &format!("{name} SRV (ECS {subnet:?}) answers {want:?}"),
        SOON,
        || {
            let d = pdns.dig(&args);
            if d.status == "NOERROR" && d.srv_tiers() == want {
                Ok(d)
            } else {
                Err(format!("{:?} {:?}\n{d}", d.status, d.srv_tiers()))
            }
        },
    )
}

// ---------------------------------------------------------------------------
// A real Kamailio: up, overloaded, down, up; heartbeat; SIGTERM; stale health.

fn kamailio_site(port: u16, policy: &str) -> String {
    support::fixture_with("kamailio", &[("PROBE_PORT", &port.to_string())]) + policy
}

/// Both services answer these tiers (no latency or load data: site order,
/// kam before other, unless kam is overloaded or down).
#[track_caller]
fn wait_both(pdns: &Pdns, want: &[&[&str]]) {
    wait_answer(pdns, LAT, Some("192.0.2.0/24"), want);
    wait_answer(pdns, LOAD, None, want);
}

#[test]
fn kamailio_health_through_collect_and_powerdns() {
    if !kamailio::available() {
        eprintln!(
            "\n!!!!!!!! SKIPPED: kamailio is not installed (apt-get install kamailio) !!!!!!!!\n"
        );
        return;
    }
    require_pdns!();
    let mut kam = Kamailio::start(200);
    let port = kam.port;
    let db = Db::new("e2e-kam");
    db.apply_ok(&kamailio_site(port, ""));
    let pdns = Pdns::start(&db.path, PdnsOpts::default());
    let mut collect = Collect::start(&db);

    // Up: an OPTIONS round trip time, written by the collector, which beats.
    let n = wait_health(&db, "kam", "up");
    assert_eq!(n["health_source"], "collector", "{n}");
    assert!(n["probe_rtt_ms"].as_f64().is_some_and(|r| r >= 0.0), "{n}");
    let st = status(&db).unwrap();
    let hb = st["collector_heartbeat_age_s"].as_i64();
    assert!(hb.is_some_and(|a| (0..=3).contains(&a)), "heartbeat: {st}");
    // A node without probe stays unknown.
    assert_eq!(node_status(&st, "other")["health"], "unknown", "{st}");
    wait_both(&pdns, &[&["kam"], &["other"]]);

    // Restarted answering 503: overloaded, last in both answers.
    kam.stop();
    kam = Kamailio::start_on(port, 503);
    wait_health(&db, "kam", "overloaded");
    wait_both(&pdns, &[&["other"], &["kam"]]);

    // Stopped: down after down_after failures, out of both answers.
    kam.stop();
    let stopped = Instant::now();
    wait_health(&db, "kam", "down");
    // Two failed probes 300 ms apart, each waiting 200 ms, then a batch write.
    assert!(
        stopped.elapsed() < Duration::from_secs(4),
        "down only after {:?}",
        stopped.elapsed()
    );
    wait_both(&pdns, &[&["other"]]);
    // The down node is still known, and fail open does not apply.
    let d = pdns.dig(&[LAT, "SRV", "+subnet=192.0.2.0/24"]);
    assert_eq!(d.srvs().len(), 1, "{d}");

    // Started again with 200: up, but only after up_after (2) answers.
    drop(kam);
    let kam = Kamailio::start_on(port, 200);
    wait_health(&db, "kam", "up");
    wait_both(&pdns, &[&["kam"], &["other"]]);
    // The log: after the last transition to down, exactly one answered
    // probe kept the node down, the next one brought it up.
    let log = collect.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("node kam: ")).collect();
    let went_down = lines
        .iter()
        .rposition(|l| l.contains(" -> down ("))
        .unwrap_or_else(|| panic!("no transition to down logged:\n{log}"));
    let came_up = went_down
        + lines[went_down..]
            .iter()
            .position(|l| l.contains("node kam: down -> up ("))
            .unwrap_or_else(|| panic!("no down -> up logged:\n{log}"));
    let between = &lines[went_down..=came_up];
    // The answers in a row just before the transition (a failure resets).
    let answered_in_a_row = between[..between.len() - 1]
        .iter()
        .rev()
        .filter(|l| l.contains("node kam: probe:"))
        .take_while(|l| l.contains("answered 200"))
        .count();
    assert_eq!(
        answered_in_a_row,
        1,
        "up_after = 2: one answer keeps the node down, the second brings it up:\n{}",
        between.join("\n")
    );

    // Stopped again, then the collector itself stops: SIGTERM, status 0.
    drop(kam);
    wait_health(&db, "kam", "down");
    wait_both(&pdns, &[&["other"]]);
    let st = status(&db).unwrap();
    assert!(
        st["collector_heartbeat_age_s"]
            .as_i64()
            .is_some_and(|a| a <= 3),
        "{st}"
    );
    collect.assert_running();
    let (exit, took) = collect.terminate(Duration::from_secs(5));
    assert_eq!(exit.code(), Some(0), "{}", collect.log());
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    assert!(
        collect.log().contains("collector stopped"),
        "{}",
        collect.log()
    );

    // Without a collector, health ages: older than health_max_age_s it is
    // unknown and the node is answered again (fail open on stale health).
    db.apply_ok(&kamailio_site(port, "[policy]\nhealth_max_age_s = 1\n"));
    let n = wait_health(&db, "kam", "unknown");
    assert!(n["health_age_s"].as_i64().is_some_and(|a| a >= 1), "{n}");
    wait_both(&pdns, &[&["kam"], &["other"]]);
    let st = status(&db).unwrap();
    assert!(
        st["collector_heartbeat_age_s"]
            .as_i64()
            .is_some_and(|a| a >= 1),
        "the heartbeat ages once collect stopped: {st}"
    );
}

// ---------------------------------------------------------------------------
// Two fake FreeSWITCH nodes: loads and registration ping times.

fn fake_freeswitch(load: (u32, u32, f64), regs: &[String]) -> FakeEsl {
    let fs = FakeEsl::start(FakeEslConfig {
        heartbeat_every: Duration::from_millis(200),
        xmlstatus: vec![("internal".into(), xmlstatus_body(regs))],
        ..Default::default()
    });
    fs.set_load(load.0, load.1, load.2);
    fs
}

fn fleet_site(fs1: &FakeEsl, fs2: &FakeEsl, fs2_probe: Option<&SipResponder>) -> String {
    let probe = fs2_probe
        .map(|p| format!("sip_probe = \"{}\"", p.probe_spec()))
        .unwrap_or_default();
    support::fixture_with(
        "fleet",
        &[
            ("FS1_ESL", &fs1.addr_string()),
            ("FS2_ESL", &fs2.addr_string()),
            ("FS2_PROBE", &probe),
        ],
    )
}

#[track_caller]
fn assert_load(n: &Value, sessions: u64, max: u64, idle: f64) {
    assert_eq!(n["sessions"].as_u64(), Some(sessions), "{n}");
    assert_eq!(n["max_sessions"].as_u64(), Some(max), "{n}");
    assert!(
        n["idle_cpu"]
            .as_f64()
            .is_some_and(|c| (c - idle).abs() < 0.01),
        "{n}"
    );
}

/// Polls until `node` reports these load figures; returns its status entry.
#[track_caller]
fn wait_load(db: &Db, node: &str, sessions: u64) -> Value {
    poll(
        &format!("status: {node} has {sessions} sessions"),
        SOON,
        || {
            let n = node_status(&status(db)?, node);
            if n["sessions"].as_u64() == Some(sessions) {
                Ok(n)
            } else {
                Err(n.to_string())
            }
        },
    )
}

#[test]
fn freeswitch_loads_and_registrations_through_collect_and_powerdns() {
    require_pdns!();
    // Client networks: 24.64.1.0/24 is near fs1, 203.0.113.0/24 near fs2;
    // 198.51.100.0/24 has a Reachable registration on fs1 only, and an
    // Unreachable one on fs2 with a tiny ping time that must not count.
    let fs1 = fake_freeswitch(
        (100, 1000, 90.0),
        &[
            registration_xml("alice", "24.64.1.7", "Reachable", 10.0),
            registration_xml("bob", "203.0.113.7", "Reachable", 60.0),
            registration_xml("dave", "198.51.100.4", "Reachable", 30.0),
        ],
    );
    let fs2 = fake_freeswitch(
        (800, 1000, 50.0),
        &[
            registration_xml("erin", "24.64.1.8", "Reachable", 45.0),
            registration_xml("frank", "203.0.113.8", "Reachable", 8.0),
            registration_xml("carol", "198.51.100.3", "Unreachable", 1.0),
        ],
    );
    let db = Db::new("e2e-fs");
    db.apply_ok(&fleet_site(&fs1, &fs2, None));
    let pdns = Pdns::start(&db.path, PdnsOpts::default());
    let mut collect = Collect::start(&db);

    // Loads: fs1 has 0.9 * 900 = 810 free sessions, fs2 0.5 * 200 = 100.
    assert_load(&wait_load(&db, "fs1", 100), 100, 1000, 90.0);
    assert_load(&wait_load(&db, "fs2", 800), 800, 1000, 50.0);
    let d = wait_answer(&pdns, LOAD, Some("24.64.1.0/24"), &[&["fs1"], &["fs2"]]);
    assert_eq!(d.scope(), Some(24), "{d}");

    // Latency per client network, from the registrations' ping times.
    let d = wait_answer(&pdns, LAT, Some("24.64.1.0/24"), &[&["fs1"], &["fs2"]]);
    assert_eq!(d.scope(), Some(24), "measured at /24: {d}");
    wait_answer(&pdns, LAT, Some("203.0.113.0/24"), &[&["fs2"], &["fs1"]]);
    // Only fs1 measured 198.51.100.0/24 (fs2's registration there is
    // Unreachable): fs1 first although the site lists fs2 first.
    wait_answer(&pdns, LAT, Some("198.51.100.0/24"), &[&["fs1"], &["fs2"]]);
    // A network nobody measured: site order.
    wait_answer(&pdns, LAT, Some("192.0.2.0/24"), &[&["fs2"], &["fs1"]]);
    let st = status(&db).unwrap();
    let (n1, n2) = (node_status(&st, "fs1"), node_status(&st, "fs2"));
    assert_eq!(n1["latency_networks_fresh"], 3, "{n1}");
    assert_eq!(n2["latency_networks_fresh"], 2, "Unreachable counted: {n2}");
    // /24, /16 and /8 for each Reachable registration.
    assert_eq!(n1["latency_entries"], 9, "{n1}");
    assert_eq!(n2["latency_entries"], 6, "{n2}");
    // The answers above came from the latency snapshot the collector
    // published: every entry is in it.
    let snap = &st["latency_snapshot"];
    assert_eq!(snap["usable"], true, "{snap}");
    assert_eq!(snap["entries"], 15, "{snap}");
    assert!(
        st["collector_heartbeat_age_s"]
            .as_i64()
            .is_some_and(|a| (0..=3).contains(&a)),
        "{st}"
    );
    // The collector asked what FreeSWITCH offers.
    for fs in [&fs1, &fs2] {
        assert!(fs.count_commands("event plain HEARTBEAT") >= 1);
        assert!(fs.count_commands("api sofia xmlstatus profile internal reg") >= 1);
    }

    // The loads change: fs2 becomes best (0.95 * 950 = 902.5 free against
    // 0.2 * 100 = 20), and the load answer flips.
    fs1.set_load(900, 1000, 20.0);
    fs2.set_load(50, 1000, 95.0);
    assert_load(&wait_load(&db, "fs1", 900), 900, 1000, 20.0);
    assert_load(&wait_load(&db, "fs2", 50), 50, 1000, 95.0);
    wait_answer(&pdns, LOAD, Some("24.64.1.0/24"), &[&["fs2"], &["fs1"]]);
    wait_answer(&pdns, LOAD, None, &[&["fs2"], &["fs1"]]);

    // A sip_probe added to fs2 by `apply` while collect runs: followed
    // without restart. It answers 503: fs2 is overloaded and goes last.
    let busy = SipResponder::start(503);
    db.apply_ok(&fleet_site(&fs1, &fs2, Some(&busy)));
    let n = wait_health(&db, "fs2", "overloaded");
    assert_eq!(n["health_source"], "collector", "{n}");
    wait_answer(&pdns, LOAD, None, &[&["fs1"], &["fs2"]]);
    wait_answer(&pdns, LAT, Some("203.0.113.0/24"), &[&["fs1"], &["fs2"]]);
    assert!(busy.answered() >= 1);
    collect.assert_running();
    assert!(collect.log().contains("site changed"), "{}", collect.log());
    // The event-socket workers were not restarted by that change.
    assert_eq!((fs1.connections(), fs2.connections()), (1, 1));

    // SIGTERM: a clean stop, saying goodbye to FreeSWITCH.
    let (exit, took) = collect.terminate(Duration::from_secs(5));
    assert_eq!(exit.code(), Some(0), "{}", collect.log());
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    poll("collect sent exit to both event sockets", SOON, || {
        match (fs1.count_commands("exit"), fs2.count_commands("exit")) {
            (1, 1) => Ok(()),
            n => Err(format!("{n:?}")),
        }
    });
}

// ---------------------------------------------------------------------------
// A stored value that no longer parses: logged, left out, nothing else stops.

#[test]
fn a_stored_probe_that_no_longer_parses_is_logged_and_the_rest_goes_on() {
    let sip = SipResponder::start(200);
    let port = sip.probe_spec().rsplit(':').next().unwrap().to_string();
    let db = Db::new("e2e-unusable");
    // Both nodes probe the same responder; then kam's probe is made into
    // one that no longer parses, as an older version or a hand edit could
    // have stored it.
    let site = kamailio_site(port.parse().unwrap(), "").replace(
        "ipv4 = [\"127.0.0.12\"]",
        &format!("ipv4 = [\"127.0.0.12\"]\nsip_probe = \"udp:127.0.0.1:{port}\""),
    );
    db.apply_ok(&site);
    let changed = rusqlite::Connection::open(&db.path)
        .expect("open the test database")
        .execute(
            "UPDATE topology SET def = replace(def, 'udp:127.0.0.1:', 'udp:a b:') \
             WHERE kind = 'node' AND name = 'kam'",
            [],
        )
        .expect("edit the stored node");
    assert_eq!(changed, 1);

    // The coprocess loads the topology and answers with both nodes.
    let mut p = support::Coproc::start(&db.path, 1, &[]);
    let a = p.query(LAT, "SRV", "192.0.2.1", "");
    assert!(
        a.iter().any(|l| l.contains("kam.voip.example.com"))
            && a.iter().any(|l| l.contains("other.voip.example.com")),
        "{a:?}"
    );
    assert!(p.close().success());

    // The collector says what it leaves out, and probes the other node.
    let mut c = Collect::start(&db);
    wait_health(&db, "other", "up");
    c.assert_running();
    let log = c.log();
    assert!(
        log.contains(&format!(
            "node kam: stored setting not used: sip_probe 'udp:a b:{port}' must be udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT"
        )) && log.contains("correct the site file and run `pdns-ha apply`"),
        "{log}"
    );
    assert_eq!(
        node_status(&status(&db).unwrap(), "kam")["health"],
        "unknown",
        "kam is not probed"
    );
    let (st, _) = c.terminate(Duration::from_secs(5));
    assert!(st.success(), "{st}");
}

// ---------------------------------------------------------------------------
// The log of state changes.

/// `pdns-ha log --json` (with `args`), one event per line.
fn log_json(db: &Db, args: &[&str]) -> Vec<Value> {
    let o = db.run(&[&["log", "--json"], args].concat());
    support::assert_ok("log --json", &o);
    support::stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// What an event's detail must be.
type DetailCheck<'a> = Box<dyn Fn(&str) -> bool + 'a>;

/// (kind, node, detail) of each event.
fn events(log: &[Value]) -> Vec<(String, String, String)> {
    log.iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("?").to_string(),
                e["node"].as_str().unwrap_or("-").to_string(),
                e["detail"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

#[test]
fn the_log_records_every_state_change_with_its_reason() {
    let sip = SipResponder::start(200);
    let port: u16 = sip
        .probe_spec()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let db = Db::new("e2e-log");
    let site = kamailio_site(port, "");
    db.apply_ok(&site);
    let mut c = Collect::start(&db);
    wait_health(&db, "kam", "up");
    sip.set_status(503);
    wait_health(&db, "kam", "overloaded");
    sip.set_status(0);
    wait_health(&db, "kam", "down");
    support::assert_ok("drain", &db.run(&["node", "drain", "other"]));
    // Draining twice is one change.
    support::assert_ok("drain", &db.run(&["node", "drain", "other"]));
    support::assert_ok("undrain", &db.run(&["node", "undrain", "other"]));
    db.ingest_ok("health other down\n");
    db.apply_ok(&site.replace("down_after = 2", "down_after = 3"));
    c.assert_running();
    let (st, _) = c.terminate(Duration::from_secs(5));
    assert!(st.success(), "{st}");

    let all = events(&log_json(&db, &[]));
    let port = port.to_string();
    let want: Vec<(&str, &str, DetailCheck)> = vec![
        ("apply", "-", Box::new(|d| d.contains("change(s): added"))),
        (
            "collector_start",
            "-",
            Box::new(|d| d.contains("1 node(s) to measure")),
        ),
        (
            "health",
            "kam",
            Box::new(|d| {
                d.starts_with("unknown -> up: SIP probe: udp:127.0.0.1:")
                    && d.contains(&format!("{port} answered 200 in"))
            }),
        ),
        (
            "health",
            "kam",
            Box::new(|d| d.starts_with("up -> overloaded: SIP probe: ") && d.contains("503")),
        ),
        (
            "health",
            "kam",
            Box::new(|d| d.starts_with("overloaded -> down: SIP probe: ")),
        ),
        (
            "drain",
            "other",
            Box::new(|d| d.contains("drained by the operator")),
        ),
        ("undrain", "other", Box::new(|d| d.contains("undrained"))),
        (
            "health",
            "other",
            Box::new(|d| d == "unknown -> down: reported by ingest"),
        ),
        (
            "apply",
            "-",
            Box::new(|d| d == "1 change(s): changed settings collector"),
        ),
        (
            "collector_stop",
            "-",
            Box::new(|d| d.contains("stopped by a signal")),
        ),
    ];
    assert_eq!(all.len(), want.len(), "{all:#?}");
    for ((kind, node, detail), (wk, wn, wd)) in all.iter().zip(&want) {
        assert!(
            kind == wk && node == wn && wd(detail),
            "expected {wk} {wn}, got {kind} {node} {detail:?}\n{all:#?}"
        );
    }

    // Filters: a node, the newest N, a time window.
    let kam = events(&log_json(&db, &["--node", "kam"]));
    assert_eq!(kam.len(), 3, "{kam:?}");
    assert_eq!(log_json(&db, &["--limit", "2"]).len(), 2);
    assert_eq!(log_json(&db, &["--since", "1h"]).len(), want.len());
    let text = support::stdout(&db.run(&["log", "--node", "other"]));
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.contains(" other ")), "{text}");

    // status shows the last few and counts them all.
    let st = support::stdout(&db.run(&["status"]));
    assert!(
        st.contains("recent changes") && st.contains("collector_stop"),
        "{st}"
    );
    let prom = support::stdout(&db.run(&["status", "--prometheus"]));
    for line in [
        "pdns_ha_events_total{kind=\"health\"} 4",
        "pdns_ha_events_total{kind=\"apply\"} 2",
        "pdns_ha_events_total{kind=\"drain\"} 1",
        "pdns_ha_events_total{kind=\"collector_stop\"} 1",
    ] {
        assert!(prom.lines().any(|l| l == line), "{line} missing:\n{prom}");
    }

    // Bad arguments say what to write.
    let o = db.run(&["log", "--since", "yesterday"]);
    assert!(!o.status.success());
    assert!(
        support::stderr(&o).contains("e.g. 90s, 15m, 2h, 7d"),
        "{}",
        support::stderr(&o)
    );
    let o = db.run(&["log", "--node", "nope"]);
    assert!(!o.status.success());
    assert!(support::stderr(&o).contains("unknown node \"nope\""));
}
