//! The policies: pure functions from a snapshot of node states and latency
//! entries to a ranking (SRV priority tiers and weights) and an ECS scope.
//! No I/O here; `answer` gathers the inputs, `explain` prints the reasons.

use crate::metrics::Health;
use crate::site::{Policy, PolicyConfig};

/// A node as a service or pool lists it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    /// Index of the node in the topology.
    pub node: usize,
    pub priority: u16,
    pub weight: u16,
}

/// What the store says about a node, already judged for freshness.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeView {
    /// None: unknown (no health, or stale): treated as up.
    pub health: Option<Health>,
    pub drained: bool,
    /// Fresh load, if any.
    pub load: Option<Load>,
    /// Site file's `max_sessions`, which wins over FreeSWITCH's.
    pub site_max_sessions: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Load {
    pub sessions: u32,
    /// 0: unknown.
    pub max_sessions: u32,
    pub idle_cpu: Option<f64>,
}

/// The latency entry used for one node: the most specific fresh one that
/// contains the client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub ms: f64,
    /// Prefix length of the entry (of the named network's prefix for a named
    /// network entry).
    pub prefix_len: u8,
}

/// Why a node got its place (or was left out).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reason {
    /// Ordered by measured latency.
    Measured(f64),
    /// No fresh latency; placed by the named network's `prefer` list.
    Preferred,
    /// No fresh latency; placed in the site file's order.
    NoLatency,
    /// Ordered by free capacity (sessions).
    FreeCapacity(f64),
    /// Load unknown or stale; after the nodes with known load.
    NoLoad,
    /// At or over its session limit: last.
    Full,
    /// Reported overloaded: last.
    Overloaded,
    /// The site file's priority and weight.
    Static,
    Down,
    Drained,
    /// Every node was down or drained: all answered.
    FailOpen,
    /// Decided by another coprocess or DNS server, read from memcached.
    Shared,
}

impl Reason {
    pub fn describe(&self) -> String {
        match self {
            Reason::Measured(ms) => format!("measured latency {ms:.1} ms"),
            Reason::Preferred => "no fresh latency; preferred by the client's network".into(),
            Reason::NoLatency => "no fresh latency; site order".into(),
            Reason::FreeCapacity(f) => format!("free capacity {f:.1} sessions"),
            Reason::NoLoad => "no fresh load; after nodes with known load".into(),
            Reason::Full => "full: at its session limit; last".into(),
            Reason::Overloaded => "overloaded; last".into(),
            Reason::Static => "site file priority and weight".into(),
            Reason::Down => "down: left out".into(),
            Reason::Drained => "drained by the operator: left out".into(),
            Reason::FailOpen => "every node down or drained: answered anyway (fail open)".into(),
            Reason::Shared => "decided by another process (shared through memcached)".into(),
        }
    }
}

/// A node's place in an answer. Lower `tier` is better (SRV priority).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranked {
    pub node: usize,
    pub tier: u16,
    pub weight: u16,
    pub reason: Reason,
}

/// The outcome of a policy for one client.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    /// In answer order.
    pub ranked: Vec<Ranked>,
    pub left_out: Vec<(usize, Reason)>,
    /// ECS scope to send (0 for static answers).
    pub scope: u8,
    pub failed_open: bool,
}

/// Everything a policy looks at.
pub struct Input<'a> {
    pub policy: Policy,
    pub config: &'a PolicyConfig,
    pub candidates: &'a [Candidate],
    /// Indexed by node index.
    pub views: &'a [NodeView],
    /// Per candidate (same order as `candidates`).
    pub latency: &'a [Option<Latency>],
    /// Node indexes preferred by the client's named network, best first.
    pub prefer: &'a [usize],
    /// Scope to use when no latency entry decided: the fine level, capped at
    /// the client's source prefix length.
    pub fine_scope: u8,
}

/// Ranks the candidates. See the product contract, "How an answer is chosen".
pub fn rank(input: &Input) -> Decision {
    let mut d = Decision::default();
    let mut eligible: Vec<usize> = Vec::with_capacity(input.candidates.len());
    for (i, c) in input.candidates.iter().enumerate() {
        let v = &input.views[c.node];
        if v.drained {
            d.left_out.push((c.node, Reason::Drained));
        } else if v.health == Some(Health::Down) {
            d.left_out.push((c.node, Reason::Down));
        } else {
            eligible.push(i);
        }
    }
    if eligible.is_empty() {
        d.failed_open = true;
        d.left_out.clear();
        let all: Vec<usize> = (0..input.candidates.len()).collect();
        d.ranked = as_in_site(input.candidates, all, Reason::FailOpen);
        d.scope = if input.policy == Policy::Static {
            0
        } else {
            input.fine_scope
        };
        return d;
    }
    match input.policy {
        Policy::Static => {
            d.ranked = as_in_site(input.candidates, eligible, Reason::Static);
            d.scope = 0;
        }
        Policy::Latency => latency(input, &eligible, &mut d),
        Policy::Load => load(input, &eligible, &mut d),
    }
    d
}

