//! SIP OPTIONS health probe over UDP, TCP and TLS (RFC 3261; TLS by
//! [`super::tls`]): builds a well-formed request with a fresh branch, tag
//! and Call-ID, matches the response by branch and Call-ID, and turns it
//! into an outcome with the round-trip time. One deadline covers the
//! connection, the TLS handshake and the exchange. [`probe_all`] runs one
//! thread per target so timeouts never add up.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::health::ProbeResult;
use super::tls::{self, TlsProbe};

/// Largest SIP message read over TCP before giving up on the stream.
const MAX_TCP_MESSAGE: usize = 64 * 1024;
/// Stack of a probe thread: a probe needs little more than its buffers.
const PROBE_STACK: usize = 256 * 1024;

pub use crate::endpoint::{SipTarget, Transport};

/// What one probe found.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeOutcome {
    /// A final response other than 503.
    Answered { status: u16, rtt_ms: f64 },
    /// 503 Service Unavailable: alive, refusing load.
    Overloaded { rtt_ms: f64 },
    /// No usable answer; the text says why.
    Failed(String),
}

impl ProbeOutcome {
    pub fn result(&self) -> ProbeResult {
        match self {
            ProbeOutcome::Answered { .. } => ProbeResult::Answered,
            ProbeOutcome::Overloaded { .. } => ProbeResult::Overloaded,
            ProbeOutcome::Failed(_) => ProbeResult::Failed,
        }
    }

    pub fn rtt_ms(&self) -> Option<f64> {
        match self {
            ProbeOutcome::Answered { rtt_ms, .. } | ProbeOutcome::Overloaded { rtt_ms } => {
                Some(*rtt_ms)
            }
            ProbeOutcome::Failed(_) => None,
        }
    }
}

/// What one probe found, with what a TLS probe learnt of the certificate.
#[derive(Clone, Debug, PartialEq)]
pub struct Probed {
    pub outcome: ProbeOutcome,
    /// The server certificate's `notAfter` (Unix seconds): after a
    /// handshake, or from a handshake refused for an expired certificate.
    pub cert_not_after: Option<i64>,
}

impl Probed {
    fn failed(why: String) -> Probed {
        Probed {
            outcome: ProbeOutcome::Failed(why),
            cert_not_after: None,
        }
    }
}

/// Probes every target at once (one short-lived thread each); outcomes in
/// the order of `targets`. Takes about `timeout` at most.
pub fn probe_all(targets: &[SipTarget], timeout: Duration) -> Vec<ProbeOutcome> {
    in_threads(targets, |t| probe(t, timeout), ProbeOutcome::Failed)
}

/// [`probe_all`] with each target's TLS settings (for `tls:` targets).
pub fn probe_all_with(targets: &[(SipTarget, Option<TlsProbe>)], timeout: Duration) -> Vec<Probed> {
    in_threads(
        targets,
        |(t, tls)| probe_with(t, tls.as_ref(), timeout),
        Probed::failed,
    )
}

/// `f` of every item, each in a thread of its own; `failed` says what a
/// thread that could not start or panicked found.
fn in_threads<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
    failed: fn(String) -> R,
) -> Vec<R> {
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .iter()
            .map(|t| {
                std::thread::Builder::new()
                    .name("sip-probe".into())
                    .stack_size(PROBE_STACK)
                    .spawn_scoped(s, move || f(t))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| failed("probe thread panicked".into())),
                Err(e) => failed(format!("cannot start a probe thread: {e}")),
            })
            .collect()
    })
}

/// Sends one OPTIONS to `target` and waits up to `timeout` for a final
/// response (a `tls:` target fails: it needs [`probe_with`]).
pub fn probe(target: &SipTarget, timeout: Duration) -> ProbeOutcome {
    probe_with(target, None, timeout).outcome
}

