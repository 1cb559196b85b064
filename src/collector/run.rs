//! The runtime behind [`super::run`]: one ESL worker thread per node with an
//! event socket, one prober thread for every `sip_probe`, and the writer loop
//! in the calling thread. Workers and prober send [`Metric`]s over a channel;
//! the writer batches them into `sink.store` and keeps what it could not store.
//! All of them record their figures in the shared [`CollectorStats`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use log::{debug, error, info, warn};

use super::esl::{EslClient, EslError, Event};
use super::freeswitch;
use super::health::HealthTracker;
use super::sip::{self, ProbeOutcome, Probed, SipTarget};
use super::stats::CollectorStats;
use super::tls::{self, TlsProbe};
use super::{CollectorConfig, EslTarget, MetricSink, Target};
use crate::metrics::{Health, Metric, now};
use crate::net::Prefix;

/// How often `reload` is asked whether the site changed.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// With nothing to write, the store still gets the heartbeat this often.
const IDLE_HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// Longest a thread sleeps or blocks before looking at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// How long shutdown waits for threads before leaving them to exit alone.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(1000);
/// Longest a worker waits for an event before looking at its timers.
const EVENT_WAIT: Duration = Duration::from_millis(250);

pub(super) fn run_collector(
    config: CollectorConfig,
    targets: Vec<Target>,
    reload: &mut dyn FnMut() -> anyhow::Result<Option<(CollectorConfig, Vec<Target>)>>,
    sink: &mut dyn MetricSink,
    stop: &AtomicBool,
    stats: Arc<CollectorStats>,
) -> anyhow::Result<()> {
    config
        .validate()
        .map_err(|e| anyhow!(e))
        .context("the [collector] table of the site file is invalid")?;
    let (tx, rx) = mpsc::channel();
    let mut writer = Writer::new(config.max_pending_samples, stats.clone());
    let mut fleet = Fleet::new(config, tx, stats);
    fleet.apply(fleet.config.clone(), targets);
    info!("collector started: {}", fleet.summary());

    let mut next_flush = Instant::now() + fleet.config.batch_interval();
    let mut next_reload = Instant::now() + RELOAD_EVERY;
    while !stop.load(Ordering::SeqCst) {
        let wait = next_flush
            .min(next_reload)
            .saturating_duration_since(Instant::now());
        writer.receive(&rx, wait.min(STOP_CHECK), &fleet.nodes);
        let t = Instant::now();
        if t >= next_flush {
            writer.flush_due(sink);
            next_flush = t + fleet.config.batch_interval();
        }
        if t >= next_reload {
            match reload() {
                Ok(Some((config, targets))) => {
                    if let Err(e) = config.validate() {
                        error!(
                            "site changed but its [collector] table is invalid ({e}); keeping the running configuration"
                        );
                    } else {
                        fleet.apply(config, targets);
                        writer.set_limit(fleet.config.max_pending_samples);
                        writer.forget_other_nodes(&fleet.nodes);
                        info!("site changed: {}", fleet.summary());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warn!("cannot reload the site ({e:#}); keeping the running configuration")
                }
            }
            next_reload = t + RELOAD_EVERY;
        }
    }
    info!("collector stopping");
    fleet.shutdown();
    writer.receive(&rx, Duration::ZERO, &fleet.nodes);
    writer.final_flush(sink);
    Ok(())
}

// ---------------------------------------------------------------------------
// Writer: batches and keeps unstored samples.

struct Writer {
    pending: VecDeque<Metric>,
    limit: usize,
    dropped: u64,
    last_drop_warning: Option<Instant>,
    failing: bool,
    last_store: Instant,
    stats: Arc<CollectorStats>,
}

impl Writer {
    fn new(limit: usize, stats: Arc<CollectorStats>) -> Writer {
        Writer {
            stats,
            pending: VecDeque::new(),
            limit,
            dropped: 0,
            last_drop_warning: None,
            failing: false,
            last_store: Instant::now(),
        }
    }

    fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
        self.enforce_limit();
    }

    /// Waits `wait`, then takes all the samples queued. Samples are only
    /// needed at the next flush: waking for each one (hundreds a second
    /// with call quality) would cost a context switch each.
    fn receive(&mut self, rx: &Receiver<Metric>, wait: Duration, nodes: &HashSet<String>) {
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let before = self.pending.len();
        for m in rx.try_iter() {
            // A worker being retired may still report a node that left the site.
            if nodes.contains(m.node()) {
                self.pending.push_back(m);
            }
        }
        if self.pending.len() != before {
            self.enforce_limit();
            self.stats.set_pending(self.pending.len());
        }
    }

    fn forget_other_nodes(&mut self, nodes: &HashSet<String>) {
        self.pending.retain(|m| nodes.contains(m.node()));
        self.stats.set_pending(self.pending.len());
    }

    fn enforce_limit(&mut self) {
        let excess = self.pending.len().saturating_sub(self.limit);
        if excess == 0 {
            return;
        }
        self.pending.drain(..excess);
        self.dropped += excess as u64;
        self.stats.dropped(excess);
        let due = self
            .last_drop_warning
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if due {
            warn!(
                "the store keeps failing: dropped the {} oldest samples so far (keeping at most {}, \
                 set by max_pending_samples)",
                self.dropped, self.limit
            );
            self.last_drop_warning = Some(Instant::now());
        }
    }

    /// Stores pending samples, or an empty batch when the heartbeat is due.
    fn flush_due(&mut self, sink: &mut dyn MetricSink) {
        if !self.pending.is_empty() || self.last_store.elapsed() >= IDLE_HEARTBEAT_EVERY {
            self.flush(sink);
        }
    }

    fn flush(&mut self, sink: &mut dyn MetricSink) -> bool {
        self.last_store = Instant::now();
        let n = self.pending.len();
        let r = sink.store(self.pending.make_contiguous(), now());
        let took = self.last_store.elapsed();
        match r {
            Ok(()) => {
                self.stats.stored(n, took);
                self.pending.clear();
                self.stats.set_pending(0);
                if self.failing {
                    info!("the store works again: wrote {n} kept samples");
                    self.failing = false;
                }
                true
            }
            Err(e) => {
                self.stats.store_failed(took);
                if !self.failing {
                    error!(
                        "cannot write {n} samples to the store: {e:#}; keeping them and retrying"
                    );
                } else {
                    debug!("store still failing ({n} samples kept): {e:#}");
                }
                self.failing = true;
                false
            }
        }
    }

    fn final_flush(&mut self, sink: &mut dyn MetricSink) {
        let n = self.pending.len();
        if self.flush(sink) {
            info!("collector stopped after writing its last {n} samples");
        } else {
            error!("collector stopped with {n} samples it could not write to the store");
        }
    }
}

