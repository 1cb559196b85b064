//! DNS messages on the wire, as far as the load tools need them: a query
//! with an EDNS Client Subnet option (RFC 7871) for an IPv4 /24 (and, if
//! asked, the DNSSEC OK bit), and a response's header, answer records (SRV,
//! A, TXT decoded; names followed through compression pointers) and ECS
//! option. Used by the soak
//! (`tests/soak.rs`) and the benchmark load generator (`examples/dnsload.rs`).
#![allow(dead_code)]

use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_SRV: u16 = 33;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_RRSIG: u16 = 46;
pub const ECS_OPTION: u16 = 8;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;

/// Appends `name` in wire format (no compression).
pub fn push_name(out: &mut Vec<u8>, name: &str) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        assert!(label.len() < 64, "label too long: {label}");
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// A query for `qname`/`qtype` with an OPT record (UDP size 1232) holding an
/// ECS option for `net`/24, source prefix 24, scope 0; DNSSEC OK not set.
pub fn build_query(id: u16, qname: &str, qtype: u16, net: Ipv4Addr) -> Vec<u8> {
    build_query_do(id, qname, qtype, net, false)
}

/// [`build_query`], with the DNSSEC OK bit of the OPT record set if
/// `dnssec_ok` (RFC 3225: the server then adds RRSIGs and NSEC3 records).
pub fn build_query_do(id: u16, qname: &str, qtype: u16, net: Ipv4Addr, dnssec_ok: bool) -> Vec<u8> {
    let mut q = Vec::with_capacity(64 + qname.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0]); // QR=0 opcode QUERY, RD=0: to an authoritative server
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]); // QD=1 AN=0 NS=0 AR=1
    push_name(&mut q, qname);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    // OPT: root name, type, UDP size, extended rcode/version/flags, rdata.
    q.push(0);
    q.extend_from_slice(&TYPE_OPT.to_be_bytes());
    q.extend_from_slice(&1232u16.to_be_bytes());
    // Extended rcode, version, flags (DO is the top bit).
    q.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
    q.extend_from_slice(&11u16.to_be_bytes()); // rdlen: 4 + 7
    q.extend_from_slice(&ECS_OPTION.to_be_bytes());
    q.extend_from_slice(&7u16.to_be_bytes()); // family(2) source(1) scope(1) address(3)
    q.extend_from_slice(&1u16.to_be_bytes()); // IPv4
    q.push(24);
    q.push(0);
    q.extend_from_slice(&net.octets()[..3]);
    q
}

/// The ECS option of a response.
#[derive(Clone, Debug, PartialEq)]
pub struct Ecs {
    pub family: u16,
    pub source: u8,
    pub scope: u8,
    pub address: Vec<u8>,
}

/// The data of an answer record.
#[derive(Clone, Debug, PartialEq)]
pub enum Rdata {
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        /// Lower case, without the final dot.
        target: String,
    },
    A(Ipv4Addr),
    /// The character-strings, joined.
    Txt(String),
    Other(u16),
}

/// A response's header, answer section and ECS option.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub id: u16,
    pub rcode: u8,
    pub truncated: bool,
    pub answers: Vec<Rdata>,
    pub ecs: Option<Ecs>,
}

impl Response {
    pub fn srv_count(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| matches!(a, Rdata::Srv { .. }))
            .count()
    }

    /// The RRSIG records of the answer section.
    pub fn rrsig_count(&self) -> usize {
        self.answers
            .iter()
            .filter(|a| **a == Rdata::Other(TYPE_RRSIG))
            .count()
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    /// Reads a name at the current position, following compression
    /// pointers (at most 64 of them: a loop is refused).
    fn name(&mut self) -> Option<String> {
        let mut out = String::new();
        let mut pos = self.pos;
        let mut end = None;
        for _ in 0..64 {
            let len = *self.buf.get(pos)?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    self.pos = end.unwrap_or(pos + 1);
                    return Some(out);
                }
                0x00 => {
                    let label = self.buf.get(pos + 1..pos + 1 + len as usize)?;
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
                    pos += 1 + len as usize;
                }
                0xc0 => {
                    let low = *self.buf.get(pos + 1)?;
                    end.get_or_insert(pos + 2);
                    pos = (usize::from(len & 0x3f) << 8) | usize::from(low);
                }
                _ => return None,
            }
        }
        None
    }
}

/// Parses a response; None if it is not a well-formed DNS response.
pub fn parse_response(buf: &[u8]) -> Option<Response> {
    let mut r = Reader { buf, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    if flags & 0x8000 == 0 {
        return None; // not a response
    }
    let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
    for _ in 0..counts[0] {
        r.name()?;
        r.take(4)?;
    }
    let mut answers = Vec::new();
    let mut ecs = None;
    for (section, &count) in counts.iter().enumerate().skip(1) {
        for _ in 0..count {
            r.name()?;
            let rtype = r.u16()?;
            r.take(6)?; // class, ttl
            let rdlen = r.u16()? as usize;
            let start = r.pos;
            let rdata = r.take(rdlen)?;
            if section == 1 {
                answers.push(match rtype {
                    TYPE_SRV => {
                        let mut d = Reader { buf, pos: start };
                        let (priority, weight, port) = (d.u16()?, d.u16()?, d.u16()?);
                        Rdata::Srv {
                            priority,
                            weight,
                            port,
                            target: d.name()?,
                        }
                    }
                    TYPE_A if rdlen == 4 => {
                        Rdata::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]))
                    }
                    TYPE_TXT => Rdata::Txt(txt_strings(rdata)?),
                    t => Rdata::Other(t),
                });
            }
            if section == 3 && rtype == TYPE_OPT {
                ecs = parse_ecs(rdata)?;
            }
        }
    }
    Some(Response {
        id,
        rcode: (flags & 0x000f) as u8,
        truncated: flags & 0x0200 != 0,
        answers,
        ecs,
    })
}

/// The character-strings of a TXT record, joined.
fn txt_strings(rdata: &[u8]) -> Option<String> {
    let mut r = Reader { buf: rdata, pos: 0 };
    let mut out = String::new();
    while r.pos < rdata.len() {
        let len = r.u8()? as usize;
        out.push_str(&String::from_utf8_lossy(r.take(len)?));
    }
    Some(out)
}

/// The ECS option among an OPT record's options, if any.
fn parse_ecs(rdata: &[u8]) -> Option<Option<Ecs>> {
    let mut r = Reader { buf: rdata, pos: 0 };
    while r.pos < rdata.len() {
        let code = r.u16()?;
        let len = r.u16()? as usize;
        let data = r.take(len)?;
        if code == ECS_OPTION {
            if len < 4 {
                return None;
            }
            return Some(Some(Ecs {
                family: u16::from_be_bytes([data[0], data[1]]),
                source: data[2],
                scope: data[3],
                address: data[4..].to_vec(),
            }));
        }
    }
    Some(None)
}
