//! `pdns-ha collect`: connects the collector to the store. Builds the
//! targets from the stored site (reading ESL password files, and loading
//! the CAs of TLS probes once per site load), stores the
//! samples in short transactions, follows `apply` without restart, starts
//! the HTTP server of `[collector] http` (`web`), and stops cleanly on
//! SIGTERM or SIGINT.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::collector::tls::{self, TlsProbe};
use crate::collector::{self, CollectorConfig, CollectorStats, EslTarget, MetricSink, Target};
use crate::endpoint::{CaFile, EslPassword, Transport};
use crate::metrics::{self, Metric};
use crate::site::Site;
use crate::store::{EventKind, Store};

pub fn run(db: &Path) -> Result<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("cannot install signal handlers")?;
    }
    let reader = Store::open_existing(db, Duration::from_secs(5))?;
    let mut generation = reader.meta("generation")?;
    let (site, _) = reader.load_site()?;
    let (config, targets) = plan(&site);
    log::info!(
        "collecting for {} node(s): {} event socket(s), {} SIP probe(s)",
        targets.len(),
        targets.iter().filter(|t| t.esl.is_some()).count(),
        targets.iter().filter(|t| t.sip_probe.is_some()).count()
    );
    // The HTTP server (`[collector] http`) follows the site as the rest
    // does; it never stops the collector.
    let stats = Arc::new(CollectorStats::new());
    let mut http = crate::web::Http::new(db, stats.clone());
    let mut want_http = config.http;
    http.follow(want_http);
    let mut reload = move || -> Result<Option<(CollectorConfig, Vec<Target>)>> {
        http.follow(want_http);
        let g = reader.meta("generation")?;
        if g == generation {
            return Ok(None);
        }
        generation = g;
        let (site, _) = reader.load_site()?;
        log::info!("site changed (generation {g}); following it");
        let (config, targets) = plan(&site);
        if config.validate().is_ok() {
            want_http = config.http;
            http.follow(want_http);
        }
        Ok(Some((config, targets)))
    };
    let mut sink = StoreSink {
        store: Store::open_existing(db, Duration::from_millis(500))?,
        publisher: crate::store::Publisher::new(),
    };
    sink.log(
        EventKind::CollectorStart,
        &format!(
            "pdns-ha {} (pid {}): {} node(s) to measure",
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
            targets.len()
        ),
    );
    let result = collector::run_with_stats(config, targets, &mut reload, &mut sink, &stop, stats);
    drop(reload); // stops the HTTP server
    let why = match &result {
        Ok(()) => "stopped by a signal, after writing its last samples".to_string(),
        Err(e) => format!("stopped on an error: {e:#}"),
    };
    sink.log(EventKind::CollectorStop, &why);
    result?;
    log::info!("collector stopped");
    Ok(0)
}

/// What to measure, from the site. A stored value that no longer parses
/// (`Node::unusable`) is logged and left out; the rest of the node is
/// measured. The CAs of `tls:` probes are loaded here, once per distinct
/// `sip_probe_ca` (or the system's): one that cannot be loaded is logged
/// and the node's probes fail, saying why, until the site is applied again.
pub fn plan(site: &Site) -> (CollectorConfig, Vec<Target>) {
    let mut configs = HashMap::new();
    let mut tls_of = |n: &crate::site::Node| -> Option<TlsProbe> {
        n.sip_probe
            .as_ref()
            .filter(|p| p.transport == Transport::Tls)?;
        let ca: Option<&CaFile> = n.sip_probe_ca.as_ref();
        let config = configs
            .entry(ca.cloned())
            .or_insert_with(|| tls::client_config(ca))
            .clone();
        let name = n
            .sip_probe_server_name
            .as_ref()
            .map_or(n.host.as_str(), |s| s.as_str());
        let probe = TlsProbe::new(name, ca, config);
        if let Some(why) = probe.problem() {
            log::error!(
                "node {}: {why}; its TLS probe fails until this is corrected",
                n.name
            );
        }
        Some(probe)
    };
    let targets = site
        .nodes
        .iter()
        .inspect(|n| {
            for why in &n.unusable {
                log::error!(
                    "node {}: stored setting not used: {why}; correct the site file and run `pdns-ha apply`",
                    n.name
                );
            }
        })
        .filter(|n| n.esl.is_some() || n.sip_probe.is_some())
        .map(|n| Target {
            node: n.name.clone(),
            esl: n.esl.as_ref().and_then(|addr| {
                let password = match (&n.esl_password, &n.esl_password_file) {
                    (Some(p), _) => p.clone(),
                    (None, Some(f)) => match f.read() {
                        Ok(p) => p,
                        Err(e) => {
                            log::error!(
                                "node {}: {e}; not connecting to its event socket",
                                n.name
                            );
                            return None;
                        }
                    },
                    (None, None) => EslPassword::freeswitch_default(),
                };
                Some(EslTarget {
                    addr: addr.clone(),
                    password,
                    profiles: n.esl_profiles.clone(),
                })
            }),
            sip_probe: n.sip_probe.clone(),
            sip_tls: tls_of(n),
        })
        .collect();
    (site.collector.clone(), targets)
}

/// Writes the collector's batches, one transaction each, and publishes the
/// latency snapshot when it is behind (at most every publisher interval; an
/// idle collector still stores its heartbeat every few seconds, so a
/// snapshot behind is published then).
struct StoreSink {
    store: Store,
    publisher: crate::store::Publisher,
}

impl StoreSink {
    /// Records a collector event; the log is not worth failing for.
    fn log(&mut self, kind: EventKind, detail: &str) {
        if let Err(e) = self.store.log_event(kind, None, detail, metrics::now()) {
            log::warn!("cannot record \"{kind}\" in the event log: {e:#}");
        }
    }
}