/// The candidates at these positions with the site file's priorities and
/// weights, in site order.
fn as_in_site(c: &[Candidate], mut idx: Vec<usize>, reason: Reason) -> Vec<Ranked> {
    static_order(c, &mut idx);
    idx.iter()
        .map(|&i| Ranked {
            node: c[i].node,
            tier: c[i].priority,
            weight: c[i].weight,
            reason,
        })
        .collect()
}

/// Sorts candidate positions by site priority, then listing order.
fn static_order(c: &[Candidate], idx: &mut [usize]) {
    idx.sort_by_key(|&i| (c[i].priority, i));
}

/// Appends nodes one tier each, or sharing a tier when their site
/// priorities are equal.
fn push_static_tiers(
    input: &Input,
    idx: &[usize],
    reason: impl Fn(usize) -> Reason,
    next: &mut u16,
    d: &mut Decision,
) {
    let mut last_prio = None;
    for &i in idx {
        let c = input.candidates[i];
        if last_prio.is_some() && last_prio != Some(c.priority) {
            *next += 1;
        }
        last_prio = Some(c.priority);
        d.ranked.push(Ranked {
            node: c.node,
            tier: *next,
            weight: c.weight,
            reason: reason(c.node),
        });
    }
    if last_prio.is_some() {
        *next += 1;
    }
}

fn latency(input: &Input, eligible: &[usize], d: &mut Decision) {
    let cfg = input.config;
    let overloaded =
        |i: usize| input.views[input.candidates[i].node].health == Some(Health::Overloaded);
    let mut measured: Vec<(usize, f64)> = Vec::new();
    let mut unmeasured: Vec<usize> = Vec::new();
    let mut last: Vec<usize> = Vec::new();
    let mut scope: Option<u8> = None;
    for &i in eligible {
        if overloaded(i) {
            last.push(i);
            continue;
        }
        match input.latency[i] {
            Some(l) => {
                measured.push((i, l.ms));
                scope = Some(scope.map_or(l.prefix_len, |s| s.max(l.prefix_len)));
            }
            None => unmeasured.push(i),
        }
    }
    measured.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut tier = 0u16;
    let mut leader: Option<f64> = None;
    for &(i, ms) in &measured {
        if let Some(best) = leader {
            let tolerance = cfg
                .latency_tolerance_ms
                .max(best * cfg.latency_tolerance_pct / 100.0);
            if ms > best + tolerance {
                tier += 1;
                leader = Some(ms);
            }
        } else {
            leader = Some(ms);
        }
        let c = input.candidates[i];
        d.ranked.push(Ranked {
            node: c.node,
            tier,
            weight: c.weight,
            reason: Reason::Measured(ms),
        });
    }
    let mut next = if measured.is_empty() { 0 } else { tier + 1 };
    // Preferred nodes first, each its own tier, in `prefer` order.
    let rank_in_prefer = |i: usize| {
        input
            .prefer
            .iter()
            .position(|&n| n == input.candidates[i].node)
    };
    let mut preferred: Vec<usize> = unmeasured
        .iter()
        .copied()
        .filter(|&i| rank_in_prefer(i).is_some())
        .collect();
    preferred.sort_by_key(|&i| rank_in_prefer(i));
    for &i in &preferred {
        let c = input.candidates[i];
        d.ranked.push(Ranked {
            node: c.node,
            tier: next,
            weight: c.weight,
            reason: Reason::Preferred,
        });
        next += 1;
    }
    let mut rest: Vec<usize> = unmeasured
        .into_iter()
        .filter(|&i| rank_in_prefer(i).is_none())
        .collect();
    static_order(input.candidates, &mut rest);
    push_static_tiers(input, &rest, |_| Reason::NoLatency, &mut next, d);
    static_order(input.candidates, &mut last);
    push_static_tiers(input, &last, |_| Reason::Overloaded, &mut next, d);
    d.scope = scope.unwrap_or(input.fine_scope);
}

/// Free capacity in sessions, or None when the load is unknown.
pub fn free_capacity(v: &NodeView) -> Option<f64> {
    let l = v.load?;
    let max = v
        .site_max_sessions
        .filter(|&m| m > 0)
        .unwrap_or(l.max_sessions);
    if max == 0 {
        return None;
    }
    let idle = l.idle_cpu.map_or(1.0, |c| (c / 100.0).clamp(0.0, 1.0));
    Some(idle * (max as f64 - l.sessions as f64).max(0.0))
}

