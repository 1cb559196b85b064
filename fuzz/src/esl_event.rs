//! Feeds arbitrary bytes to the FreeSWITCH parsers: `collector::esl`'s
//! `parse_event_plain` (an event body), `FrameParser` (the bytes as a stream,
//! cut in two at a point chosen by the first byte) and `url_decode_str`, and
//! `collector::freeswitch`'s `heartbeat_load` and `hangup_quality` (on the
//! parsed event's headers), `status_load`, `calls_count`, `fsctl_max_sessions`,
//! `xmlstatus_registrations` and `xml_unescape` (on the bytes as text).
//!
//! Invariants: nothing panics; a HEARTBEAT load's `max_sessions` is never
//! `Some(0)` and its idle CPU is finite; a hang-up's call quality has a MOS
//! from 1 to 4.5, a loss from 0 to 100 %, a jitter from 0 to 60000 ms and a
//! specified address; every header listed is found by its name; a Reachable registration's ping
//! time is finite and in 0..=60000 ms; the frame parser never keeps more
//! bytes pending than it was given.

use pdns_ha::collector::esl::{FrameParser, parse_event_plain, url_decode_str};
use pdns_ha::collector::freeswitch;

/// The invariants above, for one input.
pub fn check(data: &[u8]) {
    if let Ok(event) = parse_event_plain(data) {
        let _ = event.name();
        if let Ok(load) = freeswitch::heartbeat_load(|h| event.header(h)) {
            assert_ne!(load.max_sessions, Some(0), "{data:?}");
            assert!(load.idle_cpu.is_none_or(f64::is_finite), "{data:?}");
        }
        if let Ok(q) = freeswitch::hangup_quality(|h| event.header(h)) {
            assert!((1.0..=4.5).contains(&q.mos), "{data:?}");
            assert!(
                q.loss_pct.is_none_or(|l| (0.0..=100.0).contains(&l)),
                "{data:?}"
            );
            assert!(
                q.jitter_ms.is_none_or(|j| (0.0..=60_000.0).contains(&j)),
                "{data:?}"
            );
            assert!(!q.client.is_unspecified(), "{data:?}");
        }
        for (name, _) in event.headers() {
            assert!(event.header(name).is_some(), "{data:?}");
        }
    }

    let cut = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut frames = FrameParser::new();
    let mut given = 0;
    for part in [&data[..cut], &data[cut..]] {
        frames.push(part);
        given += part.len();
        while let Ok(Some(frame)) = frames.next_frame() {
            let _ = (frame.content_type(), frame.body_text());
        }
        assert!(frames.pending() <= given, "{data:?}");
    }

    let text = String::from_utf8_lossy(data);
    let _ = url_decode_str(&text);
    let _ = freeswitch::xml_unescape(&text);
    let _ = freeswitch::status_load(&text);
    let _ = freeswitch::calls_count(&text);
    let _ = freeswitch::fsctl_max_sessions(&text);
    if let Ok(regs) = freeswitch::xmlstatus_registrations(&text) {
        for r in &regs.reachable {
            assert!(
                r.ping_ms.is_finite() && (0.0..=60_000.0).contains(&r.ping_ms),
                "{data:?}"
            );
        }
    }
}
