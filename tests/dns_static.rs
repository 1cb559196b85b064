//! Static data answered through a real PowerDNS 4.7
//! (pipe backend, ABI 5 unless said otherwise): SOA, NS, static SRV, node and
//! pool addresses, static records, NODATA for empty non-terminals, NXDOMAIN,
//! REFUSED, 0x20, topology changes without restart, a database created after
//! PowerDNS started, older pipe ABIs and AXFR.
//!
//! PowerDNS caches answers sent with ECS scope 0 (all of these but the
//! latency service, which carries a scope even without data) for 20 s, and a
//! REFUSED for up to 60 s: the tests ask each cached name only when its
//! answer is final, and poll only names whose answers are not cached.

mod support;

use std::sync::LazyLock;
use std::time::Duration;

use support::{Db, Pdns, PdnsOpts, Srv, poll};

const ZONE: &str = "voip.example.com";

/// The site (tests/fixtures/static_answers.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("static_answers"));

fn start(tag: &str, opts: PdnsOpts) -> (Db, Pdns) {
    let db = Db::new(tag);
    db.apply_ok(&SITE);
    let pdns = Pdns::start(&db.path, opts);
    (db, pdns)
}

#[test]
fn static_data_through_powerdns() {
    require_pdns!();
    let (_db, pdns) = start("static", PdnsOpts::default());

    // SOA and NS at the apex, authoritative.
    let d = pdns.dig(&[ZONE, "SOA"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    assert!(d.flags.contains(&"aa".to_string()), "{d}");
    let soa = d.records("SOA");
    assert_eq!(soa.len(), 1, "{d}");
    assert_eq!(soa[0].name, "voip.example.com.");
    assert_eq!(soa[0].ttl, 3600);
    let f: Vec<&str> = soa[0].data.split_whitespace().collect();
    assert_eq!(
        f[..2],
        ["ns1.voip.example.com.", "hostmaster.example.com."],
        "{d}"
    );
    assert!(f[2].parse::<u32>().unwrap() >= 1, "serial: {d}");
    assert_eq!(f[3..], ["10800", "3600", "604800", "60"], "{d}");
    let d = pdns.dig(&[ZONE, "NS"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    assert_eq!(
        d.data("NS"),
        ["ns1.voip.example.com.", "ns2.voip.example.com."],
        "{d}"
    );

    // A static service: the site file's priorities, weights, port, targets.
    let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    assert_eq!(
        d.srvs(),
        [
            Srv::new(10, 40, 5061, "van1.voip.example.com"),
            Srv::new(10, 60, 5061, "mtl1.voip.example.com"),
            Srv::new(20, 5, 5061, "tor1.voip.example.com"),
        ],
        "{d}"
    );
    assert!(d.records("SRV").iter().all(|r| r.ttl == 120), "{d}");
    // Static answers carry scope 0, also when the query has ECS.
    let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV", "+subnet=192.0.2.0/24"]);
    assert_eq!(d.srvs().len(), 3, "{d}");
    assert_eq!(d.scope(), Some(0), "{d}");
    // Over TCP as well.
    let d = pdns.dig(&["+tcp", "_sip._tcp.voip.example.com", "SRV"]);
    assert_eq!(d.srvs().len(), 3, "{d}");

    // Node hosts.
    let d = pdns.dig(&["mtl1.voip.example.com", "A"]);
    assert_eq!(d.data("A"), ["198.51.100.10"], "{d}");
    assert_eq!(d.records("A")[0].ttl, 3600);
    let d = pdns.dig(&["mtl1.voip.example.com", "AAAA"]);
    assert_eq!(d.data("AAAA"), ["2001:db8:10::10"], "{d}");
    let d = pdns.dig(&["tor1.voip.example.com", "A"]);
    assert_eq!(d.data("A"), ["192.0.2.30", "192.0.2.31"], "{d}");
    // A node without IPv6: NODATA, not NXDOMAIN.
    let d = pdns.dig(&["van1.voip.example.com", "AAAA"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    assert!(d.answer.is_empty(), "{d}");

    // A static pool: the addresses of its first `answers` nodes (tor1, mtl1).
    let d = pdns.dig(&["static.voip.example.com", "A"]);
    assert_eq!(
        d.data("A"),
        ["192.0.2.30", "192.0.2.31", "198.51.100.10"],
        "{d}"
    );
    let d = pdns.dig(&["static.voip.example.com", "AAAA"]);
    assert_eq!(
        d.data("AAAA"),
        ["2001:db8:10::10", "2001:db8:30::30"],
        "{d}"
    );

    // Static records.
    let d = pdns.dig(&[ZONE, "NAPTR"]);
    assert_eq!(
        d.data("NAPTR"),
        [
            "10 50 \"s\" \"SIP+D2U\" \"\" _sip._udp.voip.example.com.",
            "20 50 \"s\" \"SIP+D2T\" \"\" _sip._tcp.voip.example.com.",
        ],
        "{d}"
    );
    let d = pdns.dig(&[ZONE, "TXT"]);
    assert_eq!(d.data("TXT"), ["\"v=spf1 -all\""], "{d}");
    let d = pdns.dig(&[ZONE, "MX"]);
    assert_eq!(
        d.data("MX"),
        ["10 mx1.example.net.", "20 mx2.example.net."],
        "{d}"
    );
    let d = pdns.dig(&["www.voip.example.com", "A"]);
    assert_eq!(d.data("A"), ["192.0.2.80"], "{d}");
    assert_eq!(d.records("A")[0].ttl, 300, "{d}");

    // Empty non-terminals: NODATA (NOERROR, no answer), for any type.
    for (name, qtype) in [
        ("_udp.voip.example.com", "A"),
        ("_udp.voip.example.com", "SRV"),
        ("_tcp.voip.example.com", "TXT"),
    ] {
        let d = pdns.dig(&[name, qtype]);
        assert_eq!(d.status, "NOERROR", "{name} {qtype} must be NODATA: {d}");
        assert!(d.answer.is_empty(), "{name} {qtype}: {d}");
        assert!(d.flags.contains(&"aa".to_string()), "{d}");
        assert_eq!(d.authority.len(), 1, "the SOA in authority: {d}");
        assert_eq!(d.authority[0].rtype, "SOA", "{d}");
    }
    // (Asked for TYPE65534 explicitly, an ENT shows the empty private-type
    // record that makes it exist for PowerDNS: see pdns-pipe-abi.md.)

    // NXDOMAIN for an unknown name in the zone, also below a service.
    for name in ["nope.voip.example.com", "x._sip._tcp.voip.example.com"] {
        let d = pdns.dig(&[name, "A"]);
        assert_eq!(d.status, "NXDOMAIN", "{name}: {d}");
        assert_eq!(d.authority.first().map(|r| r.rtype.as_str()), Some("SOA"));
    }
    // REFUSED outside the zones.
    for name in ["example.com", "www.example.org", "voip.example.net"] {
        let d = pdns.dig(&[name, "A"]);
        assert_eq!(d.status, "REFUSED", "{name}: {d}");
    }

    // 0x20: a mixed-case question is answered, with the name as asked.
    let d = pdns.dig(&["_SiP._UdP.VoIp.ExAmPlE.cOm", "SRV"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    assert_eq!(
        d.srvs(),
        [
            Srv::new(0, 100, 5060, "mtl1.voip.example.com"),
            Srv::new(1, 100, 5060, "van1.voip.example.com"),
        ],
        "{d}"
    );
    assert!(
        d.records("SRV")
            .iter()
            .all(|r| r.name == "_SiP._UdP.VoIp.ExAmPlE.cOm."),
        "{d}"
    );
    let d = pdns.dig(&["MtL1.VOIP.example.COM", "A"]);
    assert_eq!(d.data("A"), ["198.51.100.10"], "{d}");

    // The additional section carries the SRV targets' addresses.
    let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV"]);
    let glue: Vec<&str> = d.additional.iter().map(|r| r.name.as_str()).collect();
    assert!(glue.contains(&"tor1.voip.example.com."), "{d}");

    pdns.assert_no_backend_trouble();
}

#[test]
fn topology_change_is_answered_without_restart() {
    require_pdns!();
    let (db, pdns) = start("change", PdnsOpts::default());
    let serial = |pdns: &Pdns| -> u32 {
        let d = pdns.dig(&[ZONE, "SOA"]);
        d.records("SOA")[0]
            .data
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap()
    };
    let old_serial = serial(&pdns);
    let d = pdns.dig(&["_sip._udp.voip.example.com", "SRV"]);
    assert_eq!(d.srvs().len(), 2, "{d}");
    let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV"]);
    assert_eq!(d.srvs().len(), 3, "{d}");

    // Add tor1 to the latency service and change its port; change the
    // static service's port and drop van1 from it.
    let changed = SITE
        .replace(
            "port = 5060\nnodes = [\"mtl1\", \"van1\"]",
            "port = 5070\nnodes = [\"mtl1\", \"van1\", \"tor1\"]",
        )
        .replace("port = 5061", "port = 5062")
        .replace("    { node = \"van1\", priority = 10, weight = 40 },\n", "");
    assert_ne!(changed, *SITE);
    let o = db.apply(&changed);
    support::assert_ok("apply the changed site", &o);
    assert!(
        support::stdout(&o).contains("changed service _sip._udp.voip.example.com"),
        "{}",
        support::stdout(&o)
    );

    // The latency service's answers carry an ECS scope, so PowerDNS does not
    // cache them: the change shows within the coprocess's refresh interval.
    let want = [
        Srv::new(0, 100, 5070, "mtl1.voip.example.com"),
        Srv::new(1, 100, 5070, "van1.voip.example.com"),
        Srv::new(2, 100, 5070, "tor1.voip.example.com"),
    ];
    // PowerDNS spreads questions over several coprocesses, each of which
    // checks the database at most every 250 ms: ten answers in a row must be
    // the new one.
    poll(
        "the new latency service answer",
        Duration::from_secs(2),
        || {
            for _ in 0..10 {
                let d = pdns.dig(&["_sip._udp.voip.example.com", "SRV"]);
                if d.srvs() != want {
                    return Err(d.to_string());
                }
            }
            Ok(())
        },
    );

    // Static answers (scope 0) are cached by PowerDNS for cache-ttl and
    // query-cache-ttl (20 s by default): the change shows after that, still
    // without a restart.
    poll(
        "the new static service answer (PowerDNS caches it 20 s)",
        Duration::from_secs(30),
        || {
            let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV"]);
            let want = [
                Srv::new(10, 60, 5062, "mtl1.voip.example.com"),
                Srv::new(20, 5, 5062, "tor1.voip.example.com"),
            ];
            if d.srvs() == want {
                Ok(())
            } else {
                Err(d.to_string())
            }
        },
    );
    assert!(
        serial(&pdns) > old_serial,
        "the SOA serial follows the topology"
    );
}

#[test]
fn database_created_after_powerdns_started() {
    require_pdns!();
    let db = Db::new("late-db");
    assert!(!db.path.exists());
    let pdns = Pdns::start(&db.path, PdnsOpts::default());
    // Without a database pdns still answers (no crash, no SERVFAIL, no hang).
    let d = pdns.dig(&["www.example.org", "A"]);
    assert_eq!(d.status, "REFUSED", "{d}");

    db.apply_ok(&SITE);
    let d = poll(
        "answers once the database exists",
        Duration::from_secs(5),
        || {
            let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV"]);
            if d.status == "NOERROR" && d.srvs().len() == 3 {
                Ok(d)
            } else {
                Err(d.to_string())
            }
        },
    );
    assert_eq!(d.srvs()[0].port, 5061, "{d}");
    let d = pdns.dig(&["_sip._udp.voip.example.com", "SRV"]);
    assert_eq!(d.srvs().len(), 2, "{d}");
    let d = pdns.dig(&[ZONE, "SOA"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    // The coprocesses said why they answered nothing, and then opened it.
    let log = pdns.log();
    assert!(log.contains("no database yet"), "{log}");
    let opened = format!("database {} open", db.path.display());
    assert!(log.contains(&opened), "{log}");
}

/// A zone asked about before the database exists is REFUSED, and PowerDNS
/// caches that (packet cache: cache-ttl, 20 s; negative query cache:
/// negquery-cache-ttl, 60 s). With short caches the zone answers soon after
/// `apply`; with the defaults it takes up to a minute.
#[test]
fn zone_asked_before_the_database_exists_answers_after_the_caches_expire() {
    require_pdns!();
    let db = Db::new("late-db-cached");
    let pdns = Pdns::start(
        &db.path,
        PdnsOpts::default()
            .with("cache-ttl=1")
            .with("negquery-cache-ttl=1"),
    );
    let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV"]);
    assert_eq!(d.status, "REFUSED", "no database yet: {d}");
    db.apply_ok(&SITE);
    poll(
        "answers once the database exists and the caches expired",
        Duration::from_secs(6),
        || {
            let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV"]);
            if d.status == "NOERROR" && d.srvs().len() == 3 {
                Ok(())
            } else {
                Err(d.to_string())
            }
        },
    );
}

/// ABI 1 (no local address, no ECS) and ABI 3 (ECS, scopes; AXFR without a
/// zone name) answer like ABI 5.
#[test]
fn older_pipe_abis_answer() {
    require_pdns!();
    for abi in [1u8, 3] {
        let (_db, pdns) = start(
            &format!("abi{abi}"),
            PdnsOpts::abi(abi).with("allow-axfr-ips=127.0.0.0/8"),
        );
        let d = pdns.dig(&["_sip._tcp.voip.example.com", "SRV"]);
        assert_eq!(d.status, "NOERROR", "ABI {abi}: {d}");
        assert_eq!(
            d.srvs(),
            [
                Srv::new(10, 40, 5061, "van1.voip.example.com"),
                Srv::new(10, 60, 5061, "mtl1.voip.example.com"),
                Srv::new(20, 5, 5061, "tor1.voip.example.com"),
            ],
            "ABI {abi}: {d}"
        );
        let d = pdns.dig(&["_sip._udp.voip.example.com", "SRV", "+subnet=192.0.2.0/24"]);
        assert_eq!(
            d.srvs(),
            [
                Srv::new(0, 100, 5060, "mtl1.voip.example.com"),
                Srv::new(1, 100, 5060, "van1.voip.example.com"),
            ],
            "ABI {abi}: {d}"
        );
        // ABI 1-2 have no scope field: answers are scope 0. ABI 3+ send the
        // latency service's scope (the /24 level, no data yet).
        assert_eq!(
            d.scope(),
            Some(if abi >= 3 { 24 } else { 0 }),
            "ABI {abi}: {d}"
        );
        let d = pdns.dig(&["_udp.voip.example.com", "A"]);
        assert_eq!(d.status, "NOERROR", "ABI {abi}: ENT: {d}");
        assert!(d.answer.is_empty(), "ABI {abi}: {d}");
        let d = pdns.dig(&["nope.voip.example.com", "A"]);
        assert_eq!(d.status, "NXDOMAIN", "ABI {abi}: {d}");
        let d = pdns.dig(&[ZONE, "MX"]);
        assert_eq!(
            d.data("MX"),
            ["10 mx1.example.net.", "20 mx2.example.net."],
            "ABI {abi}: {d}"
        );
        let d = pdns.dig(&["AXFR", ZONE]);
        assert!(d.records("SOA").len() == 2, "ABI {abi}: AXFR: {d}");
        assert_eq!(d.records("SRV").len(), 5, "ABI {abi}: AXFR: {d}");
        pdns.assert_no_backend_trouble();
    }
}

#[test]
fn axfr_lists_the_zone() {
    require_pdns!();
    let (_db, pdns) = start(
        "axfr",
        PdnsOpts::default().with("allow-axfr-ips=127.0.0.0/8"),
    );
    let d = pdns.dig(&["AXFR", ZONE]);
    let soa = d.records("SOA");
    assert_eq!(soa.len(), 2, "an AXFR starts and ends with the SOA: {d}");
    assert_eq!(
        d.answer.first().map(|r| r.rtype.as_str()),
        Some("SOA"),
        "{d}"
    );
    assert_eq!(
        d.answer.last().map(|r| r.rtype.as_str()),
        Some("SOA"),
        "{d}"
    );
    assert_eq!(soa[0].data, soa[1].data);
    assert_eq!(
        d.data("NS"),
        ["ns1.voip.example.com.", "ns2.voip.example.com."],
        "{d}"
    );
    let mut srv: Vec<(String, Srv)> = d
        .records("SRV")
        .iter()
        .map(|r| (r.name.clone(), Srv::parse(&r.data).unwrap()))
        .collect();
    srv.sort();
    let tcp = "_sip._tcp.voip.example.com.".to_string();
    let udp = "_sip._udp.voip.example.com.".to_string();
    assert_eq!(
        srv,
        [
            (tcp.clone(), Srv::new(10, 40, 5061, "van1.voip.example.com")),
            (tcp.clone(), Srv::new(10, 60, 5061, "mtl1.voip.example.com")),
            (tcp, Srv::new(20, 5, 5061, "tor1.voip.example.com")),
            (udp.clone(), Srv::new(0, 100, 5060, "mtl1.voip.example.com")),
            (udp, Srv::new(1, 100, 5060, "van1.voip.example.com")),
        ],
        "{d}"
    );
    assert_eq!(d.data("MX").len(), 2, "{d}");
    assert_eq!(d.data("NAPTR").len(), 2, "{d}");
    assert_eq!(d.data("TXT").len(), 1, "{d}");
    let a: Vec<String> = d
        .records("A")
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    for want in [
        "mtl1.voip.example.com. 198.51.100.10",
        "tor1.voip.example.com. 192.0.2.31",
        "www.voip.example.com. 192.0.2.80",
    ] {
        assert!(a.contains(&want.to_string()), "{want} in AXFR: {d}");
    }
    // The ENT pseudo record is not part of the zone.
    assert!(d.records("TYPE65534").is_empty(), "{d}");
    // An AXFR of a zone we do not serve is refused or fails; pdns keeps
    // answering afterwards.
    let d = pdns.dig(&["AXFR", "example.org"]);
    assert!(d.records("SOA").is_empty(), "{d}");
    let d = pdns.dig(&[ZONE, "SOA"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    pdns.assert_no_backend_trouble();
}

/// One record of every type a `[[record]]` may have, at the apex and below
/// it, with quoted text, escapes, several strings, hex and LOC: what `apply`
/// accepts PowerDNS parses and serves as written (no SERVFAIL, also for the
/// apex NS that PowerDNS looks up together with the apex's other records).
#[test]
fn every_static_record_type_is_served_as_written() {
    require_pdns!();
    const SHA256: &str = "d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971";
    // (name, type, content in the site file, data as dig shows it)
    let records: Vec<(&str, &str, String, String)> = [
        (ZONE, "NS", "ns3.example.net.", "ns3.example.net."),
        (ZONE, "MX", "10 mx1.example.net.", "10 mx1.example.net."),
        (
            ZONE,
            "TXT",
            r#""v=spf1 -all"  "two  spaces, \"quotes\", \065\066""#,
            r#""v=spf1 -all" "two  spaces, \"quotes\", AB""#,
        ),
        (
            ZONE,
            "SPF",
            r#""v=spf1 ip4:192.0.2.0/24 -all""#,
            r#""v=spf1 ip4:192.0.2.0/24 -all""#,
        ),
        (
            ZONE,
            "CAA",
            r#"0 issue "letsencrypt.org; validationmethods=dns-01""#,
            r#"0 issue "letsencrypt.org; validationmethods=dns-01""#,
        ),
        (
            ZONE,
            "NAPTR",
            r#"100 10 "u" "E2U+sip" "!^\\+1(.*)$!sip:\\1@voip.example.com!" ."#,
            r#"100 10 "u" "E2U+sip" "!^\\+1(.*)$!sip:\\1@voip.example.com!" ."#,
        ),
        (
            ZONE,
            "LOC",
            "52 22 23.000 N 4 53 32.000 E -2.00m 1m 10000m 10m",
            "52 22 23.000 N 4 53 32.000 E -2.00m 1m 10000m 10m",
        ),
        (
            ZONE,
            "RP",
            "hostmaster.example.com. info.voip.example.com.",
            "hostmaster.example.com. info.voip.example.com.",
        ),
        (ZONE, "HINFO", r#""RFC8482" """#, r#""RFC8482" """#),
        ("www.voip.example.com", "A", "192.0.2.80", "192.0.2.80"),
        (
            "www.voip.example.com",
            "AAAA",
            "2001:db8::80",
            "2001:db8::80",
        ),
        (
            "sip.voip.example.com",
            "CNAME",
            "www.voip.example.com.",
            "www.voip.example.com.",
        ),
        (
            "ptr.voip.example.com",
            "PTR",
            "www.voip.example.com.",
            "www.voip.example.com.",
        ),
        (
            "_sips._tcp.voip.example.com",
            "SRV",
            "10 60 5061 www.voip.example.com.",
            "10 60 5061 www.voip.example.com.",
        ),
        (
            "_sip._udp.voip.example.com",
            "URI",
            r#"10 1 "sip:help@voip.example.com;transport=udp""#,
            r#"10 1 "sip:help@voip.example.com;transport=udp""#,
        ),
        (
            "info.voip.example.com",
            "TXT",
            r#""ops: \"24/7\"""#,
            r#""ops: \"24/7\"""#,
        ),
        (
            "child.voip.example.com",
            "DS",
            "60485 5 1 2BB183AF5F22588179A53B0A 98631FAD1A292118",
            "60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118",
        ),
        (
            "host1.voip.example.com",
            "SSHFP",
            &format!("4 2 {SHA256}"),
            &format!("4 2 {SHA256}"),
        ),
        (
            "host1.voip.example.com",
            "HINFO",
            r#""x86-64" "Debian GNU/Linux""#,
            r#""x86-64" "Debian GNU/Linux""#,
        ),
        (
            "_5061._tcp.www.voip.example.com",
            "TLSA",
            &format!("3 1 1 {SHA256}"),
            &format!("3 1 1 {SHA256}"),
        ),
    ]
    .into_iter()
    .map(|(n, t, c, d)| (n, t, c.to_string(), d.to_string()))
    .collect();
    let mut site = String::from(
        "[zone.\"voip.example.com\"]\n\
         ns = [\"ns1.voip.example.com\", \"ns2.voip.example.com\"]\n\
         hostmaster = \"hostmaster.example.com\"\n",
    );
    for (name, rtype, content, _) in &records {
        let content = content.replace('\\', "\\\\").replace('"', "\\\"");
        site += &format!(
            "\n[[record]]\nname = \"{name}\"\ntype = \"{rtype}\"\ncontent = \"{content}\"\n"
        );
    }
    let db = Db::new("every-type");
    db.apply_ok(&site);
    let pdns = Pdns::start(&db.path, PdnsOpts::default());

    // Hex fields: dig prints them in upper case, cut in chunks.
    let canonical = |rtype: &str, data: &str| -> String {
        if ["DS", "SSHFP", "TLSA"].contains(&rtype) {
            data.replace(' ', "").to_ascii_uppercase()
        } else {
            data.to_string()
        }
    };
    for (name, rtype, _, _) in &records {
        let d = pdns.dig(&[name, rtype]);
        assert_eq!(d.status, "NOERROR", "{name} {rtype}: {d}");
        assert!(d.flags.contains(&"aa".to_string()), "{name} {rtype}: {d}");
        let mut want: Vec<String> = records
            .iter()
            .filter(|r| r.0 == *name && r.1 == *rtype)
            .map(|r| canonical(rtype, &r.3))
            .collect();
        if *name == ZONE && *rtype == "NS" {
            want.extend(["ns1.voip.example.com.", "ns2.voip.example.com."].map(String::from));
        }
        want.sort();
        let got: Vec<String> = d.data(rtype).iter().map(|x| canonical(rtype, x)).collect();
        assert_eq!(got, want, "{name} {rtype} (wanted {want:?}): {d}");
    }
    // The apex's other questions are not taken down by its static records.
    let d = pdns.dig(&[ZONE, "SOA"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    assert_eq!(d.records("SOA").len(), 1, "{d}");
    // Every record of the apex at once.
    let d = pdns.dig(&["+tcp", ZONE, "ANY"]);
    assert_eq!(d.status, "NOERROR", "{d}");
    for rtype in [
        "SOA", "NS", "MX", "TXT", "SPF", "CAA", "NAPTR", "LOC", "RP", "HINFO",
    ] {
        assert!(!d.records(rtype).is_empty(), "{rtype} in ANY: {d}");
    }
    pdns.assert_no_backend_trouble();
}