// ---------------------------------------------------------------------------
// Fleet: the running workers and prober, reconfigured on reload.

struct Worker {
    esl: EslTarget,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// One node's probe: its target and, for `tls:`, its TLS settings.
type NodeProbe = (String, SipTarget, Option<TlsProbe>);

#[derive(Clone, Default)]
struct ProbePlan {
    config: CollectorConfig,
    targets: Vec<NodeProbe>,
}

struct Fleet {
    config: CollectorConfig,
    nodes: HashSet<String>,
    workers: HashMap<String, Worker>,
    retired: Vec<(Arc<AtomicBool>, JoinHandle<()>)>,
    plan: Arc<Mutex<ProbePlan>>,
    prober: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    tx: Sender<Metric>,
    stats: Arc<CollectorStats>,
}

/// The settings an ESL worker runs with; a change restarts the workers.
fn esl_settings(c: &CollectorConfig) -> [u64; 7] {
    [
        c.esl_connect_timeout_ms,
        c.esl_reply_timeout_ms,
        c.heartbeat_wait_ms,
        c.registration_poll_interval_ms,
        c.reconnect_min_ms,
        c.reconnect_max_ms,
        c.auth_retry_ms,
    ]
}

impl Fleet {
    fn new(config: CollectorConfig, tx: Sender<Metric>, stats: Arc<CollectorStats>) -> Fleet {
        Fleet {
            stats,
            plan: Arc::new(Mutex::new(ProbePlan {
                config: config.clone(),
                targets: Vec::new(),
            })),
            config,
            nodes: HashSet::new(),
            workers: HashMap::new(),
            retired: Vec::new(),
            prober: None,
            tx,
        }
    }

