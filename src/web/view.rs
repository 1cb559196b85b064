//! What the status page shows, gathered from the store through an answer
//! engine of its own ([`gather`]), and the samples that feed the page's
//! [`History`] ([`samples`]). The work per call is bounded: the site's nodes
//! (with the collector's last probe of each and their call quality counts,
//! one grouped count of the `quality` table), the newest [`EVENTS`] events,
//! the [`NETWORKS`] busiest client networks times at most [`SERVICES`]
//! services (one decision each, as `explain` computes it, no cache).

use crate::answer::{self, Engine};
use crate::collector::tls::cert_expiring;
use crate::metrics::Health;
use crate::net::Prefix;
use crate::store::NodeStateRows;
use crate::topology::{Target, Topology};

use super::history::{History, Sample};
use super::page::{EventRow, NetworkRow, NodeRow, Page, Routed, State};

/// State changes listed, newest first.
pub const EVENTS: usize = 12;
/// Client networks listed, most queries first.
pub const NETWORKS: usize = 10;
/// Services asked per client network (the first ones of the site).
pub const SERVICES: usize = 6;
/// The browser reloads the page every this many seconds.
pub const REFRESH_S: u32 = 10;

/// An engine for the page: no decision cache (every decision is computed
/// from the store as it is now), no client networks recorded.
pub fn engine(db: &std::path::Path) -> Engine {
    let mut e = Engine::new(db);
    e.use_cache = false;
    e.record_seen = false;
    e
}

fn state(h: Option<Health>) -> State {
    match h {
        Some(Health::Up) => State::Up,
        Some(Health::Down) => State::Down,
        Some(Health::Overloaded) => State::Overloaded,
        None => State::Unknown,
    }
}

/// The probe round trip worth showing: the last one stored, while the
/// health is fresh and the node answers (a down node's last round trip is
/// from before it stopped answering).
fn live_rtt(topo: &Topology, states: &NodeStateRows, id: i64, now: i64) -> Option<f64> {
    let h = states.health.get(&id)?;
    let fresh = now - h.updated <= topo.policy.health_max_age_s;
    (fresh && h.state != Health::Down)
        .then_some(h.probe_rtt_ms)
        .flatten()
}

/// The samples of every node of the site now: fresh load over the session
/// limit, and the live probe round trip.
pub fn samples(topo: &Topology, states: &NodeStateRows, now: i64) -> Vec<(String, Sample)> {
    let views = answer::node_views(topo, states, now);
    topo.nodes
        .iter()
        .zip(&views)
        .map(|(n, v)| {
            let load = v.load.and_then(|l| {
                let max = v
                    .site_max_sessions
                    .filter(|&m| m > 0)
                    .unwrap_or(l.max_sessions);
                (max > 0).then(|| l.sessions as f32 / max as f32)
            });
            let rtt_ms = live_rtt(topo, states, n.id, now).map(|r| r as f32);
            (n.def.name.clone(), Sample { load, rtt_ms })
        })
        .collect()
}

