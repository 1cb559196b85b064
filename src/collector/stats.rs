//! The collector's own figures, for monitoring it: SIP probe round trips
//! per node (a histogram) and probe results by outcome, event-socket
//! connection state, reconnects and hang-up events by outcome per node,
//! samples written, pending and dropped, store write time. One [`CollectorStats`] is shared (`Arc`) by the
//! prober, the event-socket workers and the writer loop, which record, and by
//! whoever shows it ([`CollectorStats::snapshot`]). Bounded by the nodes of
//! the site: the fleet lists them ([`CollectorStats::set_nodes`]), a node that
//! leaves is forgotten, and a figure for a node not listed is not kept.
//! Recording takes one short lock (or none) and allocates nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::sip::ProbeOutcome;

/// Buckets of a histogram: upper bounds, in seconds; `+Inf` is implied.
pub const BUCKETS: usize = 12;

/// SIP OPTIONS round trips: under a millisecond on a LAN, tens of
/// milliseconds across a country, a few hundred across an ocean or from a
/// loaded server; the probe timeout is 1 s by default (a probe that timed out
/// has no round trip and counts as failed, not here).
pub const PROBE_RTT_BUCKETS: [f64; BUCKETS] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// One store transaction (a batch of samples): about a millisecond on a
/// quiet disk, more while a snapshot is published or another writer holds
/// the lock (the collector waits 500 ms for it).
pub const STORE_WRITE_BUCKETS: [f64; BUCKETS] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A Prometheus-style histogram with fixed buckets (no allocation).
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64; BUCKETS],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: [u64; BUCKETS + 1],
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64; BUCKETS]) -> Histogram {
        Histogram {
            bounds,
            counts: [0; BUCKETS + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts `v` (seconds) in the first bucket whose bound is at least `v`.
    pub fn observe(&mut self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { f64::MAX };
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(BUCKETS);
        self.counts[i] += 1;
        self.sum += v.min(1e9);
        self.count += 1;
    }

    /// `(upper bound, observations at or under it)` for every bucket, as
    /// Prometheus exposes them; the `+Inf` bucket is [`Histogram::count`].
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds
            .iter()
            .zip(self.counts.iter().scan(0u64, |acc, c| {
                *acc += c;
                Some(*acc)
            }))
            .map(|(b, c)| (*b, c))
    }
}

/// What one node's figures are, at a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStats {
    /// Some when the node has a SIP probe.
    pub probe: Option<ProbeStats>,
    /// Some when the node has an event socket.
    pub esl: Option<EslStats>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProbeStats {
    /// Round trips of answered probes (200-class and others, and 503), seconds.
    pub rtt: Histogram,
    pub answered: u64,
    pub overloaded: u64,
    pub failed: u64,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct EslStats {
    /// Sessions authenticated and subscribed, not yet ended (a worker being
    /// replaced may overlap its successor for a moment).
    pub open: u32,
    /// Connections lost or refused, each followed by a reconnect.
    pub reconnects: u64,
    /// Hang-up events (CHANNEL_HANGUP_COMPLETE) by what became of them.
    pub hangups: HangupCounts,
}

/// Hang-up events of one node, by outcome.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct HangupCounts {
    /// Turned into a call quality sample.
    pub sampled: u64,
    /// Not inbound (another leg of a call).
    pub not_inbound: u64,
    /// No audio through this server.
    pub no_media: u64,
    /// Ignored: a field missing or not believable.
    pub bad: u64,
}

impl EslStats {
    pub fn connected(&self) -> bool {
        self.open > 0
    }
}

/// A copy of every figure, for rendering.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// By node name.
    pub nodes: Vec<(String, NodeStats)>,
    pub samples_written: u64,
    pub samples_dropped: u64,
    pub samples_pending: u64,
    pub store_errors: u64,
    /// Every store transaction, written or failed.
    pub store_write: Histogram,
}

/// The collector's figures, shared by its threads.
pub struct CollectorStats {
    nodes: Mutex<BTreeMap<String, NodeStats>>,
    samples_written: AtomicU64,
    samples_dropped: AtomicU64,
    samples_pending: AtomicU64,
    store_errors: AtomicU64,
    store_write: Mutex<Histogram>,
}

