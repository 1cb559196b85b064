//! The coprocess driven directly over stdin/stdout, as PowerDNS drives it:
//! every ABI, malformed lines, a missing, late, locked or broken database,
//! topology changes, content that must never reach the pipe, CMD, and
//! memory that stays flat under oversized lines and long streams.

mod support;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use support::{Coproc, Db, assert_ok};

/// The site (tests/fixtures/pipe.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("pipe"));

/// A coprocess on `db` after `HELO abi`; every answer line within 2 s.
fn pipe(db: &Db, abi: u8) -> Coproc {
    let mut p = Coproc::start(&db.path, abi, &[]);
    p.answer_within = Duration::from_secs(2);
    p
}

/// Questions as PowerDNS asks them, for the ABI of the coprocess.
trait Ask {
    fn q(&mut self, qname: &str, qtype: &str, subnet: &str) -> Vec<String>;
    /// The DATA lines of an answer, without the END.
    fn data(&mut self, qname: &str, qtype: &str, subnet: &str) -> Vec<String>;
    /// Polls a question until `ok` holds, for at most `limit`.
    fn until(
        &mut self,
        qname: &str,
        qtype: &str,
        limit: Duration,
        ok: impl Fn(&[String]) -> bool,
    ) -> Vec<String>;
}

impl Ask for Coproc {
    fn q(&mut self, qname: &str, qtype: &str, subnet: &str) -> Vec<String> {
        self.query(qname, qtype, "192.0.2.1", subnet)
    }

    fn data(&mut self, qname: &str, qtype: &str, subnet: &str) -> Vec<String> {
        let a = self.q(qname, qtype, subnet);
        assert_eq!(a.last().map(String::as_str), Some("END"), "{a:?}");
        a[..a.len() - 1].to_vec()
    }

    fn until(
        &mut self,
        qname: &str,
        qtype: &str,
        limit: Duration,
        ok: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let d = self.data(qname, qtype, "192.0.2.0/24");
            if ok(&d) || Instant::now() > deadline {
                return d;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}

#[test]
fn every_abi_answers_with_its_own_line_format() {
    let db = Db::new("pipe-abi");
    db.apply_ok(&SITE);
    for abi in 1..=5u8 {
        let mut p = pipe(&db, abi);
        let d = p.data("_sip._TCP.voip.example.com", "ANY", "24.64.1.0/24");
        assert_eq!(d.len(), 2, "abi {abi}: {d:?}");
        let f = fields(&d[0]);
        if abi >= 3 {
            // DATA scope auth qname IN SRV ttl id prio content
            assert_eq!(f.len(), 10, "{f:?}");
            assert_eq!(
                (f[1], f[2], f[3], f[5]),
                ("0", "1", "_sip._TCP.voip.example.com", "SRV")
            );
            assert_eq!((f[8], f[9]), ("10", "60 5061 mtl1.voip.example.com"));
        } else {
            assert_eq!(f.len(), 8, "{f:?}");
            assert_eq!((f[1], f[3]), ("_sip._TCP.voip.example.com", "SRV"));
            assert_eq!((f[6], f[7]), ("10", "60 5061 mtl1.voip.example.com"));
        }
        assert!(p.close().success());
    }
}

#[test]
fn answers_each_kind_of_name() {
    let db = Db::new("pipe-names");
    db.apply_ok(&SITE);
    let mut p = pipe(&db, 5);
    // SOA questions: only at the apex, never FAIL.
    let soa = p.data("voip.example.com", "SOA", "0.0.0.0/0");
    assert_eq!(soa.len(), 1);
    assert!(soa[0].contains("\tSOA\t3600\t"));
    assert!(
        soa[0].ends_with("ns1.voip.example.com hostmaster.voip.example.com 1 10800 3600 604800 60")
    );
    assert!(
        p.data("_sip._udp.voip.example.com", "SOA", "0.0.0.0/0")
            .is_empty()
    );
    assert!(p.data("com", "SOA", "0.0.0.0/0").is_empty());
    // ANY at the apex: SOA, NS, MX with its priority in its own field.
    let apex = p.data("VOIP.example.com", "ANY", "192.0.2.0/24");
    assert_eq!(apex.len(), 3, "{apex:?}");
    assert!(apex.iter().all(|l| fields(l)[3] == "VOIP.example.com"));
    assert!(apex.iter().any(|l| l.ends_with("\tMX\t3600\t")
        || l.contains("\tMX\t3600\t") && l.ends_with("\t10\tmail.voip.example.com")));
    // Node hosts.
    let v = p.data("van1.voip.example.com", "ANY", "192.0.2.0/24");
    assert_eq!(v.len(), 2);
    assert!(v[0].ends_with("\tA\t3600\t") || v.iter().any(|l| l.ends_with("203.0.113.20")));
    assert!(
        v.iter()
            .any(|l| l.contains("\tAAAA\t") && l.ends_with("2001:db8::20"))
    );
    assert_eq!(
        p.data("van1.voip.example.com", "AAAA", "192.0.2.0/24")
            .len(),
        1
    );
    // The empty non-terminal exists (NODATA), with the TYPE65534 workaround.
    let ent = p.data("_udp.voip.example.com", "ANY", "192.0.2.0/24");
    assert_eq!(ent.len(), 1);
    assert!(
        ent[0].ends_with("\tTYPE65534\t3600\t10\t\\# 0") || ent[0].ends_with("\\# 0"),
        "{ent:?}"
    );
    // Unknown names: END alone.
    assert!(
        p.data("nope.voip.example.com", "ANY", "192.0.2.0/24")
            .is_empty()
    );
    assert!(p.data("example.org", "ANY", "192.0.2.0/24").is_empty());
    // Dynamic service: scope of the fine level, never more than the source.
    let d = p.data("_sip._udp.voip.example.com", "SRV", "192.0.2.0/24");
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|l| fields(l)[1] == "24"), "{d:?}");
    let d = p.data("_sip._udp.voip.example.com", "SRV", "10.0.0.0/16");
    assert!(d.iter().all(|l| fields(l)[1] == "16"), "{d:?}");
    assert!(p.close().success());
}

