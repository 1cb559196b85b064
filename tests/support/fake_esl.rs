//! A fake FreeSWITCH inbound event socket for tests, speaking exactly what
//! shared/freeswitch-esl.md describes: `auth/request` on connect, `auth`,
//! `api`, `event plain HEARTBEAT`, `exit`, wrong password -> `-ERR invalid` +
//! disconnect notice + close, events with Content-Length first. Misbehaviour
//! modes: byte-by-byte frames, coalesced frames, hang, close mid-frame, slow,
//! ACL rejection. Listens on 127.0.0.1, port 0; stopped on drop. The figures
//! it reports can be changed while it runs ([`FakeEsl::update`]).
//! `CHANNEL_HANGUP_COMPLETE` events (a few KB, every channel variable as a
//! URL-encoded `variable_*` header, as FreeSWITCH sends them) go to a
//! connection subscribed to them: the configured [`Hangup`]s in turn at
//! `hangups_per_sec`, and any event body queued with [`FakeEsl::push_event`].
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Normal,
    /// Every frame is written one byte per write.
    ByteByByte,
    /// Events are held back and written in one write together with the next
    /// command reply (events before and after the reply).
    Coalesce,
    /// Accepts and never sends a byte.
    HangAfterAccept,
    /// Authenticates, then answers the first `api` with half a frame and closes.
    CloseMidFrame,
    /// Waits this long before every write.
    Slow(Duration),
    /// `text/rude-rejection` on connect, then close.
    RudeRejection,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat {
    pub session_count: u32,
    pub max_sessions: u32,
    pub idle_cpu: f64,
}

#[derive(Clone, Debug)]
pub struct FakeEslConfig {
    pub password: String,
    /// `None`: this FreeSWITCH sends no heartbeats (the collector must poll).
    pub heartbeat: Option<Heartbeat>,
    pub heartbeat_every: Duration,
    pub status_body: String,
    pub calls_count_body: String,
    pub max_sessions_body: String,
    /// `(profile, body)` for `sofia xmlstatus profile P reg`.
    pub xmlstatus: Vec<(String, String)>,
    pub mode: Mode,
    /// Header lines end with `\r\n` instead of `\n`.
    pub crlf: bool,
    /// Hang-up events sent in turn, `hangups_per_sec` of them a second (0:
    /// none), to a connection subscribed to CHANNEL_HANGUP_COMPLETE.
    pub hangups: Vec<Hangup>,
    pub hangups_per_sec: f64,
}

/// The call quality figures of one hang-up event (strings, so a test can
/// send garbage).
#[derive(Clone, Debug, PartialEq)]
pub struct Hangup {
    /// `Caller-Network-Addr` (and `variable_sip_network_ip`).
    pub client_ip: String,
    /// `Call-Direction`.
    pub direction: String,
    /// `variable_rtp_audio_in_mos`; None: no `rtp_audio_in_*` at all.
    pub mos: Option<String>,
    pub media_packets: u64,
    pub flaws: u64,
    pub jitter_max_ms: f64,
}

impl Hangup {
    /// An inbound call from `client_ip` with this receive MOS: 1500 media
    /// packets, flaws and jitter that go with the MOS.
    pub fn call(client_ip: &str, mos: f64) -> Hangup {
        let flaws = ((4.5 - mos).max(0.0) * 60.0) as u64;
        Hangup {
            client_ip: client_ip.into(),
            direction: "inbound".into(),
            mos: Some(format!("{mos:.2}")),
            media_packets: 1500,
            flaws,
            jitter_max_ms: 2.0 + flaws as f64 / 4.0,
        }
    }
}

pub const STATUS_BODY: &str = "UP 0 years, 2 days, 3 hours, 4 minutes, 5 seconds, 6 milliseconds, 7 microseconds\n\
FreeSWITCH (Version 1.10.12-release 64bit) is ready\n\
1234 session(s) since startup\n\
17 session(s) - peak 40, last 5min 21 \n\
2 session(s) per Sec out of max 30, peak 9, last 5min 3 \n\
1000 session(s) max\n\
min idle cpu 0.00/97.53\n\
Current Stack Size/Max 240K/8192K\n";

/// A status body with the given figures (singular forms, no stack line when `short`).
pub fn status_body(sessions: u32, max: u32, idle: f64) -> String {
    format!(
        "UP 0 years, 1 day, 1 hour, 1 minute, 1 second, 1 millisecond, 1 microsecond\n\
FreeSWITCH (Version 1.10.12-release 64bit) is ready\n\
99 session(s) since startup\n\
{sessions} session(s) - peak 40, last 5min 21 \n\
1 session(s) per Sec out of max 30, peak 9, last 5min 3 \n\
{max} session(s) max\n\
min idle cpu 0.00/{idle:.2}\n"
    )
}

