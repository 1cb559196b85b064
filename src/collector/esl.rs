//! FreeSWITCH inbound event-socket client over plain `std::net`: the frame
//! parser (header block + Content-Length body, split and coalesced reads, any
//! header order, `\n` or `\r\n`), URL-decoding of `text/event-plain` bodies,
//! authentication, `api` commands and event subscription. Every read and write
//! has a deadline: a silent or half-closed server gives an error, never a hang.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest header block accepted (a real one is a few hundred bytes).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest body accepted (`sofia xmlstatus` of a big profile is a few MB).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// What can go wrong on an event socket. Kept as a type (not only text) so the
/// caller can tell a wrong password from a network problem.
#[derive(Debug)]
pub enum EslError {
    /// The password was refused (`-ERR invalid`): retrying soon will not help.
    AuthRejected(String),
    /// The server's ACL refused this client (`text/rude-rejection`).
    RudeRejection(String),
    /// No (complete) answer within the deadline.
    Timeout(String),
    /// The server closed the connection (maybe in the middle of a frame).
    Closed(String),
    /// The peer does not speak the event-socket protocol as expected.
    Protocol(String),
    /// An `api` command ran but answered `-ERR ...`; the connection is fine.
    Api(String),
    /// A command we refuse to send (it would inject protocol lines).
    BadCommand(String),
    Io(io::Error),
}

impl fmt::Display for EslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EslError::AuthRejected(t) => write!(
                f,
                "password rejected by FreeSWITCH ({t}): check esl_password / esl_password_file \
                 against event_socket.conf.xml"
            ),
            EslError::RudeRejection(t) => write!(
                f,
                "connection refused by the event socket ACL ({}): allow this host in \
                 event_socket.conf.xml apply-inbound-acl",
                t.trim()
            ),
            EslError::Timeout(t) => write!(f, "timed out {t}"),
            EslError::Closed(t) => write!(f, "connection closed by FreeSWITCH {t}"),
            EslError::Protocol(t) => write!(f, "not a FreeSWITCH event socket reply: {t}"),
            EslError::Api(t) => write!(f, "FreeSWITCH answered {}", t.trim()),
            EslError::BadCommand(t) => write!(f, "refusing to send {t}"),
            EslError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EslError {}

impl From<io::Error> for EslError {
    fn from(e: io::Error) -> Self {
        EslError::Io(e)
    }
}

/// One frame: headers in the order received, and the body (empty without
/// `Content-Length`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Frame {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An event (`text/event-plain` body): URL-decoded headers and optional
/// body. The headers are kept in one string (names and values back to back,
/// with their spans): a hang-up event carries a few hundred of them, and
/// hundreds of events a second arrive from a busy server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Event {
    text: String,
    /// (name start, value start, value end) in `text`, in the order received;
    /// a name ends where its value starts.
    spans: Vec<(u32, u32, u32)>,
    pub body: String,
}

impl Event {
    /// The first header of that name (case-insensitive), URL-decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header (name, decoded value), in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans.iter().map(|&(n, v, e)| {
            (
                &self.text[n as usize..v as usize],
                &self.text[v as usize..e as usize],
            )
        })
    }

    /// `Event-Name`, e.g. `HEARTBEAT`.
    pub fn name(&self) -> &str {
        self.header("Event-Name").unwrap_or("")
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Incremental frame parser: feed it bytes as they arrive, take out complete
/// frames. Keeps partial frames between calls. Frames are taken from the
/// front without moving what follows; the bytes taken are dropped in one
/// move before more are added.
#[derive(Debug, Default)]
pub struct FrameParser {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already taken.
    start: usize,
}

impl FrameParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received that do not yet make a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, EslError> {
        // Blank lines between frames are noise, not frames.
        self.start += self.buf[self.start..]
            .iter()
            .position(|&b| b != b'\n' && b != b'\r')
            .unwrap_or(self.buf.len() - self.start);
        let buf = &self.buf[self.start..];
        let Some((head_len, block_len)) = find_block_end(buf) else {
            if buf.len() > MAX_HEADER_BYTES {
                return Err(EslError::Protocol(format!(
                    "no end of header block in {} bytes",
                    buf.len()
                )));
            }
            return Ok(None);
        };
        let headers = parse_header_block(&buf[..head_len])?;
        let body_len = match header(&headers, "Content-Length") {
            None => 0,
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n <= MAX_BODY_BYTES => n,
                _ => {
                    return Err(EslError::Protocol(format!("bad Content-Length '{v}'")));
                }
            },
        };
        if buf.len() < block_len + body_len {
            return Ok(None);
        }
        let body = buf[block_len..block_len + body_len].to_vec();
        self.start += block_len + body_len;
        Ok(Some(Frame { headers, body }))
    }
}

