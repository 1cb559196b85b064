//! The PowerDNS pipe protocol, ABI 1 to 5: parsing the lines PowerDNS sends
//! and writing the lines it accepts. Pure; no I/O beyond a byte buffer.
//!
//! Every field written is checked: a tab, newline or other control character
//! (or an empty field, which PowerDNS would collapse) never reaches the pipe.

use std::net::{IpAddr, Ipv4Addr};

use crate::dnsname;
use crate::net::Prefix;

/// The longest line read, in bytes (without its newline).
///
/// PowerDNS's longest line is a `Q` line of ABI 3 to 5 (ABI 5 is ABI 3's
/// line): `Q`, the qname, `IN`, the qtype, the zone id, the remote and local
/// addresses and the ECS subnet, with 7 tabs. A name is at most 255 octets
/// in wire form, so at most 250 octets in 4 labels and 3 dots; PowerDNS
/// writes every octet outside `!`..`~` as `\DDD` (4 bytes), so the qname
/// takes at most 4 × 250 + 3 = 1003 bytes. Then a qtype (`OPENPGPKEY`, 10),
/// a zone id (an int, 11), two IPv6 addresses (45 each, such as
/// `ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`) and a subnet (45 + 4):
/// 1 + 1003 + 2 + 10 + 11 + 45 + 45 + 49 + 7 = 1173 bytes. `AXFR` lines are
/// shorter, and `CMD` lines are typed by an operator. 4096 leaves more than
/// three times that (IPv6 scope ids, future fields) while keeping the buffer
/// one page.
pub const MAX_LINE: usize = 4096;

