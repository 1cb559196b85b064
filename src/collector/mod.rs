//! The collector behind `pdns-ha collect`: it measures the fleet and hands
//! samples to a [`MetricSink`]. It owns the FreeSWITCH event-socket client
//! (load from HEARTBEAT / `api status`, registration ping times from `sofia
//! xmlstatus`, call quality from CHANNEL_HANGUP_COMPLETE), SIP OPTIONS health
//! probes (UDP, TCP, TLS) with up/down hysteresis, and the single writer loop
//! that batches samples. It owns no storage, CLI or site
//! file parsing: the caller passes [`CollectorConfig`] and [`Target`]s in,
//! their values already parsed (`crate::endpoint`, `crate::collector_config`).

pub mod esl;
pub mod freeswitch;
pub mod health;
mod run;
pub mod sip;
pub mod stats;
pub mod tls;

pub use crate::collector_config::CollectorConfig;
pub use crate::endpoint::{EslAddr, EslPassword, SipTarget, SofiaProfile};
pub use esl::{EslClient, EslError};
pub use health::{HealthTracker, ProbeResult, Transition};
pub use sip::ProbeOutcome;
pub use stats::CollectorStats;
pub use tls::TlsProbe;

/// Where the collector writes. One call = one short transaction; Err means
/// nothing of the batch was stored, so the caller keeps it and retries next
/// time (never lose an accepted sample; bound what is kept, dropping the
/// oldest with a warning if the store stays down).
pub trait MetricSink {
    fn store(&mut self, batch: &[crate::metrics::Metric], heartbeat_ts: i64) -> anyhow::Result<()>;
}

/// The FreeSWITCH event socket of a node, its values parsed by
/// `crate::endpoint` (so nothing here is checked again). The password is
/// never printed (`EslPassword`'s `Debug`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EslTarget {
    pub addr: EslAddr,
    pub password: EslPassword,
    /// Sofia profiles whose registrations are read; default `["internal"]`.
    pub profiles: Vec<SofiaProfile>,
}

impl EslTarget {
    /// A target with the default profile list.
    pub fn new(addr: EslAddr, password: EslPassword) -> EslTarget {
        EslTarget {
            addr,
            password,
            profiles: SofiaProfile::defaults(),
        }
    }
}

/// One node to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub node: String,
    pub esl: Option<EslTarget>,
    pub sip_probe: Option<SipTarget>,
    /// For a `tls:` probe: the name and CAs it checks the certificate with,
    /// loaded with the site by `pdns-ha collect` (once per site load).
    pub sip_tls: Option<TlsProbe>,
}

/// Runs until `stop` is set (SIGTERM/SIGINT handling is the caller's).
/// `reload` is called every few seconds; Some(..) = the site changed: apply
/// the new config/targets without restart (start/stop per-node workers as
/// needed).
pub fn run(
    config: CollectorConfig,
    targets: Vec<Target>,
    reload: &mut dyn FnMut() -> anyhow::Result<Option<(CollectorConfig, Vec<Target>)>>,
    sink: &mut dyn MetricSink,
    stop: &std::sync::atomic::AtomicBool,
) -> anyhow::Result<()> {
    run_with_stats(
        config,
        targets,
        reload,
        sink,
        stop,
        std::sync::Arc::new(CollectorStats::new()),
    )
}

/// [`run`], recording the collector's own figures in `stats` (see
/// [`stats`]), which the caller can read while it runs.
pub fn run_with_stats(
    config: CollectorConfig,
    targets: Vec<Target>,
    reload: &mut dyn FnMut() -> anyhow::Result<Option<(CollectorConfig, Vec<Target>)>>,
    sink: &mut dyn MetricSink,
    stop: &std::sync::atomic::AtomicBool,
    stats: std::sync::Arc<CollectorStats>,
) -> anyhow::Result<()> {
    run::run_collector(config, targets, reload, sink, stop, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esl_target_defaults_and_redaction() {
        let t = EslTarget::new(
            "127.0.0.1:8021".parse().unwrap(),
            "ClueCon".parse().unwrap(),
        );
        assert_eq!(t.profiles, SofiaProfile::defaults());
        assert!(!format!("{t:?}").contains("ClueCon"));
    }
}
