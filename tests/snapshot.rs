//! The latency snapshot end to end: published by `apply` and `ingest`,
//! followed by a running coprocess, and never trusted when it is missing,
//! damaged, of an older format or not the one the database names (the
//! coprocess then reads latency and call quality through SQLite and
//! answers exactly the same, for latency and quality services). A database
//! made before snapshots existed answers the same and gets one from
//! `apply`.

mod support;

use std::sync::LazyLock;
use std::time::Duration;

use support::{Coproc, Db, poll};

/// The site (tests/fixtures/three_nodes_office.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("three_nodes_office"));

const SRV: &str = "_sip._udp.voip.example.com";
/// The service with the quality policy.
const QSRV: &str = "_sips._tcp.voip.example.com";

/// Latency for 300 client /24s (three nodes each, different orders), some
/// IPv6 /48s and a few samples inside the named network.
fn samples() -> String {
    let mut s = String::new();
    for k in 0..300u32 {
        let ip = format!("10.{}.{}.1", k / 256, k % 256);
        for (i, node) in ["mtl1", "tor1", "van1"].iter().enumerate() {
            let ms = 5 + (k * (3 + 4 * i as u32)) % 90;
            s.push_str(&format!("latency {node} {ip} {ms}\n"));
        }
    }
    for k in 0..20u32 {
        s.push_str(&format!("latency van1 2001:db8:{k:x}::1 {}\n", 10 + k));
        s.push_str(&format!("latency mtl1 2001:db8:{k:x}::1 {}\n", 30 - k));
    }
    s.push_str("latency tor1 172.16.5.1 3\nlatency mtl1 172.20.9.1 40\n");
    s
}

/// Call quality for the same clients, in another order than latency: 1 to
/// 3 calls per node and /24 (2 needed: one call falls back to the /16, or
/// to latency), loss and jitter on some, and the named network.
fn quality_samples() -> String {
    let mut s = String::new();
    for k in 0..300u32 {
        let ip = format!("10.{}.{}.1", k / 256, k % 256);
        for (i, node) in ["mtl1", "tor1", "van1"].iter().enumerate() {
            let mos = 1.5 + f64::from((k * (5 + 2 * i as u32)) % 30) / 10.0;
            for c in 0..=(k + i as u32) % 3 {
                match c {
                    0 => s.push_str(&format!("quality {node} {ip} {mos}\n")),
                    1 => s.push_str(&format!("quality {node} {ip} {mos} 0.5\n")),
                    _ => s.push_str(&format!("quality {node} {ip} {mos} 1.5 12\n")),
                }
            }
        }
    }
    for k in 0..20u32 {
        for _ in 0..2 {
            s.push_str(&format!(
                "quality tor1 2001:db8:{k:x}::1 {}\n",
                4.4 - f64::from(k) / 10.0
            ));
        }
    }
    s.push_str("quality van1 172.16.5.1 4.3\nquality van1 172.16.5.1 4.1\n");
    s
}

/// The client networks the tests ask about: with data at their /24, at
/// their /16 only, in the named network, IPv6, and with no data at all.
fn clients() -> Vec<String> {
    let mut c: Vec<String> = (0..300u32)
        .step_by(7)
        .map(|k| format!("10.{}.{}.0/24", k / 256, k % 256))
        .collect();
    c.extend(
        [
            "10.0.77.0/24",
            "10.9.9.0/24",
            "172.16.200.0/24",
            "172.31.0.0/24",
        ]
        .map(String::from),
    );
    c.extend((0..22u32).map(|k| format!("2001:db8:{k:x}::/56")));
    c.push("192.0.2.0/24".into());
    c
}

/// The SRV answer for every client, from a new coprocess.
fn answers(db: &Db) -> Vec<Vec<String>> {
    answers_of(db, SRV)
}

/// The SRV answer of `srv` for every client, from a new coprocess.
fn answers_of(db: &Db, srv: &str) -> Vec<Vec<String>> {
    let mut p = Coproc::start(&db.path, 5, &[]);
    clients()
        .iter()
        .map(|net| {
            let ip = net.split('/').next().unwrap();
            let a = p.query(srv, "SRV", ip, net);
            assert_eq!(a.last().map(String::as_str), Some("END"), "{net}: {a:?}");
            a
        })
        .collect()
}

/// The first node of each answer (the preferred one).
fn firsts(answers: &[Vec<String>]) -> Vec<String> {
    answers
        .iter()
        .map(|a| {
            ["mtl1", "tor1", "van1"]
                .into_iter()
                .find(|n| a[0].contains(n))
                .unwrap_or("none")
                .to_string()
        })
        .collect()
}

