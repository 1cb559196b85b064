//! The content of static records (`[[record]]` in the site file): the
//! presentation-format check, per type, of what PowerDNS 4.7 will parse.
//!
//! PowerDNS parses the content the coprocess sends each time it builds an
//! answer. Content it cannot parse fails the answer with SERVFAIL, and since
//! PowerDNS asks the coprocess for every type of a name at once, it fails
//! every question for that name: one bad CAA at the apex takes the zone's NS
//! answer down. Some content PowerDNS does parse but serves as something else
//! (`\256` as a zero byte, an odd number of hex digits padded with a zero, a
//! TXT string longer than 255 bytes split in two, a LOC size of 15m as 10m),
//! or as RDATA that resolvers cannot read (a CAA tag with a `-`, a SHA-256
//! SSHFP fingerprint of 33 bytes). [`check`] accepts only the RFC
//! presentation format of each type, which PowerDNS 4.7 parses as written;
//! `apply` refuses anything else and the coprocess checks again what it reads
//! from the database.
//!
//! Fields are separated by spaces (a tab, a newline or any other control
//! character is refused: the content goes on one pipe line). A
//! character-string is quoted (`"..."`), at most 255 bytes, with the escapes
//! `\"`, `\\`, `\X` (X itself) and `\DDD` (three decimal digits, at most 255).
//! Names are written in full (a trailing dot is optional): letters, digits,
//! `-` and `_`, or `.` for the root where the type allows it.
//!
//! Normalised content: the fields joined by one space, each field (quoted
//! text included) exactly as written.
//!
//! Size: all static records of one name together, counted as they go in one
//! answer (RDATA plus 12 bytes each: the owner name compressed to a pointer,
//! type, class, TTL and length), are at most [`MAX_ANSWER_BYTES`] (60,000).
//! A DNS message over TCP is at most 65,535 bytes; the rest is kept for the
//! header, the question (a name of up to 255 bytes), the EDNS record and, at
//! an apex, the SOA and NS records. PowerDNS 4.7 does not send an answer that
//! does not fit: the client gets no record at all. Over UDP an answer larger
//! than the client's EDNS buffer (1,232 bytes is common) comes back truncated
//! and the resolver asks again over TCP, which works, only slower.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::dnsname;
use crate::text::excerpt;

/// Record types a static `[[record]]` may have; each is checked by [`check`].
pub const STATIC_TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "LOC", "MX", "NAPTR", "NS", "PTR", "RP", "SPF",
    "SRV", "SSHFP", "TLSA", "TXT", "URI",
];

/// The most bytes the static records of one name may take in one answer
/// (each record's RDATA plus [`RR_OVERHEAD`]). See the module documentation.
pub const MAX_ANSWER_BYTES: usize = 60_000;

/// Bytes of a record in an answer besides its RDATA: the owner name
/// compressed to a pointer (2), type (2), class (2), TTL (4), length (2).
pub const RR_OVERHEAD: usize = 12;

/// Checked record content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rdata {
    /// Normalised: fields joined by one space, each as written.
    pub content: String,
    /// Length of the RDATA on the wire (names uncompressed).
    pub rdata_len: usize,
}

impl Rdata {
    /// Bytes the record takes in an answer.
    pub fn answer_bytes(&self) -> usize {
        self.rdata_len + RR_OVERHEAD
    }
}

/// Checks the content of a static record of type `rtype` (upper case) as
/// PowerDNS 4.7 parses it, and returns it normalised with its RDATA length.
/// The error says what is wrong and which form is expected.
pub fn check(rtype: &str, content: &str) -> Result<Rdata, String> {
    let Some(form) = form(rtype) else {
        return Err(format!(
            "type {} is not supported for static records: the supported types are {} \
             (each one's content is checked as PowerDNS parses it)",
            excerpt(rtype),
            STATIC_TYPES.join(", ")
        ));
    };
    let content = content.trim();
    if content.is_empty() {
        return Err(format!("content is empty; {form}"));
    }
    if content.chars().any(|c| c.is_control()) {
        return Err("content contains a tab, newline or other control character".into());
    }
    let fields = split(content).map_err(|e| format!("{e}; {form}"))?;
    let rdata_len = rdata_len(rtype, &fields).map_err(|e| format!("{e}; {form}"))?;
    let rd = Rdata {
        content: fields.iter().map(|f| f.raw).collect::<Vec<_>>().join(" "),
        rdata_len,
    };
    if rd.answer_bytes() > MAX_ANSWER_BYTES {
        return Err(format!(
            "the record takes {} bytes in an answer, more than the {MAX_ANSWER_BYTES} \
             allowed for all records of a name (an answer must fit in one DNS message)",
            rd.answer_bytes()
        ));
    }
    Ok(rd)
}

