//! Decision caching: the key a decision is cached under (in process and in
//! the shared cache), and the interface of the shared cache (memcached).

pub mod memcached;

use crate::net::Prefix;
use crate::policy::{Decision, NodeView};
use crate::site::Policy;
pub use crate::store::CacheStats;
use crate::topology::Target;
use crate::topology::Topology;

/// What a decision depends on besides the store: the dynamic name and, for
/// the latency and quality policies, the client network at the fine level. Static and load
/// decisions do not depend on the client's address (only on its family and
/// source prefix length, which set the scope).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DecisionKey {
    pub target: Target,
    /// 0 for static policy, else 4 or 6.
    pub family: u8,
    /// The client network (latency and quality policies only; else 0).
    pub net: i64,
    /// The client's prefix length at the fine level (the scope to send).
    pub len: u8,
}

impl DecisionKey {
    /// `client` is already truncated to the fine level.
    pub fn new(target: Target, policy: Policy, client: &Prefix) -> DecisionKey {
        match policy {
            Policy::Static => DecisionKey {
                target,
                family: 0,
                net: 0,
                len: 0,
            },
            Policy::Load => DecisionKey {
                target,
                family: client.family() as u8,
                net: 0,
                len: client.len,
            },
            Policy::Latency | Policy::Quality => DecisionKey {
                target,
                family: client.family() as u8,
                net: client.net_key(),
                len: client.len,
            },
        }
    }
}

/// A cache of decisions shared between coprocesses and DNS servers. Nothing
/// read from it is trusted: an implementation returns only values that parse,
/// fit the current topology and `version`, and agree with this server's own
/// node states `views` on which nodes are down, drained or overloaded
/// ([`crate::policy::disagreement`]: a DNS server with its own database and
/// collector may see the fleet differently for a moment).
pub trait SharedCache {
    fn get(
        &mut self,
        key: &DecisionKey,
        version: (i64, i64),
        topo: &Topology,
        views: &[NodeView],
    ) -> Option<Decision>;
    fn put(&mut self, key: &DecisionKey, version: (i64, i64), topo: &Topology, d: &Decision);
    fn stats(&self) -> CacheStats;
}
