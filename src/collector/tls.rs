//! SIP over TLS for the OPTIONS probe (`sip_probe = "tls:HOST:PORT"`): the
//! client configuration (the trusted CAs), built once per site load and
//! shared by every probe of a node; the handshake, under the probe's own
//! deadline; why a handshake failed, in words (unknown CA, expired, wrong
//! name, not a TLS server); and when the server's certificate expires.
//!
//! Crates, and why:
//! - `rustls` with its `ring` provider: a TLS client without OpenSSL, and
//!   `ring` builds with the C compiler alone (`aws-lc-rs`, rustls' default,
//!   needs cmake). TLS 1.2 is kept on: many SIP servers still stop there.
//! - `rustls-native-certs` for "the system's CAs": it reads what the host
//!   trusts (on Debian `/etc/ssl/certs/ca-certificates.crt`, kept by the
//!   `ca-certificates` package; `SSL_CERT_FILE` overrides), so a CA the
//!   operator adds to the system is trusted without rebuilding pdns-ha,
//!   which a compiled-in list (`webpki-roots`) would not do.
//! - PEM (`sip_probe_ca`) is read by `rustls-pki-types`, which rustls
//!   re-exports.
//! - The certificate's expiry (`notAfter`) is read from the leaf by a small
//!   DER walk ([`not_after`]): the certificate rustls has just verified, so
//!   it is well-formed; `x509-parser` would add a dozen crates for one
//!   field. An expired certificate's `notAfter` comes from rustls' error.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

pub use crate::endpoint::CaFile;
use crate::text::quote;

/// A certificate that expires within this many days is warned about (the
/// collector's log, `status`).
pub const CERT_WARN_DAYS: i64 = 14;

/// Whether a certificate that ends at `not_after` (unix s) expires within
/// [`CERT_WARN_DAYS`] days of `now`, or has expired.
pub fn cert_expiring(not_after: i64, now: i64) -> bool {
    not_after - now < CERT_WARN_DAYS * 86_400
}

/// The TLS side of one node's `tls:` probe: the name the certificate must
/// carry and the client configuration (trusted CAs).
#[derive(Clone)]
pub struct TlsProbe {
    server_name: ServerName<'static>,
    ca: Option<CaFile>,
    /// Err: the CAs could not be loaded; every probe fails with this.
    config: Result<Arc<ClientConfig>, String>,
}

impl TlsProbe {
    /// `server_name` is the node's `sip_probe_server_name`, else its
    /// `host`; `config` from [`client_config`] (shared by the nodes that
    /// trust the same CAs).
    pub fn new(
        server_name: &str,
        ca: Option<&CaFile>,
        config: Result<Arc<ClientConfig>, String>,
    ) -> TlsProbe {
        let name = ServerName::try_from(server_name.to_string());
        let config = match name {
            Ok(_) => config,
            Err(_) => Err(format!(
                "{} is not a name a certificate can carry: give sip_probe_server_name",
                quote(server_name)
            )),
        };
        TlsProbe {
            server_name: name.unwrap_or(ServerName::IpAddress(
                std::net::Ipv4Addr::UNSPECIFIED.into(),
            )),
            ca: ca.cloned(),
            config,
        }
    }

    /// The name checked in the server's certificate.
    pub fn server_name(&self) -> String {
        self.server_name.to_str().into_owned()
    }

    /// Why the probe cannot run, when the CAs could not be loaded.
    pub fn problem(&self) -> Option<&str> {
        self.config.as_ref().err().map(String::as_str)
    }
}

/// Two probes are the same when they check the same name against the same
/// CA file (the loaded configuration is not compared).
impl PartialEq for TlsProbe {
    fn eq(&self, other: &TlsProbe) -> bool {
        self.server_name == other.server_name && self.ca == other.ca
    }
}

impl Eq for TlsProbe {}

impl fmt::Debug for TlsProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsProbe")
            .field("server_name", &self.server_name())
            .field("ca", &self.ca.as_ref().map(CaFile::as_str))
            .field("problem", &self.problem())
            .finish()
    }
}