/// The expected form of each supported type, with an example.
fn form(rtype: &str) -> Option<&'static str> {
    Some(match rtype {
        "A" => "A content must be an IPv4 address, e.g. 192.0.2.10",
        "AAAA" => "AAAA content must be an IPv6 address, e.g. 2001:db8::10",
        "CAA" => {
            "CAA content must be 'FLAGS TAG \"VALUE\"' (RFC 8659), e.g. 0 issue \"letsencrypt.org\""
        }
        "CNAME" => "CNAME content must be one domain name, e.g. sip.example.com.",
        "DS" => {
            "DS content must be 'KEYTAG ALGORITHM DIGESTTYPE DIGEST' with the digest in hex \
             (RFC 4034), e.g. 60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118"
        }
        "HINFO" => "HINFO content must be '\"CPU\" \"OS\"' (RFC 1035), e.g. \"RFC8482\" \"\"",
        "LOC" => {
            "LOC content must be 'D [M [S]] N|S D [M [S]] E|W ALT[m] [SIZE[m] [HP[m] [VP[m]]]]' \
             (RFC 1876), e.g. 52 22 23.000 N 4 53 32.000 E -2.00m 1m 10000m 10m"
        }
        "MX" => "MX content must be 'PREFERENCE HOST' (RFC 1035), e.g. 10 mx1.example.net.",
        "NAPTR" => {
            "NAPTR content must be 'ORDER PREFERENCE \"FLAGS\" \"SERVICES\" \"REGEXP\" REPLACEMENT' \
             (RFC 3403), e.g. 10 50 \"s\" \"SIP+D2U\" \"\" _sip._udp.example.com."
        }
        "NS" => "NS content must be one domain name, e.g. ns1.example.net.",
        "PTR" => "PTR content must be one domain name, e.g. sip.example.com.",
        "RP" => {
            "RP content must be 'MAILBOX TXTNAME', two domain names or '.' (RFC 1183), \
             e.g. hostmaster.example.com. ."
        }
        "SPF" => "SPF content must be one or more quoted strings (RFC 7208), e.g. \"v=spf1 -all\"",
        "SRV" => {
            "SRV content must be 'PRIORITY WEIGHT PORT TARGET' (RFC 2782), \
             e.g. 10 60 5060 sip1.example.com."
        }
        "SSHFP" => {
            "SSHFP content must be 'ALGORITHM FPTYPE FINGERPRINT' with the fingerprint in hex \
             (RFC 4255), e.g. 1 1 DD465C09CFA51FB45020CC83316FFF21B9EC74AC"
        }
        "TLSA" => {
            "TLSA content must be 'USAGE SELECTOR MATCHINGTYPE DATA' with the data in hex \
             (RFC 6698), e.g. 3 1 1 followed by 64 hex digits (a SHA-256 digest)"
        }
        "TXT" => {
            "TXT content must be one or more quoted strings of at most 255 bytes each \
             (RFC 1035), e.g. \"v=spf1 -all\" or \"first part\" \"second part\""
        }
        "URI" => {
            "URI content must be 'PRIORITY WEIGHT \"TARGET\"' (RFC 7553), \
             e.g. 10 1 \"sip:help@example.com\""
        }
        _ => return None,
    })
}

/// One field of the content, as written (`raw`), and for a quoted string
/// its bytes after unescaping.
#[derive(Debug)]
struct Field<'a> {
    raw: &'a str,
    quoted: Option<Vec<u8>>,
}

/// Splits content (no control characters, trimmed) into fields separated by
/// spaces; quoted strings may hold spaces and escapes.
fn split(s: &str) -> Result<Vec<Field<'_>>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        if b[i] != b'"' {
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            out.push(Field {
                raw: &s[start..i],
                quoted: None,
            });
            continue;
        }
        let unterminated = || {
            format!(
                "the quoted string {} has no closing quote",
                excerpt(&s[start..])
            )
        };
        let mut text = Vec::new();
        i += 1;
        loop {
            match b.get(i) {
                None => return Err(unterminated()),
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    i += 1;
                    match b.get(i) {
                        None => return Err(unterminated()),
                        Some(d) if d.is_ascii_digit() => {
                            let ddd = b.get(i..i + 3).filter(|x| x.iter().all(u8::is_ascii_digit));
                            let v = ddd
                                .map(|x| x.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0')));
                            match v {
                                Some(v) if v <= 255 => text.push(v as u8),
                                _ => {
                                    return Err(format!(
                                        "bad escape in {}: a backslash before a digit must be \
                                         \\DDD, three digits from \\000 to \\255",
                                        excerpt(&s[start..])
                                    ));
                                }
                            }
                            i += 3;
                        }
                        Some(_) => {
                            // `\X` stands for X (a whole character).
                            let c = s[i..].chars().next().expect("a character");
                            text.extend_from_slice(&s.as_bytes()[i..i + c.len_utf8()]);
                            i += c.len_utf8();
                        }
                    }
                }
                Some(&c) => {
                    text.push(c);
                    i += 1;
                }
            }
        }
        if i < b.len() && b[i] != b' ' {
            return Err(format!(
                "the quoted string {} is followed by '{}' without a space (write a quote \
                 inside a string as \\\")",
                excerpt(&s[start..i]),
                excerpt(&s[i..])
            ));
        }
        out.push(Field {
            raw: &s[start..i],
            quoted: Some(text),
        });
    }
    Ok(out)
}

