//! Feeds arbitrary bytes to `metrics::parse_line`, as UTF-8 text when they
//! are valid and through `String::from_utf8_lossy` always.
//!
//! Invariants: it never panics; a blank or comment line is `Ok(None)`; an
//! accepted line's first word is its kind, its node name is non-empty and
//! only ASCII letters, digits, `-`, `_` and `.`; a latency's rtt is finite
//! and in 0..=60000 ms; a load's idle CPU is finite and in 0..=100; the
//! timestamp is positive and never after `now`, and is `now` when the line
//! carries none.

use pdns_ha::metrics::{Metric, parse_line};

const NOW: i64 = 1_800_000_000;

fn check_text(text: &str) {
    let parsed = parse_line(text, NOW);
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        assert_eq!(parsed, Ok(None), "{text:?}");
        return;
    }
    let Ok(parsed) = parsed else { return };
    let m = parsed.unwrap_or_else(|| panic!("no metric from {text:?}"));
    let words: Vec<&str> = trimmed.split_whitespace().collect();
    assert_eq!(words[0], m.kind(), "{text:?}");
    let node = m.node();
    assert_eq!(words[1], node, "{text:?}");
    assert!(!node.is_empty(), "{text:?}");
    assert!(
        node.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')),
        "{text:?}: node {node:?}"
    );
    let ts = m.ts();
    assert!(ts > 0 && ts <= NOW, "{text:?}: ts {ts}");
    let with_ts = match &m {
        Metric::Latency { rtt_ms, .. } => {
            assert!(
                rtt_ms.is_finite() && (0.0..=60_000.0).contains(rtt_ms),
                "{text:?}: rtt {rtt_ms}"
            );
            5
        }
        Metric::Quality {
            mos,
            loss_pct,
            jitter_ms,
            ..
        } => {
            assert!((1.0..=4.5).contains(mos), "{text:?}: mos {mos}");
            if let Some(l) = loss_pct {
                assert!((0.0..=100.0).contains(l), "{text:?}: loss {l}");
            }
            if let Some(j) = jitter_ms {
                assert!((0.0..=60_000.0).contains(j), "{text:?}: jitter {j}");
            }
            7
        }
        Metric::Load { idle_cpu, .. } => {
            if let Some(c) = idle_cpu {
                assert!(
                    c.is_finite() && (0.0..=100.0).contains(c),
                    "{text:?}: cpu {c}"
                );
            }
            6
        }
        Metric::Health { probe_rtt_ms, .. } => {
            assert!(probe_rtt_ms.is_none(), "{text:?}");
            4
        }
    };
    if words.len() < with_ts {
        assert_eq!(ts, NOW, "{text:?}");
    }
}

/// The invariants above, for one input.
pub fn check(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        check_text(text);
    }
    check_text(&String::from_utf8_lossy(data));
}