/// One `<registration>` element as mod_sofia writes it.
pub fn registration_xml(user: &str, ip: &str, ping_status: &str, ping_ms: f64) -> String {
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!(
        "    <registration>\n\
        <call-id>{user}-call-id@{host}</call-id>\n\
        <user>{user}@voip.example.com</user>\n\
        <contact>&quot;{user}&quot; &lt;sip:{user}@{host}:5060;fs_nat=yes&gt;</contact>\n\
        <agent>Yealink SIP-T46S</agent>\n\
        <status>Registered(UDP-NAT)(unknown) exp(2030-01-01 12:00:00) expsecs(300)</status>\n\
        <ping-status>{ping_status}</ping-status>\n\
        <ping-time>{ping_ms:.2}</ping-time>\n\
        <host>fs1</host>\n\
        <network-ip>{ip}</network-ip>\n\
        <network-port>5060</network-port>\n\
        <sip-auth-user>{user}</sip-auth-user>\n\
        <sip-auth-realm>voip.example.com</sip-auth-realm>\n\
        <mwi-account>{user}@voip.example.com</mwi-account>\n\
    </registration>\n"
    )
}

/// A whole `sofia xmlstatus profile P reg` answer.
pub fn xmlstatus_body(registrations: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<profile>\n  <registrations>\n{}  </registrations>\n</profile>\n",
        registrations.concat()
    )
}

impl Default for FakeEslConfig {
    fn default() -> Self {
        FakeEslConfig {
            password: "ClueCon".into(),
            heartbeat: Some(Heartbeat {
                session_count: 17,
                max_sessions: 1000,
                idle_cpu: 97.533333,
            }),
            heartbeat_every: Duration::from_secs(1),
            status_body: STATUS_BODY.into(),
            calls_count_body: "\n17 total.\n".into(),
            max_sessions_body: "+OK max sessions: 1000\n".into(),
            xmlstatus: vec![(
                "internal".into(),
                xmlstatus_body(&[
                    registration_xml("alice", "24.64.1.7", "Reachable", 23.45),
                    registration_xml("bob", "2001:db8::7", "Reachable", 8.0),
                    registration_xml("carol", "198.51.100.3", "Unreachable", 1999.99),
                ]),
            )],
            mode: Mode::Normal,
            crlf: false,
            hangups: Vec::new(),
            hangups_per_sec: 0.0,
        }
    }
}

/// What the server saw.
#[derive(Default)]
pub struct Stats {
    pub connections: AtomicUsize,
    pub open_connections: AtomicUsize,
    pub auth_ok: AtomicUsize,
    pub auth_failed: AtomicUsize,
    pub commands: Mutex<Vec<String>>,
}

pub struct FakeEsl {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    live: Arc<Live>,
    accept: Option<JoinHandle<()>>,
}

/// The configuration in force: connections take a copy when it changes.
struct Live {
    version: AtomicU64,
    config: Mutex<FakeEslConfig>,
    /// Bumped by [`FakeEsl::drop_connections`]: open connections close.
    kicks: AtomicU64,
    /// Event bodies for the next connection subscribed to hang-ups.
    queued: Mutex<std::collections::VecDeque<String>>,
    /// Hang-up events sent, by every connection.
    hangups_sent: AtomicU64,
}

impl Live {
    fn snapshot(&self) -> (u64, FakeEslConfig) {
        let c = self.config.lock().unwrap_or_else(|e| e.into_inner());
        (self.version.load(Ordering::SeqCst), c.clone())
    }
}

impl FakeEsl {
    pub fn start(config: FakeEslConfig) -> FakeEsl {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake ESL listener");
        let addr = listener.local_addr().expect("listener address");
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let live = Arc::new(Live {
            version: AtomicU64::new(0),
            config: Mutex::new(config),
            kicks: AtomicU64::new(0),
            queued: Mutex::new(Default::default()),
            hangups_sent: AtomicU64::new(0),
        });
        let (s, st, l) = (stop.clone(), stats.clone(), live.clone());
        let accept = std::thread::spawn(move || accept_loop(listener, l, s, st));
        FakeEsl {
            addr,
            stats,
            stop,
            live,
            accept: Some(accept),
        }
    }