/// Finds the empty line ending a header block: returns (length of the header
/// lines, length including the terminating empty line).
fn find_block_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + p;
        let rest = &buf[nl + 1..];
        if rest.first() == Some(&b'\n') {
            return Some((nl, nl + 2));
        }
        if rest.starts_with(b"\r\n") {
            return Some((nl, nl + 3));
        }
        i = nl + 1;
    }
    None
}

/// Parses the `Name: value` lines of a frame's header block.
fn parse_header_block(block: &[u8]) -> Result<Vec<(String, String)>, EslError> {
    let text = String::from_utf8_lossy(block);
    let mut headers = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(EslError::Protocol(format!(
                "header line without ':': '{}'",
                line.chars().take(80).collect::<String>()
            )));
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
        headers.push((name.trim().to_string(), value.to_string()));
    }
    Ok(headers)
}

/// Decodes `%XX` escapes (as FreeSWITCH's switch_url_encode writes them);
/// malformed escapes are kept as they are. `+` is left alone.
pub fn url_decode_str(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    url_decode_into(s.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// [`url_decode_str`] of `b`, appended to `out`.
fn url_decode_into(b: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses the body of a `text/event-plain` frame: a URL-encoded header block,
/// optionally followed by its own Content-Length body.
pub fn parse_event_plain(body: &[u8]) -> Result<Event, EslError> {
    let (head, rest) = match find_block_end(body) {
        Some((h, b)) => (&body[..h], &body[b..]),
        None => (body, &[][..]),
    };
    let mut ev = Event {
        text: String::with_capacity(head.len()),
        spans: Vec::with_capacity(head.len() / 24),
        body: String::new(),
    };
    let mut value = Vec::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(EslError::Protocol(format!(
                "header line without ':': '{}'",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            )));
        };
        let name = String::from_utf8_lossy(&line[..colon]);
        let raw = &line[colon + 1..];
        let raw = raw.strip_prefix(b" ").unwrap_or(raw);
        value.clear();
        url_decode_into(raw, &mut value);
        let n = ev.text.len();
        ev.text.push_str(name.trim());
        let v = ev.text.len();
        match std::str::from_utf8(&value) {
            Ok(t) => ev.text.push_str(t),
            Err(_) => ev.text.push_str(&String::from_utf8_lossy(&value)),
        }
        let span = |x: usize| {
            u32::try_from(x).map_err(|_| EslError::Protocol("event larger than 4 GiB".into()))
        };
        ev.spans.push((span(n)?, span(v)?, span(ev.text.len())?));
    }
    let len = ev
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(rest.len());
    ev.body = String::from_utf8_lossy(&rest[..len]).into_owned();
    Ok(ev)
}

/// An authenticated inbound event-socket connection.
pub struct EslClient {
    stream: TcpStream,
    parser: FrameParser,
    events: VecDeque<Event>,
    reply_timeout: Duration,
    peer: String,
}

impl EslClient {
    /// Connects to `addr` (`host:port`), waits for `auth/request` and
    /// authenticates. A wrong password gives [`EslError::AuthRejected`], an ACL
    /// refusal [`EslError::RudeRejection`].
    pub fn connect(
        addr: &str,
        password: &str,
        connect_timeout: Duration,
        reply_timeout: Duration,
    ) -> Result<EslClient, EslError> {
        if password.contains(['\r', '\n']) {
            return Err(EslError::BadCommand(
                "a password containing a line break".into(),
            ));
        }
        let stream = connect_any(addr, connect_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(reply_timeout))?;
        let mut client = EslClient {
            stream,
            parser: FrameParser::new(),
            events: VecDeque::new(),
            reply_timeout,
            peer: addr.to_string(),
        };
        client.expect_auth_request()?;
        client.send(&format!("auth {password}"))?;
        let reply = client.wait_reply("command/reply", "waiting for the auth reply")?;
        let text = reply.header("Reply-Text").unwrap_or("").to_string();
        if text.starts_with("+OK") {
            Ok(client)
        } else if text.starts_with("-ERR") {
            Err(EslError::AuthRejected(text))
        } else {
            Err(EslError::Protocol(format!(
                "unexpected auth reply '{text}'"
            )))
        }
    }

    /// The address this client was asked to connect to.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Runs `api <cmd>` and returns the body; a body starting with `-ERR` is
    /// [`EslError::Api`].
    pub fn api(&mut self, cmd: &str) -> Result<String, EslError> {
        check_command(cmd)?;
        self.send(&format!("api {cmd}"))?;
        let reply = self.wait_reply("api/response", &format!("waiting for 'api {cmd}'"))?;
        let body = reply.body_text();
        if body.trim_start().starts_with("-ERR") {
            return Err(EslError::Api(body));
        }
        Ok(body)
    }

    /// `event plain <events>` (e.g. `HEARTBEAT`).
    pub fn subscribe(&mut self, events: &str) -> Result<(), EslError> {
        check_command(events)?;
        self.command(&format!("event plain {events}")).map(|_| ())
    }

    /// Sends a command answered by `command/reply`; returns the Reply-Text
    /// when it starts with `+OK`.
    pub fn command(&mut self, cmd: &str) -> Result<String, EslError> {
        check_command(cmd)?;
        self.send(cmd)?;
        let reply = self.wait_reply(
            "command/reply",
            &format!("waiting for the reply to '{cmd}'"),
        )?;
        let text = reply.header("Reply-Text").unwrap_or("").to_string();
        if text.starts_with("+OK") {
            Ok(text)
        } else {
            Err(EslError::Api(text))
        }
    }

    /// Says goodbye (best effort, short deadline); the connection is dropped anyway.
    pub fn exit(mut self) {
        let _ = self
            .stream
            .set_write_timeout(Some(Duration::from_millis(200)));
        let _ = self.send("exit");
    }

    /// The next event: a queued one, or one read within `timeout`.
    /// `Ok(None)` when none arrived in time (not an error).
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, EslError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_frame(deadline, "waiting for events") {
                Ok(frame) => {
                    self.check_disconnect(&frame)?;
                    if let Some(e) = self.as_event(&frame)? {
                        return Ok(Some(e));
                    }
                }
                Err(EslError::Timeout(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    fn expect_auth_request(&mut self) -> Result<(), EslError> {
        let deadline = Instant::now() + self.reply_timeout;
        let frame = self.read_frame(deadline, "waiting for auth/request after connect")?;
        match frame.content_type() {
            "auth/request" => Ok(()),
            "text/rude-rejection" => Err(EslError::RudeRejection(frame.body_text())),
            other => Err(EslError::Protocol(format!(
                "expected auth/request after connect, got Content-Type '{other}'"
            ))),
        }
    }

    fn send(&mut self, line: &str) -> Result<(), EslError> {
        let msg = format!("{line}\n\n");
        self.stream
            .write_all(msg.as_bytes())
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    EslError::Timeout(format!("sending to {}", self.peer))
                }
                _ => EslError::Io(e),
            })
    }

    /// Reads frames until one of `content_type` arrives; events met on the
    /// way are queued for [`EslClient::next_event`].
    fn wait_reply(&mut self, content_type: &str, what: &str) -> Result<Frame, EslError> {
        let deadline = Instant::now() + self.reply_timeout;
        loop {
            let frame = self.read_frame(deadline, what)?;
            self.check_disconnect(&frame)?;
            if frame.content_type() == content_type {
                return Ok(frame);
            }
            if let Some(e) = self.as_event(&frame)? {
                self.events.push_back(e);
            }
            // Anything else (log/data, ...) is not ours: skip it.
        }
    }

    fn check_disconnect(&self, frame: &Frame) -> Result<(), EslError> {
        match frame.content_type() {
            "text/disconnect-notice" => Err(EslError::Closed(format!(
                "(disconnect notice: {})",
                frame.body_text().lines().next().unwrap_or("").trim()
            ))),
            "text/rude-rejection" => Err(EslError::RudeRejection(frame.body_text())),
            _ => Ok(()),
        }
    }

    fn as_event(&self, frame: &Frame) -> Result<Option<Event>, EslError> {
        if frame.content_type() == "text/event-plain" {
            parse_event_plain(&frame.body).map(Some)
        } else {
            Ok(None)
        }
    }

    /// One complete frame before `deadline`.
    fn read_frame(&mut self, deadline: Instant, what: &str) -> Result<Frame, EslError> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some(f) = self.parser.next_frame()? {
                return Ok(f);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout(what));
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    let pending = self.parser.pending();
                    return Err(EslError::Closed(if pending > 0 {
                        format!("in the middle of a frame ({pending} bytes unparsed) while {what}")
                    } else {
                        format!("while {what}")
                    }));
                }
                Ok(n) => self.parser.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.timeout(what));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(EslError::Io(e)),
            }
        }
    }

    fn timeout(&self, what: &str) -> EslError {
        EslError::Timeout(format!(
            "after {} ms {what}",
            self.reply_timeout.as_millis()
        ))
    }
}