/// Everything the page shows, as the store has it now.
pub fn gather(engine: &mut Engine, history: &History, now: i64) -> Page {
    engine.refresh();
    let topo = std::rc::Rc::clone(engine.topo());
    let mut page = Page {
        now,
        refresh_s: REFRESH_S,
        generation: topo.generation.max(0),
        collector_age_s: None,
        health_max_age_s: topo.policy.health_max_age_s,
        load_max_age_s: topo.policy.load_max_age_s,
        nodes: Vec::new(),
        events: Vec::new(),
        services: Vec::new(),
        networks: Vec::new(),
        history_span_s: history.span_s(),
        problems: Vec::new(),
    };
    if engine.store().is_none() {
        page.problems.push(
            "the database cannot be read (see the collector's log); the figures below are the last read"
                .into(),
        );
    }
    // The collector's last probe of each node (as old as a health that
    // still counts, as `status` shows it) and the call quality counts.
    let (probes, quality) = match engine.store() {
        Some(store) => {
            let probes = store.probes().unwrap_or_else(|e| {
                page.problems.push(format!("probes: {e:#}"));
                Default::default()
            });
            let quality = store
                .quality_counts(now - topo.policy.quality_max_age_s)
                .unwrap_or_else(|e| {
                    page.problems.push(format!("call quality: {e:#}"));
                    Default::default()
                });
            (probes, quality)
        }
        None => Default::default(),
    };
    let states = &engine.view.states;
    let views = answer::node_views(&topo, states, now);
    for (n, v) in topo.nodes.iter().zip(&views) {
        let h = states.health.get(&n.id);
        let l = states.load.get(&n.id);
        let fresh = v.health.is_some();
        let series = history.series(&n.def.name, now).unwrap_or_default();
        let pad = |s: Vec<Option<f32>>| {
            if s.is_empty() {
                vec![None; history.points()]
            } else {
                s
            }
        };
        let probe = probes
            .get(&n.id)
            .filter(|p| now - p.updated <= topo.policy.health_max_age_s);
        let cert = probe.and_then(|p| p.cert_not_after);
        let (q_fresh, q_all) = quality.get(&n.id).copied().unwrap_or((0, 0));
        page.nodes.push(NodeRow {
            name: n.def.name.clone(),
            host: n.def.host.clone(),
            health: state(v.health),
            health_since: h.filter(|_| fresh).map(|h| h.since),
            health_age_s: h.map(|h| now - h.updated),
            probe_rtt_ms: live_rtt(&topo, states, n.id, now),
            // The probe's reason explains the health only when the collector
            // set it (a state reported by `ingest` has its own source).
            probe_detail: probe
                .filter(|_| h.is_some_and(|h| h.source == "collector"))
                .map(|p| p.detail.clone()),
            cert_not_after: cert,
            cert_expiring: cert.is_some_and(|at| cert_expiring(at, now)),
            quality_networks: q_fresh,
            quality_entries: q_all,
            sessions: l.map(|l| l.sessions),
            max_sessions: n
                .def
                .max_sessions
                .filter(|&m| m > 0)
                .or(l.map(|l| l.max_sessions)),
            load_age_s: l.map(|l| now - l.updated),
            drained_since: states.drained.get(&n.id).copied(),
            load_series: pad(series.load),
            rtt_series: pad(series.rtt_ms),
        });
    }
    let Some(store) = engine.store() else {
        return page;
    };
    match store.meta("collector_heartbeat") {
        Ok(hb) if hb > 0 => page.collector_age_s = Some(now - hb),
        Ok(_) => {}
        Err(e) => page.problems.push(format!("collector heartbeat: {e:#}")),
    }
    match store.events(None, None, EVENTS) {
        Ok(events) => {
            page.events = events
                .into_iter()
                .rev()
                .map(|e| EventRow {
                    at: e.at,
                    kind: e.kind.as_str().to_string(),
                    node: e.node,
                    detail: e.detail,
                })
                .collect()
        }
        Err(e) => page.problems.push(format!("events: {e:#}")),
    }
    let top = match store.top_seen(NETWORKS) {
        Ok(t) => t,
        Err(e) => {
            page.problems.push(format!("client networks: {e:#}"));
            Vec::new()
        }
    };
    let services: Vec<usize> = (0..topo.services.len()).take(SERVICES).collect();
    page.services = services
        .iter()
        .map(|&s| topo.services[s].name.clone())
        .collect();
    for seen in top {
        let routed = services
            .iter()
            .map(|&s| route(engine, &topo, s, &seen.prefix))
            .collect();
        page.networks.push(NetworkRow {
            prefix: seen.prefix.to_string(),
            queries: seen.queries,
            last_seen_age_s: now - seen.last_seen,
            routed,
        });
    }
    page
}

