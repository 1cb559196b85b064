//! The collector's HTTP server (`[collector] http`) end to end: `pdns-ha
//! collect` (the built binary) measuring a fake FreeSWITCH event socket and
//! two SIP responders on 127.0.0.1, its `/metrics` and `/status.json` read
//! over plain TCP (a few lines of HTTP/1.1 here: no client crate).
//!
//! - every metric the Grafana dashboard (`contrib/grafana/pdns-ha.json`)
//!   queries is in `/metrics`, as a series of its own or as a histogram's
//!   `_bucket`/`_sum`/`_count`; every family has HELP and TYPE;
//! - the probe histogram counts move as probes run; the event-socket
//!   reconnect counter moves when the event socket drops its connections;
//! - `/status.json` is `status --json` (same nodes, states, fields);
//! - 404 for other paths, 405 with `Allow: GET, HEAD` for other methods,
//!   HEAD answered without a body;
//! - a port already taken: logged, and the collector collects on (and binds
//!   the address `apply` gives next); `apply` changing the address rebinds,
//!   removing it stops the server;
//! - `apply` refuses an address that is not IP:PORT, saying what to write,
//!   and warns about one that is not loopback;
//! - hostile clients (garbage, a client that sends nothing, a request sent
//!   half, a huge header, one that does not read its answer) stop neither
//!   other requests nor the collector, nor its SIGTERM.

mod support;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;
use support::collect::Collect;
use support::fake_esl::{FakeEsl, FakeEslConfig, Hangup};
use support::sip_responder::SipResponder;
use support::{Db, fixture_with, free_port, poll};

/// Deadline for what the collector does within a few probe rounds (and a
/// site reload, every 2 s).
const SOON: Duration = Duration::from_secs(10);

struct Fleet {
    fs1: FakeEsl,
    sip1: SipResponder,
    sip2: SipResponder,
}

impl Fleet {
    fn start() -> Fleet {
        Fleet {
            fs1: FakeEsl::start(FakeEslConfig {
                heartbeat_every: Duration::from_millis(200),
                ..Default::default()
            }),
            sip1: SipResponder::start(200),
            sip2: SipResponder::start(200),
        }
    }

    /// The site, serving HTTP on `port` (none: no `http` key).
    fn site(&self, port: Option<u16>) -> String {
        let http = port.map_or(String::new(), |p| format!("http = \"127.0.0.1:{p}\""));
        fixture_with(
            "http",
            &[
                ("FS1_ESL", &self.fs1.addr_string()),
                ("FS1_PROBE", &self.sip1.probe_spec()),
                ("FS2_PROBE", &self.sip2.probe_spec()),
                ("HTTP", &http),
            ],
        )
    }
}

/// A fleet, its site applied with `http` on a free port, and the collector.
fn start(tag: &str) -> (Db, Fleet, Collect, u16) {
    let db = Db::new(tag);
    let fleet = Fleet::start();
    let port = free_port();
    db.apply_ok(&fleet.site(Some(port)));
    let collect = Collect::start(&db);
    (db, fleet, collect, port)
}

// ---------------------------------------------------------------------------
// HTTP over a TcpStream.

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `raw`, closes the sending side (nothing more comes) and reads the
/// reply to the end.
fn exchange(port: u16, raw: &[u8]) -> Result<Reply, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).map_err(|e| format!("write: {e}"))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}