impl Default for CollectorStats {
    fn default() -> Self {
        CollectorStats {
            nodes: Mutex::new(BTreeMap::new()),
            samples_written: AtomicU64::new(0),
            samples_dropped: AtomicU64::new(0),
            samples_pending: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            store_write: Mutex::new(Histogram::new(&STORE_WRITE_BUCKETS)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl CollectorStats {
    pub fn new() -> CollectorStats {
        CollectorStats::default()
    }

    /// The nodes measured now: `(name, has an event socket, has a probe)`.
    /// Nodes not listed are forgotten; a listed node keeps its counters
    /// (counters only go up while the node is in the site).
    pub fn set_nodes<'a>(&self, nodes: impl IntoIterator<Item = (&'a str, bool, bool)>) {
        let mut map = lock(&self.nodes);
        let mut keep = BTreeMap::new();
        for (name, esl, probe) in nodes {
            let mut n = map.remove(name).unwrap_or(NodeStats {
                probe: None,
                esl: None,
            });
            n.esl = if esl {
                Some(n.esl.unwrap_or_default())
            } else {
                None
            };
            n.probe = if probe {
                Some(n.probe.unwrap_or(ProbeStats {
                    rtt: Histogram::new(&PROBE_RTT_BUCKETS),
                    answered: 0,
                    overloaded: 0,
                    failed: 0,
                }))
            } else {
                None
            };
            keep.insert(name.to_string(), n);
        }
        *map = keep;
    }

    fn with_node(&self, node: &str, f: impl FnOnce(&mut NodeStats)) {
        if let Some(n) = lock(&self.nodes).get_mut(node) {
            f(n);
        }
    }

    /// One probe's outcome for `node`.
    pub fn probe(&self, node: &str, outcome: &ProbeOutcome) {
        self.with_node(node, |n| {
            let Some(p) = n.probe.as_mut() else { return };
            match outcome {
                ProbeOutcome::Answered { rtt_ms, .. } => {
                    p.answered += 1;
                    p.rtt.observe(rtt_ms / 1000.0);
                }
                ProbeOutcome::Overloaded { rtt_ms } => {
                    p.overloaded += 1;
                    p.rtt.observe(rtt_ms / 1000.0);
                }
                ProbeOutcome::Failed(_) => p.failed += 1,
            }
        });
    }

    /// An event-socket session of `node` is open until the guard is dropped.
    pub fn esl_open<'a>(&'a self, node: &'a str) -> EslOpen<'a> {
        self.with_node(node, |n| {
            if let Some(e) = n.esl.as_mut() {
                e.open += 1;
            }
        });
        EslOpen { stats: self, node }
    }

    /// `node`'s event-socket connection was lost or refused; a reconnect follows.
    pub fn esl_reconnect(&self, node: &str) {
        self.with_node(node, |n| {
            if let Some(e) = n.esl.as_mut() {
                e.reconnects += 1;
            }
        });
    }

    /// What became of a hang-up event of `node`: a sample, or why not.
    pub fn hangup(&self, node: &str, none: Option<&super::freeswitch::NoQuality>) {
        use super::freeswitch::NoQuality;
        self.with_node(node, |n| {
            let Some(e) = n.esl.as_mut() else { return };
            let h = &mut e.hangups;
            match none {
                None => h.sampled += 1,
                Some(NoQuality::NotInbound) => h.not_inbound += 1,
                Some(NoQuality::NoMedia) => h.no_media += 1,
                Some(NoQuality::Bad(_)) => h.bad += 1,
            }
        });
    }

    /// A store transaction of `samples` samples that took `took`.
    pub fn stored(&self, samples: usize, took: Duration) {
        self.samples_written
            .fetch_add(samples as u64, Ordering::Relaxed);
        lock(&self.store_write).observe(took.as_secs_f64());
    }

    /// A store transaction that failed after `took` (its samples are kept).
    pub fn store_failed(&self, took: Duration) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
        lock(&self.store_write).observe(took.as_secs_f64());
    }

    pub fn dropped(&self, samples: usize) {
        self.samples_dropped
            .fetch_add(samples as u64, Ordering::Relaxed);
    }

    pub fn set_pending(&self, samples: usize) {
        self.samples_pending
            .store(samples as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            nodes: lock(&self.nodes)
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            samples_written: self.samples_written.load(Ordering::Relaxed),
            samples_dropped: self.samples_dropped.load(Ordering::Relaxed),
            samples_pending: self.samples_pending.load(Ordering::Relaxed),
            store_errors: self.store_errors.load(Ordering::Relaxed),
            store_write: lock(&self.store_write).clone(),
        }
    }
}

/// An open event-socket session (see [`CollectorStats::esl_open`]).
pub struct EslOpen<'a> {
    stats: &'a CollectorStats,
    node: &'a str,
}

