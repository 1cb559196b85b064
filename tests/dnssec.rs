//! DNSSEC through PowerDNS's online signing (README, "DNSSEC"): the settings
//! of pdns.conf.example plus a gsqlite3 backend that only keeps the zone's
//! keys and metadata, the zone secured with `pdnsutil secure-zone` and NSEC3
//! narrow, every answer validated by `delv` with the zone's key as its trust
//! anchor.
//!
//! `delv` sends no ECS option, so PowerDNS passes its source address to the
//! coprocess as the client: latencies measured for two loopback networks
//! (127.0.0.0/24 and 127.0.1.0/24, `delv -b`) give two different orders,
//! each validated. The ECS path (`dig +dnssec +subnet`) is checked for its
//! per-network order and its signature.

mod support;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::pdns::find_program;
use support::{Db, Dig, Pdns, PdnsOpts, TempDir, poll};

const ZONE: &str = "voip.example.com";
const LATENCY: &str = "_sip._udp.voip.example.com";
const POOL: &str = "sip.voip.example.com";
const MTL1: &str = "mtl1.voip.example.com";
const VAN1: &str = "van1.voip.example.com";
const TOR1: &str = "tor1.voip.example.com";

/// Latencies for two ECS networks (A: mtl1 first, B: van1 first) and for
/// the two loopback networks delv queries from (van1 first, tor1 first).
const LATENCIES: &str = "\
latency mtl1 198.51.100.0/24 10
latency van1 198.51.100.0/24 80
latency tor1 198.51.100.0/24 40
latency van1 192.0.2.0/24 12
latency mtl1 192.0.2.0/24 90
latency tor1 192.0.2.0/24 45
latency van1 127.0.0.0/24 10
latency tor1 127.0.0.0/24 40
latency mtl1 127.0.0.0/24 80
latency tor1 127.0.1.0/24 10
latency mtl1 127.0.1.0/24 45
latency van1 127.0.1.0/24 90
";

/// Where Debian's pdns-backend-sqlite3 puts the gsqlite3 schema (the first
/// is outside /usr/share/doc, which minimal images may leave out).
const SCHEMAS: [&str; 2] = [
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
];

