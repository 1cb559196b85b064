//! Domain names as pdns-ha keeps them: lower case, no trailing dot.

use crate::text::quote;

/// Validates a domain name and returns it in lower case without the
/// trailing dot. Letters, digits, '-' and '_' (for `_sip._udp`) only.
pub fn normalize(name: &str) -> Result<String, String> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() {
        return Err("the root name cannot be used here".into());
    }
    if n.len() > 253 {
        return Err(format!("{} is longer than 253 characters", quote(name)));
    }
    for label in n.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "{} has an empty label or one longer than 63",
                quote(name)
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "{} may only use letters, digits, '-' and '_'",
                quote(name)
            ));
        }
    }
    Ok(n.to_ascii_lowercase())
}

/// True if `name` is `apex` or below it. Both lower case, no trailing dot.
pub fn is_within(name: &str, apex: &str) -> bool {
    name == apex
        || (name.len() > apex.len()
            && name.ends_with(apex)
            && name.as_bytes()[name.len() - apex.len() - 1] == b'.')
}

/// The longest name in wire form (RFC 1035 2.3.4), with its length octets
/// and the root's.
pub const MAX_WIRE_OCTETS: usize = 255;
/// The longest label (RFC 1035 2.3.4).
pub const MAX_LABEL_OCTETS: usize = 63;

/// Checks that a name as PowerDNS writes it (presentation form, trailing
/// dot or not, `\DDD` and `\X` escapes each one octet) fits in a DNS name:
/// no label over 63 octets and at most 255 octets in wire form.
pub fn check_wire_length(name: &str) -> Result<(), String> {
    // Every question: a name of at most 63 bytes has at most 63 octets, so
    // neither bound can be passed (escapes only make octets fewer).
    if name.len() <= MAX_LABEL_OCTETS {
        return Ok(());
    }
    wire_length(name).map(|_| ())
}

/// The wire length of a name as PowerDNS writes it (see
/// [`check_wire_length`]), or why it is no DNS name. A byte scan that stops
/// at the first excess.
pub fn wire_length(name: &str) -> Result<usize, String> {
    let b = name.as_bytes();
    if b == b"." {
        return Ok(1);
    }
    // The root label's zero octet, then each label's length octet and octets.
    let mut wire = 1;
    let mut label = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' => {
                wire += label + 1;
                label = 0;
                i += 1;
                continue;
            }
            b'\\' if b.len() >= i + 4 && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) => i += 4,
            b'\\' => i += 2,
            _ => i += 1,
        }
        label += 1;
        if label > MAX_LABEL_OCTETS {
            return Err(format!("a label longer than {MAX_LABEL_OCTETS} octets"));
        }
        if wire + label + 1 > MAX_WIRE_OCTETS {
            return Err(format!("a name longer than {MAX_WIRE_OCTETS} octets"));
        }
    }
    if label > 0 {
        wire += label + 1;
    }
    Ok(wire)
}

/// The parent of `name` (`a.b.c` -> `b.c`), or None for a single label.
pub fn parent(name: &str) -> Option<&str> {
    name.split_once('.').map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_checks() {
        assert_eq!(
            normalize("_SIP._udp.Example.COM.").unwrap(),
            "_sip._udp.example.com"
        );
        assert!(normalize("a..b").is_err());
        assert!(normalize("a b.c").is_err());
        assert!(normalize(".").is_err());
        assert!(normalize(&"a".repeat(64)).is_err());
    }

    #[test]
    fn wire_length_counts_escapes_as_one_octet() {
        assert_eq!(wire_length("."), Ok(1));
        assert_eq!(wire_length("com"), Ok(5));
        assert_eq!(wire_length("example.com."), Ok(13));
        assert_eq!(wire_length("example.com"), Ok(13));
        assert_eq!(wire_length(r"a\.b.c"), Ok(7)); // "a.b" is one label
        assert_eq!(wire_length(r"\000\255x.c"), Ok(7));
        // 255 octets: labels of 63, 63, 63 and 61.
        let l = |n: usize, c: &str| c.repeat(n);
        let max = [l(63, "a"), l(63, "b"), l(63, "c"), l(61, "d")].join(".");
        assert_eq!(wire_length(&max), Ok(255));
        assert_eq!(wire_length(&format!("{max}.")), Ok(255));
        assert!(wire_length(&format!("{max}d")).is_err());
        assert!(wire_length(&format!("e.{max}")).is_err());
        // The same with every octet written \DDD (1003 bytes), or \X.
        let esc = [
            l(63, r"\097"),
            l(63, r"\098"),
            l(63, r"\099"),
            l(61, r"\100"),
        ]
        .join(".");
        assert_eq!(esc.len(), 1003);
        assert_eq!(wire_length(&esc), Ok(255));
        assert!(wire_length(&format!("{esc}\\101")).is_err());
        let x = [l(63, r"\a"), l(63, r"\b"), l(63, r"\c"), l(61, r"\d")].join(".");
        assert_eq!(wire_length(&x), Ok(255));
        // Labels.
        assert_eq!(wire_length(&l(63, "a")), Ok(65));
        assert_eq!(
            wire_length(&l(64, "a")).unwrap_err(),
            "a label longer than 63 octets"
        );
        assert!(wire_length(&format!("{}.com", l(64, r"\065"))).is_err());
        assert_eq!(
            wire_length(&l(1 << 20, "a.")).unwrap_err(),
            "a name longer than 255 octets"
        );
        // The check: the same, with a shortcut for short names.
        assert_eq!(check_wire_length(&l(63, r"\255")), Ok(()));
        assert_eq!(check_wire_length(&l(63, "a")), Ok(()));
        assert!(check_wire_length(&l(64, "a")).is_err());
        assert_eq!(check_wire_length(&max), Ok(()));
        assert!(check_wire_length(&format!("{max}d")).is_err());
    }

    #[test]
    fn within() {
        assert!(is_within("a.example.com", "example.com"));
        assert!(is_within("example.com", "example.com"));
        assert!(!is_within("badexample.com", "example.com"));
        assert!(!is_within("com", "example.com"));
        assert_eq!(parent("_udp.example.com"), Some("example.com"));
        assert_eq!(parent("com"), None);
    }
}