/// With `consistent-backends=no` (pdns.conf.example) PowerDNS also asks
/// for one type (`NS` of every name below the apex when it checks for a
/// delegation; `DS`, `DNAME`, `SVCB`, `A`, ... in other cases). A question
/// for a type gets exactly the records of that type that `ANY` gets, and
/// nothing for a name without them; the empty non-terminal's placeholder
/// comes with `ANY` only, and SOA only at the apex.
#[test]
fn a_question_for_one_type_gets_the_records_of_that_type() {
    let db = Db::new("pipe-types");
    let site = &*SITE;
    db.apply_ok(&format!(
        "{site}
[pool.\"sip.voip.example.com\"]
policy = \"load\"
nodes = [\"mtl1\", \"van1\"]
answers = 2

[[record]]
name = \"voip.example.com\"
type = \"TXT\"
content = '\"v=spf1 -all\"'

[[record]]
name = \"alias.voip.example.com\"
type = \"CNAME\"
content = \"mtl1.voip.example.com.\"

[[record]]
name = \"child.voip.example.com\"
type = \"NS\"
content = \"ns.child.example.net.\"

[[record]]
name = \"child.voip.example.com\"
type = \"DS\"
content = \"60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118\"
"
    ));
    let names = [
        "voip.example.com",
        "_sip._udp.voip.example.com",
        "_sip._tcp.voip.example.com",
        "sip.voip.example.com",
        "van1.voip.example.com",
        "alias.voip.example.com",
        "child.voip.example.com",
        "_udp.voip.example.com",
        "nope.voip.example.com",
        "example.org",
    ];
    let types = [
        "SOA", "NS", "A", "AAAA", "SRV", "MX", "TXT", "CNAME", "DS", "DNAME", "SVCB", "HTTPS",
        "NAPTR",
    ];
    for abi in [1u8, 5] {
        let mut p = pipe(&db, abi);
        let qtype_field = if abi >= 3 { 5 } else { 3 };
        let mut typed = 0;
        for name in names {
            let any = p.data(name, "ANY", "192.0.2.0/24");
            let ent = any.iter().any(|l| fields(l)[qtype_field] == "TYPE65534");
            assert_eq!(ent, name == "_udp.voip.example.com", "{name}: {any:?}");
            for qtype in types {
                let got = p.data(name, qtype, "192.0.2.0/24");
                let want: Vec<String> = any
                    .iter()
                    .filter(|l| fields(l)[qtype_field] == qtype)
                    .cloned()
                    .collect();
                assert_eq!(got, want, "ABI {abi}: {name} {qtype} (ANY: {any:?})");
                typed += got.len();
            }
            assert!(
                p.data(name, "TYPE65534", "192.0.2.0/24").is_empty(),
                "{name}"
            );
        }
        // Apex SOA, NS, MX, TXT; two SRV twice; the pool's two A and one
        // AAAA; van1's A and AAAA; the CNAME; the delegation's NS and DS.
        assert_eq!(typed, 16, "ABI {abi}");
        assert!(p.close().success());
    }
}

#[test]
fn malformed_lines_get_log_and_fail_and_the_loop_goes_on() {
    let db = Db::new("pipe-malformed");
    db.apply_ok(&SITE);
    let mut p = pipe(&db, 5);
    for bad in [
        "Q\tonly\tthree",
        "Q\tx\tIN\tANY\tnot-a-number\t1.2.3.4\t0.0.0.0\t1.2.3.0/24",
        "Q\tx\tIN\tANY\t1\t1.2.3.4\t0.0.0.0\t1.2.3.0/99",
        "PING",
        "",
        "Q\tx\tIN\tANY\t1\t1.2.3.4\t0.0.0.0\t1.2.3.0/24\textra",
    ] {
        let a = p.exchange(bad);
        assert_eq!(a.len(), 2, "{bad:?}: {a:?}");
        assert!(a[0].starts_with("LOG\tpdns-ha: malformed line"), "{a:?}");
        assert_eq!(a[1], "FAIL");
    }
    // Invalid UTF-8.
    p.send_bytes(b"Q\t\xff\xfe\tIN\tANY\n");
    let l = p.line();
    assert!(l.starts_with("LOG\t"));
    assert_eq!(p.line(), "FAIL");
    // CMD needs ABI 5: on ABI 4 it is malformed.
    let mut p4 = pipe(&db, 4);
    assert_eq!(p4.exchange("CMD\tstatus").last().unwrap(), "FAIL");
    // Still answering.
    assert_eq!(
        p.data("_sip._tcp.voip.example.com", "SRV", "192.0.2.0/24")
            .len(),
        2
    );
    assert!(p.close().success());
}

/// True if `a` is the answer to a malformed line: `LOG` saying so, `FAIL`.
fn refused(a: &[String], why: &str) -> bool {
    a.len() == 2
        && a[0].starts_with("LOG\tpdns-ha: malformed line: ")
        && a[0].contains(why)
        && a[1] == "FAIL"
}

/// A name of `octets` octets in wire form (at most 255), in labels of 63,
/// written with `\DDD` escapes or plainly; `tag` (8 digits) makes it unique.
fn long_name(tag: usize, octets: usize, escaped: bool) -> String {
    let mut left = octets - 1; // the root label
    let mut labels = vec![];
    while left > 0 {
        let n = left.min(64) - 1;
        left -= n + 1;
        labels.push(if escaped {
            "\\120".repeat(n)
        } else {
            "x".repeat(n)
        });
    }
    let first = if escaped { 8 * 4 } else { 8 };
    labels[0].replace_range(..first, &format!("{tag:08}"));
    labels.join(".")
}

/// PowerDNS never sends a name over 255 octets; lines that carry one (or
/// are longer than any line it sends) are refused one by one, keep no
/// memory, and leave the coprocess answering as before.
#[test]
fn oversized_lines_and_names_are_refused_and_keep_no_memory() {
    let db = Db::new("pipe-oversized");
    db.apply_ok(&SITE);
    let mut p = pipe(&db, 5);
    p.answer_within = Duration::from_secs(20); // 1 MB lines, debug build
    let normal = |p: &mut Coproc| {
        let soa = p.data("voip.example.com", "SOA", "0.0.0.0/0");
        assert_eq!(soa.len(), 1, "{soa:?}");
        let d = p.data("_sip._tcp.voip.example.com", "SRV", "192.0.2.0/24");
        assert!(
            d[0].ends_with("\t10\t60 5061 mtl1.voip.example.com"),
            "{d:?}"
        );
        for i in 0..50 {
            let d = p.data(
                "_sip._udp.voip.example.com",
                "SRV",
                &format!("10.1.{i}.0/24"),
            );
            assert_eq!(d.len(), 2, "{d:?}");
        }
    };
    normal(&mut p);
    let before = p.status_kib("VmRSS");

    // 48 questions with different 1 MB names.
    let huge = |i: usize| format!("{i:08}.{}", "a".repeat(1 << 20));
    for i in 0..48 {
        let a = p.q(&huge(i), "ANY", "192.0.2.0/24");
        assert!(refused(&a, "a line of 1048"), "{i}: {a:?}");
    }
    // A line too long is not read, so it is not a question, SOA or not.
    let a = p.q(&huge(48), "SOA", "0.0.0.0/0");
    assert!(refused(&a, "longer than 4096: dropped unread"), "{a:?}");
    let a = p.exchange(&format!("CMD\texplain {} 192.0.2.0/24", huge(49)));
    assert!(refused(&a, "a line of 1048"), "{a:?}");
    let mut garbage = vec![0xffu8; 1 << 20];
    garbage.push(b'\n');
    p.send_bytes(&garbage);
    let a = vec![p.line(), p.line()];
    assert!(refused(&a, "a line of 1048576 bytes"), "{a:?}");
    let a = p.exchange(&"Q\t".repeat(2049)); // 4098 bytes
    assert!(refused(&a, "a line of 4098 bytes"), "{a:?}");

    // Names that fit in a line but not in DNS: malformed questions, except
    // that a SOA question never gets FAIL (no zone has that name: END).
    let too_long = long_name(1, 256, false);
    let a = p.q(&too_long, "ANY", "192.0.2.0/24");
    assert!(refused(&a, "name longer than 255 octets"), "{a:?}");
    let a = p.q(&long_name(2, 256, true), "ANY", "192.0.2.0/24");
    assert!(refused(&a, "name longer than 255 octets"), "{a:?}");
    let a = p.q(
        &format!("{}.voip.example.com", "a".repeat(64)),
        "ANY",
        "192.0.2.0/24",
    );
    assert!(refused(&a, "label longer than 63 octets"), "{a:?}");
    let a = p.q(&too_long, "SOA", "0.0.0.0/0");
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(
        a[0].starts_with("LOG\tpdns-ha: Q with a name longer"),
        "{a:?}"
    );
    assert_eq!(a[1], "END");
    // The longest names are questions like any other (here: no such name).
    assert!(
        p.data(&long_name(3, 255, false), "ANY", "192.0.2.0/24")
            .is_empty()
    );
    let escaped = long_name(4, 255, true);
    assert_eq!(escaped.len(), 979); // 242 octets as \DDD, 8 digits, 3 dots
    assert!(p.data(&escaped, "ANY", "192.0.2.0/24").is_empty());
    assert!(p.data(&escaped, "SOA", "0.0.0.0/0").is_empty());

    // Answering as before, with the memory it had.
    normal(&mut p);
    let after = p.status_kib("VmRSS");
    eprintln!("VmRSS {before} KiB before the oversized lines, {after} KiB after");
    assert!(
        after <= before + 3 * 1024,
        "VmRSS grew from {before} to {after} KiB"
    );
    assert!(p.close().success());
}

/// A long stream of distinct questions PowerDNS can send (names up to 255
/// octets, written plainly or escaped, IPv4 and IPv6 client networks, each
/// new) fills every cache to its budget and no further: memory stays flat.
#[test]
fn a_long_stream_of_distinct_questions_keeps_memory_flat() {
    let db = Db::new("pipe-stream");
    db.apply_ok(&SITE);
    let mut p = pipe(&db, 5);
    let ask = |p: &mut Coproc, i: usize| {
        let v4 = format!("10.{}.{}.0/24", (i >> 8) & 0xff, i & 0xff);
        let v6 = format!("2001:db8:{:x}::/48", i & 0xffff);
        match i % 4 {
            0 => assert_eq!(p.data("_sip._udp.voip.example.com", "ANY", &v4).len(), 2),
            1 => assert_eq!(p.data("_sip._udp.voip.example.com", "SRV", &v6).len(), 2),
            2 => assert!(p.data(&long_name(i, 255, true), "ANY", &v4).is_empty()),
            _ => {
                let name = format!("{}.voip.example.com", long_name(i, 237, false));
                assert!(p.data(&name, "ANY", &v6).is_empty());
            }
        }
    };
    let start = p.status_kib("VmRSS");
    // Enough for every cache to fill (3584 decisions, 1792 answers).
    for i in 0..16_000 {
        ask(&mut p, i);
    }
    let filled = p.status_kib("VmRSS");
    for i in 16_000..40_000 {
        ask(&mut p, i);
    }
    let end = p.status_kib("VmRSS");
    eprintln!(
        "VmRSS {start} KiB at the start, {filled} KiB after 16000 questions, {end} KiB after 40000"
    );
    assert!(end <= filled + 512, "VmRSS grew from {filled} to {end} KiB");
    assert!(
        end <= start + 4 * 1024,
        "VmRSS grew from {start} to {end} KiB"
    );
    assert!(p.close().success());
}

#[test]
fn a_missing_database_answers_nothing_until_it_is_created() {
    let db = Db::new("pipe-late");
    let mut p = pipe(&db, 5);
    assert!(p.data("voip.example.com", "SOA", "0.0.0.0/0").is_empty());
    assert!(
        !db.path.exists(),
        "the coprocess must not create the database"
    );
    db.apply_ok(&SITE);
    let d = p.until(
        "_sip._tcp.voip.example.com",
        "SRV",
        Duration::from_secs(5),
        |d| d.len() == 2,
    );
    assert_eq!(d.len(), 2, "answers did not start after apply: {d:?}");
}

#[test]
fn a_topology_change_is_answered_from_the_next_queries() {
    let db = Db::new("pipe-change");
    db.apply_ok(&SITE);
    let mut p = pipe(&db, 5);
    let before = p.data("_sip._tcp.voip.example.com", "SRV", "192.0.2.0/24");
    assert!(before[0].ends_with("60 5061 mtl1.voip.example.com"));
    db.apply_ok(&SITE.replace("port = 5061", "port = 5070"));
    let t = Instant::now();
    let after = p.until(
        "_sip._tcp.voip.example.com",
        "SRV",
        Duration::from_secs(3),
        |d| {
            d.first()
                .is_some_and(|l| l.ends_with("60 5070 mtl1.voip.example.com"))
        },
    );
    assert!(
        after[0].ends_with("60 5070 mtl1.voip.example.com"),
        "{after:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    // A drain is a change too.
    let out = db.run(&["node", "drain", "mtl1"]);
    assert!(out.status.success());
    let d = p.until(
        "_sip._tcp.voip.example.com",
        "SRV",
        Duration::from_secs(3),
        |d| d.len() == 1,
    );
    assert_eq!(d.len(), 1);
    assert!(d[0].ends_with("van1.voip.example.com"));
}

#[test]
fn a_locked_database_delays_no_answer() {
    let db = Db::new("pipe-locked");
    db.apply_ok(&SITE);
    // A writer holding the write lock (WAL mode): readers go on.
    let c = rusqlite::Connection::open(&db.path).unwrap();
    c.execute_batch("BEGIN EXCLUSIVE; UPDATE meta SET value = value WHERE key = 'generation';")
        .unwrap();
    let mut p = pipe(&db, 5);
    for i in 0..10 {
        let t = Instant::now();
        let d = p.data(
            "_sip._udp.voip.example.com",
            "SRV",
            &format!("10.1.{i}.0/24"),
        );
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "an answer took {:?}",
            t.elapsed()
        );
        assert_eq!(d.len(), 2, "{d:?}");
    }
    c.execute_batch("COMMIT").unwrap();
    drop(c);
    assert!(p.close().success());

    // A database locked for readers too (rollback journal, exclusive lock),
    // from before the coprocess starts: no answer waits, and the database is
    // picked up once it is released.
    let c = rusqlite::Connection::open(&db.path).unwrap();
    c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    c.pragma_update(None, "locking_mode", "EXCLUSIVE").unwrap();
    c.execute_batch("BEGIN EXCLUSIVE; UPDATE meta SET value = value + 1 WHERE key = 'generation';")
        .unwrap();
    let mut p = pipe(&db, 5);
    for _ in 0..10 {
        let t = Instant::now();
        let d = p.data("_sip._tcp.voip.example.com", "SRV", "192.0.2.0/24");
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "an answer took {:?}",
            t.elapsed()
        );
        assert!(d.is_empty(), "{d:?}");
        std::thread::sleep(Duration::from_millis(30));
    }
    c.execute_batch("COMMIT").unwrap();
    drop(c);
    let d = p.until(
        "_sip._tcp.voip.example.com",
        "SRV",
        Duration::from_secs(5),
        |d| d.len() == 2,
    );
    assert_eq!(
        d.len(),
        2,
        "the database was not picked up after the lock: {d:?}"
    );
    assert!(p.close().success());
}

#[test]
fn a_broken_database_file_never_crashes_the_coprocess() {
    let db = Db::new("pipe-garbage");
    std::fs::write(
        &db.path,
        b"this is not a database, it is a text file\n".repeat(100),
    )
    .unwrap();
    let mut p = pipe(&db, 5);
    for _ in 0..3 {
        assert!(
            p.data("_sip._tcp.voip.example.com", "SRV", "192.0.2.0/24")
                .is_empty()
        );
    }
    assert!(p.close().success());
}

#[test]
fn stored_content_with_control_characters_never_reaches_the_pipe() {
    let db = Db::new("pipe-inject");
    db.apply_ok(&SITE);
    // Bypass `apply`: a hand-edited row with a newline and a tab.
    let c = rusqlite::Connection::open(&db.path).unwrap();
    let def = r#"{"name":"evil.voip.example.com","rtype":"TXT","ttl":60,"content":"\"x\"\nDATA\t0\t1\tevil\tIN\tA\t1\t1\t6.6.6.6"}"#;
    c.execute(
        "INSERT INTO topology(kind, name, def) VALUES ('record', 'evil', ?1)",
        [def],
    )
    .unwrap();
    c.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
        [],
    )
    .unwrap();
    drop(c);
    let mut p = pipe(&db, 5);
    for name in [
        "evil.voip.example.com",
        "voip.example.com",
        "_sip._tcp.voip.example.com",
    ] {
        let a = p.q(name, "ANY", "192.0.2.0/24");
        assert_eq!(a.last().unwrap(), "END", "{a:?}");
        assert!(a.iter().all(|l| !l.contains("6.6.6.6")), "{a:?}");
        assert!(
            a.iter().all(|l| l.starts_with("DATA\t") || l == "END"),
            "{a:?}"
        );
    }
}