fn load(input: &Input, eligible: &[usize], d: &mut Decision) {
    let cfg = input.config;
    let mut known: Vec<(usize, f64)> = Vec::new();
    let mut unknown: Vec<usize> = Vec::new();
    let mut last: Vec<(usize, Reason)> = Vec::new();
    for &i in eligible {
        let v = &input.views[input.candidates[i].node];
        if v.health == Some(Health::Overloaded) {
            last.push((i, Reason::Overloaded));
            continue;
        }
        match free_capacity(v) {
            Some(f) if f > 0.0 => known.push((i, f)),
            Some(_) => last.push((i, Reason::Full)),
            None => unknown.push(i),
        }
    }
    known.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut tiers: Vec<Vec<(usize, f64)>> = Vec::new();
    for &(i, f) in &known {
        match tiers.last_mut() {
            Some(t) if f >= t[0].1 * (1.0 - cfg.load_tolerance_pct / 100.0) => t.push((i, f)),
            _ => tiers.push(vec![(i, f)]),
        }
    }
    let mut next = 0u16;
    for t in &tiers {
        let total: f64 = t.iter().map(|x| x.1).sum();
        for &(i, f) in t {
            d.ranked.push(Ranked {
                node: input.candidates[i].node,
                tier: next,
                weight: ((1000.0 * f / total).round() as u16).max(1),
                reason: Reason::FreeCapacity(f),
            });
        }
        next += 1;
    }
    static_order(input.candidates, &mut unknown);
    push_static_tiers(input, &unknown, |_| Reason::NoLoad, &mut next, d);
    last.sort_by_key(|&(i, _)| (input.candidates[i].priority, i));
    for (i, r) in last {
        let c = input.candidates[i];
        d.ranked.push(Ranked {
            node: c.node,
            tier: next,
            weight: c.weight,
            reason: r,
        });
        next += 1;
    }
    d.scope = input.fine_scope;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                node: i,
                priority: i as u16,
                weight: 100,
            })
            .collect()
    }

    fn lat(ms: f64, len: u8) -> Option<Latency> {
        Some(Latency {
            ms,
            prefix_len: len,
        })
    }

    fn run(
        policy: Policy,
        views: &[NodeView],
        latency: &[Option<Latency>],
        prefer: &[usize],
    ) -> Decision {
        let config = PolicyConfig::default();
        let c = cands(views.len());
        rank(&Input {
            policy,
            config: &config,
            candidates: &c,
            views,
            latency,
            prefer,
            fine_scope: 24,
        })
    }

    fn order(d: &Decision) -> Vec<(usize, u16)> {
        d.ranked.iter().map(|r| (r.node, r.tier)).collect()
    }

    fn up() -> NodeView {
        NodeView::default()
    }

    #[test]
    fn latency_orders_by_rtt_and_groups_within_tolerance() {
        let views = [up(), up(), up(), up()];
        // 40 ms, 12 ms, 15 ms (within 5 ms of 12), 90 ms.
        let d = run(
            Policy::Latency,
            &views,
            &[lat(40.0, 24), lat(12.0, 24), lat(15.0, 16), lat(90.0, 8)],
            &[],
        );
        assert_eq!(order(&d), [(1, 0), (2, 0), (0, 1), (3, 2)]);
        assert_eq!(d.scope, 24);
        assert!(!d.failed_open);
    }

    #[test]
    fn latency_relative_tolerance_applies_above_the_floor() {
        // 10% of 200 ms is 20 ms > 5 ms floor: 215 shares the tier, 225 does not.
        let views = [up(), up(), up()];
        let d = run(
            Policy::Latency,
            &views,
            &[lat(200.0, 24), lat(215.0, 24), lat(225.0, 24)],
            &[],
        );
        assert_eq!(order(&d), [(0, 0), (1, 0), (2, 1)]);
    }

    #[test]
    fn scope_is_the_most_specific_entry_used() {
        let views = [up(), up()];
        let d = run(
            Policy::Latency,
            &views,
            &[lat(10.0, 16), lat(20.0, 13)],
            &[],
        );
        assert_eq!(d.scope, 16);
        let d = run(Policy::Latency, &views, &[None, None], &[]);
        assert_eq!(d.scope, 24, "no entry: the fine level");
        let d = run(Policy::Static, &views, &[None, None], &[]);
        assert_eq!(d.scope, 0);
    }

    #[test]
    fn unmeasured_nodes_follow_prefer_then_site_order_and_overloaded_go_last() {
        let mut views = [up(), up(), up(), up()];
        views[0].health = Some(Health::Overloaded);
        let d = run(
            Policy::Latency,
            &views,
            &[lat(1.0, 24), None, None, lat(50.0, 24)],
            &[2],
        );
        assert_eq!(order(&d), [(3, 0), (2, 1), (1, 2), (0, 3)]);
        assert_eq!(d.ranked[1].reason, Reason::Preferred);
        assert_eq!(d.ranked[3].reason, Reason::Overloaded);
    }

    #[test]
    fn down_and_drained_are_left_out_and_all_gone_fails_open() {
        let mut views = [up(), up(), up()];
        views[0].health = Some(Health::Down);
        views[1].drained = true;
        let d = run(
            Policy::Latency,
            &views,
            &[lat(1.0, 24), lat(2.0, 24), lat(3.0, 24)],
            &[],
        );
        assert_eq!(order(&d), [(2, 0)]);
        assert_eq!(d.left_out, [(0, Reason::Down), (1, Reason::Drained)]);
        views[2].health = Some(Health::Down);
        let d = run(
            Policy::Latency,
            &views,
            &[lat(1.0, 24), lat(2.0, 24), lat(3.0, 24)],
            &[],
        );
        assert!(d.failed_open);
        assert_eq!(order(&d), [(0, 0), (1, 1), (2, 2)]);
        assert!(d.left_out.is_empty());
    }

    #[test]
    fn unknown_health_counts_as_up() {
        let views = [
            NodeView {
                health: None,
                ..up()
            },
            NodeView {
                health: Some(Health::Up),
                ..up()
            },
        ];
        let d = run(Policy::Static, &views, &[None, None], &[]);
        assert_eq!(order(&d), [(0, 0), (1, 1)]);
    }

    fn loaded(sessions: u32, max: u32, idle: Option<f64>) -> NodeView {
        NodeView {
            load: Some(Load {
                sessions,
                max_sessions: max,
                idle_cpu: idle,
            }),
            ..up()
        }
    }

    #[test]
    fn load_orders_by_free_capacity_with_proportional_weights() {
        let views = [
            loaded(900, 1000, None),
            loaded(100, 1000, Some(100.0)),
            loaded(150, 1000, None),
            up(),
        ];
        let d = run(Policy::Load, &views, &[None; 4], &[]);
        // free: 100, 900, 850 (within 10% of 900), unknown.
        assert_eq!(order(&d), [(1, 0), (2, 0), (0, 1), (3, 2)]);
        assert_eq!(d.ranked[0].weight, 514);
        assert_eq!(d.ranked[1].weight, 486);
        assert_eq!(d.ranked[2].weight, 1000);
        assert_eq!(d.ranked[3].reason, Reason::NoLoad);
        assert_eq!(d.scope, 24);
    }

    #[test]
    fn load_uses_idle_cpu_and_site_max_and_puts_full_last() {
        let mut views = [
            loaded(100, 1000, Some(10.0)),
            loaded(100, 1000, Some(90.0)),
            loaded(500, 0, None),
            loaded(10, 10, None),
        ];
        views[2].site_max_sessions = Some(400);
        let d = run(Policy::Load, &views, &[None; 4], &[]);
        assert_eq!(order(&d), [(1, 0), (0, 1), (2, 2), (3, 3)]);
        assert_eq!(d.ranked[2].reason, Reason::Full);
        assert_eq!(free_capacity(&views[0]), Some(90.0));
        views[1].health = Some(Health::Overloaded);
        let d = run(Policy::Load, &views, &[None; 4], &[]);
        assert_eq!(order(&d), [(0, 0), (1, 1), (2, 2), (3, 3)]);
        assert_eq!(d.ranked[1].reason, Reason::Overloaded);
    }

    #[test]
    fn static_keeps_site_priorities_and_weights() {
        let config = PolicyConfig::default();
        let c = [
            Candidate {
                node: 0,
                priority: 20,
                weight: 5,
            },
            Candidate {
                node: 1,
                priority: 10,
                weight: 60,
            },
        ];
        let views = [up(), up()];
        let d = rank(&Input {
            policy: Policy::Static,
            config: &config,
            candidates: &c,
            views: &views,
            latency: &[None, None],
            prefer: &[],
            fine_scope: 24,
        });
        assert_eq!(
            d.ranked
                .iter()
                .map(|r| (r.node, r.tier, r.weight))
                .collect::<Vec<_>>(),
            [(1, 10, 60), (0, 20, 5)]
        );
    }
}