    fn summary(&self) -> String {
        let probes = lock(&self.plan).targets.len();
        format!(
            "{} nodes, {} event sockets, {} SIP probes",
            self.nodes.len(),
            self.workers.len(),
            probes
        )
    }

    /// Makes the running workers and probe plan match `targets`.
    fn apply(&mut self, config: CollectorConfig, targets: Vec<Target>) {
        let restart_all = esl_settings(&config) != esl_settings(&self.config);
        self.config = config;
        let mut esl = HashMap::new();
        let mut probes = Vec::new();
        self.nodes.clear();
        for t in targets {
            if !self.nodes.insert(t.node.clone()) {
                warn!("node {} is listed twice; using its last entry", t.node);
                probes.retain(|(n, _, _): &NodeProbe| *n != t.node);
            }
            if let Some(e) = t.esl {
                esl.insert(t.node.clone(), e);
            }
            if let Some(p) = t.sip_probe {
                probes.push((t.node.clone(), p, t.sip_tls));
            }
        }
        self.stats.set_nodes(self.nodes.iter().map(|n| {
            (
                n.as_str(),
                esl.contains_key(n),
                probes.iter().any(|(p, _, _)| p == n),
            )
        }));
        self.apply_workers(esl, restart_all);
        *lock(&self.plan) = ProbePlan {
            config: self.config.clone(),
            targets: probes,
        };
        self.ensure_prober();
        self.reap_retired();
    }

    fn apply_workers(&mut self, wanted: HashMap<String, EslTarget>, restart_all: bool) {
        let stale: Vec<String> = self
            .workers
            .iter()
            .filter(|(node, w)| restart_all || wanted.get(*node) != Some(&w.esl))
            .map(|(node, _)| node.clone())
            .collect();
        for node in stale {
            if let Some(w) = self.workers.remove(&node) {
                debug!("node {node}: stopping its event-socket worker");
                w.stop.store(true, Ordering::SeqCst);
                self.retired.push((w.stop, w.handle));
            }
        }
        for (node, esl) in wanted {
            if self.workers.contains_key(&node) {
                continue;
            }
            let stop = Arc::new(AtomicBool::new(false));
            let ctx = WorkerCtx {
                node: node.clone(),
                esl: esl.clone(),
                config: self.config.clone(),
                tx: self.tx.clone(),
                stop: stop.clone(),
                stats: self.stats.clone(),
            };
            match std::thread::Builder::new()
                .name(format!("esl-{node}"))
                .spawn(move || ctx.run())
            {
                Ok(handle) => {
                    self.workers.insert(node, Worker { esl, stop, handle });
                }
                Err(e) => error!("node {node}: cannot start its event-socket worker thread: {e}"),
            }
        }
    }

    fn ensure_prober(&mut self) {
        if self.prober.is_some() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (plan, tx, s) = (self.plan.clone(), self.tx.clone(), stop.clone());
        let stats = self.stats.clone();
        match std::thread::Builder::new()
            .name("sip-prober".into())
            .spawn(move || prober_loop(plan, tx, s, stats))
        {
            Ok(h) => self.prober = Some((stop, h)),
            Err(e) => error!("cannot start the SIP prober thread: {e}"),
        }
    }

