//! Dynamic answers through a real PowerDNS 4.7 (pipe
//! ABI 5, ECS on): latency ordering per client network with the ECS scope of
//! the entry used, named networks, health, fail open, drains, the load
//! policy, and `explain` agreeing with the DNS.
//!
//! Client networks are documentation ranges given as ECS options
//! (`dig +subnet=`); every packet goes to 127.0.0.1. Dynamic answers carry a
//! non-zero scope, which keeps them out of PowerDNS's caches, so changes show
//! within the coprocesses' refresh (250 ms) and decision cache (1 s).

mod support;

use std::sync::LazyLock;
use std::time::Duration;

use support::{Db, Dig, Pdns, PdnsOpts, Srv, poll};

const LATENCY: &str = "_sip._udp.voip.example.com";
const LOAD: &str = "_sip._tcp.voip.example.com";
const POOL: &str = "sip.voip.example.com";
const MTL1: &str = "mtl1.voip.example.com";
const VAN1: &str = "van1.voip.example.com";
const TOR1: &str = "tor1.voip.example.com";

/// Network A: mtl1 is closest.
const NET_A: &str = "198.51.100.0/24";
/// Network B: van1 is closest.
const NET_B: &str = "192.0.2.0/24";
/// No data at any level.
const NET_C: &str = "203.0.113.0/24";
/// Only a /16 sample covers it.
const NET_D16: &str = "198.19.0.0/16";
const NET_D: &str = "198.19.44.0/24";
/// Inside the named network "vancouver" (prefer van1), no data.
const NET_VAN: &str = "100.64.5.0/24";

/// The site (tests/fixtures/three_nodes_dynamic.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("three_nodes_dynamic"));

/// Latencies: A prefers mtl1, B van1, D (a /16 sample only) tor1. The gaps
/// exceed the 5 ms / 10 % tolerance, so every node has its own tier.
const LATENCIES: &str = "\
latency mtl1 198.51.100.0/24 10
latency van1 198.51.100.0/24 80
latency tor1 198.51.100.0/24 40
latency van1 192.0.2.0/24 12
latency mtl1 192.0.2.0/24 90
latency tor1 192.0.2.0/24 45
latency tor1 198.19.0.0/16 20
latency mtl1 198.19.0.0/16 60
latency van1 198.19.0.0/16 70
";

fn start(tag: &str) -> (Db, Pdns) {
    let db = Db::new(tag);
    db.apply_ok(&SITE);
    let pdns = Pdns::start(&db.path, PdnsOpts::default());
    (db, pdns)
}

fn srv(pdns: &Pdns, name: &str, subnet: Option<&str>) -> Dig {
    let sub = subnet.map(|s| format!("+subnet={s}"));
    let mut args = vec![name, "SRV"];
    if let Some(s) = &sub {
        args.push(s);
    }
    let d = pdns.dig(&args);
    assert_eq!(d.status, "NOERROR", "{d}");
    d
}

/// (priority, target) of each SRV record, by priority.
fn order(d: &Dig) -> Vec<(u16, String)> {
    d.srvs()
        .into_iter()
        .map(|s| (s.priority, s.target))
        .collect()
}

fn tiers(v: &[(u16, &str)]) -> Vec<(u16, String)> {
    v.iter().map(|&(p, t)| (p, t.to_string())).collect()
}

/// Polls (2 s) until ten answers in a row (so from every coprocess) for
/// `name` and `subnet` satisfy `ok`; returns the last.
#[track_caller]
fn until(
    pdns: &Pdns,
    what: &str,
    name: &str,
    subnet: Option<&str>,
    ok: impl Fn(&Dig) -> bool,
) -> Dig {
    poll(what, Duration::from_secs(2), || {
        let mut last = None;
        for _ in 0..10 {
            let d = srv(pdns, name, subnet);
            if !ok(&d) {
                return Err(d.to_string());
            }
            last = Some(d);
        }
        Ok(last.expect("ten answers"))
    })
}

