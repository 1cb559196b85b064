//! The policies: pure functions from a snapshot of node states, latency
//! and call quality entries to a ranking (SRV priority tiers and weights) and an ECS scope.
//! No I/O here; `answer` gathers the inputs, `explain` prints the reasons.
//! Ranking into a reused [`Decision`] ([`rank_into`]) does not allocate; the
//! engine keeps a [`Choice`], the ranking without its reasons.

use std::rc::Rc;

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

/// The call quality entry used for one node: the most specific fresh one
/// with enough calls that contains the client.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quality {
    /// Moving average of the calls' receive MOS.
    pub mos: f64,
    /// Prefix length of the entry (as for [`Latency`]).
    pub prefix_len: u8,
}

/// Why a node got its place (or was left out).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reason {
    /// Ordered by measured latency.
    Measured(f64),
    /// Ordered by the MOS of its calls from the client's network.
    Quality(f64),
    /// Quality policy, no call quality figure: ordered by measured latency,
    /// after the nodes with one.
    NoQuality(f64),
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
            Reason::Quality(mos) => format!("call quality MOS {mos:.2}"),
            Reason::NoQuality(ms) => {
                format!("no call quality figure; measured latency {ms:.1} ms")
            }
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

/// A decision as answers use it: the nodes in answer order with their
/// tiers and weights, the scope, and whether it failed open. No reasons
/// (`explain` computes a [`Decision`]); up to [`CHOICE_INLINE`] nodes it owns
/// no heap, so keeping one costs no allocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    places: Places,
    /// ECS scope to send (0 for static answers).
    pub scope: u8,
    pub failed_open: bool,
}

/// A node's place in an answer: a [`Ranked`] without its reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Place {
    /// Index of the node in the topology.
    pub node: u32,
    pub tier: u16,
    pub weight: u16,
}

/// Nodes a [`Choice`] holds without a heap allocation: services and pools
/// list a few nodes each (a larger one's choices are shared, counted).
pub const CHOICE_INLINE: usize = 6;

#[derive(Clone, Debug, PartialEq)]
enum Places {
    Inline(u8, [Place; CHOICE_INLINE]),
    Shared(Rc<[Place]>),
}

impl Choice {
    /// The answer part of `d`.
    pub fn of(d: &Decision) -> Choice {
        let place = |r: &Ranked| Place {
            node: u32::try_from(r.node).expect("a node index fits in 32 bits"),
            tier: r.tier,
            weight: r.weight,
        };
        let places = if d.ranked.len() <= CHOICE_INLINE {
            let mut a = [Place::default(); CHOICE_INLINE];
            for (p, r) in a.iter_mut().zip(&d.ranked) {
                *p = place(r);
            }
            Places::Inline(d.ranked.len() as u8, a)
        } else {
            Places::Shared(d.ranked.iter().map(place).collect())
        };
        Choice {
            places,
            scope: d.scope,
            failed_open: d.failed_open,
        }
    }

    /// The nodes, in answer order.
    pub fn places(&self) -> &[Place] {
        match &self.places {
            Places::Inline(n, a) => &a[..usize::from(*n)],
            Places::Shared(v) => v,
        }
    }

    /// The places kept on the heap (0 up to [`CHOICE_INLINE`]).
    pub fn heap_places(&self) -> usize {
        match &self.places {
            Places::Inline(..) => 0,
            Places::Shared(v) => v.len(),
        }
    }
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
    /// Per candidate, for the quality policy (else may be empty).
    pub quality: &'a [Option<Quality>],
    /// Node indexes preferred by the client's named network, best first.
    pub prefer: &'a [usize],
    /// Scope to use when no latency entry decided: the fine level, capped at
    /// the client's source prefix length.
    pub fine_scope: u8,
}

/// Ranks the candidates. See the product contract, "How an answer is chosen".
pub fn rank(input: &Input) -> Decision {
    let mut d = Decision::default();
    rank_into(input, &mut d);
    d
}