    /// Changes the configuration of this server: new connections and, from
    /// their next read (within ~20 ms), open ones answer with it (heartbeat
    /// figures, `api` bodies, heartbeat interval).
    pub fn update(&self, f: impl FnOnce(&mut FakeEslConfig)) {
        let mut c = self.live.config.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c);
        self.live.version.fetch_add(1, Ordering::SeqCst);
    }

    /// Closes every open connection (within ~20 ms), as a FreeSWITCH
    /// restart would; new connections are served as usual.
    pub fn drop_connections(&self) {
        self.live.kicks.fetch_add(1, Ordering::SeqCst);
    }

    /// Reports this load from now on, in HEARTBEAT events and `api status`.
    pub fn set_load(&self, session_count: u32, max_sessions: u32, idle_cpu: f64) {
        self.update(|c| {
            c.heartbeat = Some(Heartbeat {
                session_count,
                max_sessions,
                idle_cpu,
            });
            c.status_body = status_body(session_count, max_sessions, idle_cpu);
            c.calls_count_body = format!("\n{session_count} total.\n");
            c.max_sessions_body = format!("+OK max sessions: {max_sessions}\n");
        });
    }

    /// Queues one event body (a header block as [`hangup_body`] makes, or
    /// anything) for the connection subscribed to hang-ups.
    pub fn push_event(&self, body: String) {
        self.live
            .queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(body);
    }

    /// Hang-up events sent so far (configured and queued).
    pub fn hangups_sent(&self) -> u64 {
        self.live.hangups_sent.load(Ordering::SeqCst)
    }

    /// `127.0.0.1:PORT`
    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.stats.open_connections.load(Ordering::SeqCst)
    }

    pub fn commands(&self) -> Vec<String> {
        self.stats
            .commands
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    pub fn count_commands(&self, prefix: &str) -> usize {
        self.commands()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    pub fn stop(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

impl Drop for FakeEsl {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, live: Arc<Live>, stop: Arc<AtomicBool>, stats: Arc<Stats>) {
    let mut conns = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        stats.connections.fetch_add(1, Ordering::SeqCst);
        stats.open_connections.fetch_add(1, Ordering::SeqCst);
        let (version, config) = live.snapshot();
        let kicks = live.kicks.load(Ordering::SeqCst);
        let mut conn = Conn {
            stream,
            config,
            version,
            kicks,
            live: live.clone(),
            stop: stop.clone(),
            stats: stats.clone(),
            held: Vec::new(),
            subscribed: false,
            hangups_subscribed: false,
            hangup_frames: None,
            seq: 0,
        };
        conns.push(std::thread::spawn(move || {
            conn.serve();
            conn.stats.open_connections.fetch_sub(1, Ordering::SeqCst);
        }));
        conns.retain(|h| !h.is_finished());
    }
    for h in conns {
        let _ = h.join();
    }
}

struct Conn {
    stream: TcpStream,
    config: FakeEslConfig,
    /// The [`Live`] version `config` was copied from.
    version: u64,
    /// [`Live::kicks`] when the connection was accepted.
    kicks: u64,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    /// Frames held back in Coalesce mode.
    held: Vec<u8>,
    subscribed: bool,
    hangups_subscribed: bool,
    /// The configured hang-ups as frames (made once per configuration).
    hangup_frames: Option<Vec<Vec<u8>>>,
    seq: u64,
}

/// Why a connection ends.
struct Close;

impl Conn {
    /// The server stops, or its connections were dropped.
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.live.kicks.load(Ordering::SeqCst) != self.kicks
    }

    /// Takes the live configuration if [`FakeEsl::update`] changed it.
    fn refresh(&mut self) {
        if self.live.version.load(Ordering::SeqCst) != self.version {
            (self.version, self.config) = self.live.snapshot();
            self.hangup_frames = None;
        }
    }

    fn serve(&mut self) {
        let _ = self.stream.set_nodelay(true);
        let _ = self.stream.set_write_timeout(Some(Duration::from_secs(2)));
        match self.config.mode {
            Mode::HangAfterAccept => return self.hang(),
            Mode::RudeRejection => {
                let _ = self.send(&frame(
                    &[("Content-Type", "text/rude-rejection")],
                    "Access Denied, go away.\n",
                    self.config.crlf,
                ));
                return;
            }
            _ => {}
        }
        if self
            .send(&frame(
                &[("Content-Type", "auth/request")],
                "",
                self.config.crlf,
            ))
            .is_err()
        {
            return;
        }
        let _ = self.command_loop();
    }

    fn hang(&mut self) {
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(20)));
        let mut buf = [0u8; 1024];
        while !self.stopped() {
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    }

    fn command_loop(&mut self) -> Result<(), Close> {
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(20)));
        let mut input: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        let mut authed = false;
        let mut next_heartbeat = Instant::now() + self.config.heartbeat_every;
        // Hang-ups: sent since `since` at the configured rate.
        let mut since = (Instant::now(), 0u64, 0.0f64);
        while !self.stopped() {
            self.refresh();
            let rate = self.config.hangups_per_sec;
            let wait = if rate > 0.0 { 2 } else { 20 };
            let _ = self
                .stream
                .set_read_timeout(Some(Duration::from_millis(wait)));
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(Close),
                Ok(n) => input.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return Err(Close),
            }
            while let Some((cmd, used)) = split_command(&input) {
                input.drain(..used);
                self.stats
                    .commands
                    .lock()
                    .map_err(|_| Close)?
                    .push(cmd.clone());
                if !authed {
                    authed = self.auth(&cmd)?;
                } else {
                    self.command(&cmd)?;
                }
            }
            if self.subscribed && Instant::now() >= next_heartbeat {
                next_heartbeat = Instant::now() + self.config.heartbeat_every;
                self.heartbeat()?;
            }
            if self.hangups_subscribed {
                if since.2 != rate {
                    since = (Instant::now(), 0, rate);
                }
                let due = (since.0.elapsed().as_secs_f64() * rate) as u64;
                self.hangups(due.saturating_sub(since.1) as usize)?;
                since.1 = due;
            }
        }
        Ok(())
    }

    /// Sends `n` configured hang-ups (in turn) and the queued events, in
    /// one write.
    fn hangups(&mut self, n: usize) -> Result<(), Close> {
        let queued: Vec<String> = self
            .live
            .queued
            .lock()
            .map_err(|_| Close)?
            .drain(..)
            .collect();
        if self.hangup_frames.is_none() {
            let crlf = self.config.crlf;
            let frames = self
                .config
                .hangups
                .iter()
                .enumerate()
                .map(|(i, h)| event_frame(&hangup_body(h, i as u64), crlf))
                .collect();
            self.hangup_frames = Some(frames);
        }
        let frames = self.hangup_frames.as_deref().unwrap_or_default();
        let n = if frames.is_empty() { 0 } else { n };
        if n == 0 && queued.is_empty() {
            return Ok(());
        }
        let mut out = Vec::new();
        for body in &queued {
            out.extend_from_slice(&event_frame(body, self.config.crlf));
        }
        for i in 0..n {
            out.extend_from_slice(&frames[(self.seq as usize + i) % frames.len()]);
        }
        self.seq += n as u64;
        self.live
            .hangups_sent
            .fetch_add((n + queued.len()) as u64, Ordering::SeqCst);
        self.send(&out)
    }

    fn auth(&mut self, cmd: &str) -> Result<bool, Close> {
        let crlf = self.config.crlf;
        match cmd.strip_prefix("auth ") {
            Some(pw) if pw == self.config.password => {
                self.stats.auth_ok.fetch_add(1, Ordering::SeqCst);
                self.reply("+OK accepted")?;
                Ok(true)
            }
            Some(_) => {
                self.stats.auth_failed.fetch_add(1, Ordering::SeqCst);
                self.reply("-ERR invalid")?;
                self.send(&disconnect_notice(crlf))?;
                Err(Close)
            }
            None => {
                self.reply("-ERR command not found")?;
                Ok(false)
            }
        }
    }

    fn command(&mut self, cmd: &str) -> Result<(), Close> {
        if let Some(api) = cmd.strip_prefix("api ") {
            let body = self.api_body(api.trim());
            if self.config.mode == Mode::CloseMidFrame {
                let f = frame(&[("Content-Type", "api/response")], &body, self.config.crlf);
                let _ = self.send(&f[..f.len() - body.len() / 2]);
                return Err(Close);
            }
            let f = frame(&[("Content-Type", "api/response")], &body, self.config.crlf);
            return self.respond(f);
        }
        if let Some(ev) = cmd.strip_prefix("event plain ") {
            if ev
                .split_whitespace()
                .any(|e| e == "HEARTBEAT" || e == "ALL")
            {
                self.subscribed = true;
            }
            if ev
                .split_whitespace()
                .any(|e| e == "CHANNEL_HANGUP_COMPLETE" || e == "ALL")
            {
                self.hangups_subscribed = true;
            }
            return self.reply("+OK event listener enabled plain");
        }
        if cmd == "exit" {
            self.reply("+OK bye")?;
            self.send(&disconnect_notice(self.config.crlf))?;
            return Err(Close);
        }
        self.reply("-ERR command not found")
    }

    fn api_body(&self, api: &str) -> String {
        let words: Vec<&str> = api.split_whitespace().collect();
        match words.as_slice() {
            ["status"] => self.config.status_body.clone(),
            ["show", "calls", "count"] => self.config.calls_count_body.clone(),
            ["fsctl", "max_sessions"] => self.config.max_sessions_body.clone(),
            ["sofia", "xmlstatus", "profile", p, "reg"] => self
                .config
                .xmlstatus
                .iter()
                .find(|(name, _)| name == p)
                .map(|(_, b)| b.clone())
                .unwrap_or_else(|| "Invalid Profile!\n".into()),
            [first, ..] => format!("-ERR {first} Command not found!\n"),
            [] => "-ERR no command\n".into(),
        }
    }

    fn reply(&mut self, text: &str) -> Result<(), Close> {
        let f = frame(
            &[("Content-Type", "command/reply"), ("Reply-Text", text)],
            "",
            self.config.crlf,
        );
        self.respond(f)
    }

    /// A command reply: in Coalesce mode together with held events and a
    /// fresh event after it, in one write.
    fn respond(&mut self, reply: Vec<u8>) -> Result<(), Close> {
        if self.config.mode != Mode::Coalesce {
            return self.send(&reply);
        }
        let mut all = std::mem::take(&mut self.held);
        all.extend_from_slice(&reply);
        if self.subscribed
            && let Some(ev) = self.heartbeat_frame()
        {
            all.extend_from_slice(&ev);
        }
        self.send(&all)
    }

    fn heartbeat(&mut self) -> Result<(), Close> {
        let Some(ev) = self.heartbeat_frame() else {
            return Ok(());
        };
        if self.config.mode == Mode::Coalesce {
            self.held.extend_from_slice(&ev);
            if self.held.len() < 3 * ev.len() {
                return Ok(());
            }
            let all = std::mem::take(&mut self.held);
            return self.send(&all);
        }
        self.send(&ev)
    }

    fn heartbeat_frame(&mut self) -> Option<Vec<u8>> {
        let hb = self.config.heartbeat.clone()?;
        self.seq += 1;
        let body = heartbeat_body(&hb, self.seq);
        Some(event_frame(&body, self.config.crlf))
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), Close> {
        match self.config.mode {
            Mode::Slow(d) => std::thread::sleep(d),
            Mode::ByteByByte => {
                for b in bytes {
                    self.stream
                        .write_all(std::slice::from_ref(b))
                        .map_err(|_| Close)?;
                    self.stream.flush().map_err(|_| Close)?;
                    std::thread::sleep(Duration::from_micros(30));
                }
                return Ok(());
            }
            _ => {}
        }
        self.stream.write_all(bytes).map_err(|_| Close)
    }
}

