//! `pdns-ha apply` and the content of static records (`[[record]]`): content
//! PowerDNS 4.7 cannot parse, or would serve as something else, is refused
//! with the file and line of the record, exit status 1, and the database left
//! as it was; accepted content is stored with its quoted text as written.
//! (That what `apply` accepts PowerDNS serves is in dns_static.rs.)

mod support;

use std::sync::LazyLock;

use rusqlite::Connection;
use support::{Db, assert_ok, stderr};

/// The site (tests/fixtures/one_record.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("one_record"));

/// The stored content of the static records, sorted.
fn stored_contents(db: &Db) -> Vec<String> {
    let c = Connection::open(&db.path).expect("open the test database");
    let mut st = c
        .prepare("SELECT def FROM topology WHERE kind = 'record'")
        .unwrap();
    let mut v: Vec<String> = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|d| {
            let d: serde_json::Value = serde_json::from_str(&d.unwrap()).unwrap();
            format!("{} {} {}", d["name"], d["rtype"], d["content"])
        })
        .collect();
    v.sort();
    v
}

/// A TOML basic string holding `s` exactly.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn record(name: &str, rtype: &str, content: &str) -> String {
    format!(
        "\n[[record]]\nname = \"{name}\"\ntype = \"{rtype}\"\ncontent = {}\n",
        toml_str(content)
    )
}

/// Applies SITE with a valid record, then `bad`, then another valid record,
/// and checks that the whole file is refused, naming `bad`'s line (its
/// `[[record]]` line or its `content` line) and `why`.
#[track_caller]
fn assert_refused(
    db: &Db,
    before: &[String],
    (name, rtype, content): (&str, &str, &str),
    why: &str,
) {
    let text = SITE.to_string()
        + &record("www.voip.example.com", "A", "192.0.2.80")
        + &record(name, rtype, content)
        + &record("voip.example.com", "MX", "10 mx1.example.net.");
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == "[[record]]")
        .nth(2)
        .map(|(i, _)| i + 1)
        .expect("the bad record's [[record]] line");
    let content_line = header + 3;
    assert!(lines[content_line - 1].starts_with("content = "));

    let o = db.apply(&text);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{rtype} {content:?} must be refused:\n{err}"
    );
    let site = db.site_path();
    let site = site.display();
    let found = err.lines().find(|l| l.contains(why));
    let Some(line) = found else {
        panic!("{rtype} {content:?}: want '{why}' in:\n{err}");
    };
    let at = |n: usize| format!("error: {site}:{n}: record \"{name} {rtype}\": ");
    assert!(
        line.starts_with(&at(header)) || line.starts_with(&at(content_line)),
        "{rtype} {content:?}: the error must name line {header} or {content_line}:\n{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(db.topology_rows(), before, "database unchanged by:\n{err}");
}

