//! Feeds arbitrary text (bytes through `String::from_utf8_lossy`) to
//! `site::parse` as a site file.
//!
//! Invariants: it never panics; an accepted site passes
//! `site::revalidate`, applies to a fresh database, diffing it against
//! that database again (`store::diff_site`) finds no change, and its nodes
//! load back equal (each value stored as text parses back to itself).

use pdns_ha::store::{Store, apply_site, diff_site};

/// The invariants above, for one input.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(site) = pdns_ha::site::parse("site.toml", &text) else {
        return;
    };
    if let Err(e) = pdns_ha::site::revalidate(&site) {
        panic!("accepted site fails revalidate: {e}\n{text}");
    }
    let dir = std::env::temp_dir().join(format!("pdns-ha-fuzz-site-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("site.db");
    let mut store = Store::open_or_create(&path).expect("fresh database");
    if let Err(e) = apply_site(&mut store, &site) {
        panic!("accepted site does not apply: {e:#}\n{text}");
    }
    let changes = diff_site(Some(&store), &site).expect("diff");
    assert!(
        changes.is_empty(),
        "changes after apply: {changes:?}\n{text}"
    );
    let (loaded, _) = store
        .load_site()
        .unwrap_or_else(|e| panic!("an applied site does not load: {e:#}\n{text}"));
    assert_eq!(loaded.nodes, site.nodes, "nodes loaded back\n{text}");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