#[test]
fn latency_orders_per_client_network_with_the_scope_of_the_entry() {
    require_pdns!();
    let (db, pdns) = start("latency");
    db.ingest_ok(LATENCIES);

    // Network A: mtl1 first; the /24 entries decide, scope 24.
    let want_a = tiers(&[(0, MTL1), (1, TOR1), (2, VAN1)]);
    let d = until(&pdns, "network A order", LATENCY, Some(NET_A), |d| {
        order(d) == want_a
    });
    assert_eq!(d.scope(), Some(24), "{d}");
    assert!(d.srvs().iter().all(|s| s.port == 5060 && s.weight == 100));
    assert!(d.records("SRV").iter().all(|r| r.ttl == 30), "{d}");
    // A host address inside A (source /32) gets the same, at scope 24.
    let d = srv(&pdns, LATENCY, Some("198.51.100.77/32"));
    assert_eq!(order(&d), want_a, "{d}");
    assert_eq!(d.scope(), Some(24), "{d}");

    // Network B: the reverse.
    let d = srv(&pdns, LATENCY, Some(NET_B));
    assert_eq!(order(&d), tiers(&[(0, VAN1), (1, TOR1), (2, MTL1)]), "{d}");
    assert_eq!(d.scope(), Some(24), "{d}");

    // A network covered only by a /16 sample: scope 16.
    let d = srv(&pdns, LATENCY, Some(NET_D));
    assert_eq!(order(&d), tiers(&[(0, TOR1), (1, MTL1), (2, VAN1)]), "{d}");
    assert_eq!(d.scope(), Some(16), "{d}");
    let d = srv(&pdns, LATENCY, Some(NET_D16));
    assert_eq!(d.scope(), Some(16), "{d}");

    // No data: the site order, at the fine level's scope.
    let d = srv(&pdns, LATENCY, Some(NET_C));
    assert_eq!(order(&d), tiers(&[(0, MTL1), (1, VAN1), (2, TOR1)]), "{d}");
    assert_eq!(d.scope(), Some(24), "{d}");

    // A named network without data: its `prefer` first, then the site order.
    let d = srv(&pdns, LATENCY, Some(NET_VAN));
    assert_eq!(order(&d), tiers(&[(0, VAN1), (1, MTL1), (2, TOR1)]), "{d}");
    assert_eq!(d.scope(), Some(24), "{d}");

    // Answers for A and B alternate correctly: nothing leaks through
    // PowerDNS's caches between client networks.
    for _ in 0..3 {
        for (net, first) in [(NET_A, MTL1), (NET_B, VAN1), (NET_C, MTL1)] {
            let d = srv(&pdns, LATENCY, Some(net));
            assert_eq!(d.srv_targets()[0], first, "{net}: {d}");
        }
    }

    // A measurement inside the named network (another /24) orders it for
    // the whole network: mtl1 measured first, then the preferred van1.
    db.ingest_ok("latency mtl1 100.64.9.7 8\n");
    let d = until(
        &pdns,
        "named network measured",
        LATENCY,
        Some(NET_VAN),
        |d| order(d) == tiers(&[(0, MTL1), (1, VAN1), (2, TOR1)]),
    );
    assert_eq!(d.scope(), Some(16), "the /16 level or the network: {d}");

    // Without ECS the resolver's address (127.0.0.1) is the client: no data
    // for it, the site order.
    let d = srv(&pdns, LATENCY, None);
    assert_eq!(order(&d), tiers(&[(0, MTL1), (1, VAN1), (2, TOR1)]), "{d}");
    pdns.assert_no_backend_trouble();
}