/// [`rank`] into `d`, whose vectors are emptied and reused: with them, and
/// up to [`SCRATCH`] candidates, ranking does not allocate.
pub fn rank_into(input: &Input, d: &mut Decision) {
    d.ranked.clear();
    d.left_out.clear();
    d.scope = 0;
    d.failed_open = false;
    let n = input.candidates.len();
    with_scratch(n, |positions: &mut [usize]| {
        let mut eligible = 0;
        for (i, c) in input.candidates.iter().enumerate() {
            let v = &input.views[c.node];
            if v.drained {
                d.left_out.push((c.node, Reason::Drained));
            } else if v.health == Some(Health::Down) {
                d.left_out.push((c.node, Reason::Down));
            } else {
                positions[eligible] = i;
                eligible += 1;
            }
        }
        if eligible == 0 {
            d.failed_open = true;
            d.left_out.clear();
            for (i, p) in positions.iter_mut().enumerate() {
                *p = i;
            }
            as_in_site(input.candidates, positions, Reason::FailOpen, &mut d.ranked);
            d.scope = if input.policy == Policy::Static {
                0
            } else {
                input.fine_scope
            };
            return;
        }
        let eligible = &mut positions[..eligible];
        match input.policy {
            Policy::Static => {
                as_in_site(input.candidates, eligible, Reason::Static, &mut d.ranked);
                d.scope = 0;
            }
            Policy::Latency | Policy::Quality => measured(input, eligible, d),
            Policy::Load => load(input, eligible, d),
        }
    });
}

/// Why a decision made elsewhere (another coprocess, or another DNS server
/// with its own database, read from the shared cache) cannot be answered
/// with these node views, or None when it can. The decision must leave out
/// exactly the candidates these views say are down or drained (all of them
/// answered, and flagged as failing open, when that is every candidate), and
/// for the latency and load policies put every node these views say is
/// overloaded after every node they do not (a load decision may also place
/// a node these views say is full there). What is left to the other side is
/// the order and the weights its measurements gave: a node this server knows
/// down is never answered, and one it knows up is never left out.
pub fn disagreement(
    d: &Decision,
    policy: Policy,
    candidates: &[Candidate],
    views: &[NodeView],
) -> Option<&'static str> {
    let out = |v: &NodeView| v.drained || v.health == Some(Health::Down);
    let eligible = candidates.iter().filter(|c| !out(&views[c.node])).count();
    let fail_open = eligible == 0;
    if d.failed_open != fail_open {
        return Some(if fail_open {
            "every node is down or drained here, and it did not fail open"
        } else {
            "it failed open, and a node is up here"
        });
    }
    if fail_open {
        return (d.ranked.len() != candidates.len()).then_some("fail open without every node");
    }
    if d.ranked.iter().any(|r| out(&views[r.node])) {
        return Some("it answers a node that is down or drained here");
    }
    if d.ranked.len() != eligible {
        return Some("it leaves out a node that is up here");
    }
    if policy != Policy::Static {
        let overloaded = |v: &NodeView| v.health == Some(Health::Overloaded);
        let last = |v: &NodeView| {
            overloaded(v) || (policy == Policy::Load && free_capacity(v).is_some_and(|f| f <= 0.0))
        };
        let mut seen_overloaded = false;
        for r in &d.ranked {
            let v = &views[r.node];
            if overloaded(v) {
                seen_overloaded = true;
            } else if seen_overloaded && !last(v) {
                return Some("it puts a node that is overloaded here before one that is not");
            }
        }
    }
    None
}

/// Candidates ranked without a heap allocation for scratch space.
pub const SCRATCH: usize = 16;

/// Runs `f` on `n` default values: on the stack up to [`SCRATCH`], else
/// on the heap.
fn with_scratch<T: Copy + Default, R>(n: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    if n <= SCRATCH {
        let mut a = [T::default(); SCRATCH];
        f(&mut a[..n])
    } else {
        f(&mut vec![T::default(); n])
    }
}