    fn reap_retired(&mut self) {
        let (done, running): (Vec<_>, Vec<_>) =
            self.retired.drain(..).partition(|(_, h)| h.is_finished());
        for (_, h) in done {
            let _ = h.join();
        }
        self.retired = running;
    }

    /// Tells every thread to stop and waits a bounded time for them.
    fn shutdown(&mut self) {
        let mut all: Vec<(Arc<AtomicBool>, JoinHandle<()>)> = self.retired.drain(..).collect();
        all.extend(self.workers.drain().map(|(_, w)| (w.stop, w.handle)));
        all.extend(self.prober.take());
        for (stop, _) in &all {
            stop.store(true, Ordering::SeqCst);
        }
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        while Instant::now() < deadline && !all.iter().all(|(_, h)| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut left = 0;
        for (_, h) in all {
            if h.is_finished() {
                let _ = h.join();
            } else {
                left += 1;
            }
        }
        if left > 0 {
            debug!("{left} collector threads still finishing a network call; not waiting for them");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sleeps `d`, waking early when `stop` is set. True if stopped.
fn sleep_or_stop(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left.min(STOP_CHECK));
    }
}

// ---------------------------------------------------------------------------
// Prober: one round over every sip_probe per probe interval.

struct NodeHealth {
    target: SipTarget,
    thresholds: (u32, u32),
    tracker: HealthTracker,
    /// The certificate expiry last warned about (once per certificate).
    cert_warned: Option<i64>,
}

fn prober_loop(
    plan: Arc<Mutex<ProbePlan>>,
    tx: Sender<Metric>,
    stop: Arc<AtomicBool>,
    stats: Arc<CollectorStats>,
) {
    let mut health: HashMap<String, NodeHealth> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let round_start = Instant::now();
        let ProbePlan { config, targets } = lock(&plan).clone();
        let sips: Vec<(SipTarget, Option<TlsProbe>)> = targets
            .iter()
            .map(|(_, s, tls)| (s.clone(), tls.clone()))
            .collect();
        let probed = sip::probe_all_with(&sips, config.probe_timeout());
        let ts = now();
        for ((node, target, _), p) in targets.iter().zip(probed) {
            stats.probe(node, &p.outcome);
            if let Some(m) = record_probe(&mut health, &config, node, target, &p, ts) {
                let _ = tx.send(m);
            }
        }
        health.retain(|node, _| targets.iter().any(|(n, _, _)| n == node));
        let next = round_start + config.probe_interval();
        if sleep_or_stop(next.saturating_duration_since(Instant::now()), &stop) {
            break;
        }
    }
}

/// Feeds one outcome to the node's tracker, logs state changes, and returns
/// the health sample (none while the state is still unknown).
fn record_probe(
    health: &mut HashMap<String, NodeHealth>,
    config: &CollectorConfig,
    node: &str,
    target: &SipTarget,
    probed: &Probed,
    ts: i64,
) -> Option<Metric> {
    let outcome = &probed.outcome;
    let thresholds = (config.down_after, config.up_after);
    let h = health
        .entry(node.to_string())
        .or_insert_with(|| NodeHealth {
            target: target.clone(),
            thresholds,
            tracker: HealthTracker::new(thresholds.0, thresholds.1),
            cert_warned: None,
        });
    if h.target != *target || h.thresholds != thresholds {
        *h = NodeHealth {
            target: target.clone(),
            thresholds,
            tracker: HealthTracker::new(thresholds.0, thresholds.1),
            cert_warned: None,
        };
    }
    if let Some(at) = probed.cert_not_after
        && tls::cert_expiring(at, ts)
        && h.cert_warned != Some(at)
    {
        h.cert_warned = Some(at);
        warn!(
            "node {node}: the TLS certificate of {target} {} {}",
            if at <= ts { "expired" } else { "expires" },
            crate::clock::utc(at)
        );
    }
    let change = h.tracker.observe(outcome.result());
    let cert = probed.cert_not_after.map_or(String::new(), |at| {
        format!(" (certificate valid until {})", crate::clock::utc(at))
    });
    let detail = match outcome {
        ProbeOutcome::Answered { status, rtt_ms } => {
            format!("{target} answered {status} in {rtt_ms:.1} ms{cert}")
        }
        ProbeOutcome::Overloaded { rtt_ms } => {
            format!("{target} answered 503 in {rtt_ms:.1} ms{cert}")
        }
        ProbeOutcome::Failed(why) => format!(
            "{why} ({} failure(s) not yet forgiven by answers in a row)",
            h.tracker.failures()
        ),
    };
    match change {
        Some(t) => {
            let from = t.from.map_or("unknown", Health::as_str);
            info!("node {node}: {from} -> {} ({detail})", t.to);
        }
        None => debug!("node {node}: probe: {detail}"),
    }
    h.tracker.state().map(|state| Metric::Health {
        node: node.to_string(),
        state,
        ts,
        probe_rtt_ms: outcome.rtt_ms(),
        // Kept in the log if the store sees a change (store::events), and
        // as the node's last probe (status).
        reason: Some(format!("SIP probe: {detail}")),
        cert_not_after: probed.cert_not_after,
    })
}

// ---------------------------------------------------------------------------
// ESL worker: one per node with an event socket.

struct WorkerCtx {
    node: String,
    esl: EslTarget,
    config: CollectorConfig,
    tx: Sender<Metric>,
    stop: Arc<AtomicBool>,
    stats: Arc<CollectorStats>,
}

impl WorkerCtx {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Connects, collects, and reconnects with back-off until stopped.
    fn run(self) {
        let mut backoff = self.config.reconnect_min();
        while !self.stopped() {
            let mut served = false;
            let Err(e) = self.session(&mut served) else {
                break;
            };
            if self.stopped() {
                break;
            }
            self.stats.esl_reconnect(&self.node);
            // Back to the shortest delay only after a session that worked: a
            // FreeSWITCH that accepts the password and then breaks every
            // connection is not reconnected at the shortest delay forever.
            if served {
                backoff = self.config.reconnect_min();
            }
            let delay = match e.downcast_ref::<EslError>() {
                Some(EslError::AuthRejected(_)) => {
                    let d = self.config.auth_retry();
                    error!("{e:#}; trying again in {} s", d.as_secs_f64());
                    d
                }
                _ => {
                    let d = backoff;
                    error!("{e:#}; reconnecting in {:.1} s", d.as_secs_f64());
                    backoff = (backoff * 2).min(self.config.reconnect_max());
                    d
                }
            };
            if sleep_or_stop(delay, &self.stop) {
                break;
            }
        }
        debug!("node {}: event-socket worker stopped", self.node);
    }