/// The gsqlite3 schema, or None (after saying so, or panicking with
/// `PDNS_HA_REQUIRE_PDNS`) when what this test needs is not installed.
fn tools() -> Option<String> {
    if !support::pdns::tools_available() {
        return None;
    }
    let schema = SCHEMAS.iter().find_map(|p| std::fs::read_to_string(p).ok());
    let mut missing: Vec<&str> = ["pdnsutil", "delv"]
        .into_iter()
        .filter(|p| find_program(p).is_none())
        .collect();
    if schema.is_none() {
        missing.push("the gsqlite3 schema");
    }
    if missing.is_empty() {
        return schema;
    }
    let msg = format!(
        "{} not installed: this test needs pdnsutil, delv and PowerDNS's gsqlite3 backend \
         (apt-get install pdns-server pdns-backend-sqlite3 bind9-dnsutils)",
        missing.join(" and ")
    );
    if std::env::var_os("PDNS_HA_REQUIRE_PDNS").is_some() {
        panic!("{msg}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    None
}

/// The keystore: the gsqlite3 schema and one `domains` row for the zone
/// (no records: pdns-ha serves them all).
fn keystore(dir: &Path, schema: &str) -> PathBuf {
    let path = dir.join("keys.sqlite3");
    let c = rusqlite::Connection::open(&path).expect("create the keystore");
    c.execute_batch(schema).expect("load the gsqlite3 schema");
    c.execute(
        "INSERT INTO domains (name, type) VALUES (?1, 'NATIVE')",
        [ZONE],
    )
    .expect("add the zone");
    path
}

/// The settings of pdns.conf.example with the DNSSEC lines it has
/// commented out: the keystore at `keys`.
fn with_keystore(keys: &Path) -> PdnsOpts {
    PdnsOpts::default()
        .with("launch=pipe,pipe:standby,gsqlite3")
        .with(&format!("gsqlite3-database={}", keys.display()))
        .with("gsqlite3-dnssec=yes")
}

/// Runs `pdnsutil --config-dir=DIR ARGS` (the server's own pdns.conf);
/// panics unless it succeeds. Returns its stdout.
fn pdnsutil(pdns: &Pdns, args: &[&str]) -> String {
    let out = Command::new(find_program("pdnsutil").expect("pdnsutil is installed"))
        .arg(format!("--config-dir={}", pdns.dir().display()))
        .args(args)
        .env_remove("PDNS_HA_DB")
        .stdin(Stdio::null())
        .output()
        .expect("run pdnsutil");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "pdnsutil {args:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Writes a delv trust anchor file with the zone's key-signing key.
fn anchor(pdns: &Pdns, dir: &Path) -> PathBuf {
    // "voip.example.com IN DNSKEY 257 3 13 KEY..." for key 1 (the CSK).
    let out = pdnsutil(pdns, &["export-zone-dnskey", ZONE, "1"]);
    let f: Vec<&str> = out
        .lines()
        .find(|l| l.contains(" DNSKEY "))
        .unwrap_or_else(|| panic!("no DNSKEY in: {out}"))
        .split_whitespace()
        .collect();
    assert_eq!(f[..4], [ZONE, "IN", "DNSKEY", "257"], "{out}");
    let path = dir.join("anchor.conf");
    std::fs::write(
        &path,
        format!(
            "trust-anchors {{\n  \"{ZONE}.\" static-key {} {} {} \"{}\";\n}};\n",
            f[3],
            f[4],
            f[5],
            f[6..].concat()
        ),
    )
    .expect("write the trust anchor");
    path
}

/// `delv @127.0.0.1 -p PORT -b SOURCE -a ANCHOR +root=ZONE NAME TYPE`.
fn delv(pdns: &Pdns, anchor: &Path, source: &str, name: &str, rtype: &str) -> String {
    let out = Command::new(find_program("delv").expect("delv is installed"))
        .arg("@127.0.0.1")
        .args(["-p", &pdns.port.to_string(), "-b", source, "-a"])
        .arg(anchor)
        .arg(format!("+root={ZONE}"))
        .args([name, rtype])
        .stdin(Stdio::null())
        .output()
        .expect("run delv");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The SRV targets of a delv answer, by priority.
fn delv_targets(out: &str) -> Vec<String> {
    let mut v: Vec<(u16, String)> = out
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 8 || f[3] != "SRV" {
                return None;
            }
            Some((f[4].parse().ok()?, f[7].trim_end_matches('.').to_string()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, t)| t).collect()
}

/// True if `out` is a validated positive answer with an RRSIG over `rtype`.
fn validated(out: &str, rtype: &str) -> bool {
    out.lines().any(|l| l == "; fully validated")
        && out.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 5 && f[3] == "RRSIG" && f[4] == rtype
        })
}

/// The RRSIGs over `rtype` in the answer section of a dig answer.
fn rrsigs<'a>(d: &'a Dig, rtype: &str) -> Vec<&'a str> {
    d.records("RRSIG")
        .into_iter()
        .filter(|r| r.data.split_whitespace().next() == Some(rtype))
        .map(|r| r.data.as_str())
        .collect()
}