/// The client configuration that trusts the CAs in `ca`, or the system's.
pub fn client_config(ca: Option<&CaFile>) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca {
        Some(f) => roots_from_file(f)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn roots_from_file(f: &CaFile) -> Result<RootCertStore, String> {
    let name = quote(f.as_str());
    let data =
        std::fs::read(f.path()).map_err(|e| format!("cannot read sip_probe_ca {name}: {e}"))?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&data) {
        let c =
            c.map_err(|e| format!("sip_probe_ca {name} is not a PEM file of certificates: {e}"))?;
        roots.add(c).map_err(|e| {
            format!("sip_probe_ca {name}: a certificate in it is not usable as a CA: {e}")
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sip_probe_ca {name} holds no certificate (PEM blocks -----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "the system has no CA certificates{why}: install ca-certificates, or give sip_probe_ca"
        ));
    }
    Ok(roots)
}

/// A TLS connection whose handshake is done.
pub struct TlsStream {
    conn: ClientConnection,
    tcp: TcpStream,
}

impl TlsStream {
    /// The leaf certificate's `notAfter` (Unix seconds).
    pub fn cert_not_after(&self) -> Option<i64> {
        let leaf = self.conn.peer_certificates()?.first()?;
        not_after(leaf)
    }

    /// The timeout of the socket's reads and writes.
    pub fn set_timeout(&self, d: Duration) -> io::Result<()> {
        self.tcp.set_read_timeout(Some(d))?;
        self.tcp.set_write_timeout(Some(d))
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        rustls::Stream::new(&mut self.conn, &mut self.tcp).read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        rustls::Stream::new(&mut self.conn, &mut self.tcp).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        rustls::Stream::new(&mut self.conn, &mut self.tcp).flush()
    }
}

/// Does the handshake over `tcp` before `deadline`. A TLS failure is an
/// `InvalidData` error holding the `rustls::Error` (see [`describe`]).
pub fn handshake(probe: &TlsProbe, mut tcp: TcpStream, deadline: Instant) -> io::Result<TlsStream> {
    let config = probe
        .config
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))?;
    let mut conn = ClientConnection::new(config.clone(), probe.server_name.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            ));
        }
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))?;
        match conn.complete_io(&mut tcp) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed during the TLS handshake",
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(TlsStream { conn, tcp })
}

/// Why a TLS handshake failed, in words, and the certificate's `notAfter`
/// when the reason is its expiry; `None` if `e` is not a TLS error.
pub fn describe(e: &io::Error) -> Option<(String, Option<i64>)> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(describe_tls(tls))
}

fn describe_tls(e: &rustls::Error) -> (String, Option<i64>) {
    use rustls::Error as E;
    let secs = |t: &rustls::pki_types::UnixTime| i64::try_from(t.as_secs()).ok();
    let text = match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::ExpiredContext { not_after, .. } => {
                let at = secs(not_after);
                return (
                    format!(
                        "certificate expired ({})",
                        at.map_or("-".into(), crate::clock::utc)
                    ),
                    at,
                );
            }
            CertificateError::Expired => "certificate expired".into(),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet (check the clocks)".into()
            }
            CertificateError::NotValidForNameContext { expected, presented } => format!(
                "certificate name mismatch: it is not valid for {} (it names {})",
                expected.to_str(),
                if presented.is_empty() {
                    "no name".into()
                } else {
                    presented
                        .iter()
                        .map(|p| bare_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            CertificateError::NotValidForName => "certificate name mismatch".into(),
            CertificateError::UnknownIssuer => {
                "unknown CA: the certificate is not signed by a trusted CA (sip_probe_ca, or the system's)".into()
            }
            CertificateError::Revoked => "certificate revoked".into(),
            other => format!("bad certificate: {other:?}"),
        },
        E::AlertReceived(a) => format!("the server refused the handshake (TLS alert {a:?})"),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            format!("not a TLS server? ({e})")
        }
        other => other.to_string(),
    };
    (text, None)
}

/// A name as rustls presents it (`DnsName("a.test")`, `IpAddress(…)`),
/// without the wrapper.
fn bare_name(p: &str) -> &str {
    p.split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(p)
}