/// Content PowerDNS cannot parse fails every question for its name
/// (SERVFAIL). `apply` refuses it; a hand-edited row is checked again by the
/// coprocess, which then refuses the stored topology instead of sending it.
#[test]
fn stored_content_powerdns_cannot_parse_never_reaches_the_pipe() {
    let db = Db::new("pipe-unparsable");
    db.apply_ok(&SITE);
    let c = rusqlite::Connection::open(&db.path).unwrap();
    let def = r#"{"name":"voip.example.com","rtype":"CAA","ttl":60,"content":"garbage here"}"#;
    c.execute(
        "INSERT INTO topology(kind, name, def) VALUES ('record', 'bad caa', ?1)",
        [def],
    )
    .unwrap();
    c.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
        [],
    )
    .unwrap();
    drop(c);
    let mut p = pipe(&db, 5);
    for qtype in ["ANY", "SOA"] {
        let a = p.q("voip.example.com", qtype, "192.0.2.0/24");
        assert_eq!(a.last().unwrap(), "END", "{a:?}");
        assert!(a.iter().all(|l| !l.contains("garbage")), "{a:?}");
    }
}

#[test]
fn cmd_status_explain_and_help() {
    let db = Db::new("pipe-cmd");
    db.apply_ok(&SITE);
    let out = db.ingest("latency van1 24.64.1.7 9\nlatency mtl1 24.64.1.7 60\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut p = pipe(&db, 5);
    let s = p.exchange("CMD\tstatus");
    assert_eq!(s.last().unwrap(), "END");
    assert!(s.iter().any(|l| l.starts_with("mtl1 ")), "{s:?}");
    assert!(s.iter().any(|l| l.starts_with("van1 ")), "{s:?}");
    let e = p.exchange("CMD\texplain _sip._udp.voip.example.com SRV 24.64.1.0/24");
    assert_eq!(e.last().unwrap(), "END");
    let srv: Vec<&String> = e.iter().filter(|l| l.contains(" IN SRV ")).collect();
    assert_eq!(srv.len(), 2, "{e:?}");
    assert!(
        srv[0].contains("SRV 0 100 5060 van1.voip.example.com"),
        "{e:?}"
    );
    assert!(
        srv[1].contains("SRV 1 100 5060 mtl1.voip.example.com"),
        "{e:?}"
    );
    let h = p.exchange("CMD\thelp");
    assert!(h.iter().any(|l| l.contains("explain QNAME")));
    // The same answer through a question.
    let d = p.data("_sip._udp.voip.example.com", "SRV", "24.64.1.0/24");
    assert!(
        d[0].ends_with("\t0\t100 5060 van1.voip.example.com"),
        "{d:?}"
    );
}

#[test]
fn seen_client_networks_are_recorded_in_batches() {
    let db = Db::new("pipe-seen");
    db.apply_ok(&SITE);
    let mut p = pipe(&db, 5);
    for i in 0..30 {
        p.data(
            "_sip._udp.voip.example.com",
            "SRV",
            &format!("10.9.{}.0/24", i % 3),
        );
    }
    // Static answers and SOA walks are not client networks.
    p.data("_sip._tcp.voip.example.com", "SRV", "172.16.5.0/24");
    assert!(p.close().success(), "flushes at EOF");
    let v = db.status_json();
    assert_eq!(v["seen_networks"], 3, "{v}");
    let top = v["top_seen_networks"].as_array().unwrap();
    assert!(
        top.iter()
            .all(|n| n["queries"] == 10 && n["prefix"].as_str().unwrap().starts_with("10.9.")),
        "{v}"
    );
    // Every answer of a service counts for the node it put first, and
    // the counts of every coprocess add up.
    let answers = |v: &serde_json::Value| -> Vec<u64> {
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["answers_first"].as_u64().unwrap())
            .collect()
    };
    let first = answers(&v);
    assert_eq!(first.iter().sum::<u64>(), 31, "{v}");
    let mut p = pipe(&db, 5);
    for _ in 0..5 {
        p.data("_sip._udp.voip.example.com", "SRV", "10.9.0.0/24");
    }
    assert!(p.close().success());
    let v = db.status_json();
    assert_eq!(answers(&v).iter().sum::<u64>(), 36, "{v}");
    let prom = support::stdout(&db.run(&["status", "--prometheus"]));
    let total: f64 = prom
        .lines()
        .filter(|l| l.starts_with("pdns_ha_answers_total{node="))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(total, 36.0, "{prom}");
}