/// Checks the fields for `rtype` and returns the RDATA length.
fn rdata_len(rtype: &str, f: &[Field]) -> Result<usize, String> {
    match rtype {
        "A" | "AAAA" => {
            let ok = match f {
                [one] if rtype == "A" => one.raw.parse::<Ipv4Addr>().is_ok(),
                [one] => one.raw.parse::<Ipv6Addr>().is_ok(),
                _ => false,
            };
            if ok {
                Ok(if rtype == "A" { 4 } else { 16 })
            } else {
                let all: Vec<&str> = f.iter().map(|x| x.raw).collect();
                let family = if rtype == "A" { "IPv4" } else { "IPv6" };
                Err(format!(
                    "'{}' is not an {family} address",
                    excerpt(&all.join(" "))
                ))
            }
        }
        "CNAME" | "NS" | "PTR" => {
            fields(f, 1)?;
            name(&f[0], "the name", false)
        }
        "MX" => {
            fields(f, 2)?;
            number(&f[0], "the preference", 65535)?;
            Ok(2 + name(&f[1], "the host", true)?)
        }
        "SRV" => {
            fields(f, 4)?;
            number(&f[0], "the priority", 65535)?;
            number(&f[1], "the weight", 65535)?;
            number(&f[2], "the port", 65535)?;
            Ok(6 + name(&f[3], "the target", true)?)
        }
        "TXT" | "SPF" => {
            if f.is_empty() {
                return Err("no string".into());
            }
            f.iter()
                .map(|x| Ok(1 + string(x, "each string", Some(255))?.len()))
                .sum()
        }
        "HINFO" => {
            fields(f, 2)?;
            Ok(2 + string(&f[0], "the CPU", Some(255))?.len()
                + string(&f[1], "the OS", Some(255))?.len())
        }
        "CAA" => {
            fields(f, 3)?;
            number(&f[0], "the flags", 255)?;
            let tag = word(&f[1], "the tag")?;
            if tag.is_empty() || tag.len() > 15 || !tag.bytes().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!(
                    "the tag '{}' must be 1 to 15 letters and digits (issue, issuewild, iodef, ...)",
                    excerpt(tag)
                ));
            }
            // The value is the rest of the RDATA: not limited to 255 bytes.
            Ok(2 + tag.len() + string(&f[2], "the value", None)?.len())
        }
        "URI" => {
            fields(f, 3)?;
            number(&f[0], "the priority", 65535)?;
            number(&f[1], "the weight", 65535)?;
            let target = string(&f[2], "the target", None)?;
            let scheme = target.iter().position(|&c| c == b':').filter(|&p| {
                p > 0
                    && target[0].is_ascii_alphabetic()
                    && target[..p]
                        .iter()
                        .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
            });
            if scheme.is_none() {
                return Err(format!(
                    "the target {} is not a URI (it starts with a scheme, like sip:)",
                    excerpt(f[2].raw)
                ));
            }
            Ok(4 + target.len())
        }
        "RP" => {
            fields(f, 2)?;
            Ok(name(&f[0], "the mailbox", true)? + name(&f[1], "the TXT name", true)?)
        }
        "NAPTR" => {
            fields(f, 6)?;
            number(&f[0], "the order", 65535)?;
            number(&f[1], "the preference", 65535)?;
            let flags = string(&f[2], "the flags", Some(255))?;
            if !flags.iter().all(u8::is_ascii_alphanumeric) {
                return Err(format!(
                    "the flags {} must be letters and digits only (\"s\", \"a\", \"u\", \"p\", or \"\")",
                    excerpt(f[2].raw)
                ));
            }
            let services = string(&f[3], "the services", Some(255))?;
            let regexp = string(&f[4], "the regexp", Some(255))?;
            Ok(4 + 3
                + flags.len()
                + services.len()
                + regexp.len()
                + name(&f[5], "the replacement", true)?)
        }
        "DS" => {
            at_least(f, 4)?;
            number(&f[0], "the key tag", 65535)?;
            number(&f[1], "the algorithm", 255)?;
            let dtype = number(&f[2], "the digest type", 255)?;
            let n = hex(&f[3..], "the digest")?;
            let want = match dtype {
                1 => Some((20, "digest type 1 (SHA-1)")),
                2 => Some((32, "digest type 2 (SHA-256)")),
                3 => Some((32, "digest type 3 (GOST R 34.11-94)")),
                4 => Some((48, "digest type 4 (SHA-384)")),
                _ => None,
            };
            length(n, want, "the digest")?;
            Ok(4 + n)
        }
        "SSHFP" => {
            at_least(f, 3)?;
            number(&f[0], "the algorithm", 255)?;
            let fptype = number(&f[1], "the fingerprint type", 255)?;
            let n = hex(&f[2..], "the fingerprint")?;
            let want = match fptype {
                1 => Some((20, "fingerprint type 1 (SHA-1)")),
                2 => Some((32, "fingerprint type 2 (SHA-256)")),
                _ => None,
            };
            length(n, want, "the fingerprint")?;
            Ok(2 + n)
        }
        "TLSA" => {
            at_least(f, 4)?;
            number(&f[0], "the certificate usage", 255)?;
            number(&f[1], "the selector", 255)?;
            let mtype = number(&f[2], "the matching type", 255)?;
            let n = hex(&f[3..], "the data")?;
            let want = match mtype {
                1 => Some((32, "matching type 1 (SHA-256)")),
                2 => Some((64, "matching type 2 (SHA-512)")),
                _ => None,
            };
            length(n, want, "the data")?;
            Ok(3 + n)
        }
        "LOC" => loc(f).map(|()| 16),
        _ => Err(format!("type {} is not supported", excerpt(rtype))),
    }
}

fn fields(f: &[Field], n: usize) -> Result<(), String> {
    if f.len() == n {
        Ok(())
    } else {
        Err(format!("{} fields instead of {n}", f.len()))
    }
}

fn at_least(f: &[Field], n: usize) -> Result<(), String> {
    if f.len() >= n {
        Ok(())
    } else {
        Err(format!("{} fields instead of {n}", f.len()))
    }
}