    fn context(&self) -> String {
        format!(
            "node {}: FreeSWITCH event socket {}",
            self.node, self.esl.addr
        )
    }

    /// One connection: returns Ok only when stopped. `served` is set once
    /// it answered a whole command after authenticating.
    fn session(&self, served: &mut bool) -> anyhow::Result<()> {
        let c = &self.config;
        let mut client = EslClient::connect(
            &self.esl.addr.to_string(),
            self.esl.password.expose(),
            c.esl_connect_timeout(),
            c.esl_reply_timeout(),
        )
        .with_context(|| self.context())?;
        client
            .subscribe("HEARTBEAT CHANNEL_HANGUP_COMPLETE")
            .with_context(|| self.context())?;
        info!(
            "node {}: connected to FreeSWITCH event socket {}",
            self.node, self.esl.addr
        );
        let _open = self.stats.esl_open(&self.node);

        // Poll once right away so the store has a load before the first heartbeat.
        let mut load_due = Instant::now();
        let mut reg_due = Instant::now();
        let mut heartbeats = 0u64;
        let mut bad_log = (None, 0u64);
        loop {
            if self.stopped() {
                client.exit();
                return Ok(());
            }
            let t = Instant::now();
            if t >= load_due {
                if heartbeats > 0 {
                    debug!(
                        "node {}: no HEARTBEAT for {:?}; polling api status",
                        self.node,
                        c.heartbeat_wait()
                    );
                }
                self.poll_load(&mut client)?;
                *served = true;
                load_due = Instant::now() + c.heartbeat_wait();
            }
            if t >= reg_due {
                self.poll_registrations(&mut client)?;
                reg_due = Instant::now() + c.registration_poll_interval();
            }
            let wait = load_due
                .min(reg_due)
                .saturating_duration_since(Instant::now())
                .min(EVENT_WAIT);
            let event = client.next_event(wait).with_context(|| self.context())?;
            let Some(ev) = event else { continue };
            match ev.name() {
                "HEARTBEAT" => match freeswitch::heartbeat_load(|n| ev.header(n)) {
                    Ok(load) => {
                        heartbeats += 1;
                        self.send_load(load);
                        load_due = Instant::now() + c.heartbeat_wait();
                    }
                    Err(e) => warn!("node {}: ignoring a HEARTBEAT: {e}", self.node),
                },
                "CHANNEL_HANGUP_COMPLETE" => self.hangup(&ev, &mut bad_log),
                _ => {}
            }
        }
    }

