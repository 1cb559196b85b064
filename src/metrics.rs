//! Metric samples, and the metric line format that `pdns-ha ingest` reads.
//! Pure: parsing and types only; the store writes them.
//!
//! ```text
//! latency NODE CLIENT_IP_OR_PREFIX RTT_MS [UNIX_TS]
//! load    NODE SESSIONS MAX_SESSIONS [IDLE_CPU_PCT] [UNIX_TS]
//! health  NODE up|down|overloaded [UNIX_TS]
//! quality NODE CLIENT_IP_OR_PREFIX MOS [LOSS_PCT] [JITTER_MS] [UNIX_TS]
//! ```

use std::fmt;
use std::str::FromStr;

use crate::net::Prefix;
use crate::text::quote;

/// The health of a node as reported by a probe or an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    Up,
    Down,
    Overloaded,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Overloaded => "overloaded",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Health {
    type Err = String;
    fn from_str(s: &str) -> Result<Health, String> {
        match s {
            "up" => Ok(Health::Up),
            "down" => Ok(Health::Down),
            "overloaded" => Ok(Health::Overloaded),
            _ => Err(format!(
                "health must be up, down or overloaded, not {}",
                quote(s)
            )),
        }
    }
}

/// One sample, as `ingest` reads it or the collector measures it.
#[derive(Clone, Debug, PartialEq)]
pub enum Metric {
    /// Round-trip time between a node and a client address or prefix.
    Latency {
        node: String,
        client: Prefix,
        rtt_ms: f64,
        ts: i64,
    },
    /// VoIP load of a node. `max_sessions` 0 means "unknown" (the site file's
    /// `max_sessions` then applies).
    Load {
        node: String,
        sessions: u32,
        max_sessions: u32,
        idle_cpu: Option<f64>,
        ts: i64,
    },
    /// The receive quality of one call a node carried from a client address
    /// or prefix: MOS (1 to 4.5 as FreeSWITCH estimates it), and when known
    /// the share of packets lost or late (percent) and the jitter (ms).
    Quality {
        node: String,
        client: Prefix,
        mos: f64,
        loss_pct: Option<f64>,
        jitter_ms: Option<f64>,
        ts: i64,
    },
    /// Health of a node. `probe_rtt_ms` is the SIP OPTIONS round trip, when
    /// the sample comes from a probe.
    Health {
        node: String,
        state: Health,
        ts: i64,
        probe_rtt_ms: Option<f64>,
        /// Why, in words, when the writer knows (the collector's probe
        /// result); not part of the metric line. Recorded with a stored
        /// health change (`store::events`).
        reason: Option<String>,
        /// When the TLS certificate of a `tls:` probe's server expires (Unix
        /// seconds); not part of the metric line.
        cert_not_after: Option<i64>,
    },
}

impl Metric {
    pub fn node(&self) -> &str {
        match self {
            Metric::Latency { node, .. }
            | Metric::Quality { node, .. }
            | Metric::Load { node, .. }
            | Metric::Health { node, .. } => node,
        }
    }

    /// When the sample was taken (Unix seconds).
    pub fn ts(&self) -> i64 {
        match self {
            Metric::Latency { ts, .. }
            | Metric::Quality { ts, .. }
            | Metric::Load { ts, .. }
            | Metric::Health { ts, .. } => *ts,
        }
    }

    /// The first word of its metric line.
    pub fn kind(&self) -> &'static str {
        match self {
            Metric::Latency { .. } => "latency",
            Metric::Quality { .. } => "quality",
            Metric::Load { .. } => "load",
            Metric::Health { .. } => "health",
        }
    }
}

/// The range of a MOS (mean opinion score) as FreeSWITCH estimates it from
/// the R value: 1 (unusable) to 4.5 (R = 100, a clean call).
pub const MOS_MIN: f64 = 1.0;
pub const MOS_MAX: f64 = 4.5;

/// How far ahead of this machine's clock a sample's timestamp may be; it is
/// then stored as now. Further ahead, the line is refused.
pub const FUTURE_SKEW_S: i64 = 60;