/// The candidates at these positions with the site file's priorities and
/// weights, in site order.
fn as_in_site(c: &[Candidate], idx: &mut [usize], reason: Reason, out: &mut Vec<Ranked>) {
    static_order(c, idx);
    out.extend(idx.iter().map(|&i| Ranked {
        node: c[i].node,
        tier: c[i].priority,
        weight: c[i].weight,
        reason,
    }));
}

/// Sorts candidate positions by site priority, then listing order.
fn static_order(c: &[Candidate], idx: &mut [usize]) {
    idx.sort_unstable_by_key(|&i| (c[i].priority, i));
}

/// Appends nodes one tier each, or sharing a tier when their site
/// priorities are equal. `idx` is in site order ([`static_order`]).
fn push_static_tiers(
    input: &Input,
    idx: impl Iterator<Item = usize>,
    reason: Reason,
    next: &mut u16,
    d: &mut Decision,
) {
    let mut last_prio = None;
    for i in idx {
        let c = input.candidates[i];
        if last_prio.is_some() && last_prio != Some(c.priority) {
            *next += 1;
        }
        last_prio = Some(c.priority);
        d.ranked.push(Ranked {
            node: c.node,
            tier: *next,
            weight: c.weight,
            reason,
        });
    }
    if last_prio.is_some() {
        *next += 1;
    }
}

/// An eligible candidate, sorted by group, then by `key` within the group
/// (ascending unless the group sorts descending), then by position.
#[derive(Clone, Copy, Default)]
struct Sorted {
    group: u8,
    /// Load: at its session limit (else overloaded), in the last group.
    full: bool,
    key: f64,
    i: usize,
}

/// Sorts by group, then key (descending in group `desc`), then position.
fn sort_groups(v: &mut [Sorted], desc: Option<u8>) {
    v.sort_unstable_by(|a, b| {
        let key = if desc == Some(a.group) {
            b.key.total_cmp(&a.key)
        } else {
            a.key.total_cmp(&b.key)
        };
        a.group.cmp(&b.group).then(key).then(a.i.cmp(&b.i))
    });
}

/// The length of the leading run of `group` in `v`.
fn group_len(v: &[Sorted], group: u8) -> usize {
    v.iter().take_while(|s| s.group == group).count()
}