impl MetricSink for StoreSink {
    fn store(&mut self, batch: &[Metric], heartbeat_ts: i64) -> Result<()> {
        let out =
            self.store
                .write_metrics(batch, "collector", Some(heartbeat_ts), metrics::now())?;
        // The collector logs its own transitions; this is the stored view.
        for (node, state) in out.health_changes {
            log::debug!("stored: node {node} is now {state}");
        }
        self.publisher.maybe_publish(&mut self.store, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::TempDb;

    const SITE: &str = r#"
[zone."voip.test"]
ns = ["ns1.voip.test"]
hostmaster = "hostmaster.voip.test"
[node.a]
host = "a.voip.test"
ipv4 = ["192.0.2.1"]
esl = "192.0.2.1:8021"
sip_probe = "udp:192.0.2.1:5060"
[node.b]
host = "b.voip.test"
ipv4 = ["192.0.2.2"]
sip_probe = "tcp:192.0.2.2:5060"
"#;

    #[test]
    fn the_plan_uses_the_parsed_values() {
        let db = TempDb::new("collect-plan");
        let (site, _) = db.apply(SITE).load_site().unwrap();
        // Stored as text, read back by the same parser: the same values.
        assert_eq!(
            site.nodes,
            crate::site::parse("site.toml", SITE).unwrap().nodes
        );
        let (_, targets) = plan(&site);
        assert_eq!(targets.len(), 2);
        let a = &targets[0];
        assert_eq!(a.sip_probe, Some("udp:192.0.2.1:5060".parse().unwrap()));
        let esl = a.esl.as_ref().unwrap();
        assert_eq!(esl.addr.to_string(), "192.0.2.1:8021");
        assert_eq!(esl.password, EslPassword::freeswitch_default());
        assert!(targets[1].esl.is_none());
    }

    #[test]
    fn tls_probes_get_their_name_and_cas_once_per_site_load() {
        let site = SITE.to_string()
            + r#"
[node.c]
host = "c.voip.test"
ipv4 = ["192.0.2.3"]
sip_probe = "tls:192.0.2.3:5061"
sip_probe_ca = "/nonexistent/pdns-ha-ca.pem"
[node.d]
host = "d.voip.test"
ipv4 = ["192.0.2.4"]
sip_probe = "tls:192.0.2.4:5061"
sip_probe_server_name = "sip.example.com"
sip_probe_ca = "/nonexistent/pdns-ha-ca.pem"
"#;
        let db = TempDb::new("collect-tls");
        let (site, _) = db.apply(&site).load_site().unwrap();
        let (_, targets) = plan(&site);
        assert!(targets[0].sip_tls.is_none() && targets[1].sip_tls.is_none());
        let c = targets[2].sip_tls.as_ref().unwrap();
        let d = targets[3].sip_tls.as_ref().unwrap();
        assert_eq!(c.server_name(), "c.voip.test", "the node's host");
        assert_eq!(d.server_name(), "sip.example.com");
        for t in [c, d] {
            let why = t.problem().unwrap();
            assert!(
                why.starts_with("cannot read sip_probe_ca '/nonexistent/pdns-ha-ca.pem'"),
                "{why}"
            );
        }
    }

    #[test]
    fn values_in_any_accepted_form_load_back_equal() {
        let site = SITE
            .replace("udp:192.0.2.1:5060", "UDP:2001:db8::1:5060")
            .replace("192.0.2.1:8021", "::1:8021")
            .replace(
                "[node.b]",
                "esl_profiles = [\"internal\", \"external\"]\n[node.b]\nesl = \"[2001:db8::2]:8022\"\nesl_password_file = \"/nonexistent/b.esl\"",
            );
        let parsed = crate::site::parse("site.toml", &site).unwrap();
        let db = TempDb::new("collect-forms");
        let (loaded, _) = db.apply(&site).load_site().unwrap();
        assert_eq!(loaded.nodes, parsed.nodes);
        let a = &loaded.nodes[0];
        assert_eq!(a.esl.as_ref().unwrap().to_string(), "[::1]:8021");
        assert_eq!(
            a.sip_probe.as_ref().unwrap().to_string(),
            "udp:[2001:db8::1]:5060"
        );
        // b's password file cannot be read: no event socket for b, and its
        // probe still runs.
        let (_, targets) = plan(&loaded);
        assert!(targets[0].esl.is_some());
        assert!(targets[1].esl.is_none() && targets[1].sip_probe.is_some());
    }

    #[test]
    fn a_stored_value_that_no_longer_parses_leaves_only_that_value_out() {
        let db = TempDb::new("collect-unusable");
        let store = db.apply(SITE);
        // As an older version, or a hand edit, could have stored it.
        store
            .conn
            .execute(
                "UPDATE topology SET def = replace(def, 'udp:192.0.2.1:5060', 'udp:a b:5060') WHERE kind = 'node' AND name = 'a'",
                [],
            )
            .unwrap();
        // The topology still loads, for the coprocesses as for the collector.
        let (site, ids) = store.load_site().unwrap();
        let topo = crate::topology::Topology::build(site.clone(), &ids, 1);
        assert!(topo.names.contains_key("a.voip.test"));
        let a = &site.nodes[0];
        assert_eq!(a.sip_probe, None);
        assert_eq!(a.unusable.len(), 1);
        assert!(a.unusable[0].contains("'udp:a b:5060'"), "{:?}", a.unusable);
        let (_, targets) = plan(&site);
        assert_eq!(targets.len(), 2, "node a keeps its event socket");
        assert!(targets[0].esl.is_some() && targets[0].sip_probe.is_none());
        assert!(targets[1].sip_probe.is_some(), "node b is unaffected");
    }
}