/// The current time in whole seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses one metric line. Blank lines and `#` comments give `Ok(None)`.
/// `now` is used when the line carries no timestamp.
pub fn parse_line(line: &str, now: i64) -> Result<Option<Metric>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let f: Vec<&str> = line.split_whitespace().collect();
    let kind = f[0];
    let arity = |min: usize, max: usize, usage: &str| -> Result<(), String> {
        if f.len() < min || f.len() > max {
            Err(format!("expected '{usage}', got {} fields", f.len()))
        } else {
            Ok(())
        }
    };
    let node = |s: &str| -> Result<String, String> {
        if s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            Ok(s.to_string())
        } else {
            Err(format!("{} is not a node name", quote(s)))
        }
    };
    let ts = |s: Option<&&str>| -> Result<i64, String> {
        match s {
            None => Ok(now),
            Some(s) => match s.parse::<i64>() {
                // A clock a little ahead is read as now: a sample dated in
                // the future would look fresh for too long, and would hide
                // the samples that follow it (health and load keep the newest).
                Ok(t) if t > 0 && t <= now + FUTURE_SKEW_S => Ok(t.min(now)),
                Ok(t) if t > now => Err(format!(
                    "timestamp {t} is {} s in the future (more than the {FUTURE_SKEW_S} s of clock skew allowed): check this agent's clock",
                    t - now
                )),
                Ok(_) => Err(format!("timestamp {} is not a Unix time", quote(s))),
                Err(_) => Err(format!("{} is not a Unix timestamp", quote(s))),
            },
        }
    };
    let number = |s: &str, what: &str, max: f64| -> Result<f64, String> {
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && (0.0..=max).contains(&v) => Ok(v),
            _ => Err(format!(
                "{what} {} is not a number from 0 to {max}",
                quote(s)
            )),
        }
    };
    let count = |s: &str, what: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .map_err(|_| format!("{what} {} is not a whole number", quote(s)))
    };
    match kind {
        "latency" => {
            arity(4, 5, "latency NODE CLIENT_IP_OR_PREFIX RTT_MS [UNIX_TS]")?;
            let client: Prefix = f[2].parse()?;
            Ok(Some(Metric::Latency {
                node: node(f[1])?,
                client,
                rtt_ms: number(f[3], "RTT_MS", 60_000.0)?,
                ts: ts(f.get(4))?,
            }))
        }
        "quality" => {
            arity(
                4,
                7,
                "quality NODE CLIENT_IP_OR_PREFIX MOS [LOSS_PCT] [JITTER_MS] [UNIX_TS]",
            )?;
            let client: Prefix = f[2].parse()?;
            let mos = match f[3].parse::<f64>() {
                Ok(v) if (MOS_MIN..=MOS_MAX).contains(&v) => v,
                _ => {
                    return Err(format!(
                        "MOS {} is not a number from {MOS_MIN} to {MOS_MAX}",
                        quote(f[3])
                    ));
                }
            };
            Ok(Some(Metric::Quality {
                node: node(f[1])?,
                client,
                mos,
                loss_pct: f.get(4).map(|s| number(s, "LOSS_PCT", 100.0)).transpose()?,
                jitter_ms: f
                    .get(5)
                    .map(|s| number(s, "JITTER_MS", 60_000.0))
                    .transpose()?,
                ts: ts(f.get(6))?,
            }))
        }
        "load" => {
            arity(
                4,
                6,
                "load NODE SESSIONS MAX_SESSIONS [IDLE_CPU_PCT] [UNIX_TS]",
            )?;
            Ok(Some(Metric::Load {
                node: node(f[1])?,
                sessions: count(f[2], "SESSIONS")?,
                max_sessions: count(f[3], "MAX_SESSIONS")?,
                idle_cpu: f
                    .get(4)
                    .map(|s| number(s, "IDLE_CPU_PCT", 100.0))
                    .transpose()?,
                ts: ts(f.get(5))?,
            }))
        }
        "health" => {
            arity(3, 4, "health NODE up|down|overloaded [UNIX_TS]")?;
            Ok(Some(Metric::Health {
                node: node(f[1])?,
                state: f[2].parse()?,
                ts: ts(f.get(3))?,
                probe_rtt_ms: None,
                reason: None,
                cert_not_after: None,
            }))
        }
        _ => Err(format!(
            "unknown metric {}: a line starts with latency, quality, load or health",
            quote(kind)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn parses_the_three_kinds() {
        let m = parse_line("latency mtl1 24.64.1.7 23.5", NOW)
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            Metric::Latency {
                node: "mtl1".into(),
                client: "24.64.1.7".parse().unwrap(),
                rtt_ms: 23.5,
                ts: NOW
            }
        );
        let m = parse_line("load van1 17 1000 97.5 1799999990", NOW)
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            Metric::Load {
                node: "van1".into(),
                sessions: 17,
                max_sessions: 1000,
                idle_cpu: Some(97.5),
                ts: 1_799_999_990
            }
        );
        let m = parse_line("quality van1 2001:db8::/48 4.2 1.5 12 1799999990", NOW)
            .unwrap()
            .unwrap();
        assert_eq!(
            m,
            Metric::Quality {
                node: "van1".into(),
                client: "2001:db8::/48".parse().unwrap(),
                mos: 4.2,
                loss_pct: Some(1.5),
                jitter_ms: Some(12.0),
                ts: 1_799_999_990
            }
        );
        let m = parse_line("quality van1 24.64.1.7 3.9", NOW)
            .unwrap()
            .unwrap();
        assert!(matches!(
            m,
            Metric::Quality {
                loss_pct: None,
                jitter_ms: None,
                ts: NOW,
                ..
            }
        ));
        let m = parse_line("health van1 overloaded", NOW).unwrap().unwrap();
        assert!(matches!(
            m,
            Metric::Health {
                state: Health::Overloaded,
                ..
            }
        ));
        // A clock slightly ahead is read as now.
        let m = parse_line("health van1 up 1800000030", NOW)
            .unwrap()
            .unwrap();
        assert_eq!(m.ts(), NOW);
        assert_eq!(parse_line("  # comment", NOW), Ok(None));
        assert_eq!(parse_line("", NOW), Ok(None));
    }

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        let cases = [
            ("latency mtl1 nope 3", "not an IPv4 or IPv6"),
            ("latency mtl1 10.0.0.0/40 3", "prefix length"),
            ("latency mtl1 10.0.0.1 -3", "RTT_MS"),
            ("latency mtl1 10.0.0.1 NaN", "RTT_MS"),
            ("latency mtl1 10.0.0.1", "got 3 fields"),
            ("load mtl1 x 10", "SESSIONS"),
            ("load mtl1 1 10 101", "IDLE_CPU_PCT"),
            ("health mtl1 sideways", "up, down or overloaded"),
            ("health mtl1 up 99999999999", "in the future"),
            ("health mtl1 up 0", "not a Unix time"),
            ("health mtl1 up 1800000061", "61 s in the future"),
            ("health m\u{7}tl up", "not a node name"),
            ("temperature mtl1 3", "unknown metric"),
            ("quality mtl1 10.0.0.1 4.6", "MOS"),
            ("quality mtl1 10.0.0.1 0.9", "MOS"),
            ("quality mtl1 10.0.0.1 NaN", "MOS"),
            ("quality mtl1 10.0.0.1 inf", "MOS"),
            ("quality mtl1 10.0.0.1 4 101", "LOSS_PCT"),
            ("quality mtl1 10.0.0.1 4 1 -2", "JITTER_MS"),
            ("quality mtl1 10.0.0.1 4 1 2 3 4", "got 8 fields"),
            ("quality mtl1 10.0.0.1", "got 3 fields"),
            ("quality mtl1 bad 4", "not an IPv4 or IPv6"),
        ];
        for (line, why) in cases {
            let e = parse_line(line, NOW).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