/// Where `explain` says latency came from: "snapshot" or "sqlite".
fn latency_from(db: &Db) -> String {
    let o = db.run(&["explain", SRV, "SRV", "--client", "10.0.7.0/24", "--json"]);
    support::assert_ok("explain", &o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["latency_from"].as_str().unwrap().to_string()
}

fn snapshot_status(db: &Db) -> serde_json::Value {
    db.status_json()["latency_snapshot"].clone()
}

fn snapshot_path(db: &Db) -> std::path::PathBuf {
    let mut p = db.path.clone().into_os_string();
    p.push("-latency");
    p.into()
}

/// Removes the snapshot and its keys in `meta`: the state of a database
/// made by a pdns-ha from before snapshots (same schema version).
fn forget_snapshot(db: &Db) {
    std::fs::remove_file(snapshot_path(db)).unwrap();
    let c = rusqlite::Connection::open(&db.path).unwrap();
    c.execute("DELETE FROM meta WHERE key LIKE 'latency_%'", [])
        .unwrap();
}

#[test]
fn ingest_publishes_the_snapshot_and_a_running_coprocess_follows_it() {
    let db = Db::new("snap-follow");
    db.apply_ok(&SITE);
    let s = snapshot_status(&db);
    assert_eq!(s["usable"], true, "apply publishes one: {s}");
    db.ingest_ok("latency mtl1 10.1.1.1 5\nlatency van1 10.1.1.1 80\nlatency tor1 10.1.1.1 40\n");
    let s = snapshot_status(&db);
    assert_eq!(s["usable"], true, "{s}");
    assert_eq!(
        s["writes_behind"], 0,
        "ingest publishes before it exits: {s}"
    );
    assert_eq!(s["entries"], 3 * 3, "three nodes at /24, /16, /8: {s}");

    let mut p = Coproc::start(&db.path, 5, &[]);
    let ask = |p: &mut Coproc| p.query(SRV, "SRV", "10.1.1.9", "10.1.1.0/24");
    let first = ask(&mut p);
    assert!(first[0].contains("mtl1.voip"), "mtl1 is closest: {first:?}");
    // van1 becomes the closest: samples dated now replace the average
    // (alpha 0.3) quickly; the coprocess sees the new snapshot within its
    // refresh interval and the decision cache's second.
    let mut lines = String::new();
    for _ in 0..20 {
        lines.push_str("latency van1 10.1.1.1 1\nlatency mtl1 10.1.1.1 150\n");
    }
    db.ingest_ok(&lines);
    poll(
        "the coprocess follows the new snapshot",
        Duration::from_secs(5),
        || {
            let a = ask(&mut p);
            if a[0].contains("van1.voip") {
                Ok(())
            } else {
                Err(format!("{a:?}"))
            }
        },
    );
}

#[test]
fn a_database_from_before_snapshots_answers_the_same_and_apply_publishes_one() {
    let db = Db::new("snap-upgrade");
    db.apply_ok(&SITE);
    db.ingest_ok(&samples());
    let with_snapshot = answers(&db);
    assert!(
        with_snapshot.iter().any(|a| a[0].contains("van1"))
            && with_snapshot.iter().any(|a| a[0].contains("mtl1"))
            && with_snapshot.iter().any(|a| a[0].contains("tor1")),
        "the data orders clients differently: {with_snapshot:?}"
    );

    assert_eq!(latency_from(&db), "snapshot");
    forget_snapshot(&db);
    assert_eq!(latency_from(&db), "sqlite");
    let s = snapshot_status(&db);
    assert_eq!(s["usable"], false, "{s}");
    assert!(
        s["problem"].as_str().unwrap().contains("pdns-ha apply"),
        "{s}"
    );
    assert_eq!(answers(&db), with_snapshot, "SQLite answers the same");

    // `apply` with an unchanged site publishes the missing snapshot.
    let o = db.apply(&SITE);
    support::assert_ok("apply", &o);
    assert!(
        support::stdout(&o).contains("already matches"),
        "{}",
        support::stdout(&o)
    );
    let s = snapshot_status(&db);
    assert_eq!(s["usable"], true, "{s}");
    assert_eq!(latency_from(&db), "snapshot");
    assert_eq!(answers(&db), with_snapshot);
}

#[test]
fn a_damaged_foreign_or_removed_snapshot_is_never_trusted() {
    let db = Db::new("snap-damaged");
    db.apply_ok(&SITE);
    db.ingest_ok(&samples());
    let good = answers(&db);
    let path = snapshot_path(&db);
    let bytes = std::fs::read(&path).unwrap();

    // Another database's snapshot under this name (its token differs).
    let other = Db::new("snap-other");
    other.apply_ok(&SITE);
    other.ingest_ok(&samples().replace("latency van1", "latency tor1"));
    std::fs::copy(snapshot_path(&other), &path).unwrap();
    let s = snapshot_status(&db);
    assert_eq!(s["usable"], false, "{s}");
    assert!(
        s["problem"].as_str().unwrap().contains("not the snapshot"),
        "{s}"
    );
    assert_eq!(answers(&db), good, "read through SQLite");

    // Garbage, a file cut short, one byte of the header changed.
    for damaged in [b"garbage".to_vec(), bytes[..bytes.len() / 2].to_vec(), {
        let mut b = bytes.clone();
        b[40] ^= 0x10;
        b
    }] {
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(snapshot_status(&db)["usable"], false);
        assert_eq!(answers(&db), good);
    }

    // Put back, then removed under a running coprocess: the open file keeps
    // answering; a new coprocess reads SQLite; the same answers throughout.
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(snapshot_status(&db)["usable"], true);
    let mut p = Coproc::start(&db.path, 5, &[]);
    let before = p.query(SRV, "SRV", "10.0.7.1", "10.0.7.0/24");
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(p.query(SRV, "SRV", "10.0.7.1", "10.0.7.0/24"), before);
    assert_eq!(answers(&db), good);
    assert!(p.close().success());
}

/// `explain` of the quality service for one client, as JSON.
fn explain_quality(db: &Db, client: &str) -> serde_json::Value {
    let o = db.run(&["explain", QSRV, "SRV", "--client", client, "--json"]);
    support::assert_ok("explain", &o);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn call_quality_answers_the_same_from_the_snapshot_and_through_sqlite() {
    let db = Db::new("snap-quality");
    db.apply_ok(&SITE);
    db.ingest_ok(&samples());
    db.ingest_ok(&quality_samples());
    let s = snapshot_status(&db);
    assert_eq!(s["usable"], true, "{s}");
    assert_eq!(s["writes_behind"], 0, "quality writes publish too: {s}");
    assert!(s["quality_entries"].as_u64().unwrap() > 900, "{s}");
    let latency = answers(&db);
    let quality = answers_of(&db, QSRV);
    // The quality order is not the latency one for many clients, and
    // some fall back to latency (one call only, or no call quality).
    let differ = firsts(&latency)
        .iter()
        .zip(firsts(&quality))
        .filter(|(a, b)| **a != *b)
        .count();
    assert!(differ > 10, "{differ} clients ordered by quality");
    let detail = explain_quality(&db, "10.0.7.0/24");
    assert_eq!(detail["latency_from"], "snapshot", "{detail}");

    let nodes = &detail["dynamic"][0]["nodes"];
    assert!(
        nodes
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["mos"].is_number() && n["loss_pct"].is_number()),
        "{detail}"
    );

    forget_snapshot(&db);
    let from_sqlite = explain_quality(&db, "10.0.7.0/24");
    assert_eq!(from_sqlite["latency_from"], "sqlite");
    assert_eq!(from_sqlite["records"], detail["records"]);
    // The same entries (MOS, deviation, loss, jitter, calls, aggregate),
    // ages aside (a second may pass between the two).
    let without_ages = |v: &serde_json::Value| {
        let mut v = v["dynamic"].clone();
        for d in v.as_array_mut().unwrap() {
            for n in d["nodes"].as_array_mut().unwrap() {
                let n = n.as_object_mut().unwrap();
                n.retain(|k, _| !k.ends_with("_age_s"));
            }
        }
        v
    };
    assert_eq!(without_ages(&from_sqlite), without_ages(&detail));
    assert_eq!(answers_of(&db, QSRV), quality, "SQLite answers the same");
    assert_eq!(answers(&db), latency);
}

/// `bytes` with the format and the header check of an older build
/// (format 1: the same header, latency sections only).
fn as_format_1(bytes: &[u8]) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    let sections = u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize;
    let fnv = |h: u64, bytes: &[u8]| {
        bytes
            .iter()
            .fold(h, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3))
    };
    let check = fnv(
        fnv(0xcbf2_9ce4_8422_2325, &b[0..120]),
        &b[128..128 + sections * 32],
    );
    b[120..128].copy_from_slice(&check.to_le_bytes());
    b
}