// ---------------------------------------------------------------------------
// notAfter from the DER of a certificate.

/// One DER element: (tag, content, what follows).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&first, d) = d.split_first()?;
    let (len, d) = if first < 0x80 {
        (usize::from(first), d)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || d.len() < n {
            return None;
        }
        let len = d[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &d[n..])
    };
    (d.len() >= len).then(|| (tag, &d[..len], &d[len..]))
}

/// The `notAfter` of an X.509 certificate (DER), as Unix seconds.
///
/// Certificate = SEQUENCE { tbs SEQUENCE { [0] version OPTIONAL, serial
/// INTEGER, signature SEQUENCE, issuer SEQUENCE, validity SEQUENCE {
/// notBefore, notAfter }, ... }, ... } (RFC 5280, 4.1).
pub fn not_after(cert: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, cert, _) = tlv(cert)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = tlv(cert)? else {
        return None;
    };
    let (tag, _, rest) = tlv(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for want in [0x02, SEQUENCE, SEQUENCE] {
        let (tag, _, rest) = tlv(tbs)?;
        if tag != want {
            return None;
        }
        tbs = rest;
    }
    let (SEQUENCE, validity, _) = tlv(tbs)? else {
        return None;
    };
    let (_, _, rest) = tlv(validity)?;
    let (tag, time, _) = tlv(rest)?;
    der_time(tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950-2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), the forms RFC 5280 allows.
fn der_time(tag: u8, t: &[u8]) -> Option<i64> {
    let digits = t.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |s: &[u8]| s.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = i64::from(num(&digits[..2]));
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (i64::from(num(&digits[..4])), &digits[4..]),
        _ => return None,
    };
    let f = |i: usize| num(&rest[i..i + 2]);
    crate::clock::unix_of(year, f(0), f(2), f(4), f(6), f(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_expiring_within_14_days_or_once_expired() {
        let now = 1_800_000_000;
        assert!(!cert_expiring(now + 14 * 86_400, now));
        assert!(cert_expiring(now + 14 * 86_400 - 1, now));
        assert!(cert_expiring(now, now));
        assert!(cert_expiring(now - 86_400, now));
    }

    /// Made by `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256
    /// -subj /CN=t -days 30`; `openssl x509 -noout -enddate` says
    /// `notAfter=Dec 27 19:29:10 2026 GMT`.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBbDCCAROgAwIBAgIUdcEsWxwPVwdsKfyRqONKSTZHaTAwCgYIKoZIzj0EAwIw
DDEKMAgGA1UEAwwBdDAeFw0yNjExMjcxOTI5MTBaFw0yNjEyMjcxOTI5MTBaMAwx
CjAIBgNVBAMMAXQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASNtBUNdeHjNK9a
7+uyXEQoAIH8mZBrGaGDCPsNL2ahQj7ysk/F9HczQpZJSjMufTb7Nr4uAVyHpCBg
TZxY75Gdo1MwUTAdBgNVHQ4EFgQUQGcONvQRycPLZedJTdD3jgWwF6AwHwYDVR0j
BBgwFoAUQGcONvQRycPLZedJTdD3jgWwF6AwDwYDVR0TAQH/BAUwAwEB/zAKBggq
hkjOPQQDAgNHADBEAiAMoOLB6vkTm2uNkScrZ4FevNbAjeP0FoNvd4Tk7QuMkwIg
TCfPEb/ZUI3rkU6NggTzbc0r71dhibm6bS5jnFGlGIo=
-----END CERTIFICATE-----";

    fn der() -> Vec<u8> {
        CertificateDer::from_pem_slice(CERT.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn not_after_is_read_from_a_real_certificate() {
        let t = not_after(&der()).unwrap();
        assert_eq!(crate::clock::utc(t), "2026-12-27 19:29:10Z");
    }

    #[test]
    fn not_after_refuses_what_is_not_a_certificate() {
        let d = der();
        // Every truncation, and every single-byte corruption of the
        // structure's first bytes: None or a date, never a panic.
        for n in 0..d.len() {
            let _ = not_after(&d[..n]);
        }
        for i in 0..64 {
            for b in [0x00, 0x7f, 0x80, 0x84, 0xff] {
                let mut c = d.clone();
                c[i] = b;
                let _ = not_after(&c);
            }
        }
        assert_eq!(not_after(&d[..d.len() / 2]), None);
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(b"\x30\x84\xff\xff\xff\xff"), None);
        assert_eq!(not_after(&[0x30; 4096]), None);
    }

    #[test]
    fn der_times() {
        assert_eq!(
            der_time(0x17, b"261227192910Z")
                .map(crate::clock::utc)
                .unwrap(),
            "2026-12-27 19:29:10Z"
        );
        assert_eq!(
            der_time(0x17, b"500101000000Z")
                .map(crate::clock::utc)
                .unwrap(),
            "1950-01-01 00:00:00Z"
        );
        assert_eq!(
            der_time(0x18, b"20500101000000Z")
                .map(crate::clock::utc)
                .unwrap(),
            "2050-01-01 00:00:00Z"
        );
        for (tag, bad) in [
            (0x17, &b"261227192910"[..]),
            (0x17, b"2612271929100Z"),
            (0x18, b"261227192910Z"),
            (0x17, b"26122719291aZ"),
            (0x17, b"261327192910Z"),
            (0x04, b"261227192910Z"),
        ] {
            assert_eq!(der_time(tag, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_ca_file_is_read_once_with_clear_errors() {
        let dir = std::env::temp_dir().join(format!("pdns-ha-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = |name: &str, text: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.to_str().unwrap().parse::<CaFile>().unwrap()
        };
        assert!(client_config(Some(&ca("ok.pem", CERT.as_bytes()))).is_ok());
        let missing: CaFile = dir.join("missing.pem").to_str().unwrap().parse().unwrap();
        let e = client_config(Some(&missing)).unwrap_err();
        assert!(
            e.starts_with("cannot read sip_probe_ca") && e.contains("missing.pem"),
            "{e}"
        );
        let e = client_config(Some(&ca("empty.pem", b""))).unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = client_config(Some(&ca(
            "key.pem",
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        )))
        .unwrap_err();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = client_config(Some(&ca(
            "garbage.pem",
            b"-----BEGIN CERTIFICATE-----\n!!!\xff\n-----END CERTIFICATE-----\n",
        )))
        .unwrap_err();
        assert!(e.contains("not a PEM file"), "{e}");
        let e = client_config(Some(&ca(
            "notder.pem",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )))
        .unwrap_err();
        assert!(e.contains("not usable as a CA"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_probe_without_usable_cas_says_why() {
        let name = "sip.example.com";
        let p = TlsProbe::new(name, None, Err("no CA".into()));
        assert_eq!(p.problem(), Some("no CA"));
        assert_eq!(p.server_name(), "sip.example.com");
        assert_eq!(
            TlsProbe::new("::1", None, Err(String::new())).server_name(),
            "::1"
        );
        assert_eq!(p, TlsProbe::new(name, None, Err("other".into())));
        let bad = TlsProbe::new("a b", None, Err("x".into()));
        assert!(
            bad.problem()
                .unwrap()
                .contains("give sip_probe_server_name"),
            "{bad:?}"
        );
    }

    #[test]
    fn handshake_reasons_are_words() {
        use rustls::pki_types::UnixTime;
        let at = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_000));
        let (t, na) = describe_tls(&rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: at,
                not_after: at,
            },
        ));
        assert_eq!(
            (t.as_str(), na),
            (
                "certificate expired (2027-01-15 08:00:00Z)",
                Some(1_800_000_000)
            )
        );
        let (t, _) = describe_tls(&rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("a.test").unwrap(),
                presented: vec!["DnsName(\"b.test\")".into()],
            },
        ));
        assert_eq!(
            t,
            "certificate name mismatch: it is not valid for a.test (it names b.test)"
        );
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("plain.test"), "plain.test");
        let (t, _) = describe_tls(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        assert!(t.starts_with("unknown CA"), "{t}");
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(describe(&io).unwrap().0.starts_with("unknown CA"));
        assert_eq!(describe(&io::Error::other("x")), None);
    }
}