impl Drop for EslOpen<'_> {
    fn drop(&mut self) {
        self.stats.with_node(self.node, |n| {
            if let Some(e) = n.esl.as_mut() {
                e.open = e.open.saturating_sub(1);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_with_le_bounds() {
        let mut h = Histogram::new(&PROBE_RTT_BUCKETS);
        h.observe(0.0005); // on a bound: counted in it
        h.observe(0.003);
        h.observe(0.003);
        h.observe(7.0); // over the last bound: +Inf only
        h.observe(f64::NAN);
        let c: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(c.len(), BUCKETS);
        assert_eq!(c[0], (0.0005, 1));
        assert_eq!(c[2], (0.0025, 1));
        assert_eq!(c[3], (0.005, 3));
        assert_eq!(c[BUCKETS - 1], (2.5, 3));
        assert_eq!(h.count, 5);
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn probes_and_event_sockets_are_counted_per_listed_node() {
        let s = CollectorStats::new();
        s.set_nodes([("a", true, true), ("b", false, true)]);
        s.probe(
            "a",
            &ProbeOutcome::Answered {
                status: 200,
                rtt_ms: 2.0,
            },
        );
        s.probe("a", &ProbeOutcome::Overloaded { rtt_ms: 30.0 });
        s.probe("a", &ProbeOutcome::Failed("timeout".into()));
        s.probe("ghost", &ProbeOutcome::Failed("x".into()));
        {
            let _open = s.esl_open("a");
            let _b = s.esl_open("b"); // b has no event socket: nothing kept
            assert!(s.snapshot().nodes[0].1.esl.as_ref().unwrap().connected());
        }
        s.esl_reconnect("a");
        s.esl_reconnect("ghost");
        let snap = s.snapshot();
        assert_eq!(snap.nodes.len(), 2, "ghost is not kept");
        let (name, a) = &snap.nodes[0];
        assert_eq!(name, "a");
        let p = a.probe.as_ref().unwrap();
        assert_eq!((p.answered, p.overloaded, p.failed), (1, 1, 1));
        assert_eq!(p.rtt.count, 2);
        assert!((p.rtt.sum - 0.032).abs() < 1e-9);
        let e = a.esl.as_ref().unwrap();
        assert_eq!((e.connected(), e.reconnects), (false, 1));
        assert_eq!(snap.nodes[1].1.esl, None);
    }

    #[test]
    fn a_node_that_leaves_is_forgotten_one_that_stays_keeps_its_counters() {
        let s = CollectorStats::new();
        s.set_nodes([("a", true, true), ("b", true, true)]);
        s.esl_reconnect("a");
        s.esl_reconnect("b");
        s.set_nodes([("a", true, false)]);
        let snap = s.snapshot();
        assert_eq!(snap.nodes.len(), 1);
        assert_eq!(snap.nodes[0].1.esl.as_ref().unwrap().reconnects, 1);
        assert_eq!(snap.nodes[0].1.probe, None, "its probe was removed");
    }

    #[test]
    fn writer_figures() {
        let s = CollectorStats::new();
        s.stored(10, Duration::from_millis(2));
        s.stored(0, Duration::from_millis(1));
        s.store_failed(Duration::from_millis(600));
        s.dropped(3);
        s.set_pending(42);
        let snap = s.snapshot();
        assert_eq!(snap.samples_written, 10);
        assert_eq!(snap.store_errors, 1);
        assert_eq!(snap.samples_dropped, 3);
        assert_eq!(snap.samples_pending, 42);
        assert_eq!(snap.store_write.count, 3);
        let c: Vec<(f64, u64)> = snap.store_write.cumulative().collect();
        assert_eq!(c[1], (0.001, 1));
        assert_eq!(c[3], (0.005, 2));
        assert_eq!(c[9], (0.5, 2));
        assert_eq!(c[10], (1.0, 3));
    }

    #[test]
    fn hangups_are_counted_by_outcome_for_listed_nodes_only() {
        use crate::collector::freeswitch::NoQuality;
        let s = CollectorStats::new();
        s.set_nodes([("a", true, false), ("b", false, true)]);
        s.hangup("a", None);
        s.hangup("a", None);
        s.hangup("a", Some(&NoQuality::NotInbound));
        s.hangup("a", Some(&NoQuality::NoMedia));
        s.hangup("a", Some(&NoQuality::Bad("x".into())));
        s.hangup("b", None); // no event socket: not kept
        s.hangup("ghost", None);
        let snap = s.snapshot();
        let a = &snap.nodes[0].1.esl.as_ref().unwrap().hangups;
        assert_eq!((a.sampled, a.not_inbound, a.no_media, a.bad), (2, 1, 1, 1));
        assert!(snap.nodes[1].1.esl.is_none());
        assert_eq!(snap.nodes.len(), 2);
    }
}