#[test]
fn down_nodes_are_left_out_and_all_down_fails_open() {
    require_pdns!();
    let (db, pdns) = start("health");
    db.ingest_ok(LATENCIES);
    until(&pdns, "mtl1 first for A", LATENCY, Some(NET_A), |d| {
        d.srv_targets() == [MTL1, TOR1, VAN1]
    });

    db.ingest_ok("health mtl1 down\n");
    let d = until(&pdns, "mtl1 left out", LATENCY, Some(NET_A), |d| {
        d.srv_targets() == [TOR1, VAN1]
    });
    assert_eq!(order(&d), tiers(&[(0, TOR1), (1, VAN1)]), "{d}");
    assert_eq!(d.scope(), Some(24), "{d}");
    // For every client and every dynamic name.
    let d = srv(&pdns, LATENCY, Some(NET_B));
    assert_eq!(d.srv_targets(), [VAN1, TOR1], "{d}");
    let d = srv(&pdns, LOAD, Some(NET_C));
    assert!(!d.srv_targets().contains(&MTL1.to_string()), "{d}");
    assert_eq!(d.srvs().len(), 2, "{d}");

    // Overloaded goes last.
    db.ingest_ok("health tor1 overloaded\n");
    until(&pdns, "tor1 last", LATENCY, Some(NET_A), |d| {
        d.srv_targets() == [VAN1, TOR1]
    });

    // Every node down: every node is answered (fail open), in site order.
    db.ingest_ok("health van1 down\nhealth tor1 down\n");
    let d = until(&pdns, "fail open", LATENCY, Some(NET_A), |d| {
        d.srvs().len() == 3
    });
    assert_eq!(order(&d), tiers(&[(0, MTL1), (1, VAN1), (2, TOR1)]), "{d}");
    let d = pdns.dig(&[POOL, "A", &format!("+subnet={NET_A}")]);
    assert_eq!(
        d.data("A"),
        ["192.0.2.30", "198.51.100.10", "203.0.113.20"],
        "a pool failing open answers every node: {d}"
    );
    assert!(
        pdns.log().contains("fail open"),
        "fail open is logged:\n{}",
        pdns.log()
    );

    // Back up: measured order again.
    db.ingest_ok("health mtl1 up\nhealth van1 up\nhealth tor1 up\n");
    until(&pdns, "all up again", LATENCY, Some(NET_A), |d| {
        d.srv_targets() == [MTL1, TOR1, VAN1]
    });
    pdns.assert_no_backend_trouble();
}

#[test]
fn drain_removes_a_node_and_undrain_brings_it_back() {
    require_pdns!();
    let (db, pdns) = start("drain");
    db.ingest_ok(LATENCIES);
    until(&pdns, "van1 first for B", LATENCY, Some(NET_B), |d| {
        d.srv_targets() == [VAN1, TOR1, MTL1]
    });

    let o = db.run(&["node", "drain", "van1"]);
    support::assert_ok("node drain van1", &o);
    let d = until(&pdns, "van1 drained", LATENCY, Some(NET_B), |d| {
        d.srv_targets() == [TOR1, MTL1]
    });
    assert_eq!(order(&d), tiers(&[(0, TOR1), (1, MTL1)]), "{d}");
    let d = srv(&pdns, LOAD, Some(NET_B));
    assert!(!d.srv_targets().contains(&VAN1.to_string()), "{d}");
    let status = db.status_json();
    let van1 = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "van1")
        .unwrap();
    assert_eq!(van1["drained"], true, "{status}");

    let o = db.run(&["node", "undrain", "van1"]);
    support::assert_ok("node undrain van1", &o);
    until(&pdns, "van1 back", LATENCY, Some(NET_B), |d| {
        d.srv_targets() == [VAN1, TOR1, MTL1]
    });

    // An unknown node is an error, and changes nothing.
    let o = db.run(&["node", "drain", "ghost"]);
    assert!(!o.status.success());
    assert!(support::stderr(&o).contains("unknown node"), "{o:?}");
    let d = srv(&pdns, LATENCY, Some(NET_B));
    assert_eq!(d.srvs().len(), 3, "{d}");
    pdns.assert_no_backend_trouble();
}

