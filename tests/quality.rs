//! Routing by call quality end to end: two fake FreeSWITCH event sockets
//! send CHANNEL_HANGUP_COMPLETE events (realistic ones, a few KB each) with
//! a different receive MOS per client network; `pdns-ha collect` (the built
//! binary) turns them into call quality entries, and a real PowerDNS
//! (`pdns-ha pipe`) answers the quality service from them, per ECS network:
//! best MOS first, near-equal MOS in one priority, latency where no network
//! figure has enough calls, site order where nothing is known; outbound
//! legs, calls without media and garbage events count for nothing. Then
//! the calls of one network get worse and its answer flips.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::collect::Collect;
use support::fake_esl::{
    FakeEsl, FakeEslConfig, Hangup, hangup_body, registration_xml, xmlstatus_body,
};
use support::{Db, Dig, Pdns, PdnsOpts, poll};

const SVC: &str = "_sip._udp.voip.example.com";
/// A few batches of the collector, the 2 s site reload, the coprocess's 1 s
/// decision cache; generous for a loaded machine.
const SOON: Duration = Duration::from_secs(15);
/// Hang-up events a second per node.
const RATE: f64 = 40.0;

fn fake_freeswitch(calls: Vec<Hangup>, regs: &[String]) -> FakeEsl {
    FakeEsl::start(FakeEslConfig {
        heartbeat_every: Duration::from_millis(500),
        xmlstatus: vec![("internal".into(), xmlstatus_body(regs))],
        hangups: calls,
        hangups_per_sec: RATE,
        ..Default::default()
    })
}

fn outbound(ip: &str, mos: f64) -> Hangup {
    Hangup {
        direction: "outbound".into(),
        ..Hangup::call(ip, mos)
    }
}

fn no_media(ip: &str) -> Hangup {
    Hangup {
        mos: None,
        ..Hangup::call(ip, 4.5)
    }
}

/// Asks the service with ECS `subnet` until its tiers are `want`.
#[track_caller]
fn wait_answer(pdns: &Pdns, subnet: &str, want: &[&[&str]]) -> Dig {
    let want: Vec<Vec<String>> = want
        .iter()
        .map(|g| g.iter().map(|s| s.to_string()).collect())
        .collect();
    let ecs = format!("+subnet={subnet}");
    poll(
        &format!("{SVC} SRV for {subnet} answers {want:?}"),
        SOON,
        || {
            let d = pdns.dig(&[SVC, "SRV", &ecs]);
            if d.status == "NOERROR" && d.srv_tiers() == want {
                Ok(d)
            } else {
                Err(format!("{:?} {:?}\n{d}", d.status, d.srv_tiers()))
            }
        },
    )
}

fn node_status(db: &Db, node: &str) -> Value {
    let st = db.status_json();
    st["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["name"] == node))
        .cloned()
        .unwrap_or_else(|| panic!("node {node} missing from status: {st}"))
}

#[test]
fn hangup_events_through_collect_and_powerdns() {
    require_pdns!();
    // 24.64.1.0/24: fs1's calls sound better. 2001:db8:5::/48: fs2's.
    // 10.1.2.0/24: both alike (within the 0.2 tolerance): one priority.
    // 198.51.100.0/24: only fs1's outbound legs and calls without media,
    // which do not count: site order. 192.0.2.0/24: no calls, but fs1's
    // registration there answers its pings faster: latency decides.
    let fs1 = fake_freeswitch(
        vec![
            Hangup::call("24.64.1.7", 4.4),
            Hangup::call("2001:db8:5::7", 3.0),
            Hangup::call("10.1.2.3", 4.1),
            outbound("198.51.100.7", 4.5),
            no_media("198.51.100.8"),
        ],
        &[registration_xml("alice", "192.0.2.7", "Reachable", 10.0)],
    );
    let fs2 = fake_freeswitch(
        vec![
            Hangup::call("24.64.1.8", 3.4),
            Hangup::call("2001:db8:5::8", 4.3),
            Hangup::call("10.1.2.4", 4.0),
        ],
        &[registration_xml("bob", "192.0.2.8", "Reachable", 60.0)],
    );
    let db = Db::new("quality-e2e");
    db.apply_ok(&support::fixture_with(
        "quality",
        &[
            ("FS1_ESL", &fs1.addr_string()),
            ("FS2_ESL", &fs2.addr_string()),
        ],
    ));
    let pdns = Pdns::start(&db.path, PdnsOpts::default());
    let mut collect = Collect::start(&db);

    let d = wait_answer(&pdns, "24.64.1.0/24", &[&["fs1"], &["fs2"]]);
    assert_eq!(d.scope(), Some(24), "figures at /24: {d}");
    let d = wait_answer(&pdns, "2001:db8:5::/48", &[&["fs2"], &["fs1"]]);
    assert_eq!(d.scope(), Some(48), "{d}");
    wait_answer(&pdns, "10.1.2.0/24", &[&["fs1", "fs2"]]);
    wait_answer(&pdns, "198.51.100.0/24", &[&["fs2"], &["fs1"]]);
    wait_answer(&pdns, "192.0.2.0/24", &[&["fs1"], &["fs2"]]);
    // The /8 of 24.64.1.0/24 holds the same calls: a client elsewhere in it
    // is answered from there, with that scope.
    let d = wait_answer(&pdns, "24.99.0.0/24", &[&["fs1"], &["fs2"]]);
    assert_eq!(d.scope(), Some(8), "{d}");

    // What explain and status say.
    let o = db.run(&["explain", SVC, "SRV", "--client", "192.0.2.0/24"]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        text.contains("no call quality figure; measured latency 10.0 ms"),
        "{text}"
    );
    let o = db.run(&["explain", SVC, "SRV", "--client", "24.64.1.0/24", "--json"]);
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = &e["dynamic"][0]["nodes"][0];
    assert_eq!(first["node"], "fs1", "{e}");
    assert_eq!(first["mos"], 4.4, "{e}");
    assert!(first["calls"].as_i64().is_some_and(|c| c >= 3), "{e}");
    assert!(first["loss_pct"].as_f64().is_some_and(|l| l > 0.0), "{e}");
    assert_eq!(first["quality_entry"], "24.64.1.0/24", "{e}");
    assert_eq!(first["reason"], "call quality MOS 4.40", "{e}");
    // fs1: 24.64.1.0/24, 2001:db8:5::/48, 10.1.2.0/24; not 198.51.100.0/24.
    assert_eq!(node_status(&db, "fs1")["quality_networks_fresh"], 3);
    assert_eq!(node_status(&db, "fs2")["quality_networks_fresh"], 3);

    // A garbage event is logged and ignored; the session goes on.
    fs2.push_event(hangup_body(
        &Hangup {
            mos: Some("NaN".into()),
            ..Hangup::call("24.64.1.9", 4.0)
        },
        1,
    ));
    poll("collect logs the garbage event", SOON, || {
        let log = collect.log();
        if log.contains("hang-up event(s) without a usable call quality") && log.contains("NaN") {
            Ok(())
        } else {
            Err(log)
        }
    });

    // fs1's calls from 24.64.1.0/24 get bad: the answer flips.
    fs1.update(|c| c.hangups[0] = Hangup::call("24.64.1.7", 2.0));
    wait_answer(&pdns, "24.64.1.0/24", &[&["fs2"], &["fs1"]]);
    collect.assert_running();
    assert_eq!((fs1.connections(), fs2.connections()), (1, 1));
    assert!(fs1.hangups_sent() > 20 && fs2.hangups_sent() > 20);
    pdns.assert_no_backend_trouble();
}