fn check_command(cmd: &str) -> Result<(), EslError> {
    if cmd.contains(['\r', '\n']) || cmd.trim().is_empty() {
        return Err(EslError::BadCommand(format!("command {cmd:?}")));
    }
    Ok(())
}

fn connect_any(addr: &str, timeout: Duration) -> Result<TcpStream, EslError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| {
            EslError::Io(io::Error::new(
                e.kind(),
                format!("cannot resolve '{addr}': {e}"),
            ))
        })?
        .collect();
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            EslError::Timeout(format!("after {} ms connecting", timeout.as_millis()))
        }
        Some(e) => EslError::Io(e),
        None => EslError::Io(io::Error::new(
            io::ErrorKind::NotFound,
            format!("'{addr}' resolves to no address"),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(p: &mut FrameParser) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(f) = p.next_frame().unwrap() {
            v.push(f);
        }
        v
    }

    #[test]
    fn parses_coalesced_frames_with_any_header_order() {
        let mut p = FrameParser::new();
        p.push(
            b"Content-Type: auth/request\n\n\
              Content-Length: 5\nContent-Type: api/response\n\nhello\
              Content-Type: command/reply\nReply-Text: +OK accepted\n\n",
        );
        let f = frames(&mut p);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].content_type(), "auth/request");
        assert_eq!(f[1].content_type(), "api/response");
        assert_eq!(f[1].body, b"hello");
        assert_eq!(f[2].header("reply-text"), Some("+OK accepted"));
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn parses_byte_by_byte_and_crlf() {
        let data = b"Content-Type: api/response\r\nContent-Length: 7\r\n\r\nA\r\nB\n\nCContent-Type: x/y\r\n\r\n";
        let mut p = FrameParser::new();
        let mut got = Vec::new();
        for b in data.iter() {
            p.push(std::slice::from_ref(b));
            got.extend(frames(&mut p));
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].body, b"A\r\nB\n\nC");
        assert_eq!(got[0].header("Content-Length"), Some("7"));
        assert_eq!(got[1].content_type(), "x/y");
    }

    #[test]
    fn rejects_garbage() {
        let mut p = FrameParser::new();
        p.push(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        assert!(matches!(p.next_frame(), Err(EslError::Protocol(_))));
        let mut p = FrameParser::new();
        p.push(b"Content-Length: -3\n\n");
        assert!(matches!(p.next_frame(), Err(EslError::Protocol(_))));
        let mut p = FrameParser::new();
        p.push(&vec![b'x'; MAX_HEADER_BYTES + 10]);
        assert!(matches!(p.next_frame(), Err(EslError::Protocol(_))));
    }

    #[test]
    fn decodes_event_plain() {
        let body = b"Event-Name: HEARTBEAT\nFreeSWITCH-Version: 1.10.12-release%2064bit\n\
                     Event-Info: System%20Ready\nBad: 100%\nIdle-CPU: 97.5\n\n";
        let e = parse_event_plain(body).unwrap();
        assert_eq!(e.name(), "HEARTBEAT");
        assert_eq!(
            e.header("FreeSWITCH-Version"),
            Some("1.10.12-release 64bit")
        );
        assert_eq!(e.header("Event-Info"), Some("System Ready"));
        assert_eq!(e.header("Bad"), Some("100%"));
        assert_eq!(e.header("idle-cpu"), Some("97.5"));
        let e = parse_event_plain(b"Event-Name: CUSTOM\nContent-Length: 2\n\nhi").unwrap();
        assert_eq!(e.body, "hi");
    }

    #[test]
    fn url_decoding_edge_cases() {
        assert_eq!(url_decode_str("a%3Ab%2"), "a:b%2");
        assert_eq!(url_decode_str("%zz%41"), "%zzA");
        assert_eq!(url_decode_str("caf%C3%A9"), "café");
    }
}