#[test]
fn bad_record_content_is_refused_with_its_line() {
    let db = Db::new("apply-bad-records");
    db.apply_ok(&SITE);
    let before = db.topology_rows();
    let apex = "voip.example.com";
    let sha256 = "d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971";
    let long_string = format!("\"{}\"", "y".repeat(70_000));
    let long_strings = vec![format!("\"{}\"", "y".repeat(255)); 275].join(" ");
    let sshfp_33 = format!("4 2 {sha256}ab");
    let cases: Vec<((&str, &str, &str), &str)> = vec![
        // The cases of the issue: PowerDNS fails the whole name (SERVFAIL).
        (
            (apex, "CAA", "garbage here"),
            "CAA content must be 'FLAGS TAG \"VALUE\"' (RFC 8659)",
        ),
        ((apex, "TXT", r#""abc\""#), "has no closing quote"),
        ((apex, "TXT", r#""a"b""#), "without a space"),
        (
            (
                apex,
                "NAPTR",
                r#"10 50 s SIP+D2U "" _sip._udp.voip.example.com."#,
            ),
            "the flags must be a quoted string",
        ),
        (
            (apex, "LOC", "somewhere in Amsterdam"),
            "the latitude: the degrees 'somewhere'",
        ),
        (
            (apex, "LOC", "52 22 23 N 4 53 32 E"),
            "the altitude is missing",
        ),
        ((apex, "DS", "1"), "1 fields instead of 4"),
        ((apex, "SSHFP", "x"), "1 fields instead of 3"),
        (
            (apex, "URI", "10 1 sip:help@example.com"),
            "the target must be a quoted string",
        ),
        (
            (apex, "RP", "hostmaster.example.com."),
            "1 fields instead of 2",
        ),
        (
            (apex, "HINFO", "INTEL Unix"),
            "the CPU must be a quoted string",
        ),
        // Served as something else, or unreadable by resolvers.
        (
            (apex, "TXT", r#""\256""#),
            "three digits from \\000 to \\255",
        ),
        (
            (apex, "TLSA", "3 1 1 d2ab"),
            "is 32 bytes (64 hex digits), not 2",
        ),
        (
            (apex, "SSHFP", &sshfp_33),
            "is 32 bytes (64 hex digits), not 33",
        ),
        (
            (apex, "DS", "60485 5 1 2BB1"),
            "is 20 bytes (40 hex digits), not 2",
        ),
        (
            (apex, "CAA", "0 is-sue \"x\""),
            "must be 1 to 15 letters and digits",
        ),
        (
            (apex, "LOC", "52 N 4 E 0m 15m"),
            "the size '15m' cannot be stored",
        ),
        // 70 KB of TXT: answered with no record at all.
        ((apex, "TXT", &long_string), "must be at most 255 bytes"),
        ((apex, "TXT", &long_strings), "70412 bytes in an answer"),
        // A type that is not checked is refused, not passed through.
        (
            (apex, "SOA", "a. b. 1 2 3 4 5"),
            "type SOA is not supported for static records",
        ),
        (
            ("sub.voip.example.com", "DNAME", "x.example.net."),
            "type DNAME is not supported",
        ),
    ];
    for (rec, why) in cases {
        assert_refused(&db, &before, rec, why);
    }
}

/// The static records of one name must fit in one answer together: the
/// record that goes over the bound is refused.
#[test]
fn the_records_of_a_name_must_fit_in_one_answer() {
    let db = Db::new("apply-too-big");
    // Each record: 60 strings of 255 bytes and "part N", 15,367 bytes of
    // RDATA, 15,379 in an answer: three fit in 60,000, four do not.
    let part = |i: usize| {
        let mut v = vec![format!("\"{}\"", "z".repeat(255)); 60];
        v.push(format!("\"part {i}\""));
        v.join(" ")
    };
    let mut text = SITE.to_string();
    for i in 1..=3 {
        text += &record("big.voip.example.com", "TXT", &part(i));
    }
    db.apply_ok(&text);
    let before = db.topology_rows();

    text += &record("big.voip.example.com", "TXT", &part(4));
    let o = db.apply(&text);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let content_line = 1 + text
        .lines()
        .position(|l| l.contains("part 4"))
        .expect("the fourth record");
    let site = db.site_path();
    let at = |n: usize| {
        format!(
            "error: {}:{n}: record \"big.voip.example.com TXT\": the static records of \
             big.voip.example.com take 61516 bytes in one answer, more than 60000",
            site.display()
        )
    };
    assert!(
        err.contains(&at(content_line - 3)) || err.contains(&at(content_line)),
        "the fourth record's line: {err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(db.topology_rows(), before, "database unchanged");
}

/// Accepted content is stored normalised: one space between fields, quoted
/// text exactly as written (inner spaces and escapes kept).
#[test]
fn accepted_content_keeps_its_quoted_text() {
    let db = Db::new("apply-kept");
    let text = SITE.to_string()
        + &record(
            "voip.example.com",
            "TXT",
            r#"  "a  b"    "say \"hi\"" "\065\\"  "#,
        )
        + &record(
            "voip.example.com",
            "CAA",
            r#"0  issue  "ca.example.net;  account=1""#,
        )
        + &record("voip.example.com", "HINFO", r#""RFC8482"   """#)
        + &record(
            "voip.example.com",
            "NAPTR",
            r#"100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" ."#,
        );
    db.apply_ok(&text);
    assert_eq!(
        stored_contents(&db),
        [
            r#""voip.example.com" "CAA" "0 issue \"ca.example.net;  account=1\"""#,
            r#""voip.example.com" "HINFO" "\"RFC8482\" \"\"""#,
            r#""voip.example.com" "NAPTR" "100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:info@example.com!\" .""#,
            r#""voip.example.com" "TXT" "\"a  b\" \"say \\\"hi\\\"\" \"\\065\\\\\"""#,
            r#""voip.example.com" "TXT" "\"v=spf1 -all\"""#,
        ]
    );
    // Applying it again changes nothing.
    let o = db.apply(&text);
    assert_ok("apply again", &o);
    assert!(
        support::stdout(&o).contains("no change"),
        "{}",
        support::stdout(&o)
    );
}

#[test]
fn collector_settings_that_outrun_the_policy_ages_are_applied_with_a_warning() {
    let db = Db::new("apply-advice");
    let site = format!(
        "{}
[node.a]
host = \"a.voip.example.com\"
ipv4 = [\"192.0.2.1\"]
sip_probe = \"udp:192.0.2.1:5060\"
esl = \"192.0.2.1:8021\"

[policy]
health_max_age_s = 20

[collector]
probe_interval_ms = 10000
",
        *SITE
    );
    let o = db.apply(&site);
    assert_ok("apply", &o);
    let e = stderr(&o);
    assert!(
        e.contains("warning: [collector] probe_interval_ms = 10000 is more than a third of [policy] health_max_age_s = 20 s"),
        "{e}"
    );
    assert!(e.contains("down_after = 30000 ms"), "{e}");
    let s = db.status_json();
    assert_eq!(s["nodes"][0]["name"], "a", "applied anyway: {s}");
    // The same site with settings that fit: no warning.
    let o = db.apply(&site.replace("probe_interval_ms = 10000", "probe_interval_ms = 5000"));
    assert_ok("apply", &o);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn collector_values_the_collector_would_refuse_are_refused_on_their_line() {
    let db = Db::new("apply-collector-values");
    let node = "[node.a]
host = \"a.voip.example.com\"
ipv4 = [\"192.0.2.1\"]
sip_probe = \"udp:192.0.2.1:5060\"
esl = \"192.0.2.1:8021\"
esl_password = \"ClueCon\"
esl_profiles = [\"internal\"]
";
    let site = &*SITE;
    db.apply_ok(&format!("{site}\n{node}"));
    let before = db.topology_rows();
    for (from, to, what_to_do) in [
        (
            "sip_probe = \"udp:192.0.2.1:5060\"",
            "sip_probe = \"udp:a b:5060\"",
            "sip_probe 'udp:a b:5060' must be udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT",
        ),
        (
            "sip_probe = \"udp:192.0.2.1:5060\"",
            "sip_probe = \"udp:192.0.2.1:0\"",
            "PORT 1 to 65535",
        ),
        (
            "esl_password = \"ClueCon\"",
            "esl_password = \"\"",
            "the ESL password is empty: give the event socket's password, or no esl_password for FreeSWITCH's default",
        ),
        (
            "esl_password = \"ClueCon\"",
            "esl_password = \"Clue\\nCon\"",
            "it must be one line",
        ),
        (
            "esl = \"192.0.2.1:8021\"",
            "esl = \"192.0.2.1\"",
            "esl '192.0.2.1' must be HOST:PORT",
        ),
        (
            "esl_profiles = [\"internal\"]",
            "esl_profiles = [\"internal\", \"internal reg\"]",
            "'internal reg' is not a sofia profile name (letters, digits, - _ .)",
        ),
    ] {
        let text = format!("{site}\n{}", node.replacen(from, to, 1));
        let line = text.lines().position(|l| l == to).expect("the bad line") + 1;
        let o = db.apply(&text);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{to} must be refused:\n{err}");
        let site = db.site_path();
        let want = format!("error: {}:{line}: node \"a\": ", site.display());
        assert!(err.starts_with(&want), "{to}: want {want:?} in:\n{err}");
        assert!(
            err.contains(what_to_do),
            "{to}: want {what_to_do:?} in:\n{err}"
        );
        assert!(!err.contains("Clue\nCon"), "never the password: {err}");
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(db.topology_rows(), before, "database unchanged by:\n{err}");
    }
}

/// The database `apply` creates takes the umask like any new file (0666
/// less it), not SQLite's 0644: with `umask 007` the group that shares the
/// directory (the collector's user and `pdns`) can write it, and its
/// `-wal` and `-shm` files, which SQLite gives the database's mode.
#[test]
fn a_new_database_takes_the_umask_so_a_group_can_share_it() {
    use std::os::unix::fs::PermissionsExt;
    let db = Db::new("apply-umask");
    let site = db.site_path();
    let text = support::fixture("two_nodes");
    std::fs::write(&site, &text).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 007; exec \"$0\" apply \"$1\" --db \"$2\"")
        .arg(support::BIN)
        .arg(&site)
        .arg(&db.path)
        .env_remove("PDNS_HA_DB")
        .output()
        .expect("run sh");
    assert_ok("apply under umask 007", &o);
    assert_eq!(mode(&db.path), 0o660);
    // Another writer while the first keeps the database open: the -wal
    // and -shm files exist, with the database's mode.
    let keep = Connection::open(&db.path).unwrap();
    keep.query_row("SELECT count(*) FROM topology", [], |r| r.get::<_, i64>(0))
        .unwrap();
    db.ingest_ok("health mtl1 down\n");
    for suffix in ["-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.path.display()));
        assert_eq!(mode(&p), 0o660, "{}", p.display());
    }
    drop(keep);
    // An existing database keeps the mode it has.
    std::fs::set_permissions(&db.path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_ok("apply again", &db.apply(&text));
    assert_eq!(mode(&db.path), 0o640);
}