fn request(port: u16, method: &str, path: &str) -> Result<Reply, String> {
    exchange(
        port,
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// `/metrics`, or why not.
fn metrics(port: u16) -> Result<String, String> {
    let r = request(port, "GET", "/metrics")?;
    if r.status != 200 {
        return Err(format!("status {}: {}", r.status, r.body));
    }
    Ok(r.body)
}

/// The value of one series, written exactly as in the exposition
/// (`name{labels}`).
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[track_caller]
fn wait_value(port: u16, series: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
    poll(&format!("{series} {what}"), SOON, || {
        let m = metrics(port)?;
        match value(&m, series) {
            Some(v) if ok(v) => Ok(v),
            v => Err(format!("{series} = {v:?}")),
        }
    })
}

// ---------------------------------------------------------------------------
// The dashboard's metric names.

/// Every `pdns_ha_` name in the dashboard's PromQL expressions (panel
/// targets and the template variable's query).
fn dashboard_metric_names() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/pdns-ha.json");
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .expect("the dashboard is JSON");
    assert_eq!(
        d["__inputs"][0]["name"], "DS_PROMETHEUS",
        "the datasource is an input"
    );
    let mut exprs = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&d, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let mut names = BTreeSet::new();
    for e in &exprs {
        // Identifiers outside strings and braces' values: a metric name is
        // [a-zA-Z_:][a-zA-Z0-9_:]*; label values are quoted.
        let mut in_quote = false;
        let mut word = String::new();
        for c in e.chars().chain([' ']) {
            if c == '"' {
                in_quote = !in_quote;
            }
            if !in_quote && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                word.push(c);
                continue;
            }
            if word.starts_with("pdns_ha_") {
                names.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

/// Checks that `name`, as a query uses it, is exposed: a family's own series,
/// or a histogram's `_bucket`/`_sum`/`_count` (a summary's `_sum`/`_count`),
/// with at least one sample.
fn exposed(metrics: &str, name: &str) -> Result<(), String> {
    let types: HashMap<&str, &str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let samples: HashSet<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let family_type = match types.get(name) {
        Some(t) => {
            if matches!(*t, "histogram" | "summary") {
                return Err(format!(
                    "{name} is a {t}: query its _bucket, _sum or _count series"
                ));
            }
            Some(*t)
        }
        None => {
            let base = ["_bucket", "_sum", "_count"].iter().find_map(|suf| {
                let base = name.strip_suffix(suf)?;
                match types.get(base) {
                    Some(&"histogram") => Some("histogram"),
                    Some(&"summary") if *suf != "_bucket" => Some("summary"),
                    _ => None,
                }
            });
            if base.is_none() {
                return Err(format!("{name}: no such family in /metrics"));
            }
            base
        }
    };
    if samples.contains(name) {
        Ok(())
    } else {
        Err(format!(
            "{name} ({}) has no sample in /metrics",
            family_type.unwrap_or("?")
        ))
    }
}

#[test]
fn metrics_hold_every_name_the_dashboard_queries() {
    let (_db, _fleet, mut collect, port) = start("http-dashboard");
    let names = dashboard_metric_names();
    for must in [
        "pdns_ha_node_health",
        "pdns_ha_probe_rtt_seconds_bucket",
        "pdns_ha_answers_total",
        "pdns_ha_collector_heartbeat_age_seconds",
        "pdns_ha_events_total",
        "pdns_ha_node_sessions",
    ] {
        assert!(
            names.contains(must),
            "the dashboard queries {must}: {names:?}"
        );
    }
    let m = poll("every dashboard metric in /metrics", SOON, || {
        let m = metrics(port)?;
        let missing: Vec<String> = names.iter().filter_map(|n| exposed(&m, n).err()).collect();
        if missing.is_empty() {
            Ok(m)
        } else {
            Err(missing.join("; "))
        }
    });
    // The check itself refuses what a query cannot find.
    assert!(exposed(&m, "pdns_ha_probe_rtt_seconds").is_err());
    assert!(exposed(&m, "pdns_ha_node_health_bucket").is_err());
    assert!(exposed(&m, "pdns_ha_no_such_metric").is_err());
    assert!(exposed(&m, "pdns_ha_collector_store_write_seconds_sum").is_ok());
    // Prometheus's rules: HELP and TYPE for every family, counters named
    // _total, one TYPE per family.
    let mut typed = HashSet::new();
    for l in m.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = l.split_once(' ').unwrap();
        assert!(typed.insert(name), "{name} typed twice");
        assert!(m.contains(&format!("# HELP {name} ")), "{name} has no HELP");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
        assert!(name.starts_with("pdns_ha_"), "{name}");
    }
    for l in m.lines().filter(|l| !l.starts_with('#')) {
        let name = l.split(['{', ' ']).next().unwrap();
        assert!(
            exposed(&m, name).is_ok() || typed.contains(name),
            "{name} has no TYPE"
        );
    }
    let r = request(port, "GET", "/metrics").unwrap();
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    collect.assert_running();
}

#[test]
fn probe_histogram_and_reconnect_counters_move() {
    let (_db, fleet, mut collect, port) = start("http-counters");
    let count = "pdns_ha_probe_rtt_seconds_count{node=\"fs2\"}";
    let first = wait_value(port, count, "> 0", |v| v > 0.0);
    wait_value(port, count, "grows", |v| v >= first + 2.0);
    let m = metrics(port).unwrap();
    let inf = value(
        &m,
        "pdns_ha_probe_rtt_seconds_bucket{node=\"fs2\",le=\"+Inf\"}",
    )
    .unwrap();
    let n = value(&m, count).unwrap();
    assert_eq!(inf, n, "+Inf bucket = count");
    let buckets: Vec<f64> = m
        .lines()
        .filter(|l| l.starts_with("pdns_ha_probe_rtt_seconds_bucket{node=\"fs2\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(buckets.len(), 13);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(value(&m, "pdns_ha_probes_total{node=\"fs2\",result=\"answered\"}").unwrap() >= n);
    assert!(value(&m, "pdns_ha_collector_samples_written_total").unwrap() > 0.0);

    // The event socket drops its connections: counted, and connected again.
    wait_value(port, "pdns_ha_esl_connected{node=\"fs1\"}", "= 1", |v| {
        v == 1.0
    });
    // Hang-up events, counted by outcome.
    fleet.fs1.update(|c| {
        c.hangups = vec![
            Hangup::call("198.51.100.7", 4.2),
            Hangup {
                direction: "outbound".into(),
                ..Hangup::call("198.51.100.8", 4.2)
            },
        ];
        c.hangups_per_sec = 50.0;
    });
    for outcome in ["sampled", "not_inbound"] {
        let series = format!("pdns_ha_esl_hangups_total{{node=\"fs1\",outcome=\"{outcome}\"}}");
        wait_value(port, &series, "> 0", |v| v > 0.0);
    }
    let m = metrics(port).unwrap();
    assert_eq!(
        value(
            &m,
            "pdns_ha_esl_hangups_total{node=\"fs1\",outcome=\"bad\"}"
        ),
        Some(0.0)
    );
    let reconnects = "pdns_ha_esl_reconnects_total{node=\"fs1\"}";
    let before = value(&metrics(port).unwrap(), reconnects).unwrap();
    fleet.fs1.drop_connections();
    wait_value(port, reconnects, "grows", |v| v > before);
    wait_value(
        port,
        "pdns_ha_esl_connected{node=\"fs1\"}",
        "= 1 again",
        |v| v == 1.0,
    );
    collect.assert_running();
}

#[test]
fn status_json_is_what_status_json_gives() {
    let (db, _fleet, mut collect, port) = start("http-status");
    let served = poll("both nodes up in /status.json", SOON, || {
        let r = request(port, "GET", "/status.json")?;
        let v: Value = serde_json::from_str(&r.body).map_err(|e| e.to_string())?;
        let healths: Vec<&Value> = v["nodes"]
            .as_array()
            .ok_or("no nodes")?
            .iter()
            .map(|n| &n["health"])
            .collect();
        if healths.len() == 2 && healths.iter().all(|h| *h == "up") {
            Ok((r, v))
        } else {
            Err(format!("{healths:?}"))
        }
    });
    let (reply, http) = served;
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    let cli = db.status_json();
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&http), keys(&cli));
    assert_eq!(http["generation"], cli["generation"]);
    let nodes = |v: &Value| -> Vec<(Value, Value, Vec<String>)> {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["name"].clone(), n["health"].clone(), keys(n)))
            .collect()
    };
    assert_eq!(nodes(&http), nodes(&cli));
    collect.assert_running();
}