/// The latency and quality policies. Groups, in answer order: with a call
/// quality figure (quality policy only; by MOS, best first), with a latency
/// figure (by latency), neither but preferred by the named network (by
/// `prefer` order), neither (site order), overloaded (site order).
fn measured(input: &Input, eligible: &[usize], d: &mut Decision) {
    const QUALITY: u8 = 0;
    const LATENCY: u8 = 1;
    const PREFERRED: u8 = 2;
    const REST: u8 = 3;
    const OVERLOADED: u8 = 4;
    let cfg = input.config;
    let by_quality = input.policy == Policy::Quality;
    let mut scope: Option<u8> = None;
    let mut widest = |len: u8| scope = Some(scope.map_or(len, |s: u8| s.max(len)));
    with_scratch(eligible.len(), |v: &mut [Sorted]| {
        for (s, &i) in v.iter_mut().zip(eligible) {
            let c = input.candidates[i];
            let quality = input.quality.get(i).copied().flatten();
            let (group, key) = if input.views[c.node].health == Some(Health::Overloaded) {
                (OVERLOADED, f64::from(c.priority))
            } else if let Some(q) = quality.filter(|_| by_quality) {
                widest(q.prefix_len);
                (QUALITY, q.mos)
            } else if let Some(l) = input.latency[i] {
                widest(l.prefix_len);
                (LATENCY, l.ms)
            } else if let Some(r) = input.prefer.iter().position(|&n| n == c.node) {
                (PREFERRED, r as f64)
            } else {
                (REST, f64::from(c.priority))
            };
            *s = Sorted {
                group,
                full: false,
                key,
                i,
            };
        }
        sort_groups(v, Some(QUALITY));
        let mut next = 0u16;
        let n = group_len(v, QUALITY);
        push_measured_tiers(
            input,
            &v[..n],
            |best, mos| mos < best - cfg.quality_tolerance_mos,
            Reason::Quality,
            &mut next,
            d,
        );
        let v = &v[n..];
        let n = group_len(v, LATENCY);
        push_measured_tiers(
            input,
            &v[..n],
            |best, ms| {
                ms > best
                    + cfg
                        .latency_tolerance_ms
                        .max(best * cfg.latency_tolerance_pct / 100.0)
            },
            if by_quality {
                Reason::NoQuality
            } else {
                Reason::Measured
            },
            &mut next,
            d,
        );
        let v = &v[n..];
        // Preferred nodes first, each its own tier, in `prefer` order.
        let preferred = group_len(v, PREFERRED);
        for s in &v[..preferred] {
            let c = input.candidates[s.i];
            d.ranked.push(Ranked {
                node: c.node,
                tier: next,
                weight: c.weight,
                reason: Reason::Preferred,
            });
            next += 1;
        }
        let v = &v[preferred..];
        let rest = group_len(v, REST);
        push_static_tiers(
            input,
            v[..rest].iter().map(|s| s.i),
            Reason::NoLatency,
            &mut next,
            d,
        );
        push_static_tiers(
            input,
            v[rest..].iter().map(|s| s.i),
            Reason::Overloaded,
            &mut next,
            d,
        );
    });
    d.scope = scope.unwrap_or(input.fine_scope);
}