/// A field that is not a quoted string.
fn word<'a>(f: &Field<'a>, what: &str) -> Result<&'a str, String> {
    match f.quoted {
        None => Ok(f.raw),
        Some(_) => Err(format!(
            "{what} is written without quotes, not {}",
            excerpt(f.raw)
        )),
    }
}

/// A decimal number from 0 to `max`.
fn number(f: &Field, what: &str, max: u32) -> Result<u32, String> {
    let w = word(f, what)?;
    w.parse::<u32>()
        .ok()
        .filter(|&v| v <= max && w.bytes().all(|c| c.is_ascii_digit()))
        .ok_or_else(|| format!("{what} '{}' is not a number from 0 to {max}", excerpt(w)))
}

/// A domain name, or the root `.` if `root_ok`; returns its wire length.
fn name(f: &Field, what: &str, root_ok: bool) -> Result<usize, String> {
    let w = word(f, what)?;
    if w == "." {
        return if root_ok {
            Ok(1)
        } else {
            Err(format!("{what} cannot be the root '.'"))
        };
    }
    dnsname::normalize(w)
        .map(|n| n.len() + 2)
        .map_err(|e| format!("{what}: {e}"))
}

/// A quoted character-string of at most `max` bytes; returns its bytes.
fn string<'a>(f: &'a Field, what: &str, max: Option<usize>) -> Result<&'a [u8], String> {
    let Some(text) = &f.quoted else {
        return Err(format!(
            "{what} must be a quoted string, \"...\", not {}",
            excerpt(f.raw)
        ));
    };
    if let Some(max) = max
        && text.len() > max
    {
        return Err(format!(
            "{what} must be at most {max} bytes, {} is {} (split a long text into several \
             quoted strings)",
            excerpt(f.raw),
            text.len()
        ));
    }
    Ok(text)
}

/// Hexadecimal digits, possibly in several fields; returns the byte count.
fn hex(f: &[Field], what: &str) -> Result<usize, String> {
    let mut digits = 0;
    for x in f {
        let w = word(x, what)?;
        if !w.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "{what} must be hexadecimal digits, not '{}'",
                excerpt(w)
            ));
        }
        digits += w.len();
    }
    if digits % 2 == 1 {
        return Err(format!("{what} has an odd number of hex digits ({digits})"));
    }
    Ok(digits / 2)
}

/// Checks a decoded length against the one the RFC fixes, if it does.
fn length(n: usize, want: Option<(usize, &str)>, what: &str) -> Result<(), String> {
    match want {
        Some((w, of)) if n != w => Err(format!(
            "{what} of {of} is {w} bytes ({} hex digits), not {n}",
            w * 2
        )),
        None if n == 0 => Err(format!("{what} is empty")),
        _ => Ok(()),
    }
}

