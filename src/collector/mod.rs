//! The collector behind `pdns-ha collect`: it measures the fleet and hands
//! samples to a [`MetricSink`]. It owns the FreeSWITCH event-socket client
//! (load from HEARTBEAT / `api status`, registration ping times from `sofia
//! xmlstatus`), SIP OPTIONS health probes with up/down hysteresis, and the
//! single writer loop that batches samples. It owns no storage, CLI or site
//! file parsing: the caller passes [`CollectorConfig`] and [`Target`]s in.

pub mod config;
pub mod esl;
pub mod freeswitch;
pub mod health;
mod run;
pub mod sip;

use std::fmt;

pub use config::CollectorConfig;
pub use esl::{EslClient, EslError};
pub use health::{HealthTracker, ProbeResult, Transition};
pub use sip::{ProbeOutcome, SipTarget};

/// Where the collector writes. One call = one short transaction; Err means
/// nothing of the batch was stored, so the caller keeps it and retries next
/// time (never lose an accepted sample; bound what is kept, dropping the
/// oldest with a warning if the store stays down).
pub trait MetricSink {
    fn store(&mut self, batch: &[crate::metrics::Metric], heartbeat_ts: i64) -> anyhow::Result<()>;
}

/// The FreeSWITCH event socket of a node.
#[derive(Clone, PartialEq, Eq)]
pub struct EslTarget {
    /// `host:port`, e.g. `198.51.100.10:8021`.
    pub addr: String,
    pub password: String,
    /// Sofia profiles whose registrations are read; default `["internal"]`.
    pub profiles: Vec<String>,
}

impl EslTarget {
    /// A target with the default profile list.
    pub fn new(addr: impl Into<String>, password: impl Into<String>) -> EslTarget {
        EslTarget {
            addr: addr.into(),
            password: password.into(),
            profiles: EslTarget::default_profiles(),
        }
    }

    pub fn default_profiles() -> Vec<String> {
        vec!["internal".to_string()]
    }

    /// Refuses values that cannot work or would inject protocol lines.
    pub fn validate(&self) -> Result<(), String> {
        let (host, port) = self
            .addr
            .rsplit_once(':')
            .ok_or_else(|| format!("esl '{}' must be HOST:PORT", self.addr))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("esl '{}' must be HOST:PORT", self.addr));
        }
        if self.password.is_empty() || self.password.contains(['\r', '\n']) {
            return Err("the ESL password must be one non-empty line".into());
        }
        for p in &self.profiles {
            let ok = !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(format!(
                    "esl_profiles: '{p}' is not a sofia profile name (letters, digits, - _ .)"
                ));
            }
        }
        Ok(())
    }
}

/// Never prints the password.
impl fmt::Debug for EslTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EslTarget")
            .field("addr", &self.addr)
            .field("password", &"<redacted>")
            .field("profiles", &self.profiles)
            .finish()
    }
}

/// One node to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub node: String,
    pub esl: Option<EslTarget>,
    /// `udp:HOST:PORT` or `tcp:HOST:PORT`.
    pub sip_probe: Option<String>,
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
    run::run_collector(config, targets, reload, sink, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esl_target_validation_and_redaction() {
        let t = EslTarget::new("127.0.0.1:8021", "ClueCon");
        assert_eq!(t.profiles, ["internal"]);
        t.validate().unwrap();
        assert!(!format!("{t:?}").contains("ClueCon"));
        let bad = EslTarget {
            profiles: vec!["internal reg\n\napi x".into()],
            ..t.clone()
        };
        assert!(bad.validate().unwrap_err().contains("profile"));
        assert!(EslTarget::new("nohost", "x").validate().is_err());
        assert!(EslTarget::new("h:0", "x").validate().is_err());
        assert!(EslTarget::new("h:8021", "a\nb").validate().is_err());
    }
}
