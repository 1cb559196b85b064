//! The invariant checks of the fuzz targets, one module per target. Each
//! `fuzz_targets/NAME.rs` hands libFuzzer's inputs to `NAME::check`; the
//! corpus replay test (`tests/corpus.rs`) runs every committed input through
//! the same checks on a stable toolchain, without libFuzzer.

pub mod esl_event;
pub mod memcached_value;
pub mod metric_line;
pub mod pipe_lines;
pub mod sip_response;
pub mod site_text;
pub mod snapshot_file;

/// A target's check of one input: panics on a broken invariant.
pub type Check = fn(&[u8]);

/// Every target: its name (its directory under `corpus/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("metric_line", metric_line::check),
    ("pipe_lines", pipe_lines::check),
    ("site_text", site_text::check),
    ("sip_response", sip_response::check),
    ("esl_event", esl_event::check),
    ("memcached_value", memcached_value::check),
    ("snapshot_file", snapshot_file::check),
];