/// LOC, RFC 1876 section 3:
/// `d1 [m1 [s1]] N|S d2 [m2 [s2]] E|W alt[m] [siz[m] [hp[m] [vp[m]]]]`.
fn loc(f: &[Field]) -> Result<(), String> {
    let words = f
        .iter()
        .map(|x| word(x, "every field"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut it = words.into_iter().peekable();
    coordinate(&mut it, "the latitude", 90, ["N", "S"])?;
    coordinate(&mut it, "the longitude", 180, ["E", "W"])?;
    let alt = it.next().ok_or("the altitude is missing")?;
    let (negative, a) = match alt.strip_prefix('-') {
        Some(a) => (true, a),
        None => (false, alt),
    };
    let cm = centimetres(a, "the altitude")?;
    if (negative && cm > 10_000_000) || (!negative && cm > 4_284_967_295) {
        return Err(format!(
            "the altitude '{}' is outside -100000.00m to 42849672.95m",
            excerpt(alt)
        ));
    }
    for what in [
        "the size",
        "the horizontal precision",
        "the vertical precision",
    ] {
        let Some(w) = it.next() else { break };
        let cm = centimetres(w, what)?;
        // One digit times a power of ten, in centimetres. PowerDNS 4.7 reads
        // these into 32 bits: above 42949672.95m it serves another value.
        let mut m = cm;
        while m >= 10 && m % 10 == 0 {
            m /= 10;
        }
        if m > 9 {
            return Err(format!(
                "{what} '{}' cannot be stored: it must be one digit times a power of ten \
                 (e.g. 1m, 0.5m, 20m, 10000m)",
                excerpt(w)
            ));
        }
        if cm > 4_000_000_000 {
            return Err(format!(
                "{what} '{}' is more than 40000000m, the most PowerDNS 4.7 reads correctly",
                excerpt(w)
            ));
        }
    }
    if let Some(extra) = it.next() {
        return Err(format!(
            "'{}' after the vertical precision is one field too many",
            excerpt(extra)
        ));
    }
    Ok(())
}

/// `deg [min [sec]] HEMISPHERE`, within `max` degrees.
fn coordinate<'a>(
    it: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    what: &str,
    max: u32,
    hemispheres: [&str; 2],
) -> Result<(), String> {
    // Minutes and seconds are numbers; anything else ends the coordinate.
    let is_number = |w: &&str| w.starts_with(|c: char| c.is_ascii_digit());
    let int = |w: Option<&str>, part: &str, max: u32| -> Result<u32, String> {
        let w = w.ok_or_else(|| format!("{what} is missing"))?;
        w.parse::<u32>()
            .ok()
            .filter(|&v| v <= max && w.bytes().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| {
                format!(
                    "{what}: the {part} '{}' is not a number from 0 to {max}",
                    excerpt(w)
                )
            })
    };
    let deg = int(it.next(), "degrees", max)?;
    let mut rest = false;
    if it.peek().is_some_and(is_number) {
        rest |= int(it.next(), "minutes", 59)? > 0;
        if let Some(s) = it.next_if(is_number) {
            let (i, frac) = s.split_once('.').unwrap_or((s, ""));
            let secs = int(Some(i), "seconds", 59)?;
            if (s.contains('.') && frac.is_empty())
                || frac.len() > 3
                || !frac.bytes().all(|c| c.is_ascii_digit())
            {
                return Err(format!(
                    "{what}: the seconds '{}' must be a number from 0 to 59.999",
                    excerpt(s)
                ));
            }
            rest |= secs > 0 || frac.bytes().any(|c| c != b'0');
        }
    }
    match it.next() {
        Some(h) if hemispheres.contains(&h) => {}
        h => {
            return Err(format!(
                "{what}: expected {} or {} after the degrees, minutes and seconds, not '{}'",
                hemispheres[0],
                hemispheres[1],
                excerpt(h.unwrap_or(""))
            ));
        }
    }
    if deg == max && rest {
        return Err(format!("{what} is more than {max} degrees"));
    }
    Ok(())
}

/// `metres[.cc][m]` (at most two decimals) in centimetres.
fn centimetres(w: &str, what: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{what} '{}' must be metres with at most two decimals, e.g. 10m or 0.50m",
            excerpt(w)
        )
    };
    let n = w.strip_suffix('m').unwrap_or(w);
    let (int, frac) = n.split_once('.').unwrap_or((n, ""));
    if int.is_empty()
        || int.len() > 8
        || frac.len() > 2
        || (n.contains('.') && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let int: u64 = int.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    Ok(int * 100 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn ok(rtype: &str, content: &str) -> Rdata {
        check(rtype, content).unwrap_or_else(|e| panic!("{rtype} {content}: {e}"))
    }

    /// Accepted, normalised to `want`, with `len` bytes of RDATA.
    #[track_caller]
    fn good(rtype: &str, content: &str, want: &str, len: usize) {
        let r = ok(rtype, content);
        assert_eq!(r.content, want, "{rtype} {content}");
        assert_eq!(r.rdata_len, len, "RDATA length of {rtype} {content}");
        // Normalised content is a fixed point (the coprocess checks it again).
        assert_eq!(ok(rtype, &r.content), r, "{rtype} {want}");
    }

    /// Refused with a reason containing `why` and the expected form.
    #[track_caller]
    fn bad(rtype: &str, content: &str, why: &str) {
        match check(rtype, content) {
            Ok(r) => panic!("{rtype} {content:?} accepted as {:?}", r.content),
            Err(e) => {
                assert!(e.contains(why), "{rtype} {content:?}: want '{why}' in: {e}");
                if !e.contains("control character") && !e.contains("not supported") {
                    assert!(
                        e.contains(&format!("{rtype} content must be")),
                        "the error shows the expected form: {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_cases_of_the_issue_are_refused() {
        bad("CAA", "garbage here", "2 fields instead of 3");
        bad(
            "CAA",
            "garbage here \"x\"",
            "the flags 'garbage' is not a number",
        );
        bad("TXT", r#""abc\""#, "has no closing quote");
        bad("TXT", r#""a"b""#, "is followed by 'b\"' without a space");
        bad(
            "NAPTR",
            "10 50 s SIP+D2U \"\" _sip._udp.voip.test.",
            "the flags must be a quoted string",
        );
        bad("DS", "1", "1 fields instead of 4");
        bad("SSHFP", "x", "1 fields instead of 3");
        bad("LOC", "1 N 2 E", "the altitude is missing");
        bad(
            "URI",
            "10 1 https://example.com/",
            "the target must be a quoted string",
        );
        bad("TLSA", "3 1 1", "3 fields instead of 4");
        bad("RP", "hostmaster.example.com.", "1 fields instead of 2");
        // 70 KB of TXT: in one string, and in strings of 255 bytes.
        let long = format!("\"{}\"", "y".repeat(70_000));
        bad("TXT", &long, "must be at most 255 bytes");
        let many = vec![format!("\"{}\"", "y".repeat(255)); 275].join(" ");
        let e = check("TXT", &many).unwrap_err();
        assert!(e.contains("70412 bytes in an answer"), "{e}");
    }

    #[test]
    fn unsupported_types_and_control_characters() {
        for t in ["SOA", "DNAME", "TYPE65534", "NSEC", "SVCB", "a", ""] {
            bad(t, "x", "is not supported for static records");
        }
        let e = check("SOA", "x").unwrap_err();
        assert!(e.contains("A, AAAA, CAA"), "{e}");
        bad("TXT", "\"a\tb\"", "control character");
        bad("TXT", "\"a\"\n\"b\"", "control character");
        bad("A", "192.0.2.1\u{7f}", "control character");
        bad("TXT", "", "content is empty");
        bad("TXT", "   ", "content is empty");
    }

    #[test]
    fn addresses() {
        good("A", " 192.0.2.10 ", "192.0.2.10", 4);
        good("AAAA", "2001:db8::10", "2001:db8::10", 16);
        good("AAAA", "::ffff:192.0.2.1", "::ffff:192.0.2.1", 16);
        bad("A", "192.0.2.300", "not an IPv4 address");
        bad("A", "010.0.0.1", "not an IPv4 address");
        bad(
            "A",
            "192.0.2.1 junk",
            "'192.0.2.1 junk' is not an IPv4 address",
        );
        bad("A", "2001:db8::1", "not an IPv4 address");
        bad("AAAA", "192.0.2.1", "not an IPv6 address");
        bad("AAAA", "2001:db8::1%eth0", "not an IPv6 address");
    }

    #[test]
    fn names() {
        good("CNAME", "Sip.Example.COM.", "Sip.Example.COM.", 17);
        good("NS", "ns3.example.net", "ns3.example.net", 17);
        good(
            "PTR",
            "_sip._udp.example.com.",
            "_sip._udp.example.com.",
            23,
        );
        bad("CNAME", ".", "cannot be the root");
        bad(
            "NS",
            "ns1.example.net ns2.example.net",
            "2 fields instead of 1",
        );
        bad("PTR", "a..b", "empty label");
        bad("CNAME", "\"sip.example.com\"", "without quotes");
        bad("NS", "ns*.example.net", "letters, digits");
        bad(
            "CNAME",
            &format!("{}.com", "a".repeat(64)),
            "longer than 63",
        );
        good("MX", "10   mx1.example.net.", "10 mx1.example.net.", 2 + 17);
        good("MX", "0 .", "0 .", 3); // RFC 7505 null MX
        bad("MX", "mx1.example.net", "1 fields instead of 2");
        bad(
            "MX",
            "65536 mx1.example.net.",
            "the preference '65536' is not a number",
        );
        bad("MX", "-1 mx1.example.net.", "not a number");
        bad("MX", "+1 mx1.example.net.", "not a number");
        good(
            "SRV",
            "0 5 5060 sip1.example.com.",
            "0 5 5060 sip1.example.com.",
            6 + 18,
        );
        good("SRV", "0 0 0 .", "0 0 0 .", 7); // RFC 2782: no service
        bad("SRV", "0 5 5060", "3 fields instead of 4");
        bad("SRV", "0 5 70000 sip1.example.com.", "the port '70000'");
        good(
            "RP",
            "hostmaster.example.com. .",
            "hostmaster.example.com. .",
            24 + 1,
        );
        good("RP", ". .", ". .", 2);
        bad("RP", "hostmaster@example.com .", "the mailbox");
    }

    #[test]
    fn character_strings() {
        good("TXT", r#""v=spf1 -all""#, r#""v=spf1 -all""#, 12);
        // Inner white space is kept; between strings it becomes one space.
        good("TXT", r#""a  b""#, r#""a  b""#, 5);
        good("TXT", r#" "a"    "b" "#, r#""a" "b""#, 4);
        good("TXT", r#""""#, r#""""#, 1);
        // Escapes: \" \\ \X and \DDD are one byte each.
        good("TXT", r#""say \"hi\"""#, r#""say \"hi\"""#, 1 + 8);
        good("TXT", r#""a\\b""#, r#""a\\b""#, 4);
        good("TXT", r#""\065\066\255\000""#, r#""\065\066\255\000""#, 5);
        good("TXT", r#""\x\;""#, r#""\x\;""#, 3);
        good("TXT", "\"é\"", "\"é\"", 3);
        good(
            "SPF",
            r#""v=spf1 " "ip4:192.0.2.0/24 -all""#,
            r#""v=spf1 " "ip4:192.0.2.0/24 -all""#,
            8 + 22,
        );
        let s255 = format!("\"{}\"", "k".repeat(255));
        good(
            "TXT",
            &format!("{s255} {s255}"),
            &format!("{s255} {s255}"),
            512,
        );
        good(
            "TXT",
            &format!("\"{}\\\"\"", "k".repeat(254)),
            &format!("\"{}\\\"\"", "k".repeat(254)),
            256,
        );
        bad(
            "TXT",
            &format!("\"{}\"", "k".repeat(256)),
            "at most 255 bytes",
        );
        bad(
            "TXT",
            &format!("\"{}\"", "é".repeat(128)),
            "at most 255 bytes",
        );
        bad("TXT", "abc", "must be a quoted string");
        bad("TXT", r#""a" b"#, "must be a quoted string");
        bad("TXT", r#""a""b""#, "without a space");
        bad("TXT", r#""abc"#, "has no closing quote");
        bad("TXT", r#""abc\"#, "has no closing quote");
        bad("TXT", r#""\256""#, "three digits from \\000 to \\255");
        bad("TXT", r#""\1""#, "\\DDD");
        bad("TXT", r#""\12x""#, "\\DDD");
        bad("SPF", "v=spf1", "must be a quoted string");
        good(
            "HINFO",
            r#""INTEL-386" "Unix""#,
            r#""INTEL-386" "Unix""#,
            15,
        );
        good("HINFO", r#""RFC8482" """#, r#""RFC8482" """#, 9);
        bad("HINFO", r#""INTEL-386""#, "1 fields instead of 2");
        bad("HINFO", r#""a" "b" "c""#, "3 fields instead of 2");
        bad("HINFO", "INTEL Unix", "the CPU must be a quoted string");
    }

    #[test]
    fn caa_and_uri() {
        good(
            "CAA",
            r#"0 issue "letsencrypt.org""#,
            r#"0 issue "letsencrypt.org""#,
            2 + 5 + 15,
        );
        good(
            "CAA",
            r#"128 issue "ca.example.net; account=230123""#,
            r#"128 issue "ca.example.net; account=230123""#,
            2 + 5 + 30,
        );
        good(
            "CAA",
            r#"0 iodef "mailto:security@example.com""#,
            r#"0 iodef "mailto:security@example.com""#,
            2 + 5 + 27,
        );
        good("CAA", r#"0 issue ";""#, r#"0 issue ";""#, 8);
        good("CAA", r#"0 issuewild """#, r#"0 issuewild """#, 11);
        // The value is the rest of the RDATA: longer than 255 is fine.
        let v = "v".repeat(300);
        good(
            "CAA",
            &format!("0 issue \"{v}\""),
            &format!("0 issue \"{v}\""),
            307,
        );
        bad(
            "CAA",
            "0 issue letsencrypt.org",
            "the value must be a quoted string",
        );
        bad("CAA", r#"0 issue "a" "b""#, "4 fields instead of 3");
        bad("CAA", r#"256 issue "x""#, "the flags '256'");
        bad(
            "CAA",
            r#"0 is-sue "x""#,
            "the tag 'is-sue' must be 1 to 15 letters and digits",
        );
        bad("CAA", r#"0 abcdefghijklmnop "x""#, "1 to 15");
        bad(
            "CAA",
            r#"0 "issue" "x""#,
            "the tag is written without quotes",
        );
        good(
            "URI",
            r#"10 1 "sip:help@example.com""#,
            r#"10 1 "sip:help@example.com""#,
            4 + 20,
        );
        good(
            "URI",
            r#"65535 65535 "https://www.example.com/a?b=c""#,
            r#"65535 65535 "https://www.example.com/a?b=c""#,
            4 + 29,
        );
        let u = format!("https://example.com/{}", "p".repeat(300));
        good(
            "URI",
            &format!("1 1 \"{u}\""),
            &format!("1 1 \"{u}\""),
            4 + u.len(),
        );
        bad("URI", r#"10 1 """#, "is not a URI");
        bad("URI", r#"10 1 "www.example.com""#, "is not a URI");
        bad("URI", r#"10 1 "1http://x""#, "is not a URI");
        bad("URI", r#"70000 1 "sip:a@b""#, "the priority '70000'");
        bad("URI", r#"10 "sip:a@b""#, "2 fields instead of 3");
    }

    #[test]
    fn naptr() {
        good(
            "NAPTR",
            r#"10 50 "s" "SIP+D2U" "" _sip._udp.voip.example.com."#,
            r#"10 50 "s" "SIP+D2U" "" _sip._udp.voip.example.com."#,
            4 + 2 + 8 + 1 + 28,
        );
        good(
            "NAPTR",
            r#"100  10  "u"  "E2U+sip"  "!^\\+1(.*)$!sip:\\1@example.com!"  ."#,
            r#"100 10 "u" "E2U+sip" "!^\\+1(.*)$!sip:\\1@example.com!" ."#,
            4 + 2 + 8 + 31 + 1,
        );
        good(
            "NAPTR",
            r#"10 50 "" "" "" next.example.com."#,
            r#"10 50 "" "" "" next.example.com."#,
            4 + 3 + 18,
        );
        bad(
            "NAPTR",
            r#"10 50 "s" "SIP+D2U" """#,
            "5 fields instead of 6",
        );
        bad(
            "NAPTR",
            r#"10 50 "s" "SIP+D2U" "" _sip._udp.voip.test. extra"#,
            "7 fields instead of 6",
        );
        bad(
            "NAPTR",
            r#"10 50 "s!" "SIP+D2U" "" ."#,
            "letters and digits only",
        );
        bad(
            "NAPTR",
            r#"10 50 "s" "SIP+D2U" "" "x.example.""#,
            "the replacement is written without quotes",
        );
        bad(
            "NAPTR",
            r#"70000 50 "s" "SIP+D2U" "" ."#,
            "the order '70000'",
        );
    }

    #[test]
    fn hex_types() {
        let sha1 = "2BB183AF5F22588179A53B0A98631FAD1A292118";
        let sha256 = "d2abde240d7cd3ee6b4b28c54df034b97983a1d16e8a410e4561cb106618e971";
        good(
            "DS",
            &format!("60485 5 1 {sha1}"),
            &format!("60485 5 1 {sha1}"),
            24,
        );
        // White space is allowed inside the digest (RFC 4034).
        good(
            "DS",
            "60485 5 1 2BB183AF5F22588179A53B0A  98631FAD1A292118",
            "60485 5 1 2BB183AF5F22588179A53B0A 98631FAD1A292118",
            24,
        );
        good(
            "DS",
            &format!("2371 13 2 {sha256}"),
            &format!("2371 13 2 {sha256}"),
            36,
        );
        good("DS", "1 8 9 abcd", "1 8 9 abcd", 6);
        bad(
            "DS",
            &format!("60485 5 1 {}", &sha1[..38]),
            "SHA-1) is 20 bytes (40 hex digits), not 19",
        );
        bad(
            "DS",
            &format!("60485 5 1 {sha1}1"),
            "odd number of hex digits (41)",
        );
        bad("DS", &format!("60485 5 2 {sha1}"), "SHA-256) is 32 bytes");
        bad("DS", "60485 5 1 zz", "must be hexadecimal digits, not 'zz'");
        bad("DS", "60485 5 1 2B:B1", "hexadecimal");
        bad("DS", "60485 5 9 -", "hexadecimal");
        bad("DS", "70000 5 1 ab", "the key tag '70000'");
        bad("DS", "1 300 1 ab", "the algorithm '300'");
        good(
            "SSHFP",
            "1 1 dd465c09cfa51fb45020cc83316fff21b9ec74ac",
            "1 1 dd465c09cfa51fb45020cc83316fff21b9ec74ac",
            22,
        );
        good(
            "SSHFP",
            &format!("4 2 {sha256}"),
            &format!("4 2 {sha256}"),
            34,
        );
        good("SSHFP", "4 9 ab", "4 9 ab", 3);
        bad(
            "SSHFP",
            &format!("4 2 {sha256}ab"),
            "SHA-256) is 32 bytes (64 hex digits), not 33",
        );
        bad("SSHFP", "1 1", "2 fields instead of 3");
        bad("SSHFP", "1 1 xyz", "hexadecimal");
        good(
            "TLSA",
            &format!("3 1 1 {sha256}"),
            &format!("3 1 1 {sha256}"),
            35,
        );
        good("TLSA", "3 0 0 308201 0a", "3 0 0 308201 0a", 7);
        good(
            "TLSA",
            &format!("2 1 2 {sha256}{sha256}"),
            &format!("2 1 2 {sha256}{sha256}"),
            67,
        );
        bad(
            "TLSA",
            "3 1 1 d2ab",
            "SHA-256) is 32 bytes (64 hex digits), not 2",
        );
        bad("TLSA", "3 1 256 d2ab", "the matching type '256'");
        bad(
            "TLSA",
            "3 1 0 \"d2ab\"",
            "the data is written without quotes",
        );
    }

    #[test]
    fn loc() {
        for c in [
            "51 59 00.000 N 5 55 00.000 E 4.00m 1.00m 10000.00m 10.00m",
            "42 21 54 N 71 06 18 W -24m 30m",
            "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m",
            "32 7 19 S 116 2 25 E 10m",
            "90 S 180 W 42849672.95m 40000000m 0.01m 0.5m",
            "0 N 0 E -100000m",
            "42 21 54.123 N 71 6 18.5 W 0.5",
            "42 N 71 W 21474836.48m",
        ] {
            good("LOC", c, c, 16);
        }
        good("LOC", "42  N   71 W  0m", "42 N 71 W 0m", 16);
        bad("LOC", "garbage", "the latitude: the degrees 'garbage'");
        bad("LOC", "1 N 2 E", "the altitude is missing");
        bad(
            "LOC",
            "91 N 0 E 0m",
            "the degrees '91' is not a number from 0 to 90",
        );
        bad(
            "LOC",
            "90 1 N 0 E 0m",
            "the latitude is more than 90 degrees",
        );
        bad(
            "LOC",
            "0 N 180 0 0.001 W 0m",
            "the longitude is more than 180 degrees",
        );
        bad("LOC", "0 N 181 E 0m", "the degrees '181'");
        bad("LOC", "42 60 N 71 W 0m", "the minutes '60'");
        bad("LOC", "42 21 60 N 71 W 0m", "the seconds '60'");
        bad("LOC", "42 21 54.1234 N 71 W 0m", "the seconds '54.1234'");
        bad("LOC", "42 21 54. N 71 W 0m", "the seconds '54.'");
        bad("LOC", "42 E 71 N 0m", "expected N or S");
        bad("LOC", "42 n 71 w 0m", "expected N or S");
        bad(
            "LOC",
            "42 N 71 W -100000.01m",
            "outside -100000.00m to 42849672.95m",
        );
        bad("LOC", "42 N 71 W 42849672.96m", "outside");
        bad("LOC", "42 N 71 W 1.234m", "at most two decimals");
        bad("LOC", "42 N 71 W 1.m", "at most two decimals");
        bad("LOC", "42 N 71 W +1m", "at most two decimals");
        bad("LOC", "42 N 71 W 0m 15m", "the size '15m' cannot be stored");
        bad(
            "LOC",
            "42 N 71 W 0m 1m 1.5m",
            "the horizontal precision '1.5m'",
        );
        bad("LOC", "42 N 71 W 0m 1m 1m 90000000m", "more than 40000000m");
        bad("LOC", "42 N 71 W 0m 1m 1m 1m 1m", "one field too many");
        bad(
            "LOC",
            "42 N 71 W \"0m\"",
            "every field is written without quotes",
        );
    }

    #[test]
    fn size_bound() {
        let s = format!("\"{}\"", "z".repeat(255));
        // 234 strings: 234 * 256 + 12 = 59916 bytes in an answer.
        let fits = vec![s.as_str(); 234].join(" ");
        assert_eq!(ok("TXT", &fits).answer_bytes(), 59_916);
        let too_big = vec![s.as_str(); 235].join(" ");
        let e = check("TXT", &too_big).unwrap_err();
        assert!(
            e.contains("60172 bytes in an answer, more than the 60000"),
            "{e}"
        );
        let e = check("CAA", &format!("0 issue \"{}\"", "v".repeat(60_000))).unwrap_err();
        assert!(e.contains("bytes in an answer"), "{e}");
    }

    #[test]
    fn error_messages_are_short() {
        let e = check("TXT", &format!("\"{}", "q".repeat(10_000))).unwrap_err();
        assert!(e.len() < 400, "{e}");
        assert!(e.contains("\"qqq"), "{e}");
    }
}
