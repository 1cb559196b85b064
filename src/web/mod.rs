//! The collector's read-only HTTP server (`[collector] http`): `/metrics`
//! (what `pdns-ha status --prometheus` gives, then the collector's own
//! figures, [`prometheus`]) and `/status.json` (what `status --json` gives),
//! both through `report`, the same code path as the CLI, and `/`, the status
//! page ([`page`]: what it shows and its HTML; [`view`]: gathering it;
//! [`history`]: the last hour of each node for its charts). GET and HEAD
//! only: nothing can be changed over HTTP.
//!
//! Threads: `tiny_http` reads each connection in a thread of its own;
//! [`HANDLERS`] threads here answer the requests, each with its own read
//! connection to the database, so a slow client or a slow read never
//! touches the collector's writer. A client that does not read its answer
//! holds a handler for at most [`WRITE_TIMEOUT`]. `tiny_http`'s thread pool
//! can leave a new connection queued behind one that never sends (when two
//! arrive together, one wake-up is lost): every [`NUDGE_EVERY`] the server
//! connects to itself [`NUDGE_CONNECTIONS`] times, and each such connection
//! gets one queued connection picked up.
//!
//! [`Http::follow`] makes the server match the site's address: a new
//! address rebinds; a bind that fails is logged with what to do and tried
//! again every [`RETRY_BIND`], and the collector goes on without HTTP.

pub mod history;
pub mod page;
pub mod prometheus;
pub mod view;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::answer::Engine;
use crate::collector::CollectorStats;
use crate::store::Store;
use history::History;

/// Threads answering requests: a client that does not read its answer holds
/// one of them (until it goes away); the other still answers.
pub const HANDLERS: usize = 2;
/// A client that does not read its answer is given up after this long: the
/// send timeout of the listening socket, which the connections it accepts
/// inherit (`tiny_http` sets none; a read timeout cannot be set that way,
/// it would end `accept`).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server connects to itself (see the module documentation)...
pub const NUDGE_EVERY: Duration = Duration::from_secs(1);
/// ... and how many times: queued connections are picked up at this rate.
pub const NUDGE_CONNECTIONS: usize = 4;
/// After a failed bind (or a server that stopped accepting), the next try.
pub const RETRY_BIND: Duration = Duration::from_secs(30);
/// Longest a handler waits for a request before looking at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// How long a rebind or a shutdown waits for the handlers to finish.
const STOP_WAIT: Duration = Duration::from_millis(1000);
/// How long a handler waits for a writer's lock on the database.
const BUSY: Duration = Duration::from_millis(1000);

struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Set by a handler when the server stopped accepting connections.
    broken: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

/// The HTTP server of a collector, following the site's `[collector] http`.
pub struct Http {
    db: PathBuf,
    stats: Arc<CollectorStats>,
    /// The status page's last hour, recorded by the request threads (kept
    /// across a rebind).
    history: Arc<Mutex<History>>,
    running: Option<Running>,
    /// The address that could not be bound, and when it was last tried.
    failed: Option<(SocketAddr, Instant)>,
}

impl Http {
    /// No server yet: [`Http::follow`] starts one.
    pub fn new(db: &Path, stats: Arc<CollectorStats>) -> Http {
        Http {
            db: db.to_path_buf(),
            stats,
            history: Arc::new(Mutex::new(History::default())),
            running: None,
            failed: None,
        }
    }

    /// The address served now, if any.
    pub fn serving(&self) -> Option<SocketAddr> {
        self.running.as_ref().map(|r| r.addr)
    }

    /// Makes the server match `want` (None: no server). Cheap when nothing
    /// changed; call it every few seconds: a server that stopped accepting
    /// is restarted, a failed bind tried again every [`RETRY_BIND`].
    pub fn follow(&mut self, want: Option<SocketAddr>) {
        let broken = self
            .running
            .as_ref()
            .is_some_and(|r| r.broken.load(Ordering::SeqCst));
        if let Some(r) = &self.running
            && (Some(r.addr) != want || broken)
        {
            let addr = r.addr;
            if !broken {
                info!("HTTP: no longer serving on {addr} (site changed)");
            }
            self.stop();
            if broken {
                // Started again after RETRY_BIND, as the handler said.
                self.failed = Some((addr, Instant::now()));
            }
        }
        let Some(addr) = want else {
            self.failed = None;
            return;
        };
        if self.running.is_some() {
            return;
        }
        let retry = match self.failed {
            Some((a, at)) if a == addr => at.elapsed() >= RETRY_BIND,
            _ => true,
        };
        if retry {
            self.start(addr);
        }
    }