/// [`probe`], over TLS with `tls` for a `tls:` target. The connection, the
/// handshake and the exchange all end by `timeout`.
pub fn probe_with(target: &SipTarget, tls: Option<&TlsProbe>, timeout: Duration) -> Probed {
    let deadline = Instant::now() + timeout;
    let addr = match resolve(target) {
        Ok(a) => a,
        Err(e) => return Probed::failed(e),
    };
    let mut cert_not_after = None;
    let r = match (target.transport, tls) {
        (Transport::Udp, _) => probe_udp(target, addr, deadline),
        (Transport::Tcp, _) => probe_tcp(target, addr, deadline),
        (Transport::Tls, Some(tls)) => {
            probe_tls(target, addr, tls, deadline, timeout, &mut cert_not_after)
        }
        (Transport::Tls, None) => {
            return Probed::failed(format!("{target}: no TLS settings for this probe"));
        }
    };
    let outcome = r.unwrap_or_else(|e| match tls::describe(&e) {
        Some((why, at)) => {
            cert_not_after = cert_not_after.or(at);
            ProbeOutcome::Failed(format!("{target}: TLS handshake failed: {why}"))
        }
        None => ProbeOutcome::Failed(describe_io(&e, target, timeout)),
    });
    Probed {
        outcome,
        cert_not_after,
    }
}

fn resolve(target: &SipTarget) -> Result<SocketAddr, String> {
    (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", target.host))
}

fn describe_io(e: &io::Error, target: &SipTarget, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no answer from {target} within {} ms", timeout.as_millis())
        }
        io::ErrorKind::ConnectionRefused => match target.transport {
            Transport::Udp => format!("{target}: port unreachable (ICMP), nothing listens there"),
            Transport::Tcp | Transport::Tls => format!("{target}: connection refused"),
        },
        _ => format!("{target}: {e}"),
    }
}

fn probe_udp(target: &SipTarget, addr: SocketAddr, deadline: Instant) -> io::Result<ProbeOutcome> {
    let sock = UdpSocket::bind(unspecified(addr))?;
    sock.connect(addr)?;
    let req = Request::new(target, sock.local_addr()?);
    sock.set_write_timeout(Some(remaining(deadline)?))?;
    let start = Instant::now();
    sock.send(req.text.as_bytes())?;
    let mut buf = vec![0u8; 65_535];
    loop {
        sock.set_read_timeout(Some(remaining(deadline)?))?;
        let n = sock.recv(&mut buf)?;
        if let Some(outcome) = parse_response(&buf[..n]).and_then(|r| req.outcome(&r, start)) {
            return Ok(outcome);
        }
    }
}

fn probe_tcp(target: &SipTarget, addr: SocketAddr, deadline: Instant) -> io::Result<ProbeOutcome> {
    let mut stream = TcpStream::connect_timeout(&addr, remaining(deadline)?)?;
    stream.set_nodelay(true)?;
    let req = Request::new(target, stream.local_addr()?);
    exchange(&mut stream, &req, deadline)
}

/// Connects, does the TLS handshake (noting the certificate's expiry in
/// `cert_not_after`), then exchanges the OPTIONS as over TCP.
fn probe_tls(
    target: &SipTarget,
    addr: SocketAddr,
    tls: &TlsProbe,
    deadline: Instant,
    timeout: Duration,
    cert_not_after: &mut Option<i64>,
) -> io::Result<ProbeOutcome> {
    let tcp = TcpStream::connect_timeout(&addr, remaining(deadline)?)?;
    tcp.set_nodelay(true)?;
    let local = tcp.local_addr()?;
    let mut stream = match tls::handshake(tls, tcp, deadline) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Ok(ProbeOutcome::Failed(format!(
                "{target}: no TLS handshake within {} ms (not a TLS server, or too slow)",
                timeout.as_millis()
            )));
        }
        Err(e) => return Err(e),
    };
    *cert_not_after = stream.cert_not_after();
    let req = Request::new(target, local);
    exchange(&mut stream, &req, deadline)
}

/// A byte stream whose reads and writes time out.
trait Timed: Read + Write {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()>;
}

impl Timed for TcpStream {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d))?;
        self.set_write_timeout(Some(d))
    }
}

impl Timed for tls::TlsStream {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        tls::TlsStream::set_timeout(self, d)
    }
}

/// Sends `req` on a stream (TCP or TLS) and reads messages until its final
/// response, by `deadline`.
fn exchange(stream: &mut impl Timed, req: &Request, deadline: Instant) -> io::Result<ProbeOutcome> {
    stream.set_timeout(remaining(deadline)?)?;
    let start = Instant::now();
    stream.write_all(req.text.as_bytes())?;
    stream.flush()?;
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        while let Some((resp, used)) = next_stream_message(&data) {
            data.drain(..used);
            if let Some(outcome) = resp.and_then(|r| req.outcome(&r, start)) {
                return Ok(outcome);
            }
        }
        if data.len() > MAX_TCP_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "oversized SIP message",
            ));
        }
        stream.set_timeout(remaining(deadline)?)?;
        match stream.read(&mut buf)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a final response",
                ));
            }
            n => data.extend_from_slice(&buf[..n]),
        }
    }
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "probe timed out"))
    } else {
        Ok(left)
    }
}

