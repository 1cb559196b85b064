//! How many questions PowerDNS 4.7 sends the coprocess for one DNS query,
//! with the settings of pdns.conf.example (`consistent-backends=no`), and
//! that every answer is the one PowerDNS gives with its default
//! `consistent-backends=yes` (rcode, flags, the three sections with their
//! TTLs, the ECS scope).
//!
//! PowerDNS logs every question it sends a coprocess (primary or standby)
//! when `query-logging=yes`, the line these tests add to the example's
//! settings: the questions of one DNS query are those logged while `dig`
//! waited for its answer.
//!
//! What PowerDNS asks depends on what it has cached (SOA walk, negative
//! answers, static records), so each test starts its own PowerDNS and asks
//! a fixed sequence, in far less time than the caches keep their entries
//! (`query-cache-ttl` 20 s, `negquery-cache-ttl` 60 s).

mod support;

use std::path::Path;
use std::sync::LazyLock;

use support::pdns::find_program;
use support::{Db, Dig, Pdns, PdnsOpts, Rr, TempDir};

/// A latency service: per-client answers, with an ECS scope.
const SRV: &str = "_sip._udp.voip.example.com";
/// A load pool: per-client addresses, with an ECS scope.
const POOL: &str = "sip.voip.example.com";

/// The site (tests/fixtures/questions.toml).
static SITE: LazyLock<String> = LazyLock::new(|| support::fixture("questions"));

/// van1 is closest to 198.51.100.0/24 (the site order says mtl1), and mtl1
/// is the emptiest: answers that differ from the site order.
const METRICS: &str = "\
latency van1 198.51.100.0/24 10
latency mtl1 198.51.100.0/24 60
load mtl1 100 1000
load van1 900 1000
";

fn db(tag: &str) -> Db {
    let db = Db::new(tag);
    db.apply_ok(&SITE);
    db.ingest_ok(METRICS);
    db
}

/// The example's settings, ABI `abi`, with the coprocess questions logged.
fn opts(abi: u8) -> PdnsOpts {
    PdnsOpts::abi(abi)
        .with("query-logging=yes")
        .with("allow-axfr-ips=127.0.0.0/8")
}

/// Asks `args` with dig; returns the answer and the questions PowerDNS sent
/// its coprocesses for it.
fn ask(pdns: &Pdns, args: &[&str]) -> (Dig, Vec<String>) {
    let before = pdns.questions().len();
    let d = pdns.dig(args);
    let asked = pdns.questions().split_off(before);
    assert!(
        !d.status.is_empty() || !d.answer.is_empty(),
        "no answer to {args:?}: {d}"
    );
    (d, asked)
}

/// An answer as text, for comparing two: records sorted (PowerDNS shuffles
/// them over UDP), TTLs kept.
fn canonical(d: &Dig) -> String {
    let section = |rrs: &[Rr]| {
        let mut v: Vec<String> = rrs
            .iter()
            .map(|r| format!("  {} {} {} {}", r.name, r.ttl, r.rtype, r.data))
            .collect();
        v.sort();
        v.join("\n")
    };
    let mut flags = d.flags.clone();
    flags.sort();
    format!(
        "status {} flags {} ecs {:?}\nanswer:\n{}\nauthority:\n{}\nadditional:\n{}",
        d.status,
        flags.join(" "),
        d.ecs,
        section(&d.answer),
        section(&d.authority),
        section(&d.additional)
    )
}

/// One query of a sequence: what it is, dig's arguments, and how many
/// coprocess questions PowerDNS asks for it with the example's settings
/// (`None`: not checked).
struct Step {
    what: &'static str,
    args: Vec<String>,
    questions: Option<usize>,
}

fn step(what: &'static str, args: &str, questions: Option<usize>) -> Step {
    Step {
        what,
        args: args.split_whitespace().map(str::to_string).collect(),
        questions,
    }
}

