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
    fn within() {
        assert!(is_within("a.example.com", "example.com"));
        assert!(is_within("example.com", "example.com"));
        assert!(!is_within("badexample.com", "example.com"));
        assert!(!is_within("com", "example.com"));
        assert_eq!(parent("_udp.example.com"), Some("example.com"));
        assert_eq!(parent("com"), None);
    }
}