fn unspecified(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// An OPTIONS request and the identifiers its response must carry.
#[derive(Debug)]
pub struct Request {
    pub branch: String,
    pub call_id: String,
    pub text: String,
}

impl Request {
    /// Builds the request from `local` (the socket's own address, for Via,
    /// From and Contact) to `target`.
    pub fn new(target: &SipTarget, local: SocketAddr) -> Request {
        let branch = format!("z9hG4bK{}", unique_token());
        let call_id = format!("{}@pdns-ha", unique_token());
        let tag = &unique_token()[..12];
        let lhost = uri_host(&local.ip().to_string());
        let lport = local.port();
        let (via_t, uri_param) = match target.transport {
            Transport::Udp => ("UDP", ""),
            Transport::Tcp => ("TCP", ";transport=tcp"),
            Transport::Tls => ("TLS", ";transport=tls"),
        };
        let ruri = format!("sip:{}:{}{uri_param}", uri_host(&target.host), target.port);
        let text = format!(
            "OPTIONS {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/{via_t} {lhost}:{lport};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:pdns-ha@{lhost}>;tag={tag}\r\n\
             To: <{ruri}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Contact: <sip:pdns-ha@{lhost}:{lport}{uri_param}>\r\n\
             Accept: application/sdp\r\n\
             User-Agent: pdns-ha\r\n\
             Content-Length: 0\r\n\r\n"
        );
        Request {
            branch,
            call_id,
            text,
        }
    }

    /// The outcome if `resp` answers this request with a final response;
    /// `None` for a provisional or someone else's response.
    pub fn outcome(&self, resp: &Response, start: Instant) -> Option<ProbeOutcome> {
        if resp.branch.as_deref() != Some(&self.branch)
            || resp.call_id.as_deref() != Some(&self.call_id)
        {
            return None;
        }
        let rtt_ms = start.elapsed().as_secs_f64() * 1000.0;
        match resp.status {
            100..=199 => None,
            503 => Some(ProbeOutcome::Overloaded { rtt_ms }),
            status => Some(ProbeOutcome::Answered { status, rtt_ms }),
        }
    }
}

fn uri_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// A unique, unpredictable token (hex).
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    format!("{:016x}{n:x}", h.finish())
}

/// The parts of a SIP response the prober looks at.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    /// `branch` of the topmost Via.
    pub branch: Option<String>,
    pub call_id: Option<String>,
}

/// Parses a SIP response (a whole datagram, or the head of one); `None` for
/// requests and garbage.
pub fn parse_response(data: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if parts.next()? != "SIP/2.0" {
        return None;
    }
    let status: u16 = parts
        .next()?
        .parse()
        .ok()
        .filter(|s| (100..700).contains(s))?;
    let mut branch = None;
    let mut call_id = None;
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if (name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")) && branch.is_none()
        {
            branch = via_branch(value);
        } else if (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            && call_id.is_none()
        {
            call_id = Some(value.to_string());
        }
    }
    Some(Response {
        status,
        branch,
        call_id,
    })
}

/// The `branch` parameter of the first via-value of a Via header.
fn via_branch(value: &str) -> Option<String> {
    let first = value.split(',').next()?;
    first.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| v.trim().to_string())
    })
}

