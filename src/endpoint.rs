//! What a node of the site file tells the collector, as typed values: the
//! SIP OPTIONS probe target (`sip_probe`) and, for a TLS probe, the name its
//! certificate must carry (`sip_probe_server_name`) and the private CA file
//! (`sip_probe_ca`), the FreeSWITCH event-socket
//! address (`esl`), its password (`esl_password`, or the file that holds it)
//! and the sofia profiles read for registrations. One parser per value
//! (`FromStr`): `site::parse` parses each once, the collector uses the typed
//! value, and the text a value is stored as (`Display`) parses back to the
//! same value. Pure.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::Path;
use std::str::FromStr;

use crate::text::quote;

/// How a probe reaches its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS (`_sips._tcp`, port 5061).
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// A host as a probe or an event socket names it: a DNS name or IPv4
/// address (letters, digits, `.`, `-`, `_`), or an IPv6 address, in
/// brackets or not. Returns the host without brackets.
fn host(h: &str) -> Option<&str> {
    let bare = h.strip_prefix('[').and_then(|x| x.strip_suffix(']'));
    let h = bare.unwrap_or(h);
    if h.contains(':') || bare.is_some() {
        return h.parse::<Ipv6Addr>().is_ok().then_some(h);
    }
    let ok = !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then_some(h)
}

/// `HOST:PORT` with an IPv6 host in brackets, as written back.
fn host_port(f: &mut fmt::Formatter<'_>, host: &str, port: u16) -> fmt::Result {
    if host.contains(':') {
        write!(f, "[{host}]:{port}")
    } else {
        write!(f, "{host}:{port}")
    }
}

/// `HOST:PORT` split at the last colon, the port from 1 to 65535.
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let port = p.parse::<u16>().ok().filter(|p| *p != 0)?;
    Some((host(h)?.to_string(), port))
}

/// A `sip_probe`: `udp:HOST:PORT`, `tcp:HOST:PORT` or `tls:HOST:PORT` (an
/// IPv6 host in brackets: `udp:[2001:db8::1]:5060`; the transport in any
/// case).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SipTarget {
    pub transport: Transport,
    /// Without brackets.
    pub host: String,
    pub port: u16,
}

impl FromStr for SipTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<SipTarget, String> {
        let usage = || {
            format!(
                "sip_probe {} must be udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (HOST a name or an address, [IPv6] in brackets; PORT 1 to 65535)",
                quote(s)
            )
        };
        let (t, rest) = s.split_once(':').ok_or_else(usage)?;
        let transport = match t.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => return Err(usage()),
        };
        let (host, port) = split_host_port(rest).ok_or_else(usage)?;
        Ok(SipTarget {
            transport,
            host,
            port,
        })
    }
}

impl fmt::Display for SipTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.transport.as_str())?;
        host_port(f, &self.host, self.port)
    }
}

/// A `sip_probe_server_name`: the name a TLS probe asks for (SNI) and that
/// the server's certificate must carry: a DNS name or an IP address, as
/// rustls accepts it. The node's `host` when not given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TlsServerName(String);

impl TlsServerName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TlsServerName {
    type Err = String;

    fn from_str(s: &str) -> Result<TlsServerName, String> {
        let bare = s
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .filter(|x| x.parse::<Ipv6Addr>().is_ok())
            .unwrap_or(s);
        match rustls::pki_types::ServerName::try_from(bare) {
            Ok(_) => Ok(TlsServerName(bare.to_string())),
            Err(_) => Err(format!(
                "sip_probe_server_name {} must be a DNS name or an IP address (the name the server's certificate carries)",
                quote(s)
            )),
        }
    }
}

impl fmt::Display for TlsServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `sip_probe_ca`: the path of a PEM file of the CA certificates a TLS
/// probe trusts instead of the system's, read by the collector.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CaFile(String);