/// Appends measured nodes (sorted best first) from tier `next` on: a node
/// `beyond(leader, key)` its tier's first starts a new tier, which it leads.
fn push_measured_tiers(
    input: &Input,
    v: &[Sorted],
    beyond: impl Fn(f64, f64) -> bool,
    reason: impl Fn(f64) -> Reason,
    next: &mut u16,
    d: &mut Decision,
) {
    let mut tier = *next;
    let mut leader: Option<f64> = None;
    for s in v {
        match leader {
            Some(best) if beyond(best, s.key) => {
                tier += 1;
                leader = Some(s.key);
            }
            Some(_) => {}
            None => leader = Some(s.key),
        }
        let c = input.candidates[s.i];
        d.ranked.push(Ranked {
            node: c.node,
            tier,
            weight: c.weight,
            reason: reason(s.key),
        });
    }
    if !v.is_empty() {
        *next = tier + 1;
    }
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
    // Groups, in answer order: known free capacity (most first), load
    // unknown (site order), full or overloaded (site order).
    const KNOWN: u8 = 0;
    const UNKNOWN: u8 = 1;
    const LAST: u8 = 2;
    let cfg = input.config;
    with_scratch(eligible.len(), |v: &mut [Sorted]| {
        for (s, &i) in v.iter_mut().zip(eligible) {
            let c = input.candidates[i];
            let view = &input.views[c.node];
            let prio = f64::from(c.priority);
            let (group, full, key) = if view.health == Some(Health::Overloaded) {
                (LAST, false, prio)
            } else {
                match free_capacity(view) {
                    Some(f) if f > 0.0 => (KNOWN, false, f),
                    Some(_) => (LAST, true, prio),
                    None => (UNKNOWN, false, prio),
                }
            };
            *s = Sorted {
                group,
                full,
                key,
                i,
            };
        }
        sort_groups(v, Some(KNOWN));
        let known = group_len(v, KNOWN);
        let mut next = 0u16;
        // Tiers: each node within the tolerance of its tier's first.
        let mut start = 0;
        while start < known {
            let lead = v[start].key;
            let end = start
                + 1
                + v[start + 1..known]
                    .iter()
                    .take_while(|s| s.key >= lead * (1.0 - cfg.load_tolerance_pct / 100.0))
                    .count();
            let total: f64 = v[start..end].iter().map(|s| s.key).sum();
            for s in &v[start..end] {
                d.ranked.push(Ranked {
                    node: input.candidates[s.i].node,
                    tier: next,
                    weight: ((1000.0 * s.key / total).round() as u16).max(1),
                    reason: Reason::FreeCapacity(s.key),
                });
            }
            next += 1;
            start = end;
        }
        let v = &v[known..];
        let unknown = group_len(v, UNKNOWN);
        push_static_tiers(
            input,
            v[..unknown].iter().map(|s| s.i),
            Reason::NoLoad,
            &mut next,
            d,
        );
        for s in &v[unknown..] {
            let c = input.candidates[s.i];
            d.ranked.push(Ranked {
                node: c.node,
                tier: next,
                weight: c.weight,
                reason: if s.full {
                    Reason::Full
                } else {
                    Reason::Overloaded
                },
            });
            next += 1;
        }
    });
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
            quality: &[],
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
    fn a_decision_from_elsewhere_must_agree_on_down_drained_and_overloaded_nodes() {
        let lats = [lat(10.0, 24), lat(20.0, 24), lat(30.0, 24)];
        let c = cands(3);
        let all_up = [up(), up(), up()];
        let mut one_down = all_up;
        one_down[1].health = Some(Health::Down);
        let mut one_drained = all_up;
        one_drained[2].drained = true;
        let mut one_overloaded = all_up;
        one_overloaded[0].health = Some(Health::Overloaded);
        let mut all_down = all_up;
        for v in &mut all_down {
            v.health = Some(Health::Down);
        }
        let check = |d: &Decision, views: &[NodeView]| disagreement(d, Policy::Latency, &c, views);
        let there = run(Policy::Latency, &all_up, &lats, &[]);
        // The same states here: answered.
        assert_eq!(check(&there, &all_up), None);
        // A node down or drained here, that the other server still answers.
        assert!(check(&there, &one_down).is_some());
        assert!(check(&there, &one_drained).is_some());
        // Down there, up here: it would leave out a node that is up.
        let there_down = run(Policy::Latency, &one_down, &lats, &[]);
        assert_eq!(order(&there_down), [(0, 0), (2, 1)]);
        assert!(check(&there_down, &all_up).is_some());
        assert_eq!(check(&there_down, &one_down), None);
        // Overloaded here: it must not come first.
        assert!(check(&there, &one_overloaded).is_some());
        let there_overloaded = run(Policy::Latency, &one_overloaded, &lats, &[]);
        assert_eq!(check(&there_overloaded, &one_overloaded), None);
        // Overloaded there but not here: it goes last there, which is an
        // order like any other here.
        assert_eq!(check(&there_overloaded, &all_up), None);
        // Fail open: only where every node is out.
        let there_open = run(Policy::Latency, &all_down, &lats, &[]);
        assert!(there_open.failed_open);
        assert_eq!(check(&there_open, &all_down), None);
        assert!(check(&there_open, &all_up).is_some());
        assert!(check(&there, &all_down).is_some());
        // Load: a node full here may follow one overloaded here.
        let mut load_views = [
            loaded(10, 100, None),
            loaded(100, 100, None),
            loaded(20, 100, None),
        ];
        load_views[2].health = Some(Health::Overloaded);
        let d = run(Policy::Load, &load_views, &[None; 3], &[]);
        assert_eq!(disagreement(&d, Policy::Load, &c, &load_views), None);
        let mut reordered = d.clone();
        reordered.ranked.swap(1, 2);
        assert_eq!(
            disagreement(&reordered, Policy::Load, &c, &load_views),
            None
        );
        // The static policy answers overloaded nodes in site order.
        let d = run(Policy::Static, &one_overloaded, &[None; 3], &[]);
        assert_eq!(disagreement(&d, Policy::Static, &c, &one_overloaded), None);
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
            quality: &[],
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

    #[test]
    fn rank_into_reuses_the_decision_and_leaves_nothing_behind() {
        let lats = [lat(30.0, 24), lat(10.0, 16), None];
        let mut d = run(Policy::Latency, &[up(), up(), up()], &lats, &[]);
        let cap = d.ranked.capacity();
        // A fail open, then a ranking with a node left out, in the same
        // decision: each as computed afresh, in the same allocation.
        let down = NodeView {
            health: Some(Health::Down),
            ..up()
        };
        let drained = NodeView {
            drained: true,
            ..up()
        };
        let config = PolicyConfig::default();
        let c = cands(3);
        let input = |views: &'static [NodeView]| Input {
            policy: Policy::Latency,
            config: &config,
            candidates: &c,
            views,
            latency: &lats,
            quality: &[],
            prefer: &[],
            fine_scope: 20,
        };
        let all_down: &'static [NodeView] = Box::leak(Box::new([down; 3]));
        rank_into(&input(all_down), &mut d);
        assert_eq!(d, rank(&input(all_down)));
        assert!(d.failed_open);
        let one_drained: &'static [NodeView] = Box::leak(Box::new([up(), up(), drained]));
        rank_into(&input(one_drained), &mut d);
        assert_eq!(d, rank(&input(one_drained)));
        assert!(!d.failed_open);
        assert_eq!(order(&d), [(1, 0), (0, 1)]);
        assert_eq!(d.left_out, [(2, Reason::Drained)]);
        assert_eq!(d.scope, 24);
        assert_eq!(d.ranked.capacity(), cap, "no new allocation");
    }

    #[test]
    fn more_candidates_than_the_scratch_space_rank_the_same_way() {
        let n = SCRATCH + 4;
        let views = vec![up(); n];
        // Latencies in reverse order of the nodes, each twice the next: one
        // tier each.
        let lats: Vec<Option<Latency>> = (0..n)
            .map(|i| lat(10.0 * f64::from(1u32 << (n - i)), 24))
            .collect();
        let d = run(Policy::Latency, &views, &lats, &[]);
        let want: Vec<(usize, u16)> = (0..n).rev().zip(0..).collect();
        assert_eq!(order(&d), want);
        let d = run(Policy::Static, &views, &vec![None; n], &[]);
        assert_eq!(d.ranked.len(), n);
        assert!(d.ranked.iter().enumerate().all(|(i, r)| r.node == i));
    }

    #[test]
    fn a_choice_keeps_the_answer_part_inline_up_to_its_size() {
        let views = [up(), up(), up()];
        let d = run(
            Policy::Latency,
            &views,
            &[lat(30.0, 24), lat(10.0, 16), None],
            &[],
        );
        let c = Choice::of(&d);
        assert_eq!(c.heap_places(), 0);
        assert_eq!((c.scope, c.failed_open), (24, false));
        let places: Vec<(u32, u16, u16)> = c
            .places()
            .iter()
            .map(|p| (p.node, p.tier, p.weight))
            .collect();
        assert_eq!(places, [(1, 0, 100), (0, 1, 100), (2, 2, 100)]);
        // More nodes than fit inline: on the heap, same places.
        let n = CHOICE_INLINE + 1;
        let d = run(Policy::Static, &vec![up(); n], &vec![None; n], &[]);
        let c = Choice::of(&d);
        assert_eq!(c.heap_places(), n);
        assert_eq!(c.places().len(), n);
        assert!(
            c.places()
                .iter()
                .zip(&d.ranked)
                .all(|(p, r)| p.node as usize == r.node
                    && p.tier == r.tier
                    && p.weight == r.weight)
        );
        assert_eq!(c.clone(), c);
    }

    fn q(mos: f64, len: u8) -> Option<Quality> {
        Some(Quality {
            mos,
            prefix_len: len,
        })
    }

    fn run_quality(
        views: &[NodeView],
        latency: &[Option<Latency>],
        quality: &[Option<Quality>],
        prefer: &[usize],
    ) -> Decision {
        let config = PolicyConfig::default();
        let c = cands(views.len());
        rank(&Input {
            policy: Policy::Quality,
            config: &config,
            candidates: &c,
            views,
            latency,
            quality,
            prefer,
            fine_scope: 24,
        })
    }

    #[test]
    fn quality_orders_by_mos_within_tolerance_then_latency_then_prefer_and_site() {
        let mut views = [up(); 7];
        views[6].health = Some(Health::Overloaded);
        // MOS 3.9, 4.3, 4.2 (within 0.2 of 4.3), 3.0; node 4 only latency;
        // node 5 nothing but preferred; node 6 overloaded despite its MOS.
        let d = run_quality(
            &views,
            &[
                lat(5.0, 24),
                None,
                lat(1.0, 24),
                None,
                lat(20.0, 16),
                None,
                None,
            ],
            &[
                q(3.9, 24),
                q(4.3, 16),
                q(4.2, 24),
                q(3.0, 8),
                None,
                None,
                q(4.5, 24),
            ],
            &[5],
        );
        assert_eq!(
            order(&d),
            [(1, 0), (2, 0), (0, 1), (3, 2), (4, 3), (5, 4), (6, 5)]
        );
        assert_eq!(d.ranked[0].reason, Reason::Quality(4.3));
        assert_eq!(d.ranked[4].reason, Reason::NoQuality(20.0));
        assert_eq!(d.ranked[5].reason, Reason::Preferred);
        assert_eq!(d.ranked[6].reason, Reason::Overloaded);
        assert!(d.ranked[4].reason.describe().contains("20.0 ms"));
        assert!(d.ranked[0].reason.describe().contains("MOS 4.30"));
        // The scope is the most specific entry used.
        assert_eq!(d.scope, 24);
        let d = run_quality(&[up(), up()], &[None, None], &[q(4.0, 16), q(3.0, 8)], &[]);
        assert_eq!((order(&d), d.scope), (vec![(0, 0), (1, 1)], 16));
        // Without any figure: the fine level, site order.
        let d = run_quality(&[up(), up()], &[None, None], &[None, None], &[]);
        assert_eq!((order(&d), d.scope), (vec![(0, 0), (1, 1)], 24));
    }

    #[test]
    fn quality_without_figures_ranks_as_latency_and_latency_ignores_quality() {
        let views = [up(), up(), up()];
        let lats = [lat(40.0, 24), lat(12.0, 24), None];
        let by_q = run_quality(&views, &lats, &[None; 3], &[2]);
        let by_l = run(Policy::Latency, &views, &lats, &[2]);
        assert_eq!(order(&by_q), order(&by_l));
        assert_eq!(by_q.scope, by_l.scope);
        assert_eq!(by_l.ranked[0].reason, Reason::Measured(12.0));
        // Quality entries given to the latency policy change nothing.
        let config = PolicyConfig::default();
        let c = cands(3);
        let d = rank(&Input {
            policy: Policy::Latency,
            config: &config,
            candidates: &c,
            views: &views,
            latency: &lats,
            quality: &[q(1.0, 24), q(1.0, 24), q(4.5, 24)],
            prefer: &[2],
            fine_scope: 24,
        });
        assert_eq!(d, by_l);
        // Down and drained nodes are left out whatever their MOS.
        let mut views = [up(), up(), up()];
        views[0].health = Some(Health::Down);
        views[1].drained = true;
        let d = run_quality(
            &views,
            &[None; 3],
            &[q(4.5, 24), q(4.4, 24), q(1.0, 24)],
            &[],
        );
        assert_eq!(order(&d), [(2, 0)]);
        assert_eq!(d.left_out, [(0, Reason::Down), (1, Reason::Drained)]);
    }
}
