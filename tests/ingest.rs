//! `pdns-ha ingest`, `apply` and `status` from the command line, on a real
//! database file: bad metric lines, a database locked by another writer,
//! wrong site files refused whole, `--dry-run`, and the status reports.

mod support;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use support::{Db, assert_ok, stderr, stdout};

/// The site (tests/fixtures/two_nodes.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("two_nodes"));

fn db_with_site(tag: &str) -> Db {
    let db = Db::new(tag);
    db.apply_ok(&SITE);
    db
}

fn conn(db: &Db) -> Connection {
    let c = Connection::open(&db.path).expect("open the test database");
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c
}

fn count(db: &Db, table: &str) -> i64 {
    conn(db)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// Every stored metric row, as text, for before/after comparisons.
fn metric_rows(db: &Db) -> Vec<String> {
    let c = conn(db);
    let mut out = Vec::new();
    for (table, cols) in [
        ("latency", "family, net, plen, node_id, avg_ms, samples"),
        ("load", "node_id, sessions, max_sessions, idle_cpu"),
        ("health", "node_id, state, source"),
    ] {
        let mut st = c
            .prepare(&format!("SELECT {cols} FROM {table} ORDER BY 1, 2, 3"))
            .unwrap();
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                let mut s = format!("{table}:");
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    s.push_str(&format!(" {v:?}"));
                }
                Ok(s)
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

fn node<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("node {name} in {status}"))
}

