//! The collector: FreeSWITCH event socket and SIP OPTIONS probes.
mod config;
pub use config::CollectorConfig;
