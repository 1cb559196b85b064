//! pdns-ha: a PowerDNS pipe backend that answers SIP service lookups with the
//! VoIP servers that are best for the asking client. See ARCHITECTURE.md.

pub mod answer;
pub mod bounded;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod collector;
pub mod collector_config;
pub mod dnsname;
pub mod endpoint;
pub mod metrics;
pub mod net;
pub mod pipe;
pub mod policy;
pub mod proto;
pub mod rdata;
pub mod report;
pub mod site;
pub mod snapshot;
pub mod store;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod text;
pub mod topology;
pub mod web;