/// What one step gave on the two servers.
struct Outcome {
    what: &'static str,
    no: Vec<String>,
    yes: Vec<String>,
    want: Option<usize>,
}

/// Asks every step of `steps`, in turn, of `no` (the example's settings)
/// and of `yes` (the same with `consistent-backends=yes`); panics at the
/// first answer that differs. Prints the question counts of both.
fn run(label: &str, no: &Pdns, yes: &Pdns, steps: &[Step]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for s in steps {
        let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
        let (d_no, q_no) = ask(no, &args);
        let (d_yes, q_yes) = ask(yes, &args);
        assert_eq!(
            canonical(&d_no),
            canonical(&d_yes),
            "{label}: {} ({args:?}) answered differently with consistent-backends=no (left) \
             and yes (right)\nno:\n{d_no}\nyes:\n{d_yes}",
            s.what
        );
        out.push(Outcome {
            what: s.what,
            no: q_no,
            yes: q_yes,
            want: s.questions,
        });
    }
    eprintln!("{label}: coprocess questions per DNS query (consistent-backends=no / yes)");
    for o in &out {
        eprintln!("  {:>3} {:>3}  {}", o.no.len(), o.yes.len(), o.what);
    }
    no.assert_no_backend_trouble();
    yes.assert_no_backend_trouble();
    out
}

