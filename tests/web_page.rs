//! The status page (`/` of the collector's HTTP server) in a real browser
//! (`chromium-headless-shell`, tests/support/chromium.rs).
//!
//! - `the_status_page_in_a_browser`: `pdns-ha collect` with `[collector]
//!   http` against a fake fleet (one node up, one whose probe goes to a
//!   closed port, one drained with `pdns-ha node drain`, one probed over
//!   TLS at a Kamailio whose certificate expires in 5 days, one whose
//!   health and probe are written through the store as the collector
//!   writes them, with a hostile reason), client networks recorded by a
//!   coprocess, call quality lines ingested for a quality service, and an
//!   event whose node and detail are hostile text. The browser's DOM has
//!   every node with its health and drain (data attributes), the down
//!   nodes' probe reasons (the hostile one escaped), the certificate's
//!   expiry as a warning (row, header pill, title), the call quality
//!   networks per node as `status` counts them, the events (the hostile one
//!   escaped: no element made of it), a chart per node, and the networks
//!   with the node each service sends them to (the quality service by
//!   MOS); a screenshot is saved (copied to `PDNS_HA_SCREENSHOT` when set).
//! - `a_realistic_fleet_for_the_documentation` (ignored; run by hand with
//!   `PDNS_HA_SCREENSHOT=docs/status-page.png`): six nodes with changing
//!   loads, probe round trips from 1 to 70 ms, a node overloaded for a
//!   while, one that goes down, one drained, one probed over TLS whose
//!   certificate expires in 9 days, call quality from the phones'
//!   networks for a quality service, clients asking from several
//!   networks, for `PDNS_HA_PAGE_MINUTES` minutes (default 5); then the
//!   screenshot of the README.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use support::chromium::{self, Chromium};
use support::collect::Collect;
use support::fake_esl::{FakeEsl, FakeEslConfig, registration_xml, xmlstatus_body};
use support::kamailio::{self, Kamailio, TlsListen};
use support::sip_responder::SipResponder;
use support::test_ca::{Signer, TestCa, asn1_time};
use support::{Coproc, Db, assert_ok, fixture_with, free_port, poll};

use pdns_ha::collector::ProbeOutcome;
use pdns_ha::collector::sip::{self, SipTarget};
use pdns_ha::collector::tls::{self, TlsProbe};

const LAT: &str = "_sip._udp.voip.example.com";
const LOAD: &str = "_sip._tcp.voip.example.com";
const QUALITY: &str = "_sips._tcp.voip.example.com";

/// A Kamailio answering SIP OPTIONS over TLS on a free port with a
/// certificate for `host` (and 127.0.0.1) from the test CA made in `dir`,
/// valid until `not_after`: the CA's file and the probe target.
fn tls_node(dir: &Path, host: &str, not_after: i64) -> (Kamailio, String, String) {
    let ca = TestCa::new(dir);
    let leaf = ca.leaf(
        "node",
        &format!("DNS:{host},IP:127.0.0.1"),
        "20200101000000Z",
        &asn1_time(not_after),
        Signer::Test,
    );
    let (port, tcp) = (free_port(), free_port());
    let target: SipTarget = format!("tls:127.0.0.1:{port}").parse().unwrap();
    let ca_file = ca.ca_cert().to_str().unwrap().to_string();
    let config = tls::client_config(Some(&ca_file.parse().unwrap())).expect("the test CA loads");
    let probe = TlsProbe::new(host, None, Ok(config));
    let listen = TlsListen {
        port,
        cert: leaf.cert,
        key: leaf.key,
    };
    let k = Kamailio::start_tls(&[listen], tcp, || {
        matches!(
            sip::probe_with(&target, Some(&probe), Duration::from_millis(300)).outcome,
            ProbeOutcome::Answered { .. }
        )
    });
    (k, ca_file, format!("tls:127.0.0.1:{port}"))
}

/// Writes a node's health and probe as the collector writes them (one
/// batch through the store), with `reason` as the probe's detail.
fn write_probe(db: &Path, node: &str, state: pdns_ha::metrics::Health, reason: &str) {
    let mut store =
        pdns_ha::store::Store::open_existing(db, Duration::from_secs(5)).expect("open the store");
    let now = pdns_ha::metrics::now();
    let health = pdns_ha::metrics::Metric::Health {
        node: node.into(),
        state,
        ts: now,
        probe_rtt_ms: None,
        reason: Some(reason.into()),
        cert_not_after: None,
    };
    store
        .write_metrics(&[health], "collector", None, now)
        .expect("write the probe");
}