    /// A hang-up event: a call quality sample for an inbound call that
    /// received media; anything else is counted, a bad one logged (at most
    /// every 10 s per node, with the number since the last log).
    fn hangup(&self, ev: &Event, bad_log: &mut (Option<Instant>, u64)) {
        let q = freeswitch::hangup_quality(|n| ev.header(n));
        self.stats.hangup(&self.node, q.as_ref().err());
        match q {
            Ok(q) => self.send(Metric::Quality {
                node: self.node.clone(),
                client: Prefix::host(q.client),
                mos: q.mos,
                loss_pct: q.loss_pct,
                jitter_ms: q.jitter_ms,
                ts: now(),
            }),
            Err(freeswitch::NoQuality::Bad(why)) => {
                bad_log.1 += 1;
                if bad_log
                    .0
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
                {
                    warn!(
                        "node {}: ignoring {} hang-up event(s) without a usable call quality; last: {why} (Unique-ID {})",
                        self.node,
                        bad_log.1,
                        ev.header("Unique-ID").unwrap_or("-")
                    );
                    *bad_log = (Some(Instant::now()), 0);
                }
            }
            Err(_) => {}
        }
    }

    fn send(&self, m: Metric) {
        // The writer only goes away at shutdown; a lost send then is expected.
        let _ = self.tx.send(m);
    }

    fn send_load(&self, load: freeswitch::Load) {
        self.send(Metric::Load {
            node: self.node.clone(),
            sessions: load.sessions,
            max_sessions: load.max_sessions.unwrap_or(0),
            idle_cpu: load.idle_cpu,
            ts: now(),
        });
    }

    /// `api status`; if that gives nothing usable, `show calls count` and
    /// `fsctl max_sessions`. Only connection errors are returned.
    fn poll_load(&self, client: &mut EslClient) -> anyhow::Result<()> {
        let status = match client.api("status") {
            Ok(body) => freeswitch::status_load(&body),
            Err(EslError::Api(e)) => Err(e),
            Err(e) => return Err(anyhow::Error::new(e).context(self.context())),
        };
        let why = match status {
            Ok(load) => {
                self.send_load(load);
                return Ok(());
            }
            Err(why) => why,
        };
        let sessions = match client.api("show calls count") {
            Ok(body) => freeswitch::calls_count(&body),
            Err(EslError::Api(e)) => Err(e),
            Err(e) => return Err(anyhow::Error::new(e).context(self.context())),
        };
        let max = match client.api("fsctl max_sessions") {
            Ok(body) => freeswitch::fsctl_max_sessions(&body).ok(),
            Err(EslError::Api(_)) => None,
            Err(e) => return Err(anyhow::Error::new(e).context(self.context())),
        };
        match sessions {
            Ok(sessions) => self.send_load(freeswitch::Load {
                sessions,
                max_sessions: max,
                idle_cpu: None,
            }),
            Err(e2) => warn!(
                "node {}: no load from FreeSWITCH: api status: {why}; show calls count: {e2}",
                self.node
            ),
        }
        Ok(())
    }