/// An ABI this build does not speak is refused the only way a coprocess
/// can: it exits (non-zero, saying why on stderr, nothing on stdout).
#[test]
fn an_unknown_abi_is_refused_by_exiting() {
    let db = Db::new("bad-abi");
    db.apply_ok(&SITE);
    let o = support::pdns_ha_stdin(
        &db.path,
        &["pipe"],
        "HELO\t9\nQ\tvoip.example.com\tIN\tSOA\t-1\t0.0.0.0\n",
    );
    assert!(!o.status.success());
    assert!(
        o.stdout.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = support::stderr(&o);
    assert!(
        err.contains("pipe ABI 9") && err.contains("pipe-abi-version=5"),
        "{err}"
    );
}

#[test]
fn a_coprocess_started_while_the_database_is_read_only_answers_from_it() {
    // A file system remounted read-only, or permissions broken by hand:
    // PowerDNS starts a coprocess (after a kill, a timeout, a restart) and
    // it must answer from the database, not "no data" (REFUSED, NXDOMAIN).
    let db = Db::new("pipe-ro");
    db.apply_ok(&SITE);
    assert_ok("drain", &db.run(&["node", "drain", "van1"]));
    let srv = |p: &mut Coproc| p.data("_sip._tcp.voip.example.com", "SRV", "192.0.2.0/24");

    // No other process has it open: no -wal and -shm files, none can be
    // created.
    if !support::set_read_only(db.dir.path(), true) {
        eprintln!("\n!!!!!!!! SKIPPED: cannot make a directory read-only here !!!!!!!!\n");
        return;
    }
    let mut frozen = pipe(&db, 5);
    let d = srv(&mut frozen);
    assert!(support::set_read_only(db.dir.path(), false));
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].ends_with("mtl1.voip.example.com"),
        "drained van1: {d:?}"
    );

    // Another process has it open (its -wal and -shm files exist).
    let writer = rusqlite::Connection::open(&db.path).unwrap();
    writer.pragma_update(None, "journal_mode", "WAL").unwrap();
    let _: i64 = writer
        .query_row("SELECT count(*) FROM topology", [], |r| r.get(0))
        .unwrap();
    assert!(support::set_read_only(db.dir.path(), true));
    let mut read_only = pipe(&db, 5);
    let d = srv(&mut read_only);
    assert!(support::set_read_only(db.dir.path(), false));
    assert_eq!(d.len(), 1, "{d:?}");
    drop(writer);

    // Writable again: both see the changes made since.
    assert_ok("undrain", &db.run(&["node", "undrain", "van1"]));
    for p in [&mut frozen, &mut read_only] {
        let d = p.until(
            "_sip._tcp.voip.example.com",
            "SRV",
            Duration::from_secs(5),
            |d| d.len() == 2,
        );
        assert_eq!(d.len(), 2, "the undrain is not seen: {d:?}");
    }
}