#[test]
fn load_orders_by_free_capacity_with_proportional_weights() {
    require_pdns!();
    let (db, pdns) = start("load");
    // Free: van1 900, tor1 850 (within 10 %: same tier), mtl1 100.
    db.ingest_ok("load mtl1 900 1000\nload van1 100 1000\nload tor1 150 1000\n");
    let d = until(&pdns, "load order", LOAD, Some(NET_C), |d| {
        order(d) == tiers(&[(0, TOR1), (0, VAN1), (1, MTL1)])
    });
    let srvs = d.srvs();
    let w = |t: &str| srvs.iter().find(|s| s.target == t).unwrap().weight;
    // Weights proportional to free capacity within the tier: 900:850.
    assert_eq!((w(VAN1), w(TOR1)), (514, 486), "{d}");
    assert!(w(MTL1) > 0, "{d}");
    assert!(srvs.iter().all(|s| s.port == 5060), "{d}");
    // The load policy does not depend on the client's network; its scope is
    // the fine level.
    assert_eq!(d.scope(), Some(24), "{d}");
    let d = srv(&pdns, LOAD, Some(NET_A));
    assert_eq!(order(&d), tiers(&[(0, TOR1), (0, VAN1), (1, MTL1)]), "{d}");
    // The pool answers the best node's address (answers = 1).
    let d = pdns.dig(&[POOL, "A", &format!("+subnet={NET_C}")]);
    assert_eq!(d.data("A"), ["203.0.113.20"], "{d}");
    assert_eq!(d.scope(), Some(24), "{d}");

    // Shift the loads: mtl1 is now the emptiest, alone in its tier.
    db.ingest_ok("load mtl1 50 1000\nload van1 950 1000\nload tor1 600 1000\n");
    let d = until(&pdns, "load order flipped", LOAD, Some(NET_C), |d| {
        order(d) == tiers(&[(0, MTL1), (1, TOR1), (2, VAN1)])
    });
    assert_eq!(d.srvs()[0].weight, 1000, "alone in its tier: {d}");
    let d = poll("the pool follows", Duration::from_secs(2), || {
        let d = pdns.dig(&[POOL, "A", &format!("+subnet={NET_C}")]);
        if d.data("A") == ["198.51.100.10"] {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    });
    assert_eq!(d.status, "NOERROR");

    // Idle CPU counts: van1 has the most free sessions but almost no CPU.
    db.ingest_ok("load mtl1 500 1000 10\nload van1 100 1000 5\nload tor1 400 1000 90\n");
    until(&pdns, "idle CPU counts", LOAD, Some(NET_C), |d| {
        d.srv_targets()[0] == TOR1
    });
    pdns.assert_no_backend_trouble();
}

/// The records `explain` prints are the records the DNS answer carries.
#[test]
fn explain_prints_the_answer_powerdns_gives() {
    require_pdns!();
    let (db, pdns) = start("explain");
    db.ingest_ok(LATENCIES);
    db.ingest_ok(
        "load mtl1 300 1000\nload van1 700 1000\nload tor1 100 1000\nhealth van1 overloaded\n",
    );
    until(&pdns, "data visible", LATENCY, Some(NET_A), |d| {
        d.srv_targets() == [MTL1, TOR1, VAN1]
    });
    for (name, client) in [
        (LATENCY, NET_A),
        (LATENCY, NET_B),
        (LATENCY, NET_D),
        (LATENCY, NET_C),
        (LATENCY, NET_VAN),
        (LOAD, NET_A),
    ] {
        let d = srv(&pdns, name, Some(client));
        let dns = d.srvs();
        assert!(!dns.is_empty(), "{d}");

        let o = db.run(&["explain", name, "SRV", "--client", client, "--json"]);
        support::assert_ok("explain --json", &o);
        let e: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        let mut from_json: Vec<Srv> = e["records"]
            .as_array()
            .expect("records")
            .iter()
            .filter(|r| r["type"] == "SRV")
            .map(|r| {
                assert_eq!(r["name"], name, "{e}");
                assert_eq!(Some(r["scope"].as_u64().unwrap() as u8), d.scope(), "{e}");
                Srv::parse(r["content"].as_str().unwrap()).expect("SRV content")
            })
            .collect();
        from_json.sort();
        assert_eq!(from_json, dns, "explain --json vs DNS for {name} {client}");
        let dynamic = &e["dynamic"][0];
        assert_eq!(dynamic["name"], name, "{e}");
        assert_eq!(dynamic["nodes"].as_array().unwrap().len(), 3, "{e}");

        let o = db.run(&["explain", name, "SRV", "--client", client]);
        support::assert_ok("explain", &o);
        let text = support::stdout(&o);
        let mut from_text: Vec<Srv> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f.len() >= 5 && f[3] == "SRV").then(|| {
                    assert_eq!(f[0], name, "{text}");
                    Srv::parse(f[4]).expect("SRV content")
                })
            })
            .collect();
        from_text.sort();
        assert_eq!(
            from_text, dns,
            "explain vs DNS for {name} {client}:\n{text}"
        );
        for node in ["mtl1", "van1", "tor1"] {
            assert!(text.contains(node), "every node is explained:\n{text}");
        }
    }
    // The text says why.
    let o = db.run(&["explain", LATENCY, "--client", NET_A]);
    let text = support::stdout(&o);
    assert!(text.contains("measured latency 10.0 ms"), "{text}");
    assert!(text.contains("overloaded"), "{text}");
    assert!(text.contains("scope=/24"), "{text}");
    pdns.assert_no_backend_trouble();
}