#[test]
fn a_secured_zone_serves_validated_per_client_answers() {
    let Some(schema) = tools() else { return };
    let db = Db::new("dnssec");
    db.apply_ok(&support::fixture("three_nodes_dynamic"));
    db.ingest_ok(LATENCIES);
    let keys_dir = TempDir::new("dnssec-keys");
    let keys = keystore(keys_dir.path(), &schema);
    let pdns = Pdns::start(
        &db.path,
        with_keystore(&keys).with("allow-axfr-ips=127.0.0.0/8"),
    );
    // NSEC3 narrow first, then the keys: a zone secured with NSEC (the
    // default) makes PowerDNS 4.7 abort on its first NXDOMAIN (the pipe
    // backend cannot give the names before and after). PowerDNS caches a
    // zone's keys and metadata (dnssec-key-cache-ttl,
    // domain-metadata-cache-ttl): no question for the zone reached it yet.
    pdnsutil(&pdns, &["set-nsec3", ZONE, "1 0 0 -", "narrow"]);
    pdnsutil(&pdns, &["secure-zone", ZONE]);
    let shown = pdnsutil(&pdns, &["show-zone", ZONE]);
    assert!(shown.contains("NARROW hashed NSEC3"), "{shown}");
    assert!(shown.contains("DS = voip.example.com. IN DS "), "{shown}");
    let anchor = anchor(&pdns, keys_dir.path());

    let soa = delv(&pdns, &anchor, "127.0.0.1", ZONE, "SOA");
    assert!(validated(&soa, "SOA"), "{soa}");
    assert!(
        soa.contains("ns1.voip.example.com. hostmaster.example.com."),
        "{soa}"
    );

    // Per-client answers, validated: delv asks from two loopback networks
    // with different latencies, so different orders.
    for (source, want) in [
        ("127.0.0.1", [VAN1, TOR1, MTL1]),
        ("127.0.1.1", [TOR1, MTL1, VAN1]),
    ] {
        let out = poll("a validated per-client SRV", Duration::from_secs(3), || {
            let out = delv(&pdns, &anchor, source, LATENCY, "SRV");
            if validated(&out, "SRV") && delv_targets(&out) == want {
                Ok(out)
            } else {
                Err(out)
            }
        });
        eprintln!("delv -b {source} {LATENCY} SRV:\n{out}");
    }

    // With ECS (dig): the order of each network, with its signature (one
    // signature per distinct RRset: the two differ).
    let mut sigs = Vec::new();
    for (net, want) in [
        ("198.51.100.0/24", [MTL1, TOR1, VAN1]),
        ("192.0.2.0/24", [VAN1, TOR1, MTL1]),
    ] {
        let subnet = format!("+subnet={net}");
        let d = pdns.dig(&["+dnssec", &subnet, LATENCY, "SRV"]);
        assert_eq!(d.status, "NOERROR", "{d}");
        assert_eq!(d.srv_targets(), want, "{net}: {d}");
        assert_eq!(d.scope(), Some(24), "{d}");
        let s = rrsigs(&d, "SRV");
        assert_eq!(s.len(), 1, "{d}");
        sigs.push(s[0].to_string());
        // The node addresses in the additional section are signed too.
        assert!(
            d.additional
                .iter()
                .any(|r| r.rtype == "RRSIG" && r.data.starts_with("A ")),
            "{d}"
        );
    }
    assert_ne!(sigs[0], sigs[1]);

    // A pool's address and a static record.
    let out = delv(&pdns, &anchor, "127.0.0.1", POOL, "A");
    assert!(validated(&out, "A"), "{out}");
    assert!(out.contains(&format!("{POOL}.\t30\tIN\tA\t")), "{out}");
    let out = delv(&pdns, &anchor, "127.0.0.1", MTL1, "A");
    assert!(validated(&out, "A"), "{out}");
    assert!(out.contains("198.51.100.10"), "{out}");

    // Negative answers are proven with NSEC3 (narrow: one hash apart).
    let nx = delv(&pdns, &anchor, "127.0.0.1", "nope.voip.example.com", "A");
    eprintln!("delv nope.{ZONE} A:\n{nx}");
    assert!(nx.contains("; negative response, fully validated"), "{nx}");
    assert!(nx.contains("NXDOMAIN"), "{nx}");
    assert!(nx.contains(" NSEC3 1 0 0 - "), "{nx}");
    // The empty non-terminal above the services.
    let ent = delv(&pdns, &anchor, "127.0.0.1", "_udp.voip.example.com", "A");
    eprintln!("delv _udp.{ZONE} A:\n{ent}");
    assert!(
        ent.contains("; negative response, fully validated"),
        "{ent}"
    );
    assert!(ent.contains("NXRRSET"), "{ent}");
    // NODATA for a name that exists.
    let nodata = delv(&pdns, &anchor, "127.0.0.1", MTL1, "TXT");
    assert!(
        nodata.contains("; negative response, fully validated"),
        "{nodata}"
    );
    assert!(nodata.contains("NXRRSET"), "{nodata}");
    // The NSEC3 record of mtl1 lists what it has: A (and RRSIG).
    assert!(
        nodata
            .lines()
            .any(|l| l.contains(" NSEC3 1 0 0 - ") && l.ends_with(" A RRSIG")),
        "{nodata}"
    );
    // PowerDNS refuses to transfer a zone in NSEC3 narrow mode (its NSEC3
    // records are made per question): secondaries cannot take it.
    let axfr = pdns.dig(&[ZONE, "AXFR"]);
    assert!(axfr.answer.is_empty(), "{axfr}");
    assert!(axfr.raw.contains("Transfer failed"), "{axfr}");
    assert!(
        pdns.log()
            .contains("not doing AXFR of an NSEC3 narrow zone"),
        "{}",
        pdns.log()
    );

    // A node going down changes the signed answer as fast as an unsigned
    // one (the coprocesses' refresh): a new RRset, a new signature.
    db.ingest_ok("health van1 down\n");
    // Five answers in a row, so from more than one coprocess.
    poll("van1 left out, validated", Duration::from_secs(3), || {
        for _ in 0..5 {
            let out = delv(&pdns, &anchor, "127.0.0.1", LATENCY, "SRV");
            if !validated(&out, "SRV") || delv_targets(&out) != [TOR1, MTL1] {
                return Err(out);
            }
        }
        Ok(())
    });
    pdns.assert_no_backend_trouble();
}