/// A complete command (`line\n\n`); tolerates `\r\n`.
fn split_command(input: &[u8]) -> Option<(String, usize)> {
    let text = std::str::from_utf8(input).ok()?;
    let (end, sep) = [("\n\n", 2), ("\r\n\r\n", 4)]
        .iter()
        .filter_map(|(pat, len)| text.find(pat).map(|p| (p, *len)))
        .min()?;
    Some((text[..end].trim().to_string(), end + sep))
}

fn eol(s: &str, crlf: bool) -> String {
    if crlf {
        s.replace('\n', "\r\n")
    } else {
        s.to_string()
    }
}

/// A frame: headers (plus Content-Length when there is a body), empty line, body.
pub fn frame(headers: &[(&str, &str)], body: &str, crlf: bool) -> Vec<u8> {
    let mut head = String::new();
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\n", body.len()));
    }
    head.push('\n');
    let mut f = eol(&head, crlf).into_bytes();
    f.extend_from_slice(body.as_bytes());
    f
}

fn disconnect_notice(crlf: bool) -> Vec<u8> {
    frame(
        &[("Content-Type", "text/disconnect-notice")],
        "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n",
        crlf,
    )
}

/// A `text/event-plain` frame; events carry Content-Length first.
pub fn event_frame(body: &str, crlf: bool) -> Vec<u8> {
    let head = format!(
        "Content-Length: {}\nContent-Type: text/event-plain\n\n",
        body.len()
    );
    let mut f = eol(&head, crlf).into_bytes();
    f.extend_from_slice(body.as_bytes());
    f
}