    fn start(&mut self, addr: SocketAddr) {
        let again = self.failed.is_some_and(|(a, _)| a == addr);
        let server = match listen(addr).and_then(|l| {
            Server::from_listener(l, None).map_err(|e| std::io::Error::other(e.to_string()))
        }) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                let msg = format!(
                    "HTTP: cannot listen on {addr} ([collector] http): {e}; /metrics and /status.json are not served, collecting goes on. \
                     Free the port (`ss -ltnp 'sport = :{}'` shows who holds it) or set another address in the site file and run `pdns-ha apply`; trying again every {} s",
                    addr.port(),
                    RETRY_BIND.as_secs()
                );
                if again {
                    debug!("{msg}");
                } else {
                    error!("{msg}");
                }
                self.failed = Some((addr, Instant::now()));
                return;
            }
        };
        self.failed = None;
        let stop = Arc::new(AtomicBool::new(false));
        let broken = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for i in 0..HANDLERS {
            let (server, stop, broken) = (server.clone(), stop.clone(), broken.clone());
            // The first handler nudges the pool; the address to connect to.
            let nudge = (i == 0).then(|| nudge_addr(addr));
            let (db, stats, history) = (self.db.clone(), self.stats.clone(), self.history.clone());
            match std::thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn(move || {
                    // Made here: the engine stays in its thread.
                    let mut handler = Handler {
                        db,
                        stats,
                        history,
                        store: None,
                        engine: None,
                        last_warning: None,
                    };
                    handler.serve(&server, &stop, &broken, nudge)
                }) {
                Ok(h) => handles.push(h),
                Err(e) => error!("HTTP: cannot start a request thread: {e}"),
            }
        }
        if handles.is_empty() {
            self.failed = Some((addr, Instant::now()));
            return;
        }
        if addr.ip().is_loopback() {
            info!("HTTP: serving the status page, /metrics and /status.json on http://{addr}/");
        } else {
            warn!(
                "HTTP: serving the status page, /metrics and /status.json on http://{addr}/, which is reachable from the network \
                 (not a loopback address): anyone who can connect reads node names, health and load. \
                 Firewall the port, or listen on 127.0.0.1 behind a proxy"
            );
        }
        self.running = Some(Running {
            addr,
            stop,
            broken,
            handles,
        });
    }

    /// Stops the server; waits a bounded time for its threads.
    pub fn stop(&mut self) {
        let Some(r) = self.running.take() else {
            return;
        };
        r.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + STOP_WAIT;
        while Instant::now() < deadline && !r.handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut left = 0;
        for h in r.handles {
            if h.is_finished() {
                let _ = h.join();
            } else {
                left += 1;
            }
        }
        if left > 0 {
            // A client that does not read its answer: the thread ends when
            // the client goes away, and the listening socket with it.
            debug!("HTTP: {left} request thread(s) still writing to a client; not waiting");
        }
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request thread: its own database connection and engine.
struct Handler {
    db: PathBuf,
    stats: Arc<CollectorStats>,
    history: Arc<Mutex<History>>,
    store: Option<Store>,
    engine: Option<Engine>,
    last_warning: Option<Instant>,
}

impl Handler {
    fn serve(
        &mut self,
        server: &Server,
        stop: &AtomicBool,
        broken: &AtomicBool,
        nudge: Option<SocketAddr>,
    ) {
        let mut nudged = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            self.sample();
            if let Some(a) = nudge
                && nudged.elapsed() >= NUDGE_EVERY
            {
                // Connected and closed at once: tiny_http reads its end and
                // drops it; the thread that took it then takes the next
                // queued connection.
                for _ in 0..NUDGE_CONNECTIONS {
                    if std::net::TcpStream::connect_timeout(&a, STOP_CHECK).is_err() {
                        break;
                    }
                }
                nudged = Instant::now();
            }
            match server.recv_timeout(STOP_CHECK) {
                Ok(Some(rq)) => self.answer(rq),
                Ok(None) => {}
                Err(e) => {
                    error!(
                        "HTTP: the server stopped accepting connections ({e}); starting it again in {} s",
                        RETRY_BIND.as_secs()
                    );
                    broken.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }

    fn answer(&mut self, rq: Request) {
        let method = rq.method().clone();
        let path = rq.url().split('?').next().unwrap_or("").to_string();
        debug!(
            "HTTP: {method} {} from {:?}",
            crate::text::quote(&path),
            rq.remote_addr()
        );
        let r = if !matches!(method, Method::Get | Method::Head) {
            text(
                405,
                "only GET and HEAD: this server is read-only (change the site with `pdns-ha apply`, drains with `pdns-ha node`)\n",
            )
            .with_header(header("Allow", "GET, HEAD"))
        } else {
            match path.as_str() {
                "/metrics" => Response::from_string(self.metrics())
                    .with_header(header("Content-Type", prometheus::CONTENT_TYPE)),
                "/" => Response::from_string(self.page())
                    .with_header(header("Content-Type", "text/html; charset=utf-8"))
                    .with_header(header("Cache-Control", "no-store")),
                "/status.json" => match self.status_json() {
                    Ok(j) => Response::from_string(j)
                        .with_header(header("Content-Type", "application/json")),
                    Err(e) => text(503, &format!("{e}\n")),
                },
                _ => text(
                    404,
                    "not found: this server has / (the status page), /metrics and /status.json\n",
                ),
            }
        };
        // The client may be gone; nothing to do about it.
        let _ = rq.respond(r);
    }

    /// The status, read through this thread's own connection (opened on
    /// first use, dropped after an error and opened again next time).
    fn status(&mut self) -> anyhow::Result<crate::report::Status> {
        if self.store.is_none() {
            self.store = Some(Store::open_existing(&self.db, BUSY)?);
        }
        let engine = self.engine.get_or_insert_with(|| view::engine(&self.db));
        let r = crate::report::status_of(self.store.as_ref().expect("opened"), engine);
        if r.is_err() {
            self.store = None;
        }
        r
    }

    /// This thread's engine (no decision cache: see [`view::engine`]).
    fn engine(&mut self) -> &mut Engine {
        self.engine.get_or_insert_with(|| view::engine(&self.db))
    }

    /// Records the nodes' load and probe round trip in the page's history
    /// once per step (whichever request thread comes first), from the
    /// engine's view of the store.
    fn sample(&mut self) {
        let now = crate::metrics::now();
        if !self
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .due(now)
        {
            return;
        }
        let engine = self.engine();
        engine.refresh();
        let samples = view::samples(engine.topo(), &engine.view.states, now);
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(now, samples.iter().map(|(n, s)| (n.as_str(), *s)));
    }

    /// The status page: gathered through this thread's engine (a bounded
    /// amount of work, see [`view`]) and rendered.
    fn page(&mut self) -> String {
        let now = crate::metrics::now();
        let history = Arc::clone(&self.history);
        // Held while gathering (milliseconds): the other request thread
        // only waits for it to record a step.
        let history = history.lock().unwrap_or_else(|e| e.into_inner());
        page::render(&view::gather(self.engine(), &history, now))
    }

    fn warn_unreadable(&mut self, e: &anyhow::Error) {
        if self
            .last_warning
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            warn!("HTTP: cannot read the status from the database: {e:#}");
            self.last_warning = Some(Instant::now());
        }
    }

    /// `status --prometheus`, then the collector's figures; the collector's
    /// are there even when the database cannot be read.
    fn metrics(&mut self) -> String {
        let mut out = match self.status() {
            Ok(s) => s.prometheus(),
            Err(e) => {
                self.warn_unreadable(&e);
                String::new()
            }
        };
        let readable = !out.is_empty();
        out.push_str(
            "# HELP pdns_ha_status_readable 1 if the database could be read for this scrape (else only the collector's own figures follow).\n\
             # TYPE pdns_ha_status_readable gauge\n",
        );
        out.push_str(&format!("pdns_ha_status_readable {}\n", u8::from(readable)));
        prometheus::collector(&self.stats.snapshot(), &mut out);
        out
    }

    fn status_json(&mut self) -> Result<String, String> {
        match self.status() {
            Ok(s) => serde_json::to_string_pretty(&s)
                .map(|j| j + "\n")
                .map_err(|e| format!("cannot write the status as JSON: {e}")),
            Err(e) => {
                self.warn_unreadable(&e);
                Err(format!(
                    "cannot read the status from the database: {e:#}; see the collector's log"
                ))
            }
        }
    }
}

/// Where the server itself connects to reach `addr` (loopback for an
/// unspecified address).
fn nudge_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

/// A listening socket on `addr` whose connections time out writing after
/// [`WRITE_TIMEOUT`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = TcpListener::bind(addr)?;
    if let Err(e) = set_send_timeout(&l, WRITE_TIMEOUT) {
        warn!(
            "HTTP: cannot set a send timeout on {addr} ({e}): a client that does not read its answer holds a request thread until it goes away"
        );
    }
    Ok(l)
}

fn set_send_timeout(l: &TcpListener, d: Duration) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt reads `size_of::<timeval>()` bytes from `tv`, a
    // valid timeval that outlives the call, for the socket `l` owns.
    let r = unsafe {
        libc::setsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

fn text(code: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(code)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_connections_inherit_the_send_timeout() {
        let l = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (accepted, _) = l.accept().unwrap();
        assert_eq!(accepted.write_timeout().unwrap(), Some(WRITE_TIMEOUT));
        assert_eq!(accepted.read_timeout().unwrap(), None);
    }

    #[test]
    fn without_a_database_metrics_still_has_the_collector_figures() {
        let stats = Arc::new(CollectorStats::new());
        stats.stored(3, Duration::from_millis(1));
        let mut h = Handler {
            db: PathBuf::from("/nonexistent/pdns-ha.db"),
            stats,
            history: Arc::default(),
            store: None,
            engine: None,
            last_warning: None,
        };
        let m = h.metrics();
        assert!(m.contains("pdns_ha_status_readable 0\n"), "{m}");
        assert!(
            m.contains("pdns_ha_collector_samples_written_total 3\n"),
            "{m}"
        );
        assert!(!m.contains("pdns_ha_generation"), "{m}");
        let e = h.status_json().unwrap_err();
        assert!(e.contains("cannot read the status"), "{e}");
    }

    #[test]
    fn a_database_gives_status_json_and_the_status_metrics() {
        let db = crate::store::testing::TempDb::new("web-status");
        db.apply(crate::store::testing::ONE_NODE);
        let mut h = Handler {
            db: db.path.clone(),
            stats: Arc::new(CollectorStats::new()),
            history: Arc::default(),
            store: None,
            engine: None,
            last_warning: None,
        };
        let m = h.metrics();
        assert!(m.contains("pdns_ha_status_readable 1\n"), "{m}");
        assert!(
            m.contains("pdns_ha_node_health{node=\"a\",state=\"unknown\"} 1\n"),
            "{m}"
        );
        let j: serde_json::Value = serde_json::from_str(&h.status_json().unwrap()).unwrap();
        assert_eq!(j["nodes"][0]["name"], "a");
        // The page, and the history its charts are drawn from: one step
        // recorded once, whichever thread comes first.
        h.sample();
        assert_eq!(h.history.lock().unwrap().len(), 1);
        let page = h.page();
        assert!(
            page.contains("data-node=\"a\" data-health=\"unknown\" data-drained=\"no\""),
            "{page}"
        );
        assert_eq!(page.matches("<svg class=\"history\"").count(), 1);
    }

    #[test]
    fn a_taken_address_is_retried_later_and_none_stops_following() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let mut http = Http::new(
            Path::new("/nonexistent.db"),
            Arc::new(CollectorStats::new()),
        );
        http.follow(Some(addr));
        assert_eq!(http.serving(), None);
        assert!(http.failed.is_some_and(|(a, _)| a == addr));
        http.follow(None);
        assert!(http.failed.is_none());
        // A free address is served; another one rebinds.
        drop(taken);
        http.follow(Some(addr));
        assert_eq!(http.serving(), Some(addr));
        let other = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        http.follow(Some(other));
        assert_eq!(http.serving(), Some(other));
        http.stop();
        assert_eq!(http.serving(), None);
    }
}