/// A secured zone never turns unsigned for want of its keys: without the
/// keystore database PowerDNS does not start at all.
#[test]
fn without_its_keystore_powerdns_does_not_start() {
    if tools().is_none() {
        return;
    }
    let db = Db::new("dnssec-nokeys");
    db.apply_ok(&support::fixture("three_nodes_dynamic"));
    let dir = TempDir::new("dnssec-nokeys-pdns");
    let bin = support::BIN;
    let pipe = format!("{bin} pipe --db {}", db.path.display());
    let mut conf = support::pdns::conf_from_example(&[
        ("pipe-command", pipe.clone()),
        ("pipe-standby-command", pipe),
        ("local-address", "127.0.0.1".to_string()),
        ("local-port", support::free_port().to_string()),
        ("socket-dir", dir.path().display().to_string()),
    ]);
    conf.push("launch=pipe,pipe:standby,gsqlite3".to_string());
    conf.push(format!(
        "gsqlite3-database={}",
        dir.path().join("missing.sqlite3").display()
    ));
    conf.push("gsqlite3-dnssec=yes".to_string());
    std::fs::write(dir.path().join("pdns.conf"), conf.join("\n") + "\n").expect("pdns.conf");
    let mut child = Command::new(find_program("pdns_server").expect("pdns_server"))
        .arg(format!("--config-dir={}", dir.path().display()))
        .args(["--daemon=no", "--guardian=no", "--disable-syslog"])
        .env_remove("PDNS_HA_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start pdns_server");
    let pid = child.id();
    let status = poll("pdns_server exits", Duration::from_secs(10), || {
        child
            .try_wait()
            .expect("wait")
            .ok_or_else(|| "still running".to_string())
    });
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut log)
        .expect("read its log");
    // Its coprocesses, if any were left.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    assert!(!status.success(), "{status}\n{log}");
    assert!(
        log.contains("Unable to launch gsqlite3 connection"),
        "{log}"
    );
}

/// Why the README says NSEC3 narrow, before `secure-zone`: a zone secured
/// with plain NSEC makes PowerDNS 4.7 abort on the first name that does not
/// exist (NSEC needs the names before and after it, which the pipe backend
/// cannot give).
#[test]
fn with_plain_nsec_powerdns_aborts_on_nxdomain() {
    let Some(schema) = tools() else { return };
    let db = Db::new("dnssec-nsec");
    db.apply_ok(&support::fixture("three_nodes_dynamic"));
    let keys_dir = TempDir::new("dnssec-nsec-keys");
    let keys = keystore(keys_dir.path(), &schema);
    let pdns = Pdns::start(&db.path, with_keystore(&keys));
    pdnsutil(&pdns, &["secure-zone", ZONE]);
    // A positive answer is signed.
    let d = pdns.dig(&["+dnssec", MTL1, "A"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    assert_eq!(rrsigs(&d, "A").len(), 1, "{d}");
    // A name that does not exist: no answer, and the server is gone.
    let d = pdns.dig(&["+dnssec", "nope.voip.example.com", "A"]);
    assert_eq!(d.status, "", "{d}");
    poll("PowerDNS aborted", Duration::from_secs(5), || {
        let log = pdns.log();
        if log.contains("beforeAndAfterAbsolute") && log.contains("Got a signal 6") {
            Ok(())
        } else {
            Err(log)
        }
    });
    let d = pdns.dig(&[MTL1, "A"]);
    assert_eq!(d.status, "", "nothing answers any more: {d}");
}