/// The inside of `node`'s row (up to `</tr>`) in a page or DOM.
fn node_cells<'a>(dom: &'a str, node: &str) -> &'a str {
    let at = dom
        .find(&format!("data-node=\"{node}\" data-health="))
        .unwrap_or_else(|| panic!("no row for node {node} in:\n{dom}"));
    &dom[at..at + dom[at..].find("</tr>").expect("the row's end")]
}

/// `GET path` over HTTP/1.0: the status line, the headers and the body.
fn get(addr: SocketAddr, path: &str) -> Result<(String, String, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers: {text:?}"))?;
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok((
        status.to_string(),
        headers.to_ascii_lowercase(),
        body.to_string(),
    ))
}

/// A UDP port on loopback with nothing listening: a probe sent there fails
/// at once (ICMP port unreachable).
fn closed_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
    s.local_addr().expect("its address").port()
}

/// Each node's (health, drained) as `status --json` gives them.
fn states(db: &Db) -> Vec<(String, String, bool)> {
    db.status_json()["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["health"].as_str().unwrap().to_string(),
                n["drained"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// Adds an event as the store writes them, with the given node and detail.
fn add_event(db: &Path, node: &str, detail: &str) {
    let c = rusqlite::Connection::open(db).expect("open the test database");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.execute(
        "INSERT INTO event(at, kind, node, detail) VALUES (strftime('%s','now'), 'health', ?1, ?2)",
        [node, detail],
    )
    .expect("insert an event");
}

/// The `<tr class="node" ...>` start tag of `node` in a page or DOM.
fn node_row<'a>(dom: &'a str, node: &str) -> &'a str {
    let at = dom
        .find(&format!("data-node=\"{node}\" data-health="))
        .unwrap_or_else(|| panic!("no row for node {node} in:\n{dom}"));
    let start = dom[..at].rfind("<tr").expect("the row's start");
    let end = at + dom[at..].find('>').expect("the tag's end");
    &dom[start..=end]
}

#[test]
fn the_status_page_in_a_browser() {
    let db = Db::new("web-page");
    let Some(browser) = Chromium::find(db.dir.path()) else {
        return;
    };
    if !kamailio::tls_available() {
        eprintln!(
            "SKIPPED: Kamailio's TLS module (kamailio-tls-modules) is not installed; this test did not run"
        );
        return;
    }
    // tls1's certificate ends in 5 days (and an hour: no day boundary).
    let not_after = pdns_ha::metrics::now() + 5 * 86_400 + 3600;
    let (_kamailio, tls_ca, tls_probe) =
        tls_node(db.dir.path(), "tls1.voip.example.com", not_after);
    let up_esl = FakeEsl::start(FakeEslConfig::default());
    up_esl.set_load(250, 1000, 80.0);
    let down_esl = FakeEsl::start(FakeEslConfig::default());
    let up = SipResponder::start(200);
    let drained = SipResponder::start(200);
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    db.apply_ok(&fixture_with(
        "status_page",
        &[
            ("UP_ESL", &up_esl.addr_string()),
            ("UP_PROBE", &up.probe_spec()),
            ("DOWN_ESL", &down_esl.addr_string()),
            (
                "DOWN_PROBE",
                &format!("udp:127.0.0.1:{}", closed_udp_port()),
            ),
            ("DRAINED_PROBE", &drained.probe_spec()),
            ("TLS_PROBE", &tls_probe),
            ("TLS_CA", &tls_ca),
            ("HTTP", &port.to_string()),
        ],
    ));
    let _collect = Collect::start(&db);
    assert_ok("node drain", &db.run(&["node", "drain", "drained1"]));
    // A name and a detail that would be markup if they were not escaped.
    let evil_node = "<script>alert(\"x\")</script>";
    let evil_detail = "up -> down: <b>bold</b> & \"quoted\" 'single' — café ✓";
    add_event(&db.path, evil_node, evil_detail);
    // Client networks, as a coprocess records them (at its exit).
    let mut c = Coproc::start(&db.path, 3, &[]);
    for (net, n) in [("198.51.100.0/24", 3), ("203.0.113.0/24", 1)] {
        let remote = net.split('/').next().unwrap();
        for _ in 0..n {
            c.query(LAT, "SRV", remote, net);
            c.query(LOAD, "SRV", remote, net);
            c.query(QUALITY, "SRV", remote, net);
        }
    }
    assert!(c.close().success());
    // Call quality from two networks: tls1 is better for one, up1 for the
    // other (the quality service needs 2 calls a network).
    let mut lines = String::new();
    for _ in 0..3 {
        lines.push_str("quality tls1 198.51.100.7 4.4 0 2\nquality up1 198.51.100.8 3.0 4 30\n");
        lines.push_str("quality tls1 203.0.113.9 3.1 5 25\nquality up1 203.0.113.10 4.3 0 3\n");
    }
    lines.push_str("quality up1 192.0.2.77 4.0\n");
    let o = db.ingest(&lines);
    assert_ok("ingest quality", &o);

    let want =
        |name: &str, health: &str, drained: bool| (name.to_string(), health.to_string(), drained);
    poll(
        "the collector stores every node's state",
        Duration::from_secs(15),
        || {
            // status lists the nodes by name.
            let s = states(&db);
            let expected = vec![
                want("down1", "down", false),
                want("drained1", "up", true),
                want("ext1", "unknown", false),
                want("tls1", "up", false),
                want("up1", "up", false),
            ];
            if s == expected {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        },
    );
    // ext1 goes down, its probe's reason hostile text (it would be markup
    // if it were not escaped). Fresh for health_max_age_s (60 s).
    let evil_reason = "SIP probe: tls:ext1:5061: <img src=x onerror=alert(1)> & \"bad\" 'cert'";
    write_probe(
        &db.path,
        "ext1",
        pdns_ha::metrics::Health::Down,
        evil_reason,
    );
    // The page is served (read-only, HTML) and the history has been fed:
    // up1's chart has its round trip (a step is 10 s).
    let page = poll(
        "the page shows up1's probe round trip in its chart",
        Duration::from_secs(25),
        || {
            let (status, headers, body) = get(addr, "/")?;
            if !status.contains(" 200 ") {
                return Err(status);
            }
            let chart = body
                .split("<div class=\"chart\" data-node=\"up1\">")
                .nth(1)
                .and_then(|c| c.split("</svg>").next())
                .ok_or("no chart for up1")?;
            if !chart.contains("class=\"rtt\"") {
                return Err("no round trip in up1's chart yet".into());
            }
            Ok((headers, body))
        },
    );
    assert!(
        page.0.contains("content-type: text/html; charset=utf-8"),
        "{}",
        page.0
    );
    assert!(!page.1.contains("<script"), "the page carries no script");

    let url = format!("http://{addr}/");
    let dom = browser.dump_dom(&url);
    // Nodes, their health and drain.
    assert!(
        node_row(&dom, "up1").contains("data-health=\"up\" data-drained=\"no\""),
        "{dom}"
    );
    assert!(
        node_row(&dom, "down1").contains("data-health=\"down\" data-drained=\"no\""),
        "{dom}"
    );
    assert!(
        node_row(&dom, "drained1").contains("data-health=\"up\" data-drained=\"yes\""),
        "{dom}"
    );
    assert!(
        node_row(&dom, "ext1").contains("data-health=\"down\" data-drained=\"no\""),
        "{dom}"
    );
    assert_eq!(dom.matches("<tr class=\"node ").count(), 5, "{dom}");
    // Why the down nodes are down: down1's probe as the collector saw it,
    // ext1's hostile reason escaped; none for a node that answers.
    let reason = |node: &str| {
        let at = dom.find(&format!(
            "<tr class=\"why h-down d-no\" data-why=\"{node}\">"
        ))?;
        let r = dom[at..].split("<div class=\"reason small\">").nth(1)?;
        Some(r[..r.find("</div>").unwrap()].to_string())
    };
    let down1 = reason("down1").expect("down1's reason");
    assert!(down1.starts_with("SIP probe: udp:127.0.0.1:"), "{down1}");
    assert_eq!(
        reason("ext1").as_deref(),
        Some("SIP probe: tls:ext1:5061: &lt;img src=x onerror=alert(1)&gt; &amp; \"bad\" 'cert'"),
        "{dom}"
    );
    assert!(!dom.contains("<img"), "hostile text became markup:\n{dom}");
    for node in ["up1", "tls1", "drained1"] {
        assert_eq!(reason(node), None, "{node}: {dom}");
    }
    assert_eq!(dom.matches("<tr class=\"why ").count(), 2, "{dom}");
    // tls1's certificate: its end and a warning, in the row, the header
    // and the title; the others have none.
    assert!(
        node_row(&dom, "tls1").contains("data-cert=\"expiring\""),
        "{dom}"
    );
    let date = &pdns_ha::clock::utc(not_after)[..10];
    assert!(
        node_cells(&dom, "tls1").contains(&format!("<div class=\"cert small warn\" title=\"the TLS certificate the SIP probe was shown expires {}\">cert until {date}, 5 days</div>", pdns_ha::clock::utc(not_after))),
        "{dom}"
    );
    for node in ["up1", "down1", "drained1", "ext1"] {
        assert!(
            node_row(&dom, node).contains("data-cert=\"none\""),
            "{node}: {dom}"
        );
    }
    assert!(
        dom.contains("data-count=\"cert\" title=\"TLS certificates of SIP probes that expire within 14 days, or have\">1 cert expiring</span>"),
        "{dom}"
    );
    assert!(
        dom.contains("<title>pdns-ha: 2 down, 1 cert expiring</title>"),
        "{dom}"
    );
    // Call quality networks per node, as `status` counts them.
    let status = db.status_json();
    for n in status["nodes"].as_array().unwrap() {
        let name = n["name"].as_str().unwrap();
        let (fresh, all) = (
            n["quality_networks_fresh"].as_i64().unwrap(),
            n["quality_entries"].as_i64().unwrap(),
        );
        let cell = node_cells(&dom, name)
            .split("<td class=\"num quality\">")
            .nth(1)
            .map(|c| c[..c.find("</td>").unwrap()].to_string())
            .expect("a quality cell");
        let want = if all == 0 {
            "<span class=\"mute\">–</span>".to_string()
        } else {
            format!("{fresh} <span class=\"mute\">/ {all}</span>")
        };
        assert_eq!(cell, want, "{name}: {n}");
    }
    let fresh = |name: &str| {
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap()["quality_networks_fresh"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(
        (fresh("up1"), fresh("tls1"), fresh("down1")),
        (3, 2, 0),
        "{status}"
    );
    // The events: the drain, down1 going down, the hostile one escaped.
    assert!(
        dom.contains("data-kind=\"drain\" data-node=\"drained1\""),
        "{dom}"
    );
    assert!(
        dom.contains("data-kind=\"health\" data-node=\"down1\""),
        "{dom}"
    );
    assert!(dom.contains("data-kind=\"apply\""), "{dom}");
    assert!(
        !dom.contains("<script"),
        "hostile text became markup:\n{dom}"
    );
    assert!(
        !dom.contains("<b>bold"),
        "hostile text became markup:\n{dom}"
    );
    assert!(
        dom.contains("&lt;b&gt;bold&lt;/b&gt; &amp; \"quoted\" 'single' — café ✓"),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;script&gt;alert(\"x\")&lt;/script&gt;"),
        "{dom}"
    );
    // A chart per node, with its time axis.
    assert_eq!(dom.matches("<svg class=\"history\"").count(), 5, "{dom}");
    assert!(dom.contains("−60 min") && dom.contains(">now<"), "{dom}");
    // The busiest networks, most queries first; the latency and load
    // services send them to up1 (down1 is down, drained1 drained), the
    // quality service to the node with the better MOS from there.
    let a = dom
        .find("data-network=\"198.51.100.0/24\"")
        .expect("the busiest network");
    let b = dom
        .find("data-network=\"203.0.113.0/24\"")
        .expect("the other network");
    assert!(a < b, "most queries first");
    let row = |at: usize| &dom[at..at + dom[at..].find("</tr>").unwrap()];
    let routed = |at: usize| -> Vec<String> {
        row(at)
            .split("<td class=\"routed\">")
            .skip(1)
            .map(|c| c[..c.find("</td>").unwrap()].to_string())
            .collect()
    };
    assert!(
        dom.contains("<th class=\"svc\">_sips.<wbr>_tcp.<wbr>voip.<wbr>example.<wbr>com</th>"),
        "{dom}"
    );
    let pill = |node: &str| format!("<span class=\"pill s-up\" data-node=\"{node}\">{node}</span>");
    assert_eq!(
        routed(a),
        [pill("up1"), pill("up1"), pill("tls1")],
        "{}",
        row(a)
    );
    assert_eq!(
        routed(b),
        [pill("up1"), pill("up1"), pill("up1")],
        "{}",
        row(b)
    );

    let shot = db.dir.path().join("status-page.png");
    browser.screenshot(&url, &shot, (1280, 1000));
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "an empty screenshot?"
    );
    chromium::keep_screenshot(&shot);
}

/// One node of the documentation's fleet: its fake FreeSWITCH, its SIP
/// responder, its probe round trip and how its load moves.
struct FleetNode {
    name: &'static str,
    esl: FakeEsl,
    sip: SipResponder,
    rtt_ms: f64,
    max: u32,
    base: f64,
    swing: f64,
}

#[test]
#[ignore = "takes minutes; run by hand for docs/status-page.png"]
fn a_realistic_fleet_for_the_documentation() {
    let db = Db::new("web-page-docs");
    let Some(browser) = Chromium::find(db.dir.path()) else {
        return;
    };
    let minutes: f64 = std::env::var("PDNS_HA_PAGE_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(5.0);
    // Phones register from these networks; each node pings them (ms).
    let regs = |pings: &[(&str, f64)]| {
        let body: Vec<String> = pings
            .iter()
            .enumerate()
            .map(|(i, (ip, ms))| registration_xml(&format!("u{i}"), ip, "Reachable", *ms))
            .collect();
        FakeEslConfig {
            xmlstatus: vec![("internal".into(), xmlstatus_body(&body))],
            ..FakeEslConfig::default()
        }
    };
    let east = [
        ("24.64.1.7", 31.0),
        ("70.81.12.9", 6.5),
        ("96.50.3.4", 62.0),
        ("142.59.8.20", 12.0),
    ];
    let west = [
        ("24.64.1.7", 9.0),
        ("70.81.12.9", 58.0),
        ("96.50.3.4", 4.5),
        ("142.59.8.20", 45.0),
    ];
    let prairie = [
        ("24.64.1.7", 14.0),
        ("70.81.12.9", 41.0),
        ("96.50.3.4", 19.0),
        ("142.59.8.20", 33.0),
    ];
    let node = |name, pings: &[(&str, f64)], rtt_ms, max, base, swing| FleetNode {
        name,
        esl: FakeEsl::start(regs(pings)),
        sip: SipResponder::start(200),
        rtt_ms,
        max,
        base,
        swing,
    };
    let fleet = [
        node("mtl1", &east, 1.2, 1000, 0.46, 0.12),
        node("mtl2", &east, 1.6, 1000, 0.62, 0.20),
        node("tor1", &east, 7.5, 800, 0.35, 0.10),
        node("tor2", &east, 8.2, 800, 0.28, 0.08),
        node("cgy1", &prairie, 34.0, 600, 0.22, 0.10),
        node("van1", &west, 58.0, 1200, 0.18, 0.06),
    ];
    // cgy1 is probed over TLS (a Kamailio: its round trip is loopback's),
    // with a certificate that ends in 9 days.
    let tls = if kamailio::tls_available() {
        let not_after = pdns_ha::metrics::now() + 9 * 86_400 + 3600;
        Some(tls_node(db.dir.path(), "cgy1.voip.example.com", not_after))
    } else {
        eprintln!("no Kamailio TLS module: cgy1 is probed over UDP");
        None
    };
    let port = free_port();
    let mut site = String::from(
        "[zone.\"voip.example.com\"]\nns = [\"ns1.voip.example.com\"]\nhostmaster = \"hostmaster.example.com\"\n\n",
    );
    for (i, n) in fleet.iter().enumerate() {
        let probe = match &tls {
            Some((_, ca, target)) if n.name == "cgy1" => {
                format!("{target}\"\nsip_probe_ca = \"{ca}")
            }
            _ => n.sip.probe_spec(),
        };
        site.push_str(&format!(
            "[node.{0}]\nhost = \"{0}.voip.example.com\"\nipv4 = [\"127.0.0.{1}\"]\nesl = \"{2}\"\nsip_probe = \"{3}\"\nmax_sessions = {4}\n\n",
            n.name,
            41 + i,
            n.esl.addr_string(),
            probe,
            n.max
        ));
    }
    let names: Vec<String> = fleet.iter().map(|n| format!("\"{}\"", n.name)).collect();
    site.push_str(&format!(
        "[service.\"{LAT}\"]\npolicy = \"latency\"\nport = 5060\nnodes = [{0}]\n\n\
         [service.\"{LOAD}\"]\npolicy = \"load\"\nport = 5060\nnodes = [{0}]\n\n\
         [service.\"{QUALITY}\"]\npolicy = \"quality\"\nport = 5061\nnodes = [{0}]\n\n\
         [collector]\nhttp = \"127.0.0.1:{port}\"\nprobe_interval_ms = 2000\nprobe_timeout_ms = 1000\n\
         down_after = 3\nup_after = 2\nregistration_poll_interval_ms = 5000\n",
        names.join(", ")
    ));
    db.apply_ok(&site);
    let _collect = Collect::start(&db);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let nets = [
        ("70.81.12.0/24", 9),
        ("24.64.1.0/24", 7),
        ("96.50.3.0/24", 5),
        ("142.59.8.0/24", 4),
        ("24.64.9.0/24", 3),
        ("198.51.100.0/24", 2),
        ("2001:db8:40::/48", 2),
        ("203.0.113.0/24", 1),
    ];
    let mut coproc = Coproc::start(&db.path, 3, &[]);
    let start = Instant::now();
    let total = Duration::from_secs_f64(minutes * 60.0);
    while start.elapsed() < total {
        let f = start.elapsed().as_secs_f64() / total.as_secs_f64();
        let t = start.elapsed().as_secs_f64();
        for (i, n) in fleet.iter().enumerate() {
            let wave = (t / 240.0 + i as f64 * 1.3).sin() + 0.35 * (t / 37.0 + i as f64).sin();
            let mut load = (n.base + n.swing * wave).clamp(0.01, 1.0);
            if n.name == "mtl2" && f > 0.72 {
                load = 0.985; // full: it answers 503 (below)
            }
            n.esl
                .set_load((load * f64::from(n.max)) as u32, n.max, 100.0 - 60.0 * load);
            let jitter = 1.0 + 0.15 * ((t * 1.7 + i as f64 * 2.1).sin());
            n.sip
                .set_delay(Duration::from_secs_f64(n.rtt_ms * jitter / 1000.0));
        }
        // A story: tor1 overloaded for a while, tor2 stops answering, van1
        // drained for maintenance, mtl2 full at the end.
        fleet[2]
            .sip
            .set_status(if (0.25..0.38).contains(&f) { 503 } else { 200 });
        fleet[3].sip.set_status(if f > 0.6 { 0 } else { 200 });
        fleet[1].sip.set_status(if f > 0.75 { 503 } else { 200 });
        if f > 0.5 && !states(&db).iter().any(|(n, _, d)| n == "van1" && *d) {
            assert_ok("node drain", &db.run(&["node", "drain", "van1"]));
        }
        // Call quality of the calls from the phones' networks: worse the
        // farther (FreeSWITCH's hang-up MOS, as `ingest` lines).
        let mut lines = String::new();
        for (i, n) in fleet.iter().enumerate() {
            let pings = match n.name {
                "van1" => &west,
                "cgy1" => &prairie,
                _ => &east,
            };
            for (ip, ms) in pings {
                let wobble = 0.1 * (t / 50.0 + i as f64).sin();
                let mos = (4.45 - ms / 30.0 + wobble).clamp(1.0, 4.5);
                lines.push_str(&format!(
                    "quality {} {ip} {mos:.2} {:.1} {:.0}\n",
                    n.name,
                    ms / 40.0,
                    ms / 8.0
                ));
            }
        }
        assert_ok("ingest quality", &db.ingest(&lines));
        for (net, weight) in nets {
            let remote = net.split('/').next().unwrap();
            let remote = match remote.rsplit_once('.') {
                Some((first, _)) => format!("{first}.1"),
                None => "2001:db8:40::1".to_string(),
            };
            for _ in 0..weight {
                coproc.query(LAT, "SRV", &remote, net);
                coproc.query(LOAD, "SRV", &remote, net);
                coproc.query(QUALITY, "SRV", &remote, net);
            }
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    assert!(coproc.close().success());
    // The coprocess's last counts are stored; the page is read once more.
    std::thread::sleep(Duration::from_secs(2));
    let (status, _, body) = get(addr, "/").expect("the page");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body.matches("<svg class=\"history\"").count(), fleet.len());
    let shot = db.dir.path().join("status-page.png");
    browser.screenshot(&format!("http://{addr}/"), &shot, (1280, 1500));
    chromium::keep_screenshot(&shot);
}