/// `explain` marks exactly the records the coprocess sends with `auth` 0
/// (a delegation's NS and its glue; not the DS at the cut), in its text
/// and in `--json`.
#[test]
fn explain_flags_the_records_the_pipe_sends_non_authoritative() {
    let db = Db::new("pipe-explain-auth");
    let site = &*SITE;
    db.apply_ok(&format!(
        "{site}
[[record]]
name = \"child.voip.example.com\"
type = \"NS\"
content = \"ns.child.voip.example.com.\"

[[record]]
name = \"ns.child.voip.example.com\"
type = \"A\"
content = \"192.0.2.53\"

[[record]]
name = \"child.voip.example.com\"
type = \"DS\"
content = \"60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118\"
"
    ));
    let mut p = pipe(&db, 5);
    for name in [
        "child.voip.example.com",
        "ns.child.voip.example.com",
        "voip.example.com",
    ] {
        // ABI 5: DATA, scope, auth, qname, qclass, qtype, ...
        let mut sent: Vec<(String, bool)> = p
            .data(name, "ANY", "192.0.2.0/24")
            .iter()
            .map(|l| (fields(l)[5].to_string(), fields(l)[2] == "1"))
            .collect();
        sent.sort();
        assert!(!sent.is_empty(), "{name}");
        let o = db.run(&["explain", name, "ANY", "--client", "192.0.2.0/24", "--json"]);
        assert_ok("explain --json", &o);
        let json: serde_json::Value = serde_json::from_str(&support::stdout(&o)).unwrap();
        let mut explained: Vec<(String, bool)> = json["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["type"].as_str().unwrap().to_string(),
                    r["auth"].as_bool().unwrap(),
                )
            })
            .collect();
        explained.sort();
        assert_eq!(explained, sent, "{name}");
        let o = db.run(&["explain", name, "ANY", "--client", "192.0.2.0/24"]);
        assert_ok("explain", &o);
        let text = support::stdout(&o);
        let flagged = text
            .lines()
            .filter(|l| l.contains("; not authoritative"))
            .count();
        assert_eq!(
            flagged,
            sent.iter().filter(|(_, auth)| !auth).count(),
            "{name}:\n{text}"
        );
        if name != "voip.example.com" {
            assert!(flagged > 0, "{name}:\n{text}");
        }
    }
    assert!(p.close().success());
}
