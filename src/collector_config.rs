//! The `[collector]` table of the site file: intervals, timeouts and thresholds
//! of the collector, with defaults that suit a production FreeSWITCH fleet.
//! Plain numbers, the unit in the name, and the address of the collector's
//! read-only HTTP server (`http`, parsed here once by [`parse_http`]). Below
//! both `site`, which reads it, and `collector`, which runs by it (pure).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// Where the collector serves `/metrics` and `/status.json` (read-only
    /// HTTP); none: no HTTP server. Written `"IP:PORT"`, parsed by
    /// [`parse_http`] (the site file and the stored site alike).
    #[serde(
        deserialize_with = "http_from_text",
        serialize_with = "http_to_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub http: Option<SocketAddr>,
}

/// The `[collector] http` value: `IP:PORT` (`[IPv6]:PORT`), port 1 to 65535.
/// A name is refused: the collector binds exactly what the operator wrote.
pub fn parse_http(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text.trim().parse().map_err(|_| {
        format!(
            "[collector] http = {} is not an address to listen on: write IP:PORT, e.g. \"127.0.0.1:9253\" (\"[::1]:9253\" for IPv6; a host name is not accepted)",
            crate::text::quote(text)
        )
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "[collector] http = {}: port 0 is not a port to scrape: use a fixed port, e.g. 9253",
            crate::text::quote(text)
        ));
    }
    Ok(addr)
}

fn http_from_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse_http(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn http_to_text<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(a) => s.serialize_str(&a.to_string()),
        None => s.serialize_none(),
    }
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
            http: None,
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

    /// The HTTP address, if it can be reached from other machines (not a
    /// loopback address): allowed, because the operator wrote it, and said.
    pub fn http_exposed(&self) -> Option<SocketAddr> {
        self.http.filter(|a| !a.ip().is_loopback())
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

    #[test]
    fn http_is_off_unless_set_and_parsed_once() {
        let c: CollectorConfig = toml::from_str("").unwrap();
        assert_eq!(c.http, None);
        assert!(!toml::to_string(&c).unwrap().contains("http"));
        let c: CollectorConfig = toml::from_str("http = \"127.0.0.1:9253\"").unwrap();
        assert_eq!(c.http, Some("127.0.0.1:9253".parse().unwrap()));
        assert_eq!(c.http_exposed(), None);
        // Stored as JSON, read back by the same parser.
        let json = serde_json::to_string(&c).unwrap();
        assert!(json.contains("\"http\":\"127.0.0.1:9253\""), "{json}");
        assert_eq!(serde_json::from_str::<CollectorConfig>(&json).unwrap(), c);
        let c: CollectorConfig = toml::from_str("http = \"[::]:9253\"").unwrap();
        assert_eq!(c.http_exposed(), Some("[::]:9253".parse().unwrap()));
        assert_eq!(
            parse_http("[::1]:9253").unwrap(),
            "[::1]:9253".parse().unwrap()
        );
    }

    #[test]
    fn a_bad_http_address_says_what_to_write() {
        for bad in [
            "localhost:9253",
            "127.0.0.1",
            "127.0.0.1:99999",
            "",
            "1.2.3.4:0",
        ] {
            let e = parse_http(bad).unwrap_err();
            assert!(e.contains("[collector] http"), "{bad}: {e}");
            assert!(e.contains("9253"), "{bad}: {e}");
        }
        let e = toml::from_str::<CollectorConfig>("http = \"localhost:9253\"").unwrap_err();
        assert!(e.to_string().contains("IP:PORT"), "{e}");
        assert!(toml::from_str::<CollectorConfig>("http = 9253").is_err());
    }
}