#[test]
fn a_snapshot_of_an_older_format_is_not_read_and_the_next_writer_replaces_it() {
    let db = Db::new("snap-format");
    db.apply_ok(&SITE);
    db.ingest_ok(&samples());
    db.ingest_ok(&quality_samples());
    let quality = answers_of(&db, QSRV);
    let latency = answers(&db);
    // What an older build leaves: a format 1 file under the token `meta`
    // names, and no format recorded.
    let path = snapshot_path(&db);
    std::fs::write(&path, as_format_1(&std::fs::read(&path).unwrap())).unwrap();
    let c = rusqlite::Connection::open(&db.path).unwrap();
    c.execute("DELETE FROM meta WHERE key = 'latency_snapshot_format'", [])
        .unwrap();
    let s = snapshot_status(&db);
    assert_eq!(s["usable"], false, "{s}");
    assert!(s["problem"].as_str().unwrap().contains("format 1"), "{s}");
    assert_eq!(
        explain_quality(&db, "10.0.7.0/24")["latency_from"],
        "sqlite"
    );
    assert_eq!(answers_of(&db, QSRV), quality, "read through SQLite");
    assert_eq!(answers(&db), latency);
    // The next writer publishes again, though no entry changed since.
    db.ingest_ok("load mtl1 1 100\n");
    let s = snapshot_status(&db);
    assert_eq!(s["usable"], true, "{s}");
    assert_eq!(answers_of(&db, QSRV), quality);
}