impl CaFile {
    pub fn path(&self) -> &Path {
        Path::new(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CaFile {
    type Err = String;

    fn from_str(s: &str) -> Result<CaFile, String> {
        if s.is_empty() || s.chars().any(char::is_control) {
            return Err(format!(
                "sip_probe_ca {} must be the path of a PEM file of CA certificates (no control characters)",
                quote(s)
            ));
        }
        Ok(CaFile(s.to_string()))
    }
}

impl fmt::Display for CaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An `esl`: the FreeSWITCH event socket, `HOST:PORT` (`[IPv6]:PORT`; a
/// bare IPv6 address before the last colon is read too).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EslAddr {
    /// Without brackets.
    pub host: String,
    pub port: u16,
}

impl FromStr for EslAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<EslAddr, String> {
        let (host, port) = split_host_port(s).ok_or_else(|| {
            format!(
                "esl {} must be HOST:PORT (HOST a name or an address, [IPv6] in brackets; FreeSWITCH's port is 8021)",
                quote(s)
            )
        })?;
        Ok(EslAddr { host, port })
    }
}

impl fmt::Display for EslAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        host_port(f, &self.host, self.port)
    }
}

/// An event-socket password: one non-empty line without control characters
/// (it is sent as `auth PASSWORD`). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct EslPassword(String);

impl EslPassword {
    /// FreeSWITCH's default, used when a node gives neither `esl_password`
    /// nor `esl_password_file`.
    pub fn freeswitch_default() -> EslPassword {
        EslPassword("ClueCon".into())
    }

    /// The password itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for EslPassword {
    type Err = String;

    /// The message never quotes the password.
    fn from_str(s: &str) -> Result<EslPassword, String> {
        if s.is_empty() {
            return Err("the ESL password is empty: give the event socket's password, or no esl_password for FreeSWITCH's default".into());
        }
        if s.chars().any(char::is_control) {
            return Err("the ESL password contains a control character (a newline, a tab ...): it must be one line".into());
        }
        Ok(EslPassword(s.to_string()))
    }
}

impl fmt::Debug for EslPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An `esl_password_file`: the path of a file that holds the password, read
/// by the collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EslPasswordFile(String);

