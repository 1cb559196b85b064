//! The `[collector]` table of the site file: intervals, timeouts and thresholds
//! of the collector, with defaults that suit a production FreeSWITCH fleet.
//! Plain numbers, the unit in the name. Below both `site`, which reads it,
//! and `collector`, which runs by it (pure).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Tunables of `pdns-ha collect`. Every field has a default; an unknown key is
/// an error (a typo must not silently fall back to a default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// How often every `sip_probe` gets an OPTIONS request.
    pub probe_interval_ms: u64,
    /// How long an OPTIONS request waits for a final response.
    pub probe_timeout_ms: u64,
    /// Consecutive failed probes after which a node is down.
    pub down_after: u32,
    /// Consecutive answered probes after which a down node is up again.
    pub up_after: u32,
    /// TCP connect timeout to a FreeSWITCH event socket.
    pub esl_connect_timeout_ms: u64,
    /// How long a command on the event socket (auth, api ...) waits for its reply.
    pub esl_reply_timeout_ms: u64,
    /// With no HEARTBEAT event for this long, the load is polled with `api status`
    /// (and again every this long until heartbeats come back). FreeSWITCH sends
    /// a heartbeat every 20 s by default.
    pub heartbeat_wait_ms: u64,
    /// How often `sofia xmlstatus profile P reg` is read for registration ping times.
    pub registration_poll_interval_ms: u64,
    /// First delay before reconnecting to an event socket; doubled on each failure.
    pub reconnect_min_ms: u64,
    /// Upper bound of the reconnect delay.
    pub reconnect_max_ms: u64,
    /// Delay before trying again after FreeSWITCH rejected the password.
    pub auth_retry_ms: u64,
    /// How often collected samples are written to the store (one transaction).
    pub batch_interval_ms: u64,
    /// Samples kept while the store is failing; beyond this the oldest are dropped.
    pub max_pending_samples: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            probe_interval_ms: 5_000,
            probe_timeout_ms: 1_000,
            down_after: 3,
            up_after: 2,
            esl_connect_timeout_ms: 3_000,
            esl_reply_timeout_ms: 5_000,
            heartbeat_wait_ms: 30_000,
            registration_poll_interval_ms: 30_000,
            reconnect_min_ms: 1_000,
            reconnect_max_ms: 60_000,
            auth_retry_ms: 60_000,
            batch_interval_ms: 1_000,
            max_pending_samples: 100_000,
        }
    }
}

const HOUR_MS: u64 = 3_600_000;

impl CollectorConfig {
    /// Checks ranges and relations between fields; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let ranges: [(&str, u64, u64, u64); 12] = [
            ("probe_interval_ms", self.probe_interval_ms, 100, HOUR_MS),
            ("probe_timeout_ms", self.probe_timeout_ms, 10, 60_000),
            ("down_after", self.down_after.into(), 1, 100),
            ("up_after", self.up_after.into(), 1, 100),
            (
                "esl_connect_timeout_ms",
                self.esl_connect_timeout_ms,
                10,
                60_000,
            ),
            (
                "esl_reply_timeout_ms",
                self.esl_reply_timeout_ms,
                10,
                600_000,
            ),
            ("heartbeat_wait_ms", self.heartbeat_wait_ms, 10, HOUR_MS),
            (
                "registration_poll_interval_ms",
                self.registration_poll_interval_ms,
                10,
                HOUR_MS,
            ),
            ("reconnect_min_ms", self.reconnect_min_ms, 10, HOUR_MS),
            ("reconnect_max_ms", self.reconnect_max_ms, 10, HOUR_MS),
            ("auth_retry_ms", self.auth_retry_ms, 10, 24 * HOUR_MS),
            ("batch_interval_ms", self.batch_interval_ms, 10, 60_000),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(format!(
                    "[collector] {name} = {value} is out of range: use {min} to {max}"
                ));
            }
        }
        if self.probe_timeout_ms > self.probe_interval_ms {
            return Err(format!(
                "[collector] probe_timeout_ms ({}) must not exceed probe_interval_ms ({})",
                self.probe_timeout_ms, self.probe_interval_ms
            ));
        }
        if self.reconnect_min_ms > self.reconnect_max_ms {
            return Err(format!(
                "[collector] reconnect_min_ms ({}) must not exceed reconnect_max_ms ({})",
                self.reconnect_min_ms, self.reconnect_max_ms
            ));
        }
        if self.max_pending_samples < 100 {
            return Err(format!(
                "[collector] max_pending_samples = {} is too small: use at least 100",
                self.max_pending_samples
            ));
        }
        Ok(())
    }

    pub fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms)
    }
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }
    pub fn esl_connect_timeout(&self) -> Duration {
        Duration::from_millis(self.esl_connect_timeout_ms)
    }
    pub fn esl_reply_timeout(&self) -> Duration {
        Duration::from_millis(self.esl_reply_timeout_ms)
    }
    pub fn heartbeat_wait(&self) -> Duration {
        Duration::from_millis(self.heartbeat_wait_ms)
    }
    pub fn registration_poll_interval(&self) -> Duration {
        Duration::from_millis(self.registration_poll_interval_ms)
    }
    pub fn reconnect_min(&self) -> Duration {
        Duration::from_millis(self.reconnect_min_ms)
    }
    pub fn reconnect_max(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_ms)
    }
    pub fn auth_retry(&self) -> Duration {
        Duration::from_millis(self.auth_retry_ms)
    }
    pub fn batch_interval(&self) -> Duration {
        Duration::from_millis(self.batch_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_table_gives_defaults_and_they_validate() {
        let c: CollectorConfig = toml::from_str("").unwrap();
        assert_eq!(c, CollectorConfig::default());
        assert_eq!(c.probe_interval_ms, 5_000);
        assert_eq!(c.probe_timeout_ms, 1_000);
        assert_eq!((c.down_after, c.up_after), (3, 2));
        assert_eq!(c.registration_poll_interval_ms, 30_000);
        assert_eq!(c.batch_interval_ms, 1_000);
        c.validate().unwrap();
    }

    #[test]
    fn partial_table_keeps_other_defaults_and_round_trips() {
        let c: CollectorConfig = toml::from_str("probe_interval_ms = 2000\nup_after = 4").unwrap();
        assert_eq!(c.probe_interval_ms, 2_000);
        assert_eq!(c.up_after, 4);
        assert_eq!(c.down_after, 3);
        let back: CollectorConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<CollectorConfig>("probe_intervall_ms = 5").unwrap_err();
        assert!(e.to_string().contains("probe_intervall_ms"), "{e}");
    }

    #[test]
    fn validate_names_the_field() {
        let c = CollectorConfig {
            down_after: 0,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("down_after"));
        let c = CollectorConfig {
            probe_timeout_ms: 6_000,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("probe_timeout_ms"));
        let c = CollectorConfig {
            reconnect_min_ms: 70_000,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("reconnect_min_ms"));
        let c = CollectorConfig {
            max_pending_samples: 1,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("max_pending_samples"));
    }
}