#[test]
fn bad_lines_are_reported_and_good_lines_stored() {
    let db = db_with_site("bad-lines");
    let input = "\
latency mtl1 198.51.100.7 12.5
latency mtl1 nope 3
# a comment, then a blank line

health van1 sideways
load ghost 1 10
health van1 down
load mtl1 10 100 50
latency van1 192.0.2.0/24 -4
";
    let o = db.ingest(input);
    let err = stderr(&o);
    assert!(
        !o.status.success(),
        "bad lines make the exit status non-zero"
    );
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (line, why) in [
        (2, "not an IPv4 or IPv6"),
        (5, "up, down or overloaded"),
        (6, "unknown node 'ghost'"),
        (9, "RTT_MS"),
    ] {
        let tag = format!("stdin:{line}: ");
        let l = err
            .lines()
            .find(|l| l.starts_with(&tag))
            .unwrap_or_else(|| panic!("line {line} reported:\n{err}"));
        assert!(l.contains(why), "line {line}: want '{why}': {l}");
    }
    for good in [1, 3, 4, 7, 8] {
        assert!(
            !err.contains(&format!("stdin:{good}:")),
            "line {good} is good:\n{err}"
        );
    }
    assert!(err.contains("3 metric(s) stored, 4 bad line(s)"), "{err}");

    // The good lines are stored.
    let s = db.status_json();
    assert_eq!(node(&s, "van1")["health"], "down", "{s}");
    assert_eq!(node(&s, "mtl1")["sessions"], 10, "{s}");
    assert_eq!(node(&s, "mtl1")["idle_cpu"], 50.0, "{s}");
    assert_eq!(node(&s, "mtl1")["latency_networks_fresh"], 1, "{s}");
    assert_eq!(node(&s, "van1")["latency_entries"], 0, "{s}");

    // From a file: the messages name the file.
    let f = db.dir.path().join("metrics.txt");
    std::fs::write(&f, "health mtl1 up\nhealth mtl1 maybe\n").unwrap();
    let o = db.run(&["ingest", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("{}:2: ", f.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(node(&db.status_json(), "mtl1")["health"], "up");

    // All good: exit status 0.
    let o = db.ingest("load van1 20 500\n");
    assert_ok("ingest of good lines", &o);
    assert!(stderr(&o).contains("1 metric(s) stored, 0 bad line(s)"));
}

/// `pdns-ha ingest` with any bytes on standard input.
fn ingest_bytes(db: &Db, input: &[u8]) -> std::process::Output {
    support::pdns_ha_stdin_bytes(&db.path, &["ingest"], input)
}

/// The nodes of `explain --json` for one dynamic name, in answer order.
fn explain_order(db: &Db, qname: &str, client: &str) -> Vec<String> {
    let o = db.run(&["explain", qname, "SRV", "--client", client, "--json"]);
    assert_ok("explain --json", &o);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    e["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["content"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_line_that_is_not_utf8_or_huge_is_one_bad_line_and_reading_goes_on() {
    let db = db_with_site("non-utf8");
    let mut input = b"health mtl1 up\n\xff\xfe\nhealth van1 down\n".to_vec();
    // Line 4: 10 MB with no newline for a long while; line 5: a long bad
    // field inside a line of normal length; line 6: good.
    input.extend(std::iter::repeat_n(b'z', 10 << 20));
    input.push(b'\n');
    input.extend(format!("health {} up\n", "n\u{1b}".repeat(1500)).as_bytes());
    input.extend(b"load mtl1 10 100");
    let o = ingest_bytes(&db, &input);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("stdin:2: the line is not UTF-8 (byte 0xff at column 1)"),
        "{err}"
    );
    assert!(
        err.contains("stdin:4: the line is 10485760 bytes long"),
        "{err}"
    );
    assert!(err.contains("stdin:5: 'n\\u{1b}n"), "{err}");
    assert!(err.contains("3 metric(s) stored, 3 bad line(s)"), "{err}");
    // What is written back is bounded: every message is a short line.
    assert!(err.len() < 2000, "{} bytes of stderr", err.len());
    assert!(err.lines().all(|l| l.len() < 300), "{err}");
    let s = db.status_json();
    assert_eq!(node(&s, "mtl1")["health"], "up", "{s}");
    assert_eq!(node(&s, "van1")["health"], "down", "line 3 is stored: {s}");
    assert_eq!(node(&s, "mtl1")["sessions"], 10, "line 6 is stored: {s}");

    // The same from a file.
    let f = db.dir.path().join("metrics.bin");
    std::fs::write(&f, b"health van1 up\n\xc3\x28 bad\nload van1 7 500\n").unwrap();
    let o = db.run(&["ingest", f.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{}:2: the line is not UTF-8", f.display())),
        "{err}"
    );
    assert!(err.contains("2 metric(s) stored, 1 bad line(s)"), "{err}");
    assert_eq!(node(&db.status_json(), "van1")["sessions"], 7);
}

#[test]
fn samples_too_old_or_from_the_future_change_no_answer() {
    let db = db_with_site("old-samples");
    let srv = "_sip._udp.voip.example.com";
    db.ingest_ok("latency van1 198.51.100.9 5\nlatency mtl1 198.51.100.9 60\n");
    let before = explain_order(&db, srv, "198.51.100.7");
    assert!(before[0].ends_with("van1.voip.example.com"), "{before:?}");
    let rows = metric_rows(&db);

    let t = pdns_ha::metrics::now();
    let input = format!(
        "latency van1 198.51.100.9 900 1000\n\
         latency van1 198.51.100.9 900 {}\n\
         latency van1 198.51.100.9 900 {}\n\
         health van1 down {}\n\
         load van1 499 500 50 {}\n",
        t - 901,
        t + 3600,
        t - 61,
        t - 91,
    );
    let o = db.ingest(&input);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (line, why) in [
        (1, "latency sample dated 1000 is"),
        (1, "older than [policy] latency_max_age_s = 900 s"),
        (2, "latency_max_age_s"),
        (
            3,
            "s in the future (more than the 60 s of clock skew allowed)",
        ),
        (4, "older than [policy] health_max_age_s = 60 s"),
        (5, "older than [policy] load_max_age_s = 90 s"),
    ] {
        assert!(
            err.contains(&format!("stdin:{line}: ")),
            "line {line}:\n{err}"
        );
        let l = err
            .lines()
            .find(|l| l.starts_with(&format!("stdin:{line}: ")))
            .unwrap();
        assert!(l.contains(why), "line {line}: want '{why}': {l}");
    }
    assert!(err.contains("0 metric(s) stored, 5 bad line(s)"), "{err}");
    assert_eq!(metric_rows(&db), rows, "nothing was stored");
    assert_eq!(explain_order(&db, srv, "198.51.100.7"), before);

    // A sample just inside its max age, and one from a clock a little
    // ahead, count.
    db.ingest_ok(&format!(
        "latency mtl1 198.51.100.9 1 {}\nhealth mtl1 up {}\n",
        t - 800,
        t + 30
    ));
    let s = db.status_json();
    assert_eq!(node(&s, "mtl1")["health"], "up", "{s}");
    let rows_after = metric_rows(&db);
    assert_ne!(rows_after, rows, "the fresh latency sample is stored");
    assert!(
        rows_after
            .iter()
            .any(|r| r.starts_with("latency:") && r.ends_with(" Integer(2)")),
        "folded into mtl1's average as its second sample: {rows_after:?}"
    );
}

#[test]
fn explain_takes_names_with_a_final_dot_in_any_case() {
    let db = db_with_site("explain-dot");
    db.ingest_ok("latency van1 198.51.100.9 5\nlatency mtl1 198.51.100.9 60\n");
    let plain = explain_order(&db, "_sip._udp.voip.example.com", "198.51.100.7");
    assert_eq!(plain.len(), 2, "{plain:?}");
    for name in ["_SIP._UDP.VOIP.EXAMPLE.COM.", "_sip._udp.voip.example.com."] {
        let o = db.run(&["explain", name, "SRV", "--client", "198.51.100.7"]);
        assert_ok("explain", &o);
        let text = stdout(&o);
        assert!(!text.contains("no records"), "{name}:\n{text}");
        assert!(text.contains("van1"), "{name}:\n{text}");
        let got: Vec<String> = explain_order(&db, name, "198.51.100.7")
            .iter()
            .map(|c| c.to_ascii_lowercase())
            .collect();
        assert_eq!(got, plain, "{name}");
    }
    // A node host and the apex, with the dot, too.
    for (name, what) in [
        ("VAN1.voip.example.com.", "203.0.113.20"),
        ("voip.example.com.", "ns1"),
    ] {
        let o = db.run(&["explain", name, "ANY", "--client", "198.51.100.7"]);
        assert_ok("explain", &o);
        assert!(stdout(&o).contains(what), "{name}:\n{}", stdout(&o));
    }
}

#[test]
fn a_locked_database_stores_nothing_and_says_which_lines() {
    let db = db_with_site("locked");
    let lines = "\
health mtl1 down
load van1 10 500
latency mtl1 198.51.100.0/24 20
latency van1 198.51.100.0/24 30
";
    let before = metric_rows(&db);
    assert!(before.is_empty());

    // Another writer holds the write lock.
    let holder = conn(&db);
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let t = Instant::now();
    let o = db.run_stdin(&["ingest", "--busy-timeout-ms", "300"], lines);
    let took = t.elapsed();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(took < Duration::from_secs(5), "gave up in {took:?}");
    assert!(err.contains("locked"), "{err}");
    assert!(err.contains("300 ms"), "{err}");
    assert!(err.contains("lines 1-4"), "the lines not stored: {err}");
    assert!(err.contains("NOT stored"), "{err}");
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    assert_eq!(metric_rows(&db), before, "nothing partially stored");

    // Lock released: the same lines again are all stored.
    let o = db.run_stdin(&["ingest", "--busy-timeout-ms", "300"], lines);
    assert_ok("ingest after the lock is released", &o);
    assert_eq!(count(&db, "health"), 1);
    assert_eq!(count(&db, "load"), 1);
    // Each latency sample is kept at /24, /16 and /8.
    assert_eq!(count(&db, "latency"), 6);
    let s = db.status_json();
    assert_eq!(node(&s, "mtl1")["health"], "down", "{s}");
    assert_eq!(node(&s, "van1")["sessions"], 10, "{s}");
}

#[test]
fn a_wrong_site_file_is_refused_whole() {
    let db = db_with_site("wrong-site");
    let before = db.topology_rows();
    let status_before = db.status_json();
    let site = db.site_path();
    let site = site.display();

    // Each wrong file also carries valid changes (a new node, a new port)
    // that must not be applied either.
    let valid_changes = SITE.replace("port = 5060", "port = 5070")
        + "\n[node.tor1]\nhost = \"tor1.voip.example.com\"\nipv4 = [\"192.0.2.30\"]\n";
    // (wrong file, a text on the line the error must name, the reason)
    let cases: Vec<(String, &str, &str)> = vec![
        (
            valid_changes.replace("203.0.113.20", "203.0.113.300"),
            "203.0.113.300",
            "node \"van1\": ipv4: '203.0.113.300' is not an IPv4 address",
        ),
        (
            valid_changes.replace(
                "nodes = [\"mtl1\", \"van1\"]\n\n[pool",
                "nodes = [\"mtl1\", \"ghost\"]\n\n[pool",
            ),
            "[service.\"_sip._udp.voip.example.com\"]",
            "service \"_sip._udp.voip.example.com\": unknown node \"ghost\"",
        ),
        (
            valid_changes.replace("policy = \"load\"", "policy = \"fastest\""),
            "policy = \"fastest\"",
            "unknown variant `fastest`",
        ),
        (
            valid_changes.clone()
                + "[zone.\"other.example\"]\nns = []\nhostmaster = \"h.other.example\"\n",
            "[zone.\"other.example\"]",
            "zone \"other.example\": ns must list at least one name server",
        ),
        (
            valid_changes.clone() + "this is not = toml [\n",
            "this is not",
            "",
        ),
        // A key 20,000 parts deep, far down the file (the TOML parser
        // gives that error no place).
        (
            format!("{valid_changes}\n[{}a]\nx = 1\n", "a.".repeat(20_000)),
            "[a.a.a.a",
            "recursion limit: this key has more than 16 dotted parts",
        ),
        (
            valid_changes.clone()
                + "[[record]]\nname = \"x.voip.example.com\"\ntype = \"TXT\"\ncontent = '\"hi\"'\n\n\
                   [[record]] # the CNAME\nname = \"X.voip.example.com\"\ntype = \"CNAME\"\ncontent = \"y.voip.example.com\"\n",
            "[[record]] # the CNAME",
            "record \"x.voip.example.com CNAME\": a CNAME cannot share its name with other data",
        ),
    ];
    for (text, on_line, why) in cases {
        assert_ne!(text, *SITE);
        let line = 1 + text
            .lines()
            .position(|l| l.contains(on_line))
            .unwrap_or_else(|| panic!("{on_line} in the test's site"));
        let want = format!("{site}:{line}: {why}");
        let o = db.apply(&text);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "refused: {text}\n{err}");
        assert!(
            err.lines().any(|l| l.contains(&want)),
            "want '{want}' in:\n{err}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(db.topology_rows(), before, "database unchanged by:\n{err}");
    }
    // Not UTF-8: the line and column of the first bad byte, exit status 1.
    let mut bytes = valid_changes.clone().into_bytes();
    bytes.extend(b"# caf\xe9\n");
    let line = valid_changes.lines().count() + 1;
    std::fs::write(db.site_path(), &bytes).unwrap();
    let o = db.run(&["apply", db.site_path().to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let want = format!("{site}:{line}: the file is not UTF-8 (byte 0xe9 at column 6)");
    assert!(err.contains(&want), "want '{want}' in:\n{err}");
    assert_eq!(db.topology_rows(), before);

    let status_after = db.status_json();
    assert_eq!(
        status_after["nodes"], status_before["nodes"],
        "status unchanged"
    );
    assert_eq!(status_after["generation"], status_before["generation"]);

    // The valid changes alone are applied.
    let o = db.apply(&valid_changes);
    assert_ok("apply the valid changes", &o);
    assert!(stdout(&o).contains("added   node tor1"), "{}", stdout(&o));
    assert_ne!(db.topology_rows(), before);
}

#[test]
fn apply_dry_run_writes_nothing() {
    // No database yet: nothing is created.
    let db = Db::new("dry-run");
    let site = db.site_path();
    std::fs::write(&site, &*SITE).unwrap();
    let o = db.run(&["apply", site.to_str().unwrap(), "--dry-run"]);
    assert_ok("apply --dry-run on a missing database", &o);
    let out = stdout(&o);
    assert!(out.contains("added   node mtl1"), "{out}");
    assert!(out.contains("dry run"), "{out}");
    assert!(!db.path.exists(), "--dry-run created {}", db.path.display());

    db.apply_ok(&SITE);
    let before = db.topology_rows();
    let changed = SITE.replace("port = 5060", "port = 5070");
    std::fs::write(&site, &changed).unwrap();
    let o = db.run(&["apply", site.to_str().unwrap(), "--dry-run"]);
    assert_ok("apply --dry-run", &o);
    let out = stdout(&o);
    assert!(
        out.contains("changed service _sip._udp.voip.example.com"),
        "{out}"
    );
    assert!(out.contains("nothing written"), "{out}");
    assert_eq!(db.topology_rows(), before, "--dry-run wrote");

    // Applied for real, then again: idempotent.
    let o = db.apply(&changed);
    assert_ok("apply", &o);
    assert!(
        stdout(&o).contains("changed service _sip._udp.voip.example.com"),
        "{}",
        stdout(&o)
    );
    let after = db.topology_rows();
    assert_ne!(after, before);
    let o = db.apply(&changed);
    assert_ok("apply again", &o);
    assert!(stdout(&o).contains("no change"), "{}", stdout(&o));
    assert_eq!(db.topology_rows(), after, "a second apply changes nothing");
}

#[test]
fn status_reports_node_health_after_ingest() {
    let db = db_with_site("status");
    let s = db.status_json();
    assert_eq!(node(&s, "mtl1")["health"], "unknown", "{s}");

    db.ingest_ok(
        "health mtl1 down\nhealth van1 overloaded\nload van1 120 0 75\nlatency mtl1 192.0.2.9 14\n",
    );
    let s = db.status_json();
    let (mtl1, van1) = (node(&s, "mtl1"), node(&s, "van1"));
    assert_eq!(mtl1["health"], "down", "{s}");
    assert_eq!(mtl1["health_source"], "ingest", "{s}");
    assert_eq!(van1["health"], "overloaded", "{s}");
    assert_eq!(van1["sessions"], 120, "{s}");
    // The site file's max_sessions wins over an unknown (0) one.
    assert_eq!(van1["max_sessions"], 500, "{s}");
    assert_eq!(van1["free_capacity"], 285.0, "(500 - 120) * 75 %: {s}");
    assert_eq!(mtl1["latency_networks_fresh"], 1, "{s}");
    assert_eq!(mtl1["drained"], false, "{s}");

    let o = db.run(&["node", "drain", "mtl1"]);
    assert_ok("drain", &o);

    let o = db.run(&["status", "--prometheus"]);
    assert_ok("status --prometheus", &o);
    let p = stdout(&o);
    for want in [
        "pdns_ha_node_health{node=\"mtl1\",state=\"down\"} 1",
        "pdns_ha_node_health{node=\"mtl1\",state=\"up\"} 0",
        "pdns_ha_node_health{node=\"van1\",state=\"overloaded\"} 1",
        "pdns_ha_node_drained{node=\"mtl1\"} 1",
        "pdns_ha_node_drained{node=\"van1\"} 0",
        "pdns_ha_node_sessions{node=\"van1\"} 120",
        "pdns_ha_node_max_sessions{node=\"van1\"} 500",
        "pdns_ha_node_latency_networks{node=\"mtl1\"} 1",
        "# TYPE pdns_ha_node_health gauge",
    ] {
        assert!(p.lines().any(|l| l == want), "want '{want}' in:\n{p}");
    }
    // Every sample line parses as `name{labels} number`.
    for l in p.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l}"));
        assert!(v.parse::<f64>().is_ok(), "{l}");
    }

    let o = db.run(&["status"]);
    assert_ok("status", &o);
    let t = stdout(&o);
    let line = t
        .lines()
        .find(|l| l.starts_with("mtl1 "))
        .expect("mtl1 row");
    assert!(line.contains("down") && line.contains("drained"), "{line}");
}

#[test]
fn quality_lines_rank_a_quality_service_with_latency_as_the_fallback() {
    let db = Db::new("quality");
    db.apply_ok(&format!(
        "{}\n[service.\"_sip._tcp.voip.example.com\"]\npolicy = \"quality\"\nport = 5060\nnodes = [\"mtl1\", \"van1\"]\n\n[policy]\nquality_min_calls = 3\nquality_tolerance_mos = 0.3\n",
        *SITE
    ));
    let now = pdns_ha::metrics::now();
    let mut input = String::new();
    for _ in 0..3 {
        // 198.51.100.0/24: van1's calls sound better than mtl1's.
        input.push_str("quality mtl1 198.51.100.7 3.1 4.5 20\n");
        input.push_str(&format!("quality van1 198.51.100.8 4.3 0 2 {now}\n"));
    }
    // 192.0.2.0/24: too few calls for van1 (2 < 3); mtl1 is nearer.
    input.push_str("quality van1 192.0.2.9 4.4\nquality van1 192.0.2.9 4.4\n");
    input.push_str("latency mtl1 192.0.2.9 12\nlatency van1 192.0.2.9 80\n");
    // Bad lines.
    input.push_str("quality mtl1 198.51.100.7 5.2\nquality mtl1 198.51.100.7 NaN\nquality mtl1 198.51.100.7 4 120\nquality mtl1 198.51.100.7 4 1 2 3 4\n");
    let o = db.ingest(&input);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (line, why) in [
        (11, "MOS"),
        (12, "MOS"),
        (13, "LOSS_PCT"),
        (14, "got 8 fields"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("stdin:{line}: ")) && l.contains(why)),
            "line {line}: {why}\n{err}"
        );
    }
    assert!(err.contains("10 metric(s) stored, 4 bad line(s)"), "{err}");
    let s = db.status_json();
    assert_eq!(node(&s, "van1")["quality_networks_fresh"], 2, "{s}");
    assert_eq!(node(&s, "mtl1")["quality_networks_fresh"], 1, "{s}");
    let svc = "_sip._tcp.voip.example.com";
    assert_eq!(
        explain_order(&db, svc, "198.51.100.0/24"),
        [
            "0 100 5060 van1.voip.example.com",
            "1 100 5060 mtl1.voip.example.com"
        ]
    );
    assert_eq!(
        explain_order(&db, svc, "192.0.2.0/24"),
        [
            "0 100 5060 mtl1.voip.example.com",
            "1 100 5060 van1.voip.example.com"
        ]
    );
    // Why, in explain's text and JSON.
    let o = db.run(&["explain", svc, "SRV", "--client", "198.51.100.0/24"]);
    assert_ok("explain", &o);
    let text = stdout(&o);
    assert!(text.contains("policy=quality scope=/24"), "{text}");
    assert!(text.contains("call quality MOS 4.30"), "{text}");
    assert!(text.contains("call quality MOS 3.10"), "{text}");
    assert!(text.contains("4.5%"), "loss shown: {text}");
    let o = db.run(&["explain", svc, "SRV", "--client", "192.0.2.0/24", "--json"]);
    let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let nodes = &e["dynamic"][0]["nodes"];
    assert_eq!(nodes[0]["node"], "mtl1");
    assert!(
        nodes[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no call quality figure; measured latency 12.0 ms"),
        "{e}"
    );
    assert_eq!(
        nodes[1]["mos"],
        serde_json::Value::Null,
        "2 calls do not count: {e}"
    );
    // Prometheus.
    let o = db.run(&["status", "--prometheus"]);
    assert!(
        stdout(&o).contains("pdns_ha_node_quality_networks{node=\"van1\"} 2"),
        "{}",
        stdout(&o)
    );
}