#[test]
fn only_get_and_head_on_two_paths() {
    let (_db, _fleet, mut collect, port) = start("http-methods");
    poll("the server answers", SOON, || metrics(port));
    for path in ["/nope", "/metrics/x", "/status.json.bak", "/index.html"] {
        let r = request(port, "GET", path).unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(r.body.contains("/metrics"), "{}", r.body);
    }
    // `/` is the status page (tests/web_page.rs).
    let r = request(port, "GET", "/").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let r = request(port, method, "/metrics").unwrap();
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{method}");
        assert!(r.body.contains("read-only"), "{}", r.body);
    }
    let r = request(port, "HEAD", "/metrics").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "", "HEAD has no body");
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let r = request(port, "HEAD", "/status.json").unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    // A query string is not a different path.
    assert_eq!(request(port, "GET", "/metrics?x=1").unwrap().status, 200);
    collect.assert_running();
}

#[test]
fn a_taken_port_is_logged_and_collecting_goes_on_then_apply_rebinds() {
    let db = Db::new("http-taken");
    let fleet = Fleet::start();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    db.apply_ok(&fleet.site(Some(port)));
    let mut collect = Collect::start(&db);
    poll("the bind failure logged", SOON, || {
        let log = collect.log();
        if log.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && log.contains("collecting goes on")
            && log.contains("pdns-ha apply")
        {
            Ok(())
        } else {
            Err(log)
        }
    });
    // It collects all the same.
    poll("both nodes up", SOON, || {
        let st = db.status_json();
        let ups = st["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["health"] == "up")
            .count();
        if ups == 2 {
            Ok(())
        } else {
            Err(st.to_string())
        }
    });
    collect.assert_running();
    // A new address from apply is bound at once.
    let port2 = free_port();
    db.apply_ok(&fleet.site(Some(port2)));
    poll("the new address serves", SOON, || metrics(port2));
    drop(taken);
    collect.assert_running();
}

#[test]
fn apply_changing_the_address_rebinds_and_removing_it_stops_the_server() {
    let (db, fleet, mut collect, port) = start("http-rebind");
    poll("the first address serves", SOON, || metrics(port));
    let port2 = free_port();
    db.apply_ok(&fleet.site(Some(port2)));
    poll("the new address serves", SOON, || metrics(port2));
    poll(
        "the old address is closed",
        SOON,
        || match TcpStream::connect(("127.0.0.1", port)) {
            Err(_) => Ok(()),
            Ok(_) => Err("still accepting".to_string()),
        },
    );
    db.apply_ok(&fleet.site(None));
    poll("no server any more", SOON, || {
        match TcpStream::connect(("127.0.0.1", port2)) {
            Err(_) => Ok(()),
            Ok(_) => Err("still accepting".to_string()),
        }
    });
    collect.assert_running();
    assert!(
        collect.log().contains("no longer serving"),
        "{}",
        collect.log()
    );
}

#[test]
fn hostile_clients_stop_neither_requests_nor_the_collector() {
    let (db, _fleet, mut collect, port) = start("http-hostile");
    poll("the server answers", SOON, || metrics(port));
    let connect = || TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Clients that connect and send nothing, or half a request, and stay.
    let silent: Vec<TcpStream> = (0..8).map(|_| connect()).collect();
    let mut half = connect();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    // Garbage: refused (400) or dropped, never served.
    for junk in [
        &b"\x00\x01\x02\xff\xfe garbage\r\n\r\n"[..],
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: \xc3\x28\xff\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\nConnection: close\r\n\r\n",
    ] {
        let t = std::time::Instant::now();
        if let Ok(r) = exchange(port, junk) {
            assert_ne!(r.status, 200, "{junk:?} was served: {}", r.body);
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{junk:?}: {:?}",
            t.elapsed()
        );
    }
    // A header of 1 MiB: answered or refused, and nothing else suffers.
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend(b"\r\nConnection: close\r\n\r\n");
    let _ = exchange(port, &big);
    // A client that asks and never reads its answer.
    let mut deaf = connect();
    deaf.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();

    // Meanwhile other requests are answered at once ...
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let m = metrics(port).unwrap();
        assert!(m.contains("pdns_ha_probe_rtt_seconds_count"));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    // ... and the collector goes on writing.
    let count = "pdns_ha_probe_rtt_seconds_count{node=\"fs2\"}";
    let before = value(&metrics(port).unwrap(), count).unwrap();
    wait_value(port, count, "grows", |v| v >= before + 2.0);
    let hb = db.status_json()["collector_heartbeat_age_s"]
        .as_i64()
        .unwrap();
    assert!(hb <= 2, "heartbeat {hb} s old");
    collect.assert_running();
    // The clients still connected do not hold up a stop.
    let (exit, took) = collect.terminate(Duration::from_secs(5));
    assert_eq!(exit.code(), Some(0), "{}", collect.log());
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    drop((silent, half, deaf));
}

#[test]
fn apply_refuses_a_bad_address_and_warns_about_a_network_one() {
    let db = Db::new("http-apply");
    let fleet = Fleet::start();
    let site = |http: &str| {
        fleet.site(None).replace(
            "[collector]\n",
            &format!("[collector]\nhttp = \"{http}\"\n"),
        )
    };
    for bad in ["localhost:9253", "127.0.0.1", "127.0.0.1:0"] {
        let o = db.apply(&site(bad));
        assert_eq!(o.status.code(), Some(1), "{bad}");
        let err = support::stderr(&o);
        assert!(err.contains("[collector] http"), "{bad}: {err}");
        assert!(err.contains("9253"), "{bad}: {err}");
        assert!(err.contains("nothing was changed"), "{bad}: {err}");
    }
    let o = db.apply(&site("0.0.0.0:9253"));
    support::assert_ok("apply", &o);
    assert!(
        support::stderr(&o)
            .contains("warning: [collector] http = \"0.0.0.0:9253\" is not a loopback address"),
        "{}",
        support::stderr(&o)
    );
    let o = db.apply(&site("127.0.0.1:9253"));
    support::assert_ok("apply", &o);
    assert!(
        !support::stderr(&o).contains("warning"),
        "{}",
        support::stderr(&o)
    );
}
