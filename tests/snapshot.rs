//! The latency snapshot end to end: published by `apply` and `ingest`,
//! followed by a running coprocess, and never trusted when it is missing,
//! damaged or not the one the database names (the coprocess then reads
//! latency through SQLite and answers exactly the same). A database made
//! before snapshots existed answers the same and gets one from `apply`.

mod support;

use std::sync::LazyLock;
use std::time::Duration;

use support::{Coproc, Db, poll};

/// The site (tests/fixtures/three_nodes_office.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("three_nodes_office"));

const SRV: &str = "_sip._udp.voip.example.com";

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
    let mut p = Coproc::start(&db.path, 5, &[]);
    clients()
        .iter()
        .map(|net| {
            let ip = net.split('/').next().unwrap();
            let a = p.query(SRV, "SRV", ip, net);
            assert_eq!(a.last().map(String::as_str), Some("END"), "{net}: {a:?}");
            a
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
