//! The `snapshot_file` target: see the module of the same name in the library.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pdns_ha_fuzz::snapshot_file::check(data));