/// The body of a CHANNEL_HANGUP_COMPLETE event in plain format, as
/// FreeSWITCH 1.10 sends it for a call that ended normally: the event and
/// caller-profile headers, then every channel variable as `variable_*`
/// (URL-encoded values): about 5 KB.
pub fn hangup_body(h: &Hangup, seq: u64) -> String {
    let uuid = format!(
        "{seq:08x}-6a1b-4c2d-8e3f-{:012x}",
        seq.wrapping_mul(2654435761)
    );
    let ip = h.client_ip.as_str();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: String| headers.push((k.to_string(), v));
    for (k, v) in [
        ("Event-Name", "CHANNEL_HANGUP_COMPLETE"),
        ("Core-UUID", "5b2a4f3e-0c1d-4e8f-9a7b-1c2d3e4f5a6b"),
        ("FreeSWITCH-Hostname", "fs1.example.com"),
        ("FreeSWITCH-Switchname", "fs1.example.com"),
        ("FreeSWITCH-IPv4", "127.0.0.1"),
        ("FreeSWITCH-IPv6", "::1"),
        ("Event-Date-Local", "2030-01-01 12:00:00"),
        ("Event-Date-GMT", "Tue, 01 Jan 2030 12:00:00 GMT"),
        ("Event-Date-Timestamp", "1893499200000000"),
        ("Event-Calling-File", "switch_core_state_machine.c"),
        (
            "Event-Calling-Function",
            "switch_core_session_reporting_state",
        ),
        ("Event-Calling-Line-Number", "946"),
        ("Hangup-Cause", "NORMAL_CLEARING"),
        ("Channel-State", "CS_REPORTING"),
        ("Channel-Call-State", "HANGUP"),
        ("Channel-State-Number", "11"),
        ("Channel-Name", "sofia/internal/1001@voip.example.com"),
        ("Answer-State", "hangup"),
        ("Call-Direction", h.direction.as_str()),
        ("Presence-Call-Direction", h.direction.as_str()),
        ("Channel-HIT-Dialplan", "true"),
        ("Channel-Call-UUID", uuid.as_str()),
        ("Caller-Direction", h.direction.as_str()),
        ("Caller-Logical-Direction", h.direction.as_str()),
        ("Caller-Username", "1001"),
        ("Caller-Dialplan", "XML"),
        ("Caller-Caller-ID-Name", "Alice Example"),
        ("Caller-Caller-ID-Number", "1001"),
        ("Caller-Orig-Caller-ID-Name", "Alice Example"),
        ("Caller-Orig-Caller-ID-Number", "1001"),
        ("Caller-Network-Addr", ip),
        ("Caller-ANI", "1001"),
        ("Caller-Destination-Number", "5551234"),
        ("Caller-Unique-ID", uuid.as_str()),
        ("Caller-Source", "mod_sofia"),
        ("Caller-Context", "default"),
        (
            "Caller-Channel-Name",
            "sofia/internal/1001@voip.example.com",
        ),
        ("Caller-Profile-Index", "1"),
        ("Caller-Profile-Created-Time", "1893499100000000"),
        ("Caller-Channel-Created-Time", "1893499100000000"),
        ("Caller-Channel-Answered-Time", "1893499102000000"),
        ("Caller-Channel-Hangup-Time", "1893499200000000"),
        ("Caller-Screen-Bit", "true"),
        ("Caller-Privacy-Hide-Name", "false"),
        ("Caller-Privacy-Hide-Number", "false"),
        ("Unique-ID", uuid.as_str()),
    ] {
        add(k, v.to_string());
    }
    let call_id = format!("{uuid}@{ip}");
    let vars: Vec<(&str, String)> = vec![
        ("direction", h.direction.clone()),
        ("uuid", uuid.clone()),
        ("session_id", seq.to_string()),
        ("sip_from_user", "1001".into()),
        ("sip_from_uri", "1001@voip.example.com".into()),
        ("sip_from_host", "voip.example.com".into()),
        (
            "channel_name",
            "sofia/internal/1001@voip.example.com".into(),
        ),
        ("sip_call_id", call_id.clone()),
        ("sip_local_network_addr", "192.0.2.10".into()),
        ("sip_network_ip", ip.to_string()),
        ("sip_network_port", "5060".into()),
        ("sip_received_ip", ip.to_string()),
        ("sip_received_port", "5060".into()),
        ("sip_via_protocol", "udp".into()),
        ("sip_authorized", "true".into()),
        ("sip_acl_authed_by", "domains".into()),
        ("sip_from_user_stripped", "1001".into()),
        ("sip_from_tag", "a73kszlfl".into()),
        ("sofia_profile_name", "internal".into()),
        ("sofia_profile_url", "sip:mod_sofia@192.0.2.10:5060".into()),
        ("recovery_profile_name", "internal".into()),
        (
            "sip_full_via",
            format!("SIP/2.0/UDP {ip}:5060;rport=5060;branch=z9hG4bK-524287-1---77ba8e1e1b3b"),
        ),
        ("sip_from_display", "Alice Example".into()),
        (
            "sip_full_from",
            "\"Alice Example\" <sip:1001@voip.example.com>;tag=a73kszlfl".into(),
        ),
        (
            "sip_full_to",
            "<sip:5551234@voip.example.com>;tag=Bg2Q2vX8j8mDc".into(),
        ),
        (
            "sip_allow",
            "INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE".into(),
        ),
        ("sip_req_user", "5551234".into()),
        ("sip_req_uri", "5551234@voip.example.com".into()),
        ("sip_req_host", "voip.example.com".into()),
        ("sip_to_user", "5551234".into()),
        ("sip_to_uri", "5551234@voip.example.com".into()),
        ("sip_to_host", "voip.example.com".into()),
        ("sip_contact_user", "1001".into()),
        ("sip_contact_port", "5060".into()),
        ("sip_contact_uri", format!("1001@{ip}:5060")),
        ("sip_contact_host", ip.to_string()),
        ("sip_user_agent", "Yealink SIP-T46S 66.86.0.15".into()),
        ("sip_via_host", ip.to_string()),
        ("sip_via_port", "5060".into()),
        ("sip_via_rport", "5060".into()),
        ("max_forwards", "70".into()),
        ("presence_id", "1001@voip.example.com".into()),
        (
            "switch_r_sdp",
            format!(
                "v=0\r\no=- 20018 20018 IN IP4 {ip}\r\ns=SDP data\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 11796 RTP/AVP 0 8 18 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\na=rtpmap:9 G722/8000\r\na=fmtp:101 0-15\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
            ),
        ),
        ("rtp_remote_audio_rtcp_port", "11797".into()),
        ("rtp_audio_recv_pt", "0".into()),
        ("rtp_use_codec_name", "PCMU".into()),
        ("rtp_use_codec_rate", "8000".into()),
        ("rtp_use_codec_ptime", "20".into()),
        ("rtp_use_codec_channels", "1".into()),
        ("rtp_last_audio_codec_string", "PCMU@8000h@20i@1c".into()),
        ("read_codec", "PCMU".into()),
        ("original_read_codec", "PCMU".into()),
        ("read_rate", "8000".into()),
        ("original_read_rate", "8000".into()),
        ("write_codec", "PCMU".into()),
        ("write_rate", "8000".into()),
        ("dtmf_type", "rfc2833".into()),
        ("local_media_ip", "192.0.2.10".into()),
        ("local_media_port", "24590".into()),
        ("advertised_media_ip", "192.0.2.10".into()),
        ("rtp_use_pt", "0".into()),
        ("rtp_use_ssrc", "1470012345".into()),
        ("rtp_2833_send_payload", "101".into()),
        ("rtp_2833_recv_payload", "101".into()),
        ("remote_media_ip", ip.to_string()),
        ("remote_media_port", "11796".into()),
        (
            "rtp_local_sdp_str",
            "v=0\r\no=FreeSWITCH 1893470000 1893470001 IN IP4 192.0.2.10\r\ns=FreeSWITCH\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 24590 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\na=rtcp:24591 IN IP4 192.0.2.10\r\n"
            .into(),
        ),
        ("endpoint_disposition", "ANSWER".into()),
        ("current_application", "bridge".into()),
        ("hangup_cause", "NORMAL_CLEARING".into()),
        ("hangup_cause_q850", "16".into()),
        ("digits_dialed", "none".into()),
        ("start_stamp", "2030-01-01 11:58:20".into()),
        ("profile_start_stamp", "2030-01-01 11:58:20".into()),
        ("answer_stamp", "2030-01-01 11:58:22".into()),
        ("progress_media_stamp", "2030-01-01 11:58:21".into()),
        ("end_stamp", "2030-01-01 12:00:00".into()),
        ("start_epoch", "1893499100".into()),
        ("start_uepoch", "1893499100000000".into()),
        ("answer_epoch", "1893499102".into()),
        ("answer_uepoch", "1893499102000000".into()),
        ("end_epoch", "1893499200".into()),
        ("end_uepoch", "1893499200000000".into()),
        ("last_app", "bridge".into()),
        ("last_arg", "sofia/gateway/carrier/5551234".into()),
        ("caller_id", "\"Alice Example\" <1001>".into()),
        ("duration", "100".into()),
        ("billsec", "98".into()),
        ("progresssec", "1".into()),
        ("answersec", "2".into()),
        ("waitsec", "2".into()),
        ("progress_mediasec", "1".into()),
        ("flow_billsec", "100".into()),
        ("mduration", "100000".into()),
        ("billmsec", "98000".into()),
        ("progressmsec", "1000".into()),
        ("answermsec", "2000".into()),
        ("waitmsec", "2000".into()),
        ("uduration", "100000000".into()),
        ("billusec", "98000000".into()),
        ("sip_hangup_phrase", "OK".into()),
        ("last_bridge_hangup_cause", "NORMAL_CLEARING".into()),
        ("last_bridge_proto_specific_hangup_cause", "sip:200".into()),
        ("sip_hangup_disposition", "recv_bye".into()),
    ];
    for (k, v) in vars {
        add(&format!("variable_{k}"), v);
    }
    if let Some(mos) = &h.mos {
        let received = h.media_packets + 50;
        for (k, v) in [
            ("rtp_audio_in_raw_bytes", (received * 172).to_string()),
            (
                "rtp_audio_in_media_bytes",
                (h.media_packets * 172).to_string(),
            ),
            ("rtp_audio_in_packet_count", received.to_string()),
            (
                "rtp_audio_in_media_packet_count",
                h.media_packets.to_string(),
            ),
            ("rtp_audio_in_skip_packet_count", "3".into()),
            ("rtp_audio_in_jitter_packet_count", "0".into()),
            ("rtp_audio_in_dtmf_packet_count", "0".into()),
            ("rtp_audio_in_cng_packet_count", "0".into()),
            ("rtp_audio_in_flush_packet_count", "0".into()),
            ("rtp_audio_in_largest_jb_size", "0".into()),
            ("rtp_audio_in_jitter_min_variance", "0.45".into()),
            (
                "rtp_audio_in_jitter_max_variance",
                format!("{:.2}", h.jitter_max_ms),
            ),
            ("rtp_audio_in_jitter_loss_rate", "0.00".into()),
            ("rtp_audio_in_jitter_burst_rate", "0.00".into()),
            ("rtp_audio_in_mean_interval", "20.00".into()),
            ("rtp_audio_in_flaw_total", h.flaws.to_string()),
            ("rtp_audio_in_quality_percentage", "98.00".into()),
            ("rtp_audio_in_mos", mos.clone()),
            ("rtp_audio_out_raw_bytes", (received * 172).to_string()),
            ("rtp_audio_out_media_bytes", (received * 172).to_string()),
            ("rtp_audio_out_packet_count", received.to_string()),
            ("rtp_audio_out_media_packet_count", received.to_string()),
            ("rtp_audio_out_skip_packet_count", "0".into()),
            ("rtp_audio_out_dtmf_packet_count", "0".into()),
            ("rtp_audio_out_cng_packet_count", "0".into()),
            ("rtp_audio_rtcp_packet_count", "20".into()),
            ("rtp_audio_rtcp_octet_count", "1600".into()),
        ] {
            add(&format!("variable_{k}"), v);
        }
    }
    let mut body = String::new();
    for (k, v) in headers {
        body.push_str(&format!("{k}: {}\n", url_encode(&v)));
    }
    body.push('\n');
    body
}

