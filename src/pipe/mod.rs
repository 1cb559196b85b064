//! The coprocess PowerDNS runs (`pdns-ha pipe`): the synchronous,
//! single-threaded loop that reads questions and writes answers.

pub mod proto;
pub mod server;
