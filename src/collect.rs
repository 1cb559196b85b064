//! `pdns-ha collect`: connects the collector to the store. Builds the
//! targets from the stored site (reading ESL password files), stores the
//! samples in short transactions, follows `apply` without restart, and stops
//! cleanly on SIGTERM or SIGINT.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::collector::{self, CollectorConfig, EslTarget, MetricSink, Target};
use crate::metrics::{self, Metric};
use crate::site::Site;
use crate::store::Store;

/// FreeSWITCH's default event-socket password, used when a node gives
/// neither `esl_password` nor `esl_password_file`.
const DEFAULT_ESL_PASSWORD: &str = "ClueCon";

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
    let mut reload = move || -> Result<Option<(CollectorConfig, Vec<Target>)>> {
        let g = reader.meta("generation")?;
        if g == generation {
            return Ok(None);
        }
        generation = g;
        let (site, _) = reader.load_site()?;
        log::info!("site changed (generation {g}); following it");
        Ok(Some(plan(&site)))
    };
    let mut sink = StoreSink {
        store: Store::open_existing(db, Duration::from_millis(500))?,
        publisher: crate::store::Publisher::new(),
    };
    collector::run(config, targets, &mut reload, &mut sink, &stop)?;
    log::info!("collector stopped");
    Ok(0)
}

/// What to measure, from the site.
pub fn plan(site: &Site) -> (CollectorConfig, Vec<Target>) {
    let targets = site
        .nodes
        .iter()
        .filter(|n| n.esl.is_some() || n.sip_probe.is_some())
        .map(|n| Target {
            node: n.name.clone(),
            esl: n.esl.as_ref().and_then(|addr| {
                let password = match (&n.esl_password, &n.esl_password_file) {
                    (Some(p), _) => p.clone(),
                    (None, Some(f)) => match std::fs::read_to_string(f) {
                        Ok(p) => p.trim_end_matches(['\r', '\n']).to_string(),
                        Err(e) => {
                            log::error!("node {}: cannot read esl_password_file {f}: {e}; not connecting to its event socket", n.name);
                            return None;
                        }
                    },
                    (None, None) => DEFAULT_ESL_PASSWORD.to_string(),
                };
                let t = EslTarget {
                    addr: addr.clone(),
                    password,
                    profiles: n.esl_profiles.clone(),
                };
                match t.validate() {
                    Ok(()) => Some(t),
                    Err(e) => {
                        log::error!("node {}: {e}; not connecting to its event socket", n.name);
                        None
                    }
                }
            }),
            sip_probe: n.sip_probe.clone(),
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