/// One line from PowerDNS.
#[derive(Clone, Debug, PartialEq)]
pub enum Request<'a> {
    Helo(u8),
    Query(Query<'a>),
    /// `AXFR id` (ABI 1-3) or `AXFR id zone` (ABI 4+).
    Axfr {
        id: i64,
        zone: Option<&'a str>,
    },
    /// `CMD text` (ABI 5).
    Cmd(&'a str),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query<'a> {
    /// As asked (case kept).
    pub qname: &'a str,
    pub qclass: &'a str,
    pub qtype: &'a str,
    pub id: i64,
    /// The resolver's address and our local address, as sent (only used in
    /// logs: the client is in `client`).
    pub remote: &'a str,
    pub local: Option<&'a str>,
    /// The client's network: the ECS subnet (ABI 3+, `remote/32` without
    /// ECS), or the remote address (ABI 1-2).
    pub client: Prefix,
}

/// A line refused: not a question PowerDNS can send. It gets `LOG` + `FAIL`,
/// except a SOA question refused only for its name (see [`Malformed::soa`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Malformed {
    pub why: String,
    /// The line is a well-formed SOA question whose name cannot be a DNS
    /// name (longer than 255 octets, or a label over 63): no zone holds it,
    /// so it is answered `LOG` + `END` (no SOA here), since a SOA question
    /// never gets `FAIL`. PowerDNS never sends one.
    pub soa: bool,
}

impl From<String> for Malformed {
    fn from(why: String) -> Self {
        Malformed { why, soa: false }
    }
}

impl From<&str> for Malformed {
    fn from(why: &str) -> Self {
        why.to_string().into()
    }
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// Parses one line (without its newline). `abi` is the version from HELO
/// (0 before it).
pub fn parse(line: &str, abi: u8) -> Result<Request<'_>, Malformed> {
    let mut f = tab_fields(line);
    let verb = f.next().unwrap_or("");
    match verb {
        "HELO" => {
            let v = f.next().ok_or("HELO without an ABI version")?;
            let v: u8 = v
                .parse()
                .map_err(|_| format!("HELO with a bad ABI version '{v}'"))?;
            Ok(Request::Helo(v))
        }
        "Q" => {
            if abi == 0 {
                return Err("Q before HELO".into());
            }
            // No allocation: at most 7 fields, one more means too many.
            let mut fields = [""; 8];
            let mut n = 0;
            for x in f {
                if n == fields.len() {
                    break;
                }
                fields[n] = x;
                n += 1;
            }
            let want = match abi {
                1 => 5,
                2 => 6,
                _ => 7,
            };
            if n != want {
                return Err(format!("Q with {n} fields, ABI {abi} sends {want}").into());
            }
            let qname = fields[0];
            let id: i64 = fields[3]
                .parse()
                .map_err(|_| format!("Q with a bad id '{}'", fields[3]))?;
            // Parse only the address the answer depends on.
            let client = if abi >= 3 {
                parse_subnet(fields[6]).map_err(|e| format!("Q with a bad edns-subnet: {e}"))?
            } else {
                let remote: IpAddr = fields[4]
                    .parse()
                    .map_err(|_| format!("Q with a bad remote address '{}'", fields[4]))?;
                Prefix::host(remote)
            };
            let local = (abi >= 2).then_some(fields[5]);
            if fields[2].is_empty() || !printable(fields[2].as_bytes()) {
                return Err("Q with an empty qtype".into());
            }
            // Last, once the line is known to be a well-formed question: a
            // name no zone can hold (a SOA question for it is not failed).
            let bad_name = if qname.is_empty() || !printable(qname.as_bytes()) {
                Err("an empty or unprintable qname".to_string())
            } else {
                dnsname::check_wire_length(qname)
            };
            if let Err(why) = bad_name {
                return Err(Malformed {
                    why: format!("Q with {why}"),
                    soa: fields[2].eq_ignore_ascii_case("SOA"),
                });
            }
            Ok(Request::Query(Query {
                qname,
                qclass: fields[1],
                qtype: fields[2],
                id,
                remote: fields[4],
                local,
                client,
            }))
        }
        "AXFR" => {
            let id = f.next().ok_or("AXFR without a zone id")?;
            let id: i64 = id
                .parse()
                .map_err(|_| format!("AXFR with a bad id '{id}'"))?;
            let zone = f.next().filter(|z| !z.is_empty());
            Ok(Request::Axfr { id, zone })
        }
        "CMD" => {
            if abi < 5 {
                return Err(format!("CMD needs pipe ABI 5, this is {abi}").into());
            }
            Ok(Request::Cmd(f.next().unwrap_or("")))
        }
        "" => Err("empty line".into()),
        other => Err(format!(
            "unknown verb '{}'",
            other
                .escape_debug()
                .to_string()
                .chars()
                .take(20)
                .collect::<String>()
        )
        .into()),
    }
}

/// The edns-subnet field: `a.b.c.d/n` (what PowerDNS sends for IPv4) read
/// directly, anything else by [`Prefix`]'s parser, which reads those the
/// same way.
fn parse_subnet(s: &str) -> Result<Prefix, String> {
    match ipv4_prefix(s.as_bytes()) {
        Some(p) => Ok(p),
        None => s.parse(),
    }
}

/// `a.b.c.d/n` as the standard parsers read it (octets of one to three
/// digits, no leading zero, at most 255; a length of one or two digits, at
/// most 32), else None.
fn ipv4_prefix(b: &[u8]) -> Option<Prefix> {
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        let start = i;
        let mut v = 0u32;
        while i - start < 3 && b.get(i).is_some_and(u8::is_ascii_digit) {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || v > 255 || (digits > 1 && b[start] == b'0') {
            return None;
        }
        *octet = v as u8;
        if b.get(i) != Some(if n < 3 { &b'.' } else { &b'/' }) {
            return None;
        }
        i += 1;
    }
    let len = &b[i..];
    if len.is_empty() || len.len() > 2 || !len.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let len = len.iter().fold(0, |a, &d| a * 10 + (d - b'0'));
    (len <= 32).then(|| Prefix::new(IpAddr::V4(Ipv4Addr::from(octets)), len))
}

/// Splits on tabs (a byte scan: cheaper than `str::split` for short fields).
fn tab_fields(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.bytes().position(|c| c == b'\t') {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// True if every byte is printable (no control characters, no DEL).
pub fn printable(b: &[u8]) -> bool {
    // Eight bytes at a time: "has a byte < 0x20" and "has a byte == 0x7f"
    // are exact bit tricks (bytes >= 0x80, UTF-8, are never flagged).
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let y = x ^ (ONES * 0x7f);
        let del = y.wrapping_sub(ONES) & !y & HIGH;
        if below_space | del != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&c| c >= 0x20 && c != 0x7f)
}

/// One record to write. `content` excludes the MX/SRV priority, which goes
/// in `prio`.
#[derive(Clone, Copy, Debug)]
pub struct Data<'a> {
    pub scope: u8,
    /// The `auth` field (ABI 3 and later; earlier ABIs have none, and
    /// PowerDNS takes every record as authoritative): false for a
    /// delegation's NS records and glue, which PowerDNS then neither answers
    /// as authoritative nor signs.
    pub auth: bool,
    pub qname: &'a str,
    pub qtype: &'a str,
    pub ttl: u32,
    pub id: i64,
    pub prio: Option<u16>,
}

/// Writes a DATA line for `abi` into `out`, with the content produced by
/// `content`. Returns false (and writes nothing) if any field would be empty
/// or hold a control character.
pub fn write_data(
    out: &mut Vec<u8>,
    abi: u8,
    d: &Data,
    content: impl FnOnce(&mut Vec<u8>),
) -> bool {
    let start = out.len();
    write_head(out, abi, d) && finish_data(out, start, d.prio, content)
}

/// The DATA lines of records that differ only in their priority and
/// content (`d.prio` is not used): the same lines as [`write_data`] for each
/// item, with the fields before the priority written and checked once and
/// copied. Returns how many lines were written.
pub fn write_data_lines<T>(
    out: &mut Vec<u8>,
    abi: u8,
    d: &Data,
    items: &[T],
    prio: impl Fn(&T) -> Option<u16>,
    content: impl Fn(&T, &mut Vec<u8>),
) -> usize {
    // The fields before the priority of the last line written.
    let mut head: Option<std::ops::Range<usize>> = None;
    let mut written = 0;
    for item in items {
        let start = out.len();
        match &head {
            Some(h) => out.extend_from_within(h.clone()),
            None if write_head(out, abi, d) => {}
            None => return 0,
        }
        let fields = start..out.len();
        if finish_data(out, start, prio(item), |o| content(item, o)) {
            head = Some(fields);
            written += 1;
        }
    }
    written
}

/// The fields of a DATA line before its priority. Returns false (and
/// writes nothing) if the name or type is empty or holds a control
/// character; the other fields are numbers.
fn write_head(out: &mut Vec<u8>, abi: u8, d: &Data) -> bool {
    if d.qname.is_empty()
        || !printable(d.qname.as_bytes())
        || d.qtype.is_empty()
        || !printable(d.qtype.as_bytes())
    {
        return false;
    }
    out.extend_from_slice(b"DATA\t");
    if abi >= 3 {
        push_uint(out, u64::from(d.scope));
        out.extend_from_slice(if d.auth { b"\t1\t" } else { b"\t0\t" });
    }
    out.extend_from_slice(d.qname.as_bytes());
    out.extend_from_slice(b"\tIN\t");
    out.extend_from_slice(d.qtype.as_bytes());
    out.push(b'\t');
    push_uint(out, u64::from(d.ttl));
    out.push(b'\t');
    if d.id < 0 {
        out.push(b'-');
    }
    push_uint(out, d.id.unsigned_abs());
    out.push(b'\t');
    true
}

/// The priority and content of the DATA line started at `start`, and its
/// end. Returns false, and takes the line back out, if the content is
/// empty or holds a control character.
fn finish_data(
    out: &mut Vec<u8>,
    start: usize,
    prio: Option<u16>,
    content: impl FnOnce(&mut Vec<u8>),
) -> bool {
    if let Some(p) = prio {
        push_uint(out, u64::from(p));
        out.push(b'\t');
    }
    let content_start = out.len();
    content(out);
    let ok = out.len() > content_start && printable(&out[content_start..]);
    if ok {
        out.push(b'\n');
    } else {
        out.truncate(start);
    }
    ok
}

/// Appends a number in decimal (the hot path avoids `fmt`).
pub fn push_uint(out: &mut Vec<u8>, mut n: u64) {
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

pub fn write_end(out: &mut Vec<u8>) {
    out.extend_from_slice(b"END\n");
}

pub fn write_fail(out: &mut Vec<u8>) {
    out.extend_from_slice(b"FAIL\n");
}

/// A `LOG` line; the message is cleaned of control characters.
pub fn write_log(out: &mut Vec<u8>, msg: &str) {
    out.extend_from_slice(b"LOG\t");
    out.extend(
        msg.bytes()
            .map(|b| if b < 0x20 || b == 0x7f { b' ' } else { b }),
    );
    out.push(b'\n');
}

/// A free-form line of a CMD answer; control characters are replaced, and a
/// line that would read as the end marker is indented.
pub fn write_cmd_line(out: &mut Vec<u8>, line: &str) {
    if line == "END" || line == "FAIL" {
        out.push(b' ');
    }
    out.extend(
        line.bytes()
            .map(|b| if b < 0x20 || b == 0x7f { b' ' } else { b }),
    );
    out.push(b'\n');
}

/// True if `line` has the shape of a SOA question (`Q`, a name, a class,
/// `SOA`, ...), whatever its bytes: such a question never gets `FAIL`.
pub fn is_soa_question(line: &[u8]) -> bool {
    let mut f = line.split(|&b| b == b'\t');
    f.next() == Some(b"Q") && f.nth(2).is_some_and(|t| t.eq_ignore_ascii_case(b"SOA"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_abi() {
        let q1 = parse("Q\twww.Example.com\tIN\tANY\t-1\t192.0.2.1", 1).unwrap();
        let Request::Query(q) = q1 else { panic!() };
        assert_eq!((q.qname, q.qtype, q.id), ("www.Example.com", "ANY", -1));
        assert_eq!(q.local, None);
        assert_eq!(q.client.to_string(), "192.0.2.1/32");

        let Request::Query(q) = parse("Q\ta.b\tIN\tSOA\t3\t192.0.2.1\t198.51.100.1", 2).unwrap()
        else {
            panic!()
        };
        assert_eq!(q.local, Some("198.51.100.1"));
        assert_eq!(q.client.to_string(), "192.0.2.1/32");

        for abi in 3..=5 {
            let Request::Query(q) = parse(
                "Q\t_sip._udp.x\tIN\tANY\t0\t192.0.2.1\t0.0.0.0\t24.64.3.0/24",
                abi,
            )
            .unwrap() else {
                panic!()
            };
            assert_eq!(q.client.to_string(), "24.64.3.0/24");
            let Request::Query(q) =
                parse("Q\tx\tIN\tANY\t0\t::1\t::1\t2001:db8:1234::/48", abi).unwrap()
            else {
                panic!()
            };
            assert_eq!(q.client.len, 48);
        }
        assert_eq!(parse("HELO\t5", 0), Ok(Request::Helo(5)));
        assert_eq!(parse("AXFR\t7", 3), Ok(Request::Axfr { id: 7, zone: None }));
        assert_eq!(
            parse("AXFR\t7\texample.com", 4),
            Ok(Request::Axfr {
                id: 7,
                zone: Some("example.com")
            })
        );
        assert_eq!(parse("CMD\tstatus", 5), Ok(Request::Cmd("status")));
    }

    #[test]
    fn rejects_malformed_lines() {
        for (line, abi) in [
            ("Q\tx\tIN\tANY\t0\t192.0.2.1", 3),          // too few for ABI 3
            ("Q\tx\tIN\tANY\t0\t192.0.2.1\t0.0.0.0", 1), // too many for ABI 1
            ("Q\tx\tIN\tANY\tzero\t192.0.2.1", 1),       // bad id
            ("Q\tx\tIN\tANY\t0\tnot-an-ip", 1),          // bad remote
            ("Q\tx\tIN\tANY\t0\t1.2.3.4\t0.0.0.0\t1.2.3.0/99", 3), // bad subnet
            ("Q\tx\tIN\tANY\t0\t1.2.3.4", 0),            // before HELO
            ("CMD\tstatus", 4),
            ("PING", 5),
            ("", 5),
            ("HELO\tfive", 0),
            ("AXFR\tx", 5),
        ] {
            assert!(parse(line, abi).is_err(), "{line:?} abi {abi}");
        }
    }

    #[test]
    fn refuses_names_longer_than_dns_names_and_never_fails_soa_for_it() {
        let q = |name: &str, qtype: &str| {
            format!("Q\t{name}\tIN\t{qtype}\t-1\t0.0.0.0\t0.0.0.0\t0.0.0.0/0")
        };
        let l = |n: usize| "a".repeat(n);
        // 255 octets in wire form, written plainly or with \DDD escapes.
        let max = [l(63), l(63), l(63), l(61)].join(".");
        let esc = ["\\097".repeat(63), l(63), l(63), "\\100".repeat(61)].join(".");
        for name in [max.as_str(), esc.as_str(), "x", "."] {
            assert!(parse(&q(name, "ANY"), 5).is_ok(), "{name}");
        }
        for (name, why) in [
            (format!("{max}a"), "Q with a name longer than 255 octets"),
            (
                format!("{esc}\\001"),
                "Q with a name longer than 255 octets",
            ),
            (l(64), "Q with a label longer than 63 octets"),
            ("\\255".repeat(64), "Q with a label longer than 63 octets"),
            (l(1 << 20), "Q with a label longer than 63 octets"),
        ] {
            let e = parse(&q(&name, "ANY"), 5).unwrap_err();
            assert_eq!((e.why.as_str(), e.soa), (why, false));
            let e = parse(&q(&name, "soa"), 5).unwrap_err();
            assert_eq!((e.why.as_str(), e.soa), (why, true));
        }
        // Any other fault of a SOA line makes it no question: FAIL.
        let bad_id = q(&l(64), "SOA").replace("\t-1\t", "\tx\t");
        assert!(!parse(&bad_id, 5).unwrap_err().soa);
    }

    fn data(abi: u8, prio: Option<u16>, content: &str) -> String {
        let mut out = Vec::new();
        let d = Data {
            scope: 24,
            auth: true,
            qname: "_sip._UDP.example.com",
            qtype: "SRV",
            ttl: 30,
            id: 1,
            prio,
        };
        write_data(&mut out, abi, &d, |o| {
            o.extend_from_slice(content.as_bytes())
        });
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_data_lines_per_abi() {
        assert_eq!(
            data(1, Some(10), "60 5060 sip1.example.com"),
            "DATA\t_sip._UDP.example.com\tIN\tSRV\t30\t1\t10\t60 5060 sip1.example.com\n"
        );
        assert_eq!(
            data(3, Some(0), "60 5060 sip1.example.com"),
            "DATA\t24\t1\t_sip._UDP.example.com\tIN\tSRV\t30\t1\t0\t60 5060 sip1.example.com\n"
        );
        // Not authoritative (a delegation's NS): 0 where the ABI has the
        // field, nothing before ABI 3.
        let unauth = |abi| {
            let mut out = Vec::new();
            let d = Data {
                scope: 0,
                auth: false,
                qname: "child.example.com",
                qtype: "NS",
                ttl: 60,
                id: 1,
                prio: None,
            };
            write_data(&mut out, abi, &d, |o| {
                o.extend_from_slice(b"ns.example.net.")
            });
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            unauth(5),
            "DATA\t0\t0\tchild.example.com\tIN\tNS\t60\t1\tns.example.net.\n"
        );
        assert_eq!(
            unauth(2),
            "DATA\tchild.example.com\tIN\tNS\t60\t1\tns.example.net.\n"
        );
    }

    #[test]
    fn printable_finds_every_control_byte_at_every_position() {
        let base = b"0123456789abcdefghij \xc3\xa9~".to_vec();
        assert!(printable(&base));
        for pos in 0..base.len() {
            for bad in (0u8..0x20).chain([0x7f]) {
                let mut b = base.clone();
                b[pos] = bad;
                assert!(!printable(&b), "byte {bad:#x} at {pos}");
            }
        }
    }

    #[test]
    fn never_writes_control_characters_or_empty_content() {
        assert_eq!(data(5, None, "evil\nDATA\tinjected"), "");
        assert_eq!(data(5, None, "tab\there"), "");
        assert_eq!(data(5, None, ""), "");
        let mut out = Vec::new();
        let d = Data {
            scope: 0,
            auth: true,
            qname: "a\u{1}b",
            qtype: "A",
            ttl: 1,
            id: 1,
            prio: None,
        };
        assert!(!write_data(&mut out, 5, &d, |o| o.extend_from_slice(b"192.0.2.1")));
        assert!(out.is_empty());
        let mut out = Vec::new();
        write_log(&mut out, "bad\tline\nhere");
        assert_eq!(out, b"LOG\tbad line here\n");
        let mut out = Vec::new();
        write_cmd_line(&mut out, "END");
        assert_eq!(out, b" END\n");
    }

    #[test]
    fn a_soa_question_is_known_by_its_shape() {
        assert!(is_soa_question(
            b"Q\t\xff\xfe.example\tIN\tSOA\t-1\t0.0.0.0"
        ));
        assert!(is_soa_question(b"Q\tx\tIN\tsoa"));
        assert!(!is_soa_question(b"Q\tx\tIN\tANY\t-1"));
        assert!(!is_soa_question(b"Q\tx\tSOA"));
        assert!(!is_soa_question(b"AXFR\t1\tSOA\tSOA"));
    }

    #[test]
    fn an_ipv4_subnet_is_read_directly_as_the_general_parser_reads_it() {
        for ok in [
            "10.1.2.0/24",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "198.51.100.7/05",
        ] {
            assert_eq!(ipv4_prefix(ok.as_bytes()), ok.parse().ok(), "{ok}");
            assert!(ipv4_prefix(ok.as_bytes()).is_some(), "{ok}");
        }
        // Left to the general parser (which refuses most of them).
        for other in [
            "10.1.2.0",
            "01.1.2.0/24",
            "10.1.2.256/24",
            "1000.1.2.0/24",
            "10.1.2/24",
            "10.1.2.0/33",
            "10.1.2.0/",
            "10.1.2.0/+5",
            "10.1.2.0/024",
            "10.1.2.0/24 ",
            "2001:db8::/48",
            "::ffff:10.1.2.0/120",
            "",
            "10..2.0/24",
            "10.1.2.0.1/24",
        ] {
            assert_eq!(ipv4_prefix(other.as_bytes()), None, "{other}");
            assert_eq!(parse_subnet(other), other.parse::<Prefix>(), "{other}");
        }
        // Every string of these pieces: read directly only as the general
        // parser reads it.
        let parts = [
            "0", "00", "1", "01", "9", "10", "99", "255", "256", "999", "1000", "",
        ];
        let lens = [
            "", "/", "/0", "/8", "/24", "/32", "/33", "/09", "/+1", "/100",
        ];
        for a in parts {
            for b in parts {
                for l in lens {
                    let s = format!("{a}.1.{b}.7{l}");
                    if let Some(p) = ipv4_prefix(s.as_bytes()) {
                        assert_eq!(Ok(p), s.parse::<Prefix>(), "{s}");
                    }
                    assert_eq!(parse_subnet(&s), s.parse::<Prefix>(), "{s}");
                }
            }
        }
    }

    #[test]
    fn lines_of_several_records_are_the_lines_of_each() {
        let d = Data {
            scope: 24,
            auth: true,
            qname: "_sip._udp.voip.test",
            qtype: "SRV",
            ttl: 60,
            id: -1,
            prio: None,
        };
        // A content with a tab (refused) first, in the middle and last.
        let items: [(u16, &str); 5] = [
            (0, "bad\tcontent"),
            (0, "100 5060 a.voip.test"),
            (1, "bad\tcontent"),
            (2, "100 5060 b.voip.test"),
            (3, ""),
        ];
        for abi in [1, 3, 5] {
            let (mut each, mut lines) = (b"before\n".to_vec(), b"before\n".to_vec());
            let mut n = 0;
            for (p, c) in items {
                let one = Data { prio: Some(p), ..d };
                n += usize::from(write_data(&mut each, abi, &one, |o| {
                    o.extend_from_slice(c.as_bytes())
                }));
            }
            let written = write_data_lines(
                &mut lines,
                abi,
                &d,
                &items,
                |&(p, _)| Some(p),
                |&(_, c), o| o.extend_from_slice(c.as_bytes()),
            );
            assert_eq!((written, n), (2, 2));
            assert_eq!(
                String::from_utf8(lines).unwrap(),
                String::from_utf8(each).unwrap()
            );
        }
        // A name that cannot be written: no line at all.
        let bad = Data { qname: "a\tb", ..d };
        let mut out = Vec::new();
        assert_eq!(
            write_data_lines(&mut out, 5, &bad, &items, |_| None, |_, o| o.push(b'x')),
            0
        );
        assert!(out.is_empty());
    }
}