/// The node a service puts first for a client network now (as `explain`
/// asks the engine: the first node of the SRV answer).
fn route(engine: &mut Engine, topo: &Topology, service: usize, client: &Prefix) -> Routed {
    let fine = client.family().fine().min(client.len);
    let d = engine.compute(topo, Target::Service(service), &client.truncate(fine), fine);
    Routed {
        node: d
            .decision
            .ranked
            .first()
            .map(|r| topo.nodes[r.node].def.name.clone()),
        failed_open: d.decision.failed_open,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{self, Metric};
    use crate::store::testing::TempDb;

    const SITE: &str = r#"
[zone."voip.test"]
ns = ["ns1.voip.test"]
hostmaster = "hostmaster.voip.test"
[node.a]
host = "a.voip.test"
ipv4 = ["192.0.2.1"]
[node.b]
host = "b.voip.test"
ipv4 = ["192.0.2.2"]
max_sessions = 200
[service."_sip._udp.voip.test"]
policy = "load"
port = 5060
nodes = ["a", "b"]
"#;

    #[test]
    fn the_page_shows_the_store_and_the_engine_decides() {
        let db = TempDb::new("web-view");
        let mut s = db.apply(SITE);
        let now = metrics::now();
        let health = |node: &str, state, rtt| Metric::Health {
            node: node.into(),
            state,
            ts: now,
            probe_rtt_ms: rtt,
            reason: Some("test <&>".to_string()),
            cert_not_after: None,
        };
        let load = |node: &str, sessions, max| Metric::Load {
            node: node.into(),
            sessions,
            max_sessions: max,
            idle_cpu: None,
            ts: now,
        };
        s.write_metrics(
            &[
                health("a", Health::Up, Some(1.5)),
                health("b", Health::Up, Some(2.5)),
                load("a", 900, 1000),
                load("b", 20, 1000),
            ],
            // As the collector writes them: its probe reasons explain health.
            "collector",
            Some(now),
            now,
        )
        .unwrap();
        s.record_seen(&[("198.51.100.0/24".parse().unwrap(), 7)], &[], now)
            .unwrap();
        let mut e = engine(&db.path);
        let mut h = History::default();
        e.refresh();
        let samples = samples(e.topo(), &e.view.states, now);
        h.record(now, samples.iter().map(|(n, s)| (n.as_str(), *s)));
        let p = gather(&mut e, &h, now);
        assert_eq!(p.nodes.len(), 2);
        assert_eq!(p.nodes[0].health, State::Up);
        assert_eq!(p.nodes[0].probe_rtt_ms, Some(1.5));
        // The site's max_sessions wins.
        assert_eq!(
            (p.nodes[1].sessions, p.nodes[1].max_sessions),
            (Some(20), Some(200))
        );
        assert_eq!(p.nodes[1].load_series.last(), Some(&Some(0.1)));
        assert_eq!(p.nodes[0].rtt_series.last(), Some(&Some(1.5)));
        assert_eq!(p.nodes[0].load_series.len(), h.points());
        assert_eq!(p.collector_age_s, Some(0));
        assert_eq!(p.services, vec!["_sip._udp.voip.test".to_string()]);
        assert_eq!(p.networks.len(), 1);
        assert_eq!(p.networks[0].queries, 7);
        // b has 180 sessions free, a 100: b first.
        assert_eq!(p.networks[0].routed[0].node.as_deref(), Some("b"));
        assert!(p.events.iter().any(|e| e.kind == "apply"));

        // b goes down and is drained: a gets the network, b's round trip
        // is no longer shown, and the events say so, newest first.
        s.write_metrics(
            &[health("b", Health::Down, None)],
            "collector",
            None,
            now + 1,
        )
        .unwrap();
        s.set_drain("b", true, now + 1).unwrap();
        std::thread::sleep(answer::CHECK_EVERY + std::time::Duration::from_millis(50));
        let p = gather(&mut e, &h, now + 1);
        assert_eq!(p.nodes[1].health, State::Down);
        assert_eq!(p.nodes[1].probe_rtt_ms, None);
        assert_eq!(p.nodes[1].drained_since, Some(now + 1));
        assert_eq!(p.networks[0].routed[0].node.as_deref(), Some("a"));
        assert_eq!(p.events[0].kind, "drain");
        assert_eq!(p.events[1].kind, "health");
        assert!(super::super::page::render(&p).contains("data-drained=\"yes\""));
        // The collector's last probe: b's reason, a's certificate (in 3
        // days: expiring), and the call quality networks per node.
        assert_eq!(p.nodes[1].probe_detail.as_deref(), Some("test <&>"));
        assert_eq!(p.nodes[0].cert_not_after, None);
        let at = now + 3 * 86_400;
        let mut tls = health("a", Health::Up, Some(1.0));
        if let Metric::Health { cert_not_after, .. } = &mut tls {
            *cert_not_after = Some(at);
        }
        let quality = |node: &str, client: &str| Metric::Quality {
            node: node.into(),
            client: client.parse().unwrap(),
            mos: 4.1,
            loss_pct: None,
            jitter_ms: None,
            ts: now,
        };
        s.write_metrics(
            &[
                tls,
                quality("a", "198.51.100.7"),
                quality("a", "203.0.113.9"),
                quality("b", "198.51.100.8"),
            ],
            "collector",
            None,
            now + 2,
        )
        .unwrap();
        std::thread::sleep(answer::CHECK_EVERY + std::time::Duration::from_millis(50));
        let p = gather(&mut e, &h, now + 2);
        assert_eq!(p.nodes[0].cert_not_after, Some(at));
        assert!(p.nodes[0].cert_expiring);
        assert!(!p.nodes[1].cert_expiring);
        // Each sample makes entries at every level; 2 and 1 at /24.
        assert_eq!(p.nodes[0].quality_networks, 2);
        assert_eq!(p.nodes[1].quality_networks, 1);
        assert!(p.nodes[0].quality_entries > 2);
        // An hour later the probe is too old to show (as in `status`).
        let p = gather(&mut e, &h, now + 3600);
        assert_eq!(
            (
                p.nodes[0].cert_not_after,
                p.nodes[1].probe_detail.as_deref()
            ),
            (None, None)
        );
    }

    #[test]
    fn no_database_is_a_problem_on_the_page() {
        let db = TempDb::new("web-view-none");
        let mut e = engine(&db.path.with_file_name("missing.sqlite"));
        let p = gather(&mut e, &History::default(), 1000);
        assert!(p.nodes.is_empty());
        assert_eq!(p.problems.len(), 1);
        assert!(super::super::page::render(&p).contains("cannot be read"));
    }
}
