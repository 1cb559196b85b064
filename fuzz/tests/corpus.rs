//! Replays every committed input of every target (`corpus/TARGET/*` and
//! `regressions/TARGET/*`) through the target's check: the targets keep
//! building, and every input keeps passing, on a stable toolchain.

use std::path::{Path, PathBuf};

use pdns_ha_fuzz::TARGETS;

/// The files of `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, check) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .expect("a target");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = files(&root.join("corpus").join(target));
    assert!(!corpus.is_empty(), "no corpus for {target}");
    for file in corpus
        .iter()
        .chain(&files(&root.join("regressions").join(target)))
    {
        let data = std::fs::read(file).expect("an input");
        let run = std::panic::catch_unwind(|| check(&data));
        assert!(run.is_ok(), "{target}: {} fails", file.display());
    }
}

#[test]
fn every_target_has_a_replay_test() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.0).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in &names {
        assert!(
            root.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .is_file(),
            "{name}"
        );
    }
    let mut wrappers: Vec<String> = files(&root.join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    wrappers.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(wrappers, sorted);
}

#[test]
fn metric_line() {
    replay("metric_line");
}

#[test]
fn pipe_lines() {
    replay("pipe_lines");
}

#[test]
fn site_text() {
    replay("site_text");
}

#[test]
fn sip_response() {
    replay("sip_response");
}

#[test]
fn esl_event() {
    replay("esl_event");
}

#[test]
fn memcached_value() {
    replay("memcached_value");
}

#[test]
fn snapshot_file() {
    replay("snapshot_file");
}
