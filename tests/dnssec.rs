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
//!
//! Also: what the coprocess answers for the DNSSEC types (never one of
//! them) and what PowerDNS asks it; delegations (NS and glue unsigned, DS
//! signed); TTLs of signed answers; the empty non-terminal's placeholder;
//! a key rollover while PowerDNS runs; the keystore missing, unreadable,
//! replaced, emptied or cut short, at start and at run time.

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

/// A database with the three-node dynamic site and [`LATENCIES`].
fn measured_db(tag: &str) -> Db {
    let db = Db::new(tag);
    db.apply_ok(&support::fixture("three_nodes_dynamic"));
    db.ingest_ok(LATENCIES);
    db
}

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
    pdnsutil_in(pdns.dir(), args)
}

/// [`pdnsutil`] with the pdns.conf of `dir`.
fn pdnsutil_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(find_program("pdnsutil").expect("pdnsutil is installed"))
        .arg(format!("--config-dir={}", dir.display()))
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
    anchor_in(pdns.dir(), dir)
}

/// [`anchor`] with the pdns.conf of `conf`.
fn anchor_in(conf: &Path, dir: &Path) -> PathBuf {
    // "voip.example.com IN DNSKEY 257 3 13 KEY..." for key 1 (the CSK).
    let out = pdnsutil_in(conf, &["export-zone-dnskey", ZONE, "1"]);
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
    let db = measured_db("dnssec");
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
    let log = pdns_exits(
        &db,
        dir.path(),
        &[
            "launch=pipe,pipe:standby,gsqlite3".to_string(),
            format!(
                "gsqlite3-database={}",
                dir.path().join("missing.sqlite3").display()
            ),
            "gsqlite3-dnssec=yes".to_string(),
        ],
    );
    assert!(
        log.contains("Unable to launch gsqlite3 connection"),
        "{log}"
    );
}