/// The body of a HEARTBEAT event in plain format (URL-encoded values).
pub fn heartbeat_body(hb: &Heartbeat, seq: u64) -> String {
    let headers: Vec<(&str, String)> = vec![
        ("Event-Name", "HEARTBEAT".into()),
        ("Core-UUID", "5b2a4f3e-0c1d-4e8f-9a7b-1c2d3e4f5a6b".into()),
        ("FreeSWITCH-Hostname", "fs1.example.com".into()),
        ("FreeSWITCH-Switchname", "fs1.example.com".into()),
        ("FreeSWITCH-IPv4", "127.0.0.1".into()),
        ("FreeSWITCH-IPv6", "::1".into()),
        ("Event-Date-Local", "2030-01-01 12:00:00".into()),
        ("Event-Date-GMT", "Tue, 01 Jan 2030 12:00:00 GMT".into()),
        ("Event-Date-Timestamp", "1893499200000000".into()),
        ("Event-Calling-File", "switch_core.c".into()),
        ("Event-Calling-Function", "send_heartbeat".into()),
        ("Event-Calling-Line-Number", "79".into()),
        ("Event-Sequence", seq.to_string()),
        ("Event-Info", "System Ready".into()),
        (
            "Up-Time",
            "0 years, 2 days, 3 hours, 4 minutes, 5 seconds, 6 milliseconds, 7 microseconds".into(),
        ),
        ("FreeSWITCH-Version", "1.10.12-release~64bit".into()),
        ("Uptime-msec", "183845006".into()),
        ("Session-Count", hb.session_count.to_string()),
        ("Max-Sessions", hb.max_sessions.to_string()),
        ("Session-Per-Sec", "30".into()),
        ("Session-Per-Sec-Last", "2".into()),
        ("Session-Per-Sec-Max", "9".into()),
        ("Session-Per-Sec-FiveMin", "3".into()),
        ("Session-Since-Startup", "1234".into()),
        ("Session-Peak-Max", "40".into()),
        ("Session-Peak-FiveMin", "21".into()),
        ("Idle-CPU", format!("{:.6}", hb.idle_cpu)),
    ];
    let mut body = String::new();
    for (k, v) in headers {
        body.push_str(&format!("{k}: {}\n", url_encode(&v)));
    }
    body.push('\n');
    body
}

/// Percent-encodes like switch_url_encode: everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