    /// One `sofia xmlstatus profile P reg` per profile; each Reachable
    /// registration becomes a latency sample.
    fn poll_registrations(&self, client: &mut EslClient) -> anyhow::Result<()> {
        for profile in &self.esl.profiles {
            let body = match client.api(&format!("sofia xmlstatus profile {profile} reg")) {
                Ok(b) => b,
                Err(EslError::Api(e)) => {
                    warn!(
                        "node {}: sofia profile '{profile}': {}",
                        self.node,
                        e.trim()
                    );
                    continue;
                }
                Err(e) => return Err(anyhow::Error::new(e).context(self.context())),
            };
            let regs = match freeswitch::xmlstatus_registrations(&body) {
                Ok(r) => r,
                Err(e) => {
                    warn!(
                        "node {}: sofia profile '{profile}': {e} (check esl_profiles)",
                        self.node
                    );
                    continue;
                }
            };
            debug!(
                "node {}: profile {profile}: {} reachable, {} unreachable, {} without ping time",
                self.node,
                regs.reachable.len(),
                regs.unreachable,
                regs.unusable
            );
            let ts = now();
            for r in regs.reachable {
                self.send(Metric::Latency {
                    node: self.node.clone(),
                    client: Prefix::host(r.ip),
                    rtt_ms: r.ping_ms,
                    ts,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_sample_carries_its_reason_and_certificate_expiry() {
        let mut health = HashMap::new();
        let config = CollectorConfig {
            down_after: 2,
            up_after: 1,
            ..CollectorConfig::default()
        };
        let target: SipTarget = "tls:127.0.0.1:5061".parse().unwrap();
        let ts = 1_800_000_000;
        let answered = Probed {
            outcome: ProbeOutcome::Answered {
                status: 200,
                rtt_ms: 2.5,
            },
            cert_not_after: Some(ts + 5 * 86_400),
        };
        let Some(Metric::Health {
            state,
            reason,
            cert_not_after,
            probe_rtt_ms,
            ..
        }) = record_probe(&mut health, &config, "a", &target, &answered, ts)
        else {
            panic!("an answer gives a health sample");
        };
        assert_eq!(state, Health::Up);
        assert_eq!(probe_rtt_ms, Some(2.5));
        assert_eq!(cert_not_after, Some(ts + 5 * 86_400));
        assert_eq!(
            reason.unwrap(),
            "SIP probe: tls:127.0.0.1:5061 answered 200 in 2.5 ms (certificate valid until 2027-01-20 08:00:00Z)"
        );
        // Warned once per certificate.
        assert_eq!(health["a"].cert_warned, Some(ts + 5 * 86_400));
        // A refused handshake: down after down_after, the reason and the
        // expiry learnt from the refusal kept.
        let expired = Probed {
            outcome: ProbeOutcome::Failed(
                "tls:127.0.0.1:5061: TLS handshake failed: certificate expired".into(),
            ),
            cert_not_after: Some(ts - 86_400),
        };
        let first = record_probe(&mut health, &config, "a", &target, &expired, ts + 1);
        assert!(matches!(
            first,
            Some(Metric::Health {
                state: Health::Up,
                ..
            })
        ));
        let Some(Metric::Health {
            state,
            reason,
            cert_not_after,
            ..
        }) = record_probe(&mut health, &config, "a", &target, &expired, ts + 2)
        else {
            panic!("a known state gives a health sample");
        };
        assert_eq!(state, Health::Down);
        assert_eq!(cert_not_after, Some(ts - 86_400));
        assert!(
            reason
                .unwrap()
                .contains("TLS handshake failed: certificate expired"),
        );
    }
}