/// Starts pdns_server with the settings of pdns.conf.example and `extra`
/// (config and control socket in `dir`) and waits for it to exit, which it
/// must, unsuccessfully; returns its log.
fn pdns_exits(db: &Db, dir: &Path, extra: &[String]) -> String {
    let bin = support::BIN;
    let pipe = format!("{bin} pipe --db {}", db.path.display());
    let mut conf = support::pdns::conf_from_example(&[
        ("pipe-command", pipe.clone()),
        ("pipe-standby-command", pipe),
        ("local-address", "127.0.0.1".to_string()),
        ("local-port", support::free_port().to_string()),
        ("socket-dir", dir.display().to_string()),
    ]);
    conf.extend(extra.iter().cloned());
    std::fs::write(dir.join("pdns.conf"), conf.join("\n") + "\n").expect("pdns.conf");
    let mut child = Command::new(find_program("pdns_server").expect("pdns_server"))
        .arg(format!("--config-dir={}", dir.display()))
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
    log
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

/// Two delegations for the site of these tests: `child` secure (NS, DS and
/// in-zone glue), `insecure` without a DS.
const DELEGATIONS: &str = r#"
[[record]]
name = "child.voip.example.com"
type = "NS"
content = "ns.child.voip.example.com."

[[record]]
name = "child.voip.example.com"
type = "DS"
content = "60485 13 2 2BB183AF5F22588179A53B0A98631FAD1A292118F1E4B7C3E4A0F5D9C8B7A6E5"

[[record]]
name = "ns.child.voip.example.com"
type = "A"
content = "192.0.2.53"

[[record]]
name = "insecure.voip.example.com"
type = "NS"
content = "ns.example.net."
"#;

const CHILD: &str = "child.voip.example.com";
const GLUE: &str = "ns.child.voip.example.com";

/// The types PowerDNS makes itself in a signed zone (from the keystore, or
/// as it signs): never from the coprocess.
const DNSSEC_TYPES: [&str; 7] = [
    "DNSKEY",
    "NSEC3PARAM",
    "RRSIG",
    "NSEC3",
    "NSEC",
    "CDS",
    "CDNSKEY",
];

/// A running PowerDNS with the zone secured (NSEC3 narrow), its keystore and
/// a delv trust anchor for its first key.
struct Secured {
    pdns: Pdns,
    dir: TempDir,
    keys: PathBuf,
    anchor: PathBuf,
}

fn secured(db: &Db, schema: &str, tag: &str, opts: PdnsOpts) -> Secured {
    let dir = TempDir::new(tag);
    let keys = keystore(dir.path(), schema);
    let pdns = Pdns::start(&db.path, opts_with_keystore(opts, &keys));
    pdnsutil(&pdns, &["set-nsec3", ZONE, "1 0 0 -", "narrow"]);
    pdnsutil(&pdns, &["secure-zone", ZONE]);
    let anchor = anchor(&pdns, dir.path());
    Secured {
        pdns,
        dir,
        keys,
        anchor,
    }
}

/// `opts` with the keystore settings of [`with_keystore`].
fn opts_with_keystore(opts: PdnsOpts, keys: &Path) -> PdnsOpts {
    with_keystore(keys)
        .extra
        .iter()
        .fold(opts, |o, l| o.with(l))
}

/// The fields of an RRSIG's data: type covered, algorithm, labels,
/// original TTL, expiration, inception, key tag, signer, signature.
fn rrsig_fields(data: &str) -> Vec<&str> {
    data.split_whitespace().collect()
}

/// The key tags of the RRSIGs over `rtype` in the answer section.
fn signing_tags(d: &Dig, rtype: &str) -> Vec<u16> {
    let mut tags: Vec<u16> = rrsigs(d, rtype)
        .iter()
        .map(|s| rrsig_fields(s)[6].parse().expect("a key tag"))
        .collect();
    tags.sort();
    tags
}

/// What pdns-ha answers on its own (the pipe, no PowerDNS): never a DNSSEC
/// type, nothing for the apex's keys or DS, and a delegation's NS records
/// and glue marked not authoritative (so that PowerDNS does not sign them),
/// its DS authoritative.
#[test]
fn the_coprocess_never_answers_dnssec_types_and_marks_delegations() {
    let db = Db::new("dnssec-pipe");
    db.apply_ok(&(support::fixture("three_nodes_dynamic") + DELEGATIONS));
    db.ingest_ok(LATENCIES);
    let mut p = support::Coproc::start(&db.path, 5, &[]);
    p.answer_within = Duration::from_secs(2);
    let names = [
        ZONE,
        MTL1,
        LATENCY,
        POOL,
        "_udp.voip.example.com",
        CHILD,
        GLUE,
        "insecure.voip.example.com",
        "nope.voip.example.com",
    ];
    // ABI 5: DATA SCOPE AUTH QNAME IN QTYPE TTL ID CONTENT.
    let data = |p: &mut support::Coproc, name: &str, qtype: &str| -> Vec<Vec<String>> {
        let a = p.query(name, qtype, "127.0.0.1", "198.51.100.0/24");
        assert_eq!(
            a.last().map(String::as_str),
            Some("END"),
            "{name} {qtype}: {a:?}"
        );
        a[..a.len() - 1]
            .iter()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    };
    for name in names {
        for qtype in DNSSEC_TYPES.iter().chain(&["DS", "ANY"]) {
            let lines = data(&mut p, name, qtype);
            for f in &lines {
                assert_eq!(f[0], "DATA", "{name} {qtype}: {lines:?}");
                assert!(
                    !DNSSEC_TYPES.contains(&f[5].as_str()),
                    "{name} {qtype}: {lines:?}"
                );
            }
            let want_ds = name == CHILD && (*qtype == "DS" || *qtype == "ANY");
            assert_eq!(
                lines.iter().any(|f| f[5] == "DS"),
                want_ds,
                "{name} {qtype}: {lines:?}"
            );
            if DNSSEC_TYPES.contains(qtype) || (*qtype == "DS" && !want_ds) {
                assert!(lines.is_empty(), "{name} {qtype}: {lines:?}");
            }
        }
    }
    // Authoritative everywhere but at and below the delegations: their NS
    // and the glue 0, the DS 1.
    for name in names {
        for f in data(&mut p, name, "ANY") {
            let want = match (name, f[5].as_str()) {
                (CHILD, "DS") => "1",
                (CHILD | GLUE | "insecure.voip.example.com", _) => "0",
                _ => "1",
            };
            assert_eq!(f[2], want, "auth of {name} {}: {f:?}", f[5]);
        }
    }
    let ns = data(&mut p, CHILD, "NS");
    assert_eq!(ns.len(), 1, "{ns:?}");
    assert_eq!(
        (ns[0][2].as_str(), ns[0][8].as_str()),
        ("0", "ns.child.voip.example.com.")
    );
    let glue = data(&mut p, GLUE, "A");
    assert_eq!(
        (glue[0][2].as_str(), glue[0][8].as_str()),
        ("0", "192.0.2.53")
    );
    // The zone's own NS at the apex stays authoritative.
    let apex_ns = data(&mut p, ZONE, "NS");
    assert!(
        !apex_ns.is_empty() && apex_ns.iter().all(|f| f[2] == "1"),
        "{apex_ns:?}"
    );
    // ABI 1 and 2 have no auth field: the same records, PowerDNS takes them
    // all as authoritative (hence ABI 3 or later for a signed zone with
    // delegations: the README).
    let mut old = support::Coproc::start(&db.path, 2, &[]);
    let a = old.query(CHILD, "NS", "127.0.0.1", "");
    let f: Vec<&str> = a[0].split('\t').collect();
    assert_eq!(
        (f.len(), f[1], f[3], f[6], a.len()),
        (7, CHILD, "NS", "ns.child.voip.example.com.", 2),
        "{a:?}"
    );
}

/// Questions for the types PowerDNS makes itself, in a signed zone: what
/// reaches the coprocess, what the client gets, what delv validates; a
/// delegation's referral; the TTLs of signed answers.
#[test]
fn dnssec_questions_delegations_and_ttls_in_a_signed_zone() {
    let Some(schema) = tools() else { return };
    let db = Db::new("dnssec-types");
    db.apply_ok(&(support::fixture("three_nodes_dynamic") + DELEGATIONS));
    db.ingest_ok(LATENCIES);
    let s = secured(
        &db,
        &schema,
        "dnssec-types-keys",
        PdnsOpts::default().with("query-logging=yes"),
    );
    let (pdns, anchor) = (&s.pdns, &s.anchor);
    let soa = pdns.dig(&[ZONE, "SOA"]);
    let soa_data = soa.data("SOA");
    let soa_fields: Vec<&str> = soa_data[0].split_whitespace().collect();
    let minimum: u32 = soa_fields[6].parse().expect("SOA minimum");
    let asked_before = pdns.questions().len();

    // The apex's DNSKEY and NSEC3PARAM: from the keystore, signed, TTL the
    // SOA minimum (PowerDNS's choice), validated.
    for rtype in ["DNSKEY", "NSEC3PARAM"] {
        let out = delv(pdns, anchor, "127.0.0.1", ZONE, rtype);
        assert!(validated(&out, rtype), "{out}");
        let d = pdns.dig(&["+dnssec", ZONE, rtype]);
        let rr = d.records(rtype);
        assert_eq!(rr.len(), 1, "{d}");
        assert_eq!(rr[0].ttl, minimum, "{d}");
        assert_eq!(
            rrsig_fields(rrsigs(&d, rtype)[0])[3],
            minimum.to_string(),
            "{d}"
        );
    }
    // The DS of the apex is the parent's: a signed NODATA from the child,
    // its NSEC3 record without DS.
    let d = pdns.dig(&["+dnssec", ZONE, "DS"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    assert!(d.answer.is_empty(), "{d}");
    let nsec3: Vec<&str> = d
        .authority
        .iter()
        .filter(|r| r.rtype == "NSEC3")
        .map(|r| r.data.as_str())
        .collect();
    assert_eq!(nsec3.len(), 1, "{d}");
    assert!(nsec3[0].ends_with(" NS SOA RRSIG DNSKEY NSEC3PARAM"), "{d}");
    // RRSIG questions are refused by PowerDNS; NSEC3 is a signed NODATA.
    assert_eq!(pdns.dig(&["+dnssec", LATENCY, "RRSIG"]).status, "REFUSED");
    let d = pdns.dig(&["+dnssec", ZONE, "NSEC3"]);
    assert_eq!((d.status.as_str(), d.answer.len()), ("NOERROR", 0), "{d}");
    assert!(d.authority.iter().any(|r| r.rtype == "NSEC3"), "{d}");
    // None of these questions reached a coprocess with its own type: the
    // DS of the apex was asked as ANY (with the SOA walk above it).
    let asked: Vec<String> = pdns.questions()[asked_before..].to_vec();
    for q in &asked {
        let qtype = q.split('\t').nth(3).unwrap_or("");
        assert!(
            !DNSSEC_TYPES.contains(&qtype) && qtype != "DS",
            "{q}\nall: {asked:#?}"
        );
    }

    // A secure delegation: its DS is signed and validates; a referral
    // carries the NS and the glue unsigned (RFC 4035 2.2), the DS signed.
    let out = delv(pdns, anchor, "127.0.0.1", CHILD, "DS");
    assert!(validated(&out, "DS"), "{out}");
    let d = pdns.dig(&["+dnssec", "host.child.voip.example.com", "A"]);
    eprintln!("referral:\n{d}");
    assert_eq!(d.status, "NOERROR", "{d}");
    assert!(!d.flags.contains(&"aa".to_string()), "a referral: {d}");
    let sigs_over = |rrs: &[support::Rr], rtype: &str| {
        rrs.iter()
            .filter(|r| r.rtype == "RRSIG" && r.data.split_whitespace().next() == Some(rtype))
            .count()
    };
    assert_eq!(
        d.authority.iter().filter(|r| r.rtype == "NS").count(),
        1,
        "{d}"
    );
    assert_eq!(
        sigs_over(&d.authority, "NS"),
        0,
        "delegation NS unsigned: {d}"
    );
    assert_eq!(
        d.authority.iter().filter(|r| r.rtype == "DS").count(),
        1,
        "{d}"
    );
    assert_eq!(sigs_over(&d.authority, "DS"), 1, "{d}");
    assert!(
        d.additional
            .iter()
            .any(|r| r.rtype == "A" && r.data == "192.0.2.53"),
        "glue: {d}"
    );
    assert_eq!(sigs_over(&d.additional, "A"), 0, "glue unsigned: {d}");
    // An insecure delegation: the referral proves with NSEC3 that there is
    // no DS (the bitmap has NS only).
    let d = pdns.dig(&["+dnssec", "www.insecure.voip.example.com", "A"]);
    assert!(!d.flags.contains(&"aa".to_string()), "a referral: {d}");
    assert_eq!(sigs_over(&d.authority, "NS"), 0, "{d}");
    let nsec3: Vec<&str> = d
        .authority
        .iter()
        .filter(|r| r.rtype == "NSEC3")
        .map(|r| r.data.as_str())
        .collect();
    assert_eq!(nsec3.len(), 1, "{d}");
    assert!(nsec3[0].ends_with(" NS"), "{d}");
    let d = pdns.dig(&["+dnssec", "insecure.voip.example.com", "DS"]);
    assert_eq!((d.status.as_str(), d.answer.len()), ("NOERROR", 0), "{d}");

    // An empty non-terminal: NODATA whose NSEC3 record lists pdns-ha's
    // placeholder (README: why); asked for by type (or ANY), the
    // placeholder itself, signed.
    let d = pdns.dig(&["+dnssec", "_udp.voip.example.com", "A"]);
    assert_eq!((d.status.as_str(), d.answer.len()), ("NOERROR", 0), "{d}");
    let nsec3: Vec<&str> = d
        .authority
        .iter()
        .filter(|r| r.rtype == "NSEC3")
        .map(|r| r.data.as_str())
        .collect();
    assert_eq!(nsec3.len(), 1, "{d}");
    assert!(nsec3[0].ends_with(" RRSIG TYPE65534"), "{d}");
    let d = pdns.dig(&["+dnssec", "_udp.voip.example.com", "TYPE65534"]);
    assert_eq!(d.data("TYPE65534"), ["\\# 0"], "{d}");
    assert_eq!(rrsigs(&d, "TYPE65534").len(), 1, "{d}");
    // A name below an empty non-terminal does not exist: a validated
    // NXDOMAIN (the ENT is the closest encloser).
    let nx = delv(
        pdns,
        anchor,
        "127.0.0.1",
        "nope._udp.voip.example.com",
        "SRV",
    );
    assert!(nx.contains("; negative response, fully validated"), "{nx}");
    assert!(nx.contains("NXDOMAIN"), "{nx}");

    // TTLs: every RRSIG carries the TTL of the records it covers as its
    // original TTL (the SRV's 30 s, the addresses' 3600 s); in a negative
    // answer the SOA is served with min(SOA TTL, minimum) and its RRSIG
    // keeps the SOA's own TTL as original TTL (RFC 4035 allows a TTL below
    // it; validators accept).
    let d = pdns.dig(&["+dnssec", "+subnet=198.51.100.0/24", LATENCY, "SRV"]);
    let srv_ttl = d.records("SRV")[0].ttl;
    assert_eq!(srv_ttl, 30, "{d}");
    let sig = rrsigs(&d, "SRV");
    assert_eq!(rrsig_fields(sig[0])[3], "30", "{d}");
    for a in d.additional.iter().filter(|r| r.rtype == "RRSIG") {
        assert_eq!(rrsig_fields(&a.data)[3], "3600", "{d}");
    }
    let d = pdns.dig(&["+dnssec", MTL1, "TXT"]);
    let soa: Vec<&support::Rr> = d.authority.iter().filter(|r| r.rtype == "SOA").collect();
    let soa_sig = d
        .authority
        .iter()
        .find(|r| r.rtype == "RRSIG" && r.data.starts_with("SOA "))
        .unwrap_or_else(|| panic!("{d}"));
    assert_eq!(soa[0].ttl, minimum.min(3600), "{d}");
    assert_eq!(rrsig_fields(&soa_sig.data)[3], "3600", "{d}");
    pdns.assert_no_backend_trouble();
    drop(s.dir);
}

/// A delv trust anchor file `NAME` with the keys `ids` of the zone (as a
/// parent publishing their DS would make them trusted).
fn anchor_of(pdns: &Pdns, dir: &Path, name: &str, ids: &[&str]) -> PathBuf {
    let mut text = String::from("trust-anchors {\n");
    for id in ids {
        let out = pdnsutil(pdns, &["export-zone-dnskey", ZONE, id]);
        let f: Vec<&str> = out
            .lines()
            .find(|l| l.contains(" DNSKEY "))
            .unwrap_or_else(|| panic!("no DNSKEY in: {out}"))
            .split_whitespace()
            .collect();
        text.push_str(&format!(
            "  \"{ZONE}.\" static-key {} {} {} \"{}\";\n",
            f[3],
            f[4],
            f[5],
            f[6..].concat()
        ));
    }
    text.push_str("};\n");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the trust anchor");
    path
}

/// `pdns_control --socket-dir=DIR ARGS`; its stdout.
fn pdns_control(pdns: &Pdns, args: &[&str]) -> String {
    let out = Command::new(find_program("pdns_control").expect("pdns_control is installed"))
        .arg(format!("--socket-dir={}", pdns.dir().display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pdns_control");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The key tag of key `id`, as `pdnsutil list-keys` shows it.
fn key_tag(pdns: &Pdns, id: &str) -> u16 {
    let out = pdnsutil(pdns, &["list-keys", ZONE]);
    out.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Zone Type [Act] [Pub] Size Algorithm ID Location Keytag
            let n = f.len();
            (n >= 7 && f[0] == ZONE && f[n - 3] == id).then(|| f[n - 1].parse().ok())?
        })
        .unwrap_or_else(|| panic!("no key {id} in:\n{out}"))
}

/// A key rollover with pdnsutil while PowerDNS runs (README "Key
/// rollover", pre-publishing the new key): the dynamic answers validate at
/// every step, with the old key, the new one or both as the trust anchor as
/// a parent's DS would make them. A running server reads the keys again
/// after `dnssec-key-cache-ttl` (1 s here; 30 s by default) and its packet
/// cache keeps answers (the DNSKEY set) for `cache-ttl`: `pdns_control
/// purge` empties that.
#[test]
fn a_key_rollover_keeps_every_answer_validated() {
    let Some(schema) = tools() else { return };
    let db = measured_db("dnssec-roll");
    let s = secured(
        &db,
        &schema,
        "dnssec-roll-keys",
        PdnsOpts::default().with("dnssec-key-cache-ttl=1"),
    );
    let (pdns, dir) = (&s.pdns, s.dir.path());
    let old = anchor_of(pdns, dir, "old.conf", &["1"]);
    let old_tag = key_tag(pdns, "1");
    // The state of the zone once PowerDNS shows it: the tags of the DNSKEY
    // set and of the SRV answer's signatures.
    let wait_for = |what: &str, keys: &[u16], signers: &[u16]| {
        poll(what, Duration::from_secs(10), || {
            pdns_control(pdns, &["purge", &format!("{ZONE}$")]);
            let dk = pdns.dig(&["+dnssec", ZONE, "DNSKEY"]);
            let mut tags: Vec<u16> = dk.data("DNSKEY").iter().map(|k| dnskey_tag(k)).collect();
            tags.sort();
            let srv = pdns.dig(&["+dnssec", "+subnet=192.0.2.0/24", LATENCY, "SRV"]);
            let got = (tags, signing_tags(&srv, "SRV"));
            if got == (keys.to_vec(), signers.to_vec()) {
                Ok(())
            } else {
                Err(format!("{got:?}\n{dk}\n{srv}"))
            }
        })
    };
    let check = |anchor: &Path, valid: bool| {
        for (source, name, rtype) in [
            ("127.0.0.1", LATENCY, "SRV"),
            ("127.0.1.1", LATENCY, "SRV"),
            ("127.0.0.1", POOL, "A"),
        ] {
            let out = delv(pdns, anchor, source, name, rtype);
            assert_eq!(
                validated(&out, rtype),
                valid,
                "{name} {rtype} with {anchor:?}:\n{out}"
            );
        }
        let nx = delv(pdns, anchor, "127.0.0.1", "nope.voip.example.com", "A");
        assert_eq!(
            nx.contains("; negative response, fully validated"),
            valid,
            "{nx}"
        );
    };
    check(&old, true);

    // 1. The new key, published but not signing yet.
    let out = pdnsutil(
        pdns,
        &[
            "add-zone-key",
            ZONE,
            "ksk",
            "inactive",
            "published",
            "ecdsa256",
        ],
    );
    let new_id = out
        .lines()
        .rev()
        .find_map(|l| l.trim().parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no key id in: {out}"))
        .to_string();
    let new_tag = key_tag(pdns, &new_id);
    let mut both = [old_tag, new_tag];
    both.sort();
    let new = anchor_of(pdns, dir, "new.conf", &[&new_id]);
    wait_for("the new key published", &both, &[old_tag]);
    check(&old, true);
    check(&new, false);
    // 2. Both sign: the parent may switch its DS.
    pdnsutil(pdns, &["activate-zone-key", ZONE, &new_id]);
    wait_for("both keys signing", &both, &both);
    check(&old, true);
    check(&new, true);
    // 3. The old key stops signing, still published.
    pdnsutil(pdns, &["deactivate-zone-key", ZONE, "1"]);
    wait_for("the new key signing alone", &both, &[new_tag]);
    check(&new, true);
    check(&old, false);
    // 4. The old key removed.
    pdnsutil(pdns, &["remove-zone-key", ZONE, "1"]);
    wait_for("the old key removed", &[new_tag], &[new_tag]);
    check(&new, true);
    pdns.assert_no_backend_trouble();
}

/// The key tag of a DNSKEY as dig prints it ("257 3 13 BASE64 ...";
/// RFC 4034 appendix B).
fn dnskey_tag(data: &str) -> u16 {
    let f: Vec<&str> = data.split_whitespace().collect();
    let key = base64(&f[3..].concat());
    let mut rdata = Vec::new();
    rdata.extend_from_slice(&f[0].parse::<u16>().expect("flags").to_be_bytes());
    rdata.push(f[1].parse().expect("protocol"));
    rdata.push(f[2].parse().expect("algorithm"));
    rdata.extend_from_slice(&key);
    let mut ac: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        ac += if i & 1 == 1 {
            u32::from(*b)
        } else {
            u32::from(*b) << 8
        };
    }
    ac += (ac >> 16) & 0xffff;
    (ac & 0xffff) as u16
}

fn base64(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The keystore breaking under a running PowerDNS (README "When the
/// keystore breaks"). SQLite keeps the file PowerDNS opened: a keystore
/// deleted or replaced (renamed over) goes unnoticed, answers stay signed,
/// until the next start, which then finds what replaced it. A keystore cut
/// short in place makes PowerDNS stop (it aborts on the database error):
/// no answers, never unsigned ones. A valid keystore without the zone's
/// keys makes PowerDNS serve the zone unsigned: PowerDNS cannot tell it
/// from a zone never secured.
#[test]
fn a_broken_keystore_never_turns_a_running_zone_unsigned() {
    let Some(schema) = tools() else { return };
    let db = measured_db("dnssec-break");
    let caches = || {
        PdnsOpts::default()
            .with("dnssec-key-cache-ttl=1")
            .with("zone-metadata-cache-ttl=1")
    };
    let s = secured(&db, &schema, "dnssec-break-keys", caches());
    let signed = |pdns: &Pdns| {
        let d = pdns.dig(&["+dnssec", "+subnet=192.0.2.0/24", LATENCY, "SRV"]);
        assert_eq!(d.status, "NOERROR", "{d}");
        rrsigs(&d, "SRV").len() == 1
    };
    assert!(signed(&s.pdns));
    // gsqlite3 keeps the keystore in WAL mode: the keys written by pdnsutil
    // may still be in keys.sqlite3-wal. A copy of the file alone can lack
    // them; SQLite's own copy (.backup, VACUUM INTO) has everything.
    let saved = s.dir.path().join("keys.saved");
    rusqlite::Connection::open(&s.keys)
        .and_then(|c| c.execute("VACUUM INTO ?1", [saved.to_str().expect("utf-8 path")]))
        .expect("copy the keystore");

    // Replaced by a keystore without keys (say, a botched restore): the
    // running server still signs with the keys it opened, past its caches.
    let fresh = s.dir.path().join("fresh.sqlite3");
    {
        let c = rusqlite::Connection::open(&fresh).expect("create");
        c.execute_batch(&schema).expect("schema");
    }
    std::fs::rename(&fresh, &s.keys).expect("replace the keystore");
    std::thread::sleep(Duration::from_millis(2500));
    for _ in 0..5 {
        assert!(signed(&s.pdns));
        let out = delv(&s.pdns, &s.anchor, "127.0.0.1", LATENCY, "SRV");
        assert!(validated(&out, "SRV"), "{out}");
    }
    // Deleted: the same.
    std::fs::remove_file(&s.keys).expect("delete the keystore");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(signed(&s.pdns));
    drop(s.pdns);

    // Started again on the keystore without keys: PowerDNS serves the zone
    // unsigned, which a validating resolver rejects (the parent has a DS).
    let fresh = s.dir.path().join("keys.sqlite3");
    {
        let c = rusqlite::Connection::open(&fresh).expect("create");
        c.execute_batch(&schema).expect("schema");
        c.execute(
            "INSERT INTO domains (name, type) VALUES (?1, 'NATIVE')",
            [ZONE],
        )
        .expect("add the zone");
    }
    let pdns = Pdns::start(&db.path, opts_with_keystore(caches(), &s.keys));
    assert!(
        !signed(&pdns),
        "PowerDNS serves a zone without keys unsigned"
    );
    let out = delv(&pdns, &s.anchor, "127.0.0.1", LATENCY, "SRV");
    assert!(!validated(&out, "SRV"), "{out}");
    assert!(out.contains("resolution failed"), "{out}");
    drop(pdns);

    // An empty file: every answer SERVFAIL (the keystore is also asked for
    // records, and its tables are missing).
    std::fs::write(&s.keys, b"").expect("empty keystore");
    let pdns = Pdns::start(&db.path, opts_with_keystore(caches(), &s.keys));
    for q in [[LATENCY, "SRV"], [MTL1, "A"], [ZONE, "SOA"]] {
        let d = pdns.dig(&["+dnssec", q[0], q[1]]);
        assert_eq!(d.status, "SERVFAIL", "{d}");
    }
    drop(pdns);

    // Cut short in place under a running server: PowerDNS aborts at its
    // next read of the keys; nothing unsigned is ever answered.
    for wal in ["keys.sqlite3-wal", "keys.sqlite3-shm"] {
        let _ = std::fs::remove_file(s.dir.path().join(wal));
    }
    std::fs::copy(&saved, &s.keys).expect("restore the keystore");
    let pdns = Pdns::start(&db.path, opts_with_keystore(caches(), &s.keys));
    assert!(signed(&pdns), "{}", pdnsutil(&pdns, &["show-zone", ZONE]));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&s.keys)
        .and_then(|f| f.set_len(0))
        .expect("truncate the keystore");
    let mut answers = Vec::new();
    poll(
        "PowerDNS stops on the broken keystore",
        Duration::from_secs(10),
        || {
            let d = pdns.dig(&["+dnssec", "+time=1", "+subnet=192.0.2.0/24", LATENCY, "SRV"]);
            let status = d.status.clone();
            if status == "NOERROR" {
                assert_eq!(rrsigs(&d, "SRV").len(), 1, "never unsigned: {d}");
            }
            answers.push(status.clone());
            if status.is_empty() {
                Ok(())
            } else {
                std::thread::sleep(Duration::from_millis(200));
                Err(pdns.log())
            }
        },
    );
    assert!(
        pdns.log().contains("database disk image is malformed"),
        "{}",
        pdns.log()
    );
    eprintln!("answers while the keystore broke: {answers:?}");
}

/// The keystore made unreadable to PowerDNS, run as an unprivileged user
/// (`setuid`/`setgid`, as packaged PowerDNS runs): while it runs nothing
/// changes (its connections are open, permissions are checked at open);
/// the next start fails. Needs root (to start PowerDNS and hand the files
/// to `nobody`).
#[test]
fn an_unreadable_keystore_stops_powerdns_at_its_next_start() {
    let Some(schema) = tools() else { return };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("\n!!!!!!!! SKIPPED: needs root to run PowerDNS as nobody !!!!!!!!\n");
        return;
    }
    let db = measured_db("dnssec-perm");
    // Secured before PowerDNS starts, with a pdns.conf of the keystore alone.
    let dir = TempDir::new("dnssec-perm-keys");
    let keys = keystore(dir.path(), &schema);
    std::fs::write(
        dir.path().join("pdns.conf"),
        format!(
            "launch=gsqlite3\ngsqlite3-database={}\ngsqlite3-dnssec=yes\n",
            keys.display()
        ),
    )
    .expect("pdns.conf of the keystore");
    pdnsutil_in(dir.path(), &["set-nsec3", ZONE, "1 0 0 -", "narrow"]);
    pdnsutil_in(dir.path(), &["secure-zone", ZONE]);
    let anchor = anchor_in(dir.path(), dir.path());
    // The coprocesses run as nobody too: a copy of pdns-ha where nobody can
    // run it (the build directory may be below one only root can enter).
    let bin = dir.path().join("pdns-ha");
    std::fs::copy(support::BIN, &bin).expect("copy pdns-ha");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod 755");
    let pipe_command = format!("{} pipe --db {}", bin.display(), db.path.display());
    for d in [db.dir.path(), dir.path()] {
        let st = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(d)
            .status()
            .expect("run chown");
        assert!(st.success(), "chown {}", d.display());
    }
    let as_nobody = |o: PdnsOpts| {
        opts_with_keystore(o, &keys)
            .with("setuid=nobody")
            .with("setgid=nogroup")
            .with(&format!("pipe-command={pipe_command}"))
            .with(&format!("pipe-standby-command={pipe_command}"))
            .with("dnssec-key-cache-ttl=1")
            .with("zone-metadata-cache-ttl=1")
    };
    let pdns = Pdns::start(&db.path, as_nobody(PdnsOpts::default()));
    let users: Vec<u32> = std::iter::once(pdns.pid())
        .chain(pdns.coprocesses())
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert!(
        users.iter().all(|&u| u != 0),
        "running as nobody: {users:?}"
    );
    let validated_srv = |pdns: &Pdns| {
        let out = delv(pdns, &anchor, "127.0.0.1", LATENCY, "SRV");
        validated(&out, "SRV") && delv_targets(&out) == [VAN1, TOR1, MTL1]
    };
    assert!(validated_srv(&pdns));
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o000))
        .expect("chmod 000");
    // Past the key and metadata caches: still signed, still valid.
    std::thread::sleep(Duration::from_millis(2500));
    for _ in 0..3 {
        assert!(validated_srv(&pdns));
    }
    drop(pdns);
    let run = TempDir::new("dnssec-perm-pdns");
    let log = pdns_exits(&db, run.path(), &as_nobody(PdnsOpts::default()).extra);
    assert!(
        log.contains("Could not connect to the SQLite database"),
        "{log}"
    );
}
