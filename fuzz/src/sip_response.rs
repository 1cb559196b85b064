//! Feeds arbitrary bytes to `collector::sip::parse_response`, as a SIP
//! datagram from the network.
//!
//! Invariants: it never panics; an accepted response starts with
//! `SIP/2.0 ` and its status code is 100..=699, the number written on its
//! status line.

use pdns_ha::collector::sip::parse_response;

/// The invariants above, for one input.
pub fn check(data: &[u8]) {
    let Some(r) = parse_response(data) else {
        return;
    };
    assert!(
        (100..=699).contains(&r.status),
        "status {} from {data:?}",
        r.status
    );
    assert!(data.starts_with(b"SIP/2.0 "), "{data:?}");
    let code = data[8..]
        .split(|&b| b == b' ' || b == b'\n' || b == b'\r')
        .next()
        .unwrap_or_default();
    assert_eq!(
        std::str::from_utf8(code)
            .ok()
            .and_then(|c| c.parse::<u16>().ok()),
        Some(r.status),
        "{data:?}"
    );
}