/// A coprocess killed between questions (`kill -9`, a crash, the OOM killer)
/// never turns an existing name into NXDOMAIN, nor the zone into REFUSED.
/// PowerDNS notices the death on its next question to that coprocess and
/// answers that lookup with nothing, which it caches as a negative answer
/// for `negquery-cache-ttl` (60 s); with the standby backend of
/// pdns.conf.example (`launch=pipe,pipe:standby`), the standby coprocess of
/// the same thread answers that lookup instead. One coprocess dies at a
/// time, primaries and standbys alike, UDP and TCP, and each round goes on
/// until PowerDNS has started its replacement.
#[test]
fn a_killed_coprocess_never_turns_a_name_into_nxdomain() {
    if !support::pdns::tools_available() {
        return;
    }
    let (db, pdns) = start("killed");
    db.ingest_ok(LATENCIES);
    let launched = |p: &Pdns| p.log().matches("Backend launched with banner").count();
    let mut statuses: std::collections::BTreeMap<String, usize> = Default::default();
    let mut wrong = Vec::new();
    let mut asked = 0;
    let mut ask = |round: usize, batch: usize| {
        for i in 0..12 {
            asked += 1;
            let subnet = format!("+subnet=198.18.{}.0/24", (batch * 12 + i) % 250);
            // Names that exist, and one that does not (its empty answer is
            // what makes PowerDNS turn to a standby, and restart it).
            let nx = format!("nx-{round}-{batch}-{i}.voip.example.com");
            let (name, rtype, want) = [
                (LATENCY, "SRV", "NOERROR"),
                (POOL, "A", "NOERROR"),
                ("voip.example.com", "SOA", "NOERROR"),
                (nx.as_str(), "A", "NXDOMAIN"),
            ][i % 4];
            let tcp = if i % 6 == 5 { "+tcp" } else { "+notcp" };
            let d = pdns.dig(&[name, rtype, &subnet, tcp]);
            *statuses.entry(d.status.clone()).or_default() += 1;
            if d.status != want || (want == "NOERROR" && d.answer.is_empty()) {
                wrong.push(format!("round {round}, {name} {rtype} {tcp}: {}", d.status));
            }
        }
    };
    ask(0, 0);
    let before = launched(&pdns);
    let rounds = 8;
    for round in 1..=rounds {
        let mut all = pdns.coprocesses();
        all.sort_unstable();
        let n = all.len();
        let victim = all[(round * 7) % n];
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        // SIGKILL acts when the victim is next scheduled: on a busy machine
        // it may still look alive here, and counting it would start the
        // next round (and maybe kill its partner: both backends of one
        // thread dead is the case the standby does not cover).
        support::poll(
            "the killed coprocess is gone",
            Duration::from_secs(5),
            || {
                if pdns.coprocesses().contains(&victim) {
                    Err(format!("{victim} still running"))
                } else {
                    Ok(())
                }
            },
        );
        let mut batch = 0;
        while pdns.coprocesses().len() < n {
            batch += 1;
            assert!(batch < 20, "PowerDNS did not restart coprocess {victim}");
            ask(round, batch);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {asked} answers wrong after coprocesses were killed ({statuses:?}):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(
        launched(&pdns) >= before + rounds,
        "PowerDNS restarted every killed coprocess"
    );
}