impl EslPasswordFile {
    pub fn path(&self) -> &Path {
        Path::new(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The password in the file (a trailing newline is not part of it).
    pub fn read(&self) -> Result<EslPassword, String> {
        let text = std::fs::read_to_string(&self.0)
            .map_err(|e| format!("cannot read esl_password_file {}: {e}", quote(&self.0)))?;
        text.trim_end_matches(['\r', '\n'])
            .parse()
            .map_err(|e| format!("esl_password_file {}: {e}", quote(&self.0)))
    }
}

impl FromStr for EslPasswordFile {
    type Err = String;

    fn from_str(s: &str) -> Result<EslPasswordFile, String> {
        if s.is_empty() || s.chars().any(char::is_control) {
            return Err(format!(
                "esl_password_file {} must be the path of a file (no control characters)",
                quote(s)
            ));
        }
        Ok(EslPasswordFile(s.to_string()))
    }
}

impl fmt::Display for EslPasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sofia profile name (`esl_profiles`): letters, digits, `-`, `_`, `.`
/// (it is sent inside an `api` command).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SofiaProfile(String);

impl SofiaProfile {
    /// `["internal"]`, FreeSWITCH's profile for registered phones.
    pub fn defaults() -> Vec<SofiaProfile> {
        vec![SofiaProfile("internal".into())]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SofiaProfile {
    type Err = String;

    fn from_str(s: &str) -> Result<SofiaProfile, String> {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok {
            return Err(format!(
                "esl_profiles: {} is not a sofia profile name (letters, digits, - _ .)",
                quote(s)
            ));
        }
        Ok(SofiaProfile(s.to_string()))
    }
}

impl fmt::Display for SofiaProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(s: &str) -> T
    where
        T: FromStr<Err = String> + fmt::Display + PartialEq + fmt::Debug,
    {
        let v: T = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        let again: T = v.to_string().parse().unwrap();
        assert_eq!(again, v, "{s} -> {v}");
        v
    }

    #[test]
    fn probe_targets_parse_and_round_trip() {
        let t: SipTarget = round_trips("udp:198.51.100.10:5060");
        assert_eq!(
            (t.transport, t.host.as_str(), t.port),
            (Transport::Udp, "198.51.100.10", 5060)
        );
        let t: SipTarget = round_trips("tcp:[2001:db8::1]:5080");
        assert_eq!(
            (t.transport, t.host.as_str(), t.port),
            (Transport::Tcp, "2001:db8::1", 5080)
        );
        assert_eq!(t.to_string(), "tcp:[2001:db8::1]:5080");
        let t: SipTarget = round_trips("UDP:sip_1.example.com:5060");
        assert_eq!(t.to_string(), "udp:sip_1.example.com:5060");
        let t: SipTarget = round_trips("udp:2001:db8::1:5060");
        assert_eq!(t.to_string(), "udp:[2001:db8::1]:5060");
        let t: SipTarget = round_trips("TLS:sip.example.com:5061");
        assert_eq!(
            (t.transport, t.to_string().as_str()),
            (Transport::Tls, "tls:sip.example.com:5061")
        );
        round_trips::<SipTarget>("tls:[::1]:5061");
        for bad in [
            "sctp:a:5060",
            "tls:a",
            "tls::5061",
            "udp:a",
            "udp::5060",
            "udp:a:0",
            "udp:a:70000",
            "udp:a:x",
            "udp:a b:5060",
            "udp:a:b:5060",
            "udp:[a]:5060",
            "udp:[]:5060",
            "udp:a\n:5060",
            "a:5060",
            "",
        ] {
            let e = bad.parse::<SipTarget>().unwrap_err();
            assert!(
                e.starts_with("sip_probe ") && e.contains("tls:HOST:PORT"),
                "{e}"
            );
        }
    }

    #[test]
    fn tls_server_names_and_ca_files() {
        for ok in ["sip.example.com", "127.0.0.1", "::1", "a-b.c_d.example"] {
            assert_eq!(round_trips::<TlsServerName>(ok).as_str(), ok);
        }
        assert_eq!("[::1]".parse::<TlsServerName>().unwrap().as_str(), "::1");
        for bad in ["", "a b", "sip.example.com\n", "é.example", "a..b", "[x]"] {
            let e = bad.parse::<TlsServerName>().unwrap_err();
            assert!(e.starts_with("sip_probe_server_name "), "{bad}: {e}");
        }
        let f = round_trips::<CaFile>("/etc/pdns-ha/ca.pem");
        assert_eq!(f.path(), Path::new("/etc/pdns-ha/ca.pem"));
        for bad in ["", "/etc/ca.pem\n", "a\tb"] {
            assert!(
                bad.parse::<CaFile>()
                    .unwrap_err()
                    .starts_with("sip_probe_ca ")
            );
        }
    }

    #[test]
    fn event_socket_addresses_parse_and_round_trip() {
        let a: EslAddr = round_trips("198.51.100.10:8021");
        assert_eq!((a.host.as_str(), a.port), ("198.51.100.10", 8021));
        let a: EslAddr = round_trips("[::1]:8021");
        assert_eq!(
            (a.host.as_str(), a.to_string()),
            ("::1", "[::1]:8021".into())
        );
        let a: EslAddr = round_trips("::1:8021");
        assert_eq!(a.to_string(), "[::1]:8021");
        round_trips::<EslAddr>("fs-1.example.net:8021");
        for bad in [
            ":8021", "nohost", "h:0", "h:", "a b:8021", "[h]:8021", "h:8021\n",
        ] {
            let e = bad.parse::<EslAddr>().unwrap_err();
            assert!(
                e.starts_with("esl ") && e.contains("HOST:PORT"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn passwords_are_one_line_and_never_printed() {
        let p: EslPassword = "ClueCon".parse().unwrap();
        assert_eq!(p.expose(), "ClueCon");
        assert_eq!(p, EslPassword::freeswitch_default());
        assert!(!format!("{p:?}").contains("ClueCon"));
        for bad in ["", "a\nb", "a\rb", "a\tb", "x\u{7f}"] {
            let e = bad.parse::<EslPassword>().unwrap_err();
            assert!(e.contains("ESL password"), "{e}");
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        assert!("".parse::<EslPasswordFile>().is_err());
        assert!("/etc/x\n".parse::<EslPasswordFile>().is_err());
        let f: EslPasswordFile = "/nonexistent/pdns-ha.esl".parse().unwrap();
        assert!(f.read().unwrap_err().contains("cannot read"));
    }

    #[test]
    fn profiles_are_names() {
        assert_eq!(SofiaProfile::defaults()[0].as_str(), "internal");
        round_trips::<SofiaProfile>("ext-1.v_2");
        for bad in ["", "internal reg\n\napi x", "a b"] {
            assert!(bad.parse::<SofiaProfile>().unwrap_err().contains("profile"));
        }
    }
}