/// Panics unless every step asked the coprocesses as often as it should.
#[track_caller]
fn assert_counts(label: &str, outcomes: &[Outcome]) {
    let wrong: Vec<String> = outcomes
        .iter()
        .filter(|o| o.want.is_some_and(|w| w != o.no.len()))
        .map(|o| {
            format!(
                "{}: {} questions instead of {}:\n    {}",
                o.what,
                o.no.len(),
                o.want.unwrap_or_default(),
                o.no.join("\n    ")
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{label}: coprocess questions per DNS query:\n{}",
        wrong.join("\n")
    );
}

/// The fields of a logged question: Q, name, class, type, id, remote,
/// (local), (subnet).
fn fields(q: &str) -> Vec<&str> {
    q.split('\t').collect()
}

/// The one question of a per-client query: ANY for `name`, with the
/// client's subnet.
#[track_caller]
fn assert_one_question(asked: &[String], name: &str, subnet: &str) {
    assert_eq!(
        asked.len(),
        1,
        "one question for {name} {subnet}: {asked:#?}"
    );
    let f = fields(&asked[0]);
    assert_eq!(f[1], name, "{asked:?}");
    assert_eq!(f[3], "ANY", "{asked:?}");
    assert_eq!(f.last().copied(), Some(subnet), "{asked:?}");
}

/// With the settings of pdns.conf.example, a query for a per-client answer
/// (a service's SRV, a pool's A or AAAA, with distinct ECS subnets, over
/// UDP and TCP) costs exactly one coprocess question once PowerDNS has
/// cached the zone's SOA walk: the ANY lookup of the name, with the client
/// subnet. (With PowerDNS's default `consistent-backends=yes` it is two:
/// see the next test.)
#[test]
fn a_per_client_answer_costs_one_coprocess_question() {
    require_pdns!();
    let db = db("one-question");
    let pdns = Pdns::start(&db.path, opts(5));
    // Warm-up: the SOA walk, the delegation check and the SRV targets'
    // addresses, which PowerDNS caches.
    for args in [
        [SRV, "SRV", "+subnet=10.18.0.0/24"],
        [POOL, "A", "+subnet=10.18.0.0/24"],
    ] {
        let (d, _) = ask(&pdns, &args);
        assert_eq!(d.status, "NOERROR", "{d}");
    }

    for i in 1..=16 {
        let subnet = format!("10.18.{i}.0/24");
        let tcp = if i % 4 == 0 { "+tcp" } else { "+notcp" };
        let (d, asked) = ask(&pdns, &[SRV, "SRV", &format!("+subnet={subnet}"), tcp]);
        assert_eq!(d.srvs().len(), 2, "{d}");
        assert_eq!(d.scope(), Some(24), "{d}");
        assert_one_question(&asked, SRV, &subnet);
    }
    // The same client again: PowerDNS never caches a scoped answer, so it
    // asks again (the coprocess answers from its own cache).
    for _ in 0..3 {
        let (_, asked) = ask(&pdns, &[SRV, "SRV", "+subnet=10.18.1.0/24"]);
        assert_one_question(&asked, SRV, "10.18.1.0/24");
    }
    // The client ordering from the metrics: van1 first for this network.
    let (d, asked) = ask(&pdns, &[SRV, "SRV", "+subnet=198.51.100.0/24"]);
    assert_eq!(
        d.srv_targets(),
        ["van1.voip.example.com", "mtl1.voip.example.com"],
        "{d}"
    );
    assert_one_question(&asked, SRV, "198.51.100.0/24");
    // IPv6 clients.
    for i in 1..=4 {
        let subnet = format!("2001:db8:{i}::/48");
        let (d, asked) = ask(&pdns, &[SRV, "SRV", &format!("+subnet={subnet}")]);
        assert_eq!(d.scope(), Some(48), "{d}");
        assert_one_question(&asked, SRV, &subnet);
    }
    // Pools: A and AAAA (one ANY question answers either).
    for i in 1..=8 {
        let subnet = format!("10.19.{i}.0/24");
        let rtype = if i % 2 == 0 { "AAAA" } else { "A" };
        let (d, asked) = ask(&pdns, &[POOL, rtype, &format!("+subnet={subnet}")]);
        assert_eq!(d.records(rtype).len(), 1, "{d}");
        assert_eq!(d.scope(), Some(24), "{d}");
        assert_one_question(&asked, POOL, &subnet);
    }
    pdns.assert_no_backend_trouble();
}

/// Every kind of query, asked in the same order of a PowerDNS with the
/// example's settings and of one with `consistent-backends=yes`: the same
/// answers, and with the example's settings the number of coprocess
/// questions listed here (a first query for a name also walks its SOA and
/// checks each name above it for a delegation, both cached by PowerDNS; an
/// empty answer goes on to the standby, so it counts twice).
#[test]
fn every_kind_of_query_answers_as_with_consistent_backends_yes() {
    require_pdns!();
    let db = db("kinds");
    let no = Pdns::start(&db.path, opts(5));
    let yes = Pdns::start(&db.path, opts(5).with("consistent-backends=yes"));
    let steps = [
        // The apex: the SOA comes from the SOA walk (getAuth), NS and the
        // rest from one ANY lookup of the apex, plus the NS names'
        // addresses for the additional section (none here: asked of both).
        step("apex SOA, first", "voip.example.com SOA", Some(1)),
        step(
            "apex SOA, again (packet cache)",
            "voip.example.com SOA",
            Some(0),
        ),
        step("apex NS", "voip.example.com NS", Some(5)),
        step("apex TXT", "voip.example.com TXT", Some(0)),
        step(
            "apex NAPTR, with ECS",
            "voip.example.com NAPTR +subnet=192.0.2.0/24",
            Some(0),
        ),
        step("apex ANY over TCP", "+tcp voip.example.com ANY", Some(0)),
        // Per-client answers: first the SOA walk (2 + 2), the delegation
        // check (NS of the name and of _udp, 2 + 2), the answer (1) and the
        // SRV targets' addresses (2); then the answer alone.
        step(
            "dynamic SRV, first",
            "_sip._udp.voip.example.com SRV +subnet=198.51.100.0/24",
            Some(11),
        ),
        step(
            "dynamic SRV, another client",
            "_sip._udp.voip.example.com SRV +subnet=192.0.2.0/24",
            Some(1),
        ),
        step(
            "dynamic SRV, a third client",
            "_sip._udp.voip.example.com SRV +subnet=203.0.113.0/24",
            Some(1),
        ),
        step(
            "dynamic SRV, the first client again",
            "_sip._udp.voip.example.com SRV +subnet=198.51.100.0/24",
            Some(1),
        ),
        step(
            "dynamic SRV, no ECS",
            "_sip._udp.voip.example.com SRV",
            Some(1),
        ),
        step(
            "dynamic SRV, IPv6 client",
            "_sip._udp.voip.example.com SRV +subnet=2001:db8:77::/48",
            Some(1),
        ),
        step(
            "dynamic SRV over TCP",
            "+tcp _sip._udp.voip.example.com SRV +subnet=10.18.7.0/24",
            Some(1),
        ),
        step(
            "dynamic SRV, 0x20",
            "_SiP._UdP.VoIp.ExAmPlE.cOm SRV +subnet=10.18.8.0/24",
            Some(1),
        ),
        step(
            "dynamic SRV asked as ANY over TCP",
            "+tcp _sip._udp.voip.example.com ANY +subnet=10.18.9.0/24",
            Some(1),
        ),
        step(
            "pool A, first",
            "sip.voip.example.com A +subnet=198.51.100.0/24",
            Some(5),
        ),
        step(
            "pool A, another client",
            "sip.voip.example.com A +subnet=192.0.2.0/24",
            Some(1),
        ),
        step(
            "pool AAAA",
            "sip.voip.example.com AAAA +subnet=203.0.113.0/24",
            Some(1),
        ),
        step(
            "pool TXT (NODATA)",
            "sip.voip.example.com TXT +subnet=203.0.113.0/24",
            Some(1),
        ),
        // Static data: cached by PowerDNS after the first query.
        step(
            "static SRV, first",
            "_sip._tcp.voip.example.com SRV",
            Some(9),
        ),
        step(
            "static SRV, again",
            "_sip._tcp.voip.example.com SRV",
            Some(0),
        ),
        step("node A", "mtl1.voip.example.com A", Some(4)),
        step("node AAAA", "mtl1.voip.example.com AAAA", Some(0)),
        step("node MX (NODATA)", "van1.voip.example.com MX", Some(4)),
        step("static A", "www.voip.example.com A", Some(5)),
        step("CNAME", "alias.voip.example.com A", Some(5)),
        step("delegation", "host.child.voip.example.com A", Some(7)),
        step("DS at the delegation", "child.voip.example.com DS", Some(1)),
        // Empty non-terminals: NODATA.
        step("empty non-terminal, A", "_udp.voip.example.com A", Some(1)),
        step(
            "empty non-terminal, SRV",
            "_tcp.voip.example.com SRV",
            Some(1),
        ),
        step(
            "empty non-terminal, TYPE65534",
            "_udp.voip.example.com TYPE65534",
            Some(0),
        ),
        // Names that do not exist: NXDOMAIN. Each new one costs its SOA
        // question, its NS check and its ANY lookup, each asked of the
        // standby too (six); the first also the zone's wildcard (two).
        step("NXDOMAIN, first", "nope.voip.example.com A", Some(8)),
        step(
            "NXDOMAIN, another name",
            "nope2.voip.example.com A",
            Some(6),
        ),
        step(
            "NXDOMAIN below a service",
            "x._sip._udp.voip.example.com SRV +subnet=10.18.10.0/24",
            Some(9),
        ),
        step(
            "NXDOMAIN below a static service",
            "x._sip._tcp.voip.example.com A",
            Some(8),
        ),
        // Outside every zone: REFUSED after the SOA walk (the root's SOA
        // is cached from PowerDNS's start-up check).
        step("REFUSED", "www.example.org A", Some(6)),
        step("REFUSED, parent of the zone", "example.com A", Some(4)),
        step("AXFR", "AXFR voip.example.com", None),
        step(
            "dynamic SRV after all that",
            "_sip._udp.voip.example.com SRV +subnet=10.18.11.0/24",
            Some(1),
        ),
    ];
    let out = run("ABI 5", &no, &yes, &steps);
    assert_counts("ABI 5", &out);
    // The reason for the setting: with PowerDNS's default, every
    // per-client query asks the same question twice (the delegation check
    // is an ANY lookup too, and a scoped answer is never cached).
    for o in out
        .iter()
        .filter(|o| o.want == Some(1) && o.what.starts_with("dynamic"))
    {
        assert_eq!(
            o.yes.len(),
            2,
            "{}: with consistent-backends=yes: {:#?}",
            o.what,
            o.yes
        );
        assert_eq!(o.yes[0], o.yes[1], "{}: the same question twice", o.what);
    }
}

/// ABI 1 to 4 (no local address below 2, no ECS below 3, AXFR without a
/// zone name below 4): the same answers either way. From ABI 3, a
/// per-client query costs one question; below, answers carry no scope and
/// PowerDNS caches them for everyone (no question at all).
#[test]
fn older_abis_answer_as_with_consistent_backends_yes() {
    require_pdns!();
    for abi in 1u8..=4 {
        let db = db(&format!("abi{abi}"));
        let no = Pdns::start(&db.path, opts(abi));
        let yes = Pdns::start(&db.path, opts(abi).with("consistent-backends=yes"));
        let per_client = Some(if abi >= 3 { 1 } else { 0 });
        let steps = [
            step("apex SOA", "voip.example.com SOA", Some(1)),
            step("apex NS", "voip.example.com NS", Some(5)),
            step(
                "dynamic SRV, first",
                "_sip._udp.voip.example.com SRV +subnet=198.51.100.0/24",
                Some(11),
            ),
            step(
                "dynamic SRV, another client",
                "_sip._udp.voip.example.com SRV +subnet=192.0.2.0/24",
                per_client,
            ),
            step(
                "dynamic SRV, a third client",
                "_sip._udp.voip.example.com SRV +subnet=203.0.113.0/24",
                per_client,
            ),
            step(
                "pool A, first",
                "sip.voip.example.com A +subnet=198.51.100.0/24",
                Some(5),
            ),
            step(
                "pool A, another client",
                "sip.voip.example.com A +subnet=192.0.2.0/24",
                per_client,
            ),
            step("static SRV", "_sip._tcp.voip.example.com SRV", Some(9)),
            step("static A", "www.voip.example.com A", Some(5)),
            step("empty non-terminal", "_udp.voip.example.com A", Some(1)),
            step("NXDOMAIN", "nope.voip.example.com A", Some(8)),
            step("REFUSED", "www.example.org A", Some(6)),
            step("AXFR", "AXFR voip.example.com", None),
        ];
        let label = format!("ABI {abi}");
        let out = run(&label, &no, &yes, &steps);
        assert_counts(&label, &out);
    }
}

/// `launch=bind,pipe,pipe:standby` with `pipe-regex` (README, "Alongside
/// other backends"): a bind zone beside the pdns-ha zone. The same answers
/// either way; names of the bind zone never reach a coprocess, and a
/// per-client query costs one question.
#[test]
fn beside_a_bind_backend_answers_as_with_consistent_backends_yes() {
    require_pdns!();
    if !bind_backend_available() {
        return;
    }
    let files = TempDir::new("bind");
    let named = write_bind_zone(files.path());
    let regex = r"^(.+\.)?voip\.example\.com$";
    let bind = |o: PdnsOpts| {
        o.with("launch=bind,pipe,pipe:standby")
            .with(&format!("bind-config={}", named.display()))
            .with(&format!("pipe-regex={regex}"))
            .with(&format!("pipe-standby-regex={regex}"))
    };
    let db = db("bind");
    let no = Pdns::start(&db.path, bind(opts(5)));
    let yes = Pdns::start(&db.path, bind(opts(5)).with("consistent-backends=yes"));
    let steps = [
        step("bind: SOA", "example.net SOA", Some(0)),
        step("bind: NS", "example.net NS", Some(0)),
        step(
            "bind: SRV",
            "_sip._udp.example.net SRV +subnet=198.51.100.0/24",
            Some(0),
        ),
        step("bind: A", "www.example.net A", Some(0)),
        step("bind: empty non-terminal", "_udp.example.net A", Some(0)),
        step("bind: NXDOMAIN", "nope.example.net A", Some(0)),
        step("bind: AXFR", "AXFR example.net", Some(0)),
        step("apex SOA", "voip.example.com SOA", Some(1)),
        step("apex NS", "voip.example.com NS", Some(5)),
        step(
            "dynamic SRV, first",
            "_sip._udp.voip.example.com SRV +subnet=198.51.100.0/24",
            Some(11),
        ),
        step(
            "dynamic SRV, another client",
            "_sip._udp.voip.example.com SRV +subnet=192.0.2.0/24",
            Some(1),
        ),
        step(
            "dynamic SRV, a third client",
            "_sip._udp.voip.example.com SRV +subnet=203.0.113.0/24",
            Some(1),
        ),
        step(
            "pool A, first",
            "sip.voip.example.com A +subnet=198.51.100.0/24",
            Some(5),
        ),
        step(
            "pool A, another client",
            "sip.voip.example.com A +subnet=192.0.2.0/24",
            Some(1),
        ),
        step("static SRV", "_sip._tcp.voip.example.com SRV", Some(9)),
        step("empty non-terminal", "_udp.voip.example.com A", Some(1)),
        step("NXDOMAIN", "nope.voip.example.com A", Some(8)),
        step("REFUSED", "www.example.org A", Some(0)),
        step("AXFR", "AXFR voip.example.com", None),
    ];
    let out = run("beside bind", &no, &yes, &steps);
    assert_counts("beside bind", &out);
    // No name of the bind zone was asked of a coprocess.
    for p in [&no, &yes] {
        let leaked: Vec<String> = p
            .questions()
            .into_iter()
            .filter(|q| q.contains("example.net"))
            .collect();
        assert!(leaked.is_empty(), "{leaked:#?}");
    }
}

/// True if PowerDNS can load its bind backend (Debian: pdns-backend-bind).
/// Says so loudly when it cannot (the caller then skips its test), or
/// panics if `PDNS_HA_REQUIRE_PDNS` is set.
fn bind_backend_available() -> bool {
    let server = find_program("pdns_server").expect("pdns_server is installed");
    let out = std::process::Command::new(server)
        .args(["--no-config", "--launch=bind", "--list-modules"])
        .output()
        .expect("run pdns_server --list-modules");
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    // (It lists the modules it loaded, then exits with status 99.)
    if text.lines().any(|l| l.trim() == "bind") {
        return true;
    }
    let msg = "PowerDNS's bind backend is not installed (apt-get install pdns-backend-bind)";
    if std::env::var_os("PDNS_HA_REQUIRE_PDNS").is_some() {
        panic!("{msg}:\n{text}");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    false
}

/// Writes a bind configuration with the zone example.net into `dir`;
/// returns the configuration's path.
fn write_bind_zone(dir: &Path) -> std::path::PathBuf {
    let zone = dir.join("example.net.zone");
    std::fs::write(
        &zone,
        "$TTL 300\n\
         @ IN SOA ns1.example.net. hostmaster.example.net. 1 3600 600 86400 60\n\
         @ IN NS ns1.example.net.\n\
         ns1 IN A 192.0.2.53\n\
         www IN A 192.0.2.54\n\
         _sip._udp IN SRV 0 0 5060 www.example.net.\n",
    )
    .expect("write the bind zone");
    let named = dir.join("named.conf");
    std::fs::write(
        &named,
        format!(
            "zone \"example.net\" {{ type master; file \"{}\"; }};\n",
            zone.display()
        ),
    )
    .expect("write named.conf");
    named
}
