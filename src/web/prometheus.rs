//! The collector's own figures ([`crate::collector::stats`]) in the
//! Prometheus text exposition format (version 0.0.4): `pdns_ha_` names,
//! `_total` counters, `_seconds` histograms, HELP and TYPE lines, label
//! values escaped (the writers of `report`, which `status --prometheus`
//! uses too). Appended by the HTTP server to what `status
//! --prometheus` gives (pure).

use std::fmt::Write as _;

use crate::collector::stats::{Histogram, Snapshot};
use crate::report::{prom_family as family, prom_label as label, prom_sample as sample};

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `_bucket` (with `le`), `_sum` and `_count` of one histogram; `labels`
/// are the series' other labels (`a="b",` form, may be empty).
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    for (le, n) in h.cumulative() {
        let _ = writeln!(out, "pdns_ha_{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "pdns_ha_{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        h.count
    );
    sample(out, &format!("{name}_sum"), labels, h.sum);
    sample(out, &format!("{name}_count"), labels, h.count);
}

/// Appends the collector's figures to `out`.
pub fn collector(s: &Snapshot, out: &mut String) {
    let probes: Vec<_> = s
        .nodes
        .iter()
        .filter_map(|(n, st)| {
            st.probe
                .as_ref()
                .map(|p| (format!("node=\"{}\"", label(n)), p))
        })
        .collect();
    let esls: Vec<_> = s
        .nodes
        .iter()
        .filter_map(|(n, st)| {
            st.esl
                .as_ref()
                .map(|e| (format!("node=\"{}\"", label(n)), e))
        })
        .collect();

    family(
        out,
        "probe_rtt_seconds",
        "SIP OPTIONS round trip of the probes that got a final response (200-class, 503 and others), since the collector started.",
        "histogram",
    );
    for (l, p) in &probes {
        histogram(out, "probe_rtt_seconds", l, &p.rtt);
    }
    family(
        out,
        "probes_total",
        "SIP OPTIONS probes by result: answered (up), overloaded (503), failed (no usable answer).",
        "counter",
    );
    for (l, p) in &probes {
        for (result, n) in [
            ("answered", p.answered),
            ("overloaded", p.overloaded),
            ("failed", p.failed),
        ] {
            sample(out, "probes_total", &format!("{l},result=\"{result}\""), n);
        }
    }
    family(
        out,
        "esl_connected",
        "1 while the collector is connected and subscribed to the node's FreeSWITCH event socket.",
        "gauge",
    );
    for (l, e) in &esls {
        sample(out, "esl_connected", l, u8::from(e.connected()));
    }
    family(
        out,
        "esl_reconnects_total",
        "Event-socket connections lost or refused, each followed by a reconnect.",
        "counter",
    );
    for (l, e) in &esls {
        sample(out, "esl_reconnects_total", l, e.reconnects);
    }
    family(
        out,
        "esl_hangups_total",
        "CHANNEL_HANGUP_COMPLETE events by outcome: sampled (a call quality sample), not_inbound, no_media, bad (a field missing or not believable: ignored).",
        "counter",
    );
    for (l, e) in &esls {
        let h = &e.hangups;
        for (outcome, n) in [
            ("sampled", h.sampled),
            ("not_inbound", h.not_inbound),
            ("no_media", h.no_media),
            ("bad", h.bad),
        ] {
            sample(
                out,
                "esl_hangups_total",
                &format!("{l},outcome=\"{outcome}\""),
                n,
            );
        }
    }
    family(
        out,
        "collector_samples_written_total",
        "Samples (load, latency, call quality, health) the collector wrote to the database.",
        "counter",
    );
    sample(
        out,
        "collector_samples_written_total",
        "",
        s.samples_written,
    );
    family(
        out,
        "collector_samples_pending",
        "Samples waiting to be written (kept while the database fails).",
        "gauge",
    );
    sample(out, "collector_samples_pending", "", s.samples_pending);
    family(
        out,
        "collector_samples_dropped_total",
        "Samples dropped, oldest first, because more than max_pending_samples were waiting.",
        "counter",
    );
    sample(
        out,
        "collector_samples_dropped_total",
        "",
        s.samples_dropped,
    );
    family(
        out,
        "collector_store_errors_total",
        "Store transactions that failed (their samples are kept and written later).",
        "counter",
    );
    sample(out, "collector_store_errors_total", "", s.store_errors);
    family(
        out,
        "collector_store_write_seconds",
        "Time of each store transaction of the collector: a batch of samples and its heartbeat, and the latency snapshot when one is due.",
        "histogram",
    );
    histogram(out, "collector_store_write_seconds", "", &s.store_write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::CollectorStats;
    use crate::collector::ProbeOutcome;
    use std::time::Duration;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("mtl-1.x_y"), "mtl-1.x_y");
    }

    #[test]
    fn every_family_has_help_and_type_and_histograms_are_complete() {
        let s = CollectorStats::new();
        s.set_nodes([("a", true, true), ("b", false, false)]);
        s.probe(
            "a",
            &ProbeOutcome::Answered {
                status: 200,
                rtt_ms: 3.0,
            },
        );
        s.stored(5, Duration::from_millis(2));
        let mut out = String::new();
        collector(&s.snapshot(), &mut out);
        for line in out.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suf| {
                    name.strip_suffix(suf)
                        .filter(|b| out.contains(&format!("# TYPE {b} histogram")))
                })
                .unwrap_or(name);
            assert!(out.contains(&format!("# HELP {base} ")), "{name}");
            assert!(out.contains(&format!("# TYPE {base} ")), "{name}");
        }
        assert!(out.contains("pdns_ha_probe_rtt_seconds_bucket{node=\"a\",le=\"0.0025\"} 0\n"));
        assert!(out.contains("pdns_ha_probe_rtt_seconds_bucket{node=\"a\",le=\"0.005\"} 1\n"));
        assert!(out.contains("pdns_ha_probe_rtt_seconds_bucket{node=\"a\",le=\"+Inf\"} 1\n"));
        assert!(out.contains("pdns_ha_probe_rtt_seconds_count{node=\"a\"} 1\n"));
        assert!(out.contains("pdns_ha_probes_total{node=\"a\",result=\"answered\"} 1\n"));
        assert!(out.contains("pdns_ha_esl_connected{node=\"a\"} 0\n"));
        assert!(
            !out.contains("node=\"b\""),
            "b has neither probe nor event socket"
        );
        assert!(out.contains("pdns_ha_collector_samples_written_total 5\n"));
        assert!(out.contains("pdns_ha_collector_store_write_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(out.contains("pdns_ha_collector_store_write_seconds_count 1\n"));
    }
}