/// Splits one message off a TCP byte stream: `Some((parsed, bytes used))`
/// once the head and its Content-Length body are complete.
fn next_stream_message(data: &[u8]) -> Option<(Option<Response>, usize)> {
    let skip = data
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip > 0 {
        return Some((None, skip)); // keep-alive CRLFs
    }
    let head_end = find(data, b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| find(data, b"\n\n").map(|p| p + 2))?;
    let head = String::from_utf8_lossy(&data[..head_end]);
    let body_len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| {
            k.trim().eq_ignore_ascii_case("content-length") || k.trim().eq_ignore_ascii_case("l")
        })
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if data.len() < head_end + body_len {
        return None;
    }
    Some((parse_response(&data[..head_end]), head_end + body_len))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(s: &str) -> SipTarget {
        s.parse().unwrap()
    }

    #[test]
    fn request_is_well_formed_and_unique() {
        let t = target("tcp:[::1]:5060");
        let local: SocketAddr = "[::1]:40000".parse().unwrap();
        let a = Request::new(&t, local);
        let b = Request::new(&t, local);
        assert_ne!(a.branch, b.branch);
        assert_ne!(a.call_id, b.call_id);
        assert!(a.branch.starts_with("z9hG4bK"));
        let lines: Vec<&str> = a.text.split("\r\n").collect();
        assert_eq!(lines[0], "OPTIONS sip:[::1]:5060;transport=tcp SIP/2.0");
        assert!(
            lines.contains(
                &format!("Via: SIP/2.0/TCP [::1]:40000;branch={};rport", a.branch).as_str()
            )
        );
        assert!(lines.contains(&"Max-Forwards: 70"));
        assert!(lines.contains(&format!("Call-ID: {}", a.call_id).as_str()));
        assert!(lines.contains(&"CSeq: 1 OPTIONS"));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("From: <sip:pdns-ha@[::1]>;tag="))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("To: <sip:[::1]:5060;transport=tcp>"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("Contact: <sip:pdns-ha@[::1]:40000"))
        );
        assert!(a.text.ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn matches_by_branch_and_call_id() {
        let t = target("udp:127.0.0.1:5060");
        let req = Request::new(&t, "127.0.0.1:4000".parse().unwrap());
        let resp = |status: u16, branch: &str, cid: &str| {
            let raw = format!(
                "SIP/2.0 {status} Whatever\r\nv: SIP/2.0/UDP 127.0.0.1:4000;rport=4000;branch={branch}, SIP/2.0/UDP x;branch=zzz\r\n\
                 i: {cid}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            );
            parse_response(raw.as_bytes()).unwrap()
        };
        let start = Instant::now();
        let (b, c) = (req.branch.as_str(), req.call_id.as_str());
        assert!(matches!(
            req.outcome(&resp(200, b, c), start),
            Some(ProbeOutcome::Answered { status: 200, .. })
        ));
        assert!(matches!(
            req.outcome(&resp(404, b, c), start),
            Some(ProbeOutcome::Answered { status: 404, .. })
        ));
        assert!(matches!(
            req.outcome(&resp(503, b, c), start),
            Some(ProbeOutcome::Overloaded { .. })
        ));
        assert_eq!(req.outcome(&resp(100, b, c), start), None);
        assert_eq!(req.outcome(&resp(200, "z9hG4bKother", c), start), None);
        assert_eq!(req.outcome(&resp(200, b, "other@x"), start), None);
        assert_eq!(parse_response(b"OPTIONS sip:x SIP/2.0\r\n\r\n"), None);
        assert_eq!(parse_response(b"SIP/2.0 abc\r\n\r\n"), None);
        assert_eq!(parse_response(b"\xff\xfe"), None);
    }

    #[test]
    fn splits_tcp_stream() {
        let two = b"\r\n\r\nSIP/2.0 100 Trying\r\nContent-Length: 2\r\n\r\nhiSIP/2.0 200 OK\r\nCall-ID: a\r\n\r\n";
        let mut data = two.to_vec();
        let mut statuses = Vec::new();
        while let Some((r, used)) = next_stream_message(&data) {
            data.drain(..used);
            if let Some(r) = r {
                statuses.push(r.status);
            }
        }
        assert_eq!(statuses, [100, 200]);
        assert!(data.is_empty());
        assert_eq!(
            next_stream_message(b"SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nab"),
            None
        );
    }

    #[test]
    fn refused_udp_and_tcp_fail_fast() {
        // A port nobody listens on: bind, learn the port, close.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t0 = Instant::now();
        let o = probe(
            &target(&format!("udp:127.0.0.1:{port}")),
            Duration::from_millis(800),
        );
        assert!(
            matches!(&o, ProbeOutcome::Failed(m) if m.contains("unreachable") || m.contains("no answer")),
            "{o:?}"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let o = probe(
            &target(&format!("tcp:127.0.0.1:{port}")),
            Duration::from_millis(800),
        );
        assert!(
            matches!(&o, ProbeOutcome::Failed(m) if m.contains("refused")),
            "{o:?}"
        );
        assert!(t0.elapsed() < Duration::from_millis(1700));
    }
}
