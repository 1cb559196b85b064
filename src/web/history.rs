//! The last hour of each node for the status page's charts: load (sessions
//! over the session limit) and probe round trip, one point per step (10 s:
//! 360 points for an hour) in a ring per node. Memory is bounded by nodes ×
//! points (8 bytes a point); a step without a sample stays a gap; a node
//! that leaves the site is forgotten. Pure: the caller gives the time.

use std::collections::BTreeMap;

/// One point every this many seconds.
pub const STEP_S: i64 = 10;
/// Points kept per node: an hour.
pub const POINTS: usize = 360;
/// Nodes kept at most (a site has tens): beyond this a new node gets no
/// history, so a site of any size costs at most this × [`POINTS`] × 8 bytes.
pub const MAX_NODES: usize = 2048;

/// What a node measured at one step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Sessions over the session limit (1.0 = full); None: no fresh load.
    pub load: Option<f32>,
    /// Probe round trip in ms; None: no answer, no probe, or stale.
    pub rtt_ms: Option<f32>,
}

/// The rings of one node: cell `slot % points` holds the sample of `slot`
/// if `slot` is within the last `points` slots up to `newest`.
#[derive(Clone, Debug)]
struct Ring {
    load: Box<[f32]>,
    rtt: Box<[f32]>,
    /// The newest slot written (a cell of an older slot not written since
    /// is NaN: cleared when `newest` moved past it).
    newest: i64,
}

impl Ring {
    fn new(points: usize, slot: i64) -> Ring {
        Ring {
            load: vec![f32::NAN; points].into_boxed_slice(),
            rtt: vec![f32::NAN; points].into_boxed_slice(),
            newest: slot,
        }
    }

    fn cell(&self, slot: i64) -> usize {
        slot.rem_euclid(self.load.len() as i64) as usize
    }

    /// Moves the ring to `slot`, clearing the cells of the slots skipped.
    fn advance(&mut self, slot: i64) {
        if slot <= self.newest {
            return;
        }
        let n = self.load.len() as i64;
        if slot - self.newest >= n {
            self.load.fill(f32::NAN);
            self.rtt.fill(f32::NAN);
        } else {
            for s in self.newest + 1..=slot {
                let c = self.cell(s);
                self.load[c] = f32::NAN;
                self.rtt[c] = f32::NAN;
            }
        }
        self.newest = slot;
    }
}

/// Load and probe round trip per node over the last [`POINTS`] steps.
#[derive(Clone, Debug)]
pub struct History {
    step_s: i64,
    points: usize,
    nodes: BTreeMap<String, Ring>,
    /// The newest step recorded (for any node).
    newest: Option<i64>,
}

impl Default for History {
    fn default() -> Self {
        History::new(STEP_S, POINTS)
    }
}

/// A node's series, oldest first, one value per step ending at the step of
/// `now` (None: a gap).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub load: Vec<Option<f32>>,
    pub rtt_ms: Vec<Option<f32>>,
}

impl History {
    /// `step_s` seconds a point (at least 1), `points` points a node (at
    /// least 2).
    pub fn new(step_s: i64, points: usize) -> History {
        History {
            step_s: step_s.max(1),
            points: points.max(2),
            nodes: BTreeMap::new(),
            newest: None,
        }
    }

    pub fn step_s(&self) -> i64 {
        self.step_s
    }

    pub fn points(&self) -> usize {
        self.points
    }

    /// The span of the series, in seconds.
    pub fn span_s(&self) -> i64 {
        self.step_s * self.points as i64
    }

    fn slot(&self, at: i64) -> i64 {
        at.div_euclid(self.step_s)
    }

    /// Records the samples of the nodes of the site at `at` (unix seconds)
    /// and forgets every node not among them. A later sample in the same
    /// step replaces the earlier one; a sample older than a node's newest
    /// step is ignored (the clock went back).
    pub fn record<'a>(&mut self, at: i64, samples: impl IntoIterator<Item = (&'a str, Sample)>) {
        let slot = self.slot(at);
        self.newest = Some(self.newest.map_or(slot, |n| n.max(slot)));
        let mut seen: Vec<&str> = Vec::new();
        for (name, s) in samples {
            seen.push(name);
            if !self.nodes.contains_key(name) {
                if self.nodes.len() >= MAX_NODES {
                    continue;
                }
                self.nodes
                    .insert(name.to_string(), Ring::new(self.points, slot));
            }
            let ring = self.nodes.get_mut(name).expect("inserted above");
            if slot < ring.newest {
                continue;
            }
            ring.advance(slot);
            let c = ring.cell(slot);
            ring.load[c] = s.load.unwrap_or(f32::NAN);
            ring.rtt[c] = s.rtt_ms.unwrap_or(f32::NAN);
        }
        seen.sort_unstable();
        self.nodes
            .retain(|n, _| seen.binary_search(&n.as_str()).is_ok());
    }

    /// Whether the step of `at` has not been recorded yet.
    pub fn due(&self, at: i64) -> bool {
        self.newest.is_none_or(|n| self.slot(at) > n)
    }

    /// The series of `node` for the [`POINTS`] steps ending at `now`'s, or
    /// None for a node without history.
    pub fn series(&self, node: &str, now: i64) -> Option<Series> {
        let ring = self.nodes.get(node)?;
        let end = self.slot(now);
        let first = end - self.points as i64 + 1;
        let mut out = Series {
            load: Vec::with_capacity(self.points),
            rtt_ms: Vec::with_capacity(self.points),
        };
        let val = |v: f32| (!v.is_nan()).then_some(v);
        for s in first..=end {
            // Written, and not since overwritten by a newer slot.
            let live = s <= ring.newest && ring.newest - s < self.points as i64;
            let c = ring.cell(s);
            out.load.push(if live { val(ring.load[c]) } else { None });
            out.rtt_ms.push(if live { val(ring.rtt[c]) } else { None });
        }
        Some(out)
    }

    /// The nodes with history.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Bytes held by the series (8 bytes a point per node).
    pub fn bytes(&self) -> usize {
        self.nodes.len() * self.points * 2 * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(load: f32, rtt: f32) -> Sample {
        Sample {
            load: Some(load),
            rtt_ms: Some(rtt),
        }
    }

    #[test]
    fn points_land_in_their_step_oldest_first() {
        let mut h = History::new(10, 4);
        assert!(h.due(100));
        h.record(100, [("a", s(0.1, 1.0))]);
        assert!(!h.due(109) && h.due(110));
        h.record(115, [("a", s(0.2, 2.0))]);
        h.record(119, [("a", s(0.3, 3.0))]); // same step: replaces
        let x = h.series("a", 119).unwrap();
        assert_eq!(x.load, vec![None, None, Some(0.1), Some(0.3)]);
        assert_eq!(x.rtt_ms, vec![None, None, Some(1.0), Some(3.0)]);
        // Later, with nothing recorded: the points move left.
        let x = h.series("a", 130).unwrap();
        assert_eq!(x.load, vec![Some(0.1), Some(0.3), None, None]);
        assert_eq!(h.series("b", 130), None);
    }

    #[test]
    fn the_ring_wraps_around_keeping_the_last_points() {
        let mut h = History::new(10, 4);
        for i in 0..10 {
            h.record(i * 10, [("a", s(i as f32, 0.0))]);
        }
        let x = h.series("a", 90).unwrap();
        assert_eq!(x.load, vec![Some(6.0), Some(7.0), Some(8.0), Some(9.0)]);
        // Beyond the span nothing is left.
        assert_eq!(h.series("a", 200).unwrap().load, vec![None; 4]);
        assert_eq!(h.bytes(), 4 * 2 * 4);
    }

    #[test]
    fn a_step_without_a_sample_is_a_gap() {
        let mut h = History::new(10, 6);
        h.record(0, [("a", s(0.5, 5.0))]);
        h.record(30, [("a", s(0.6, 6.0))]); // 10 and 20 skipped
        h.record(
            40,
            [(
                "a",
                Sample {
                    load: Some(0.7),
                    rtt_ms: None, // no answer to the probe
                },
            )],
        );
        let x = h.series("a", 50).unwrap();
        assert_eq!(
            x.load,
            vec![Some(0.5), None, None, Some(0.6), Some(0.7), None]
        );
        assert_eq!(x.rtt_ms, vec![Some(5.0), None, None, Some(6.0), None, None]);
        // After a full wrap with a long gap, the old cells are not read
        // back as new.
        h.record(100, [("a", s(0.9, 9.0))]);
        assert_eq!(
            h.series("a", 100).unwrap().load,
            vec![None, None, None, None, None, Some(0.9)]
        );
    }

    #[test]
    fn a_sample_from_the_past_is_ignored() {
        let mut h = History::new(10, 4);
        h.record(50, [("a", s(0.5, 1.0))]);
        h.record(20, [("a", s(0.9, 1.0))]);
        assert_eq!(
            h.series("a", 50).unwrap().load,
            vec![None, None, None, Some(0.5)]
        );
    }

    #[test]
    fn nodes_that_leave_the_site_are_forgotten() {
        let mut h = History::new(10, 4);
        h.record(0, [("a", s(0.1, 1.0)), ("b", s(0.2, 2.0))]);
        assert_eq!(h.len(), 2);
        h.record(10, [("b", s(0.3, 3.0))]);
        assert_eq!(h.len(), 1);
        assert_eq!(h.series("a", 10), None);
        assert_eq!(
            h.series("b", 10).unwrap().load,
            vec![None, None, Some(0.2), Some(0.3)]
        );
        // Back again: a new history.
        h.record(20, [("a", s(0.4, 4.0)), ("b", s(0.3, 3.0))]);
        assert_eq!(
            h.series("a", 20).unwrap().load,
            vec![None, None, None, Some(0.4)]
        );
        h.record(30, std::iter::empty());
        assert!(h.is_empty());
    }

    #[test]
    fn memory_is_bounded_by_nodes_and_points() {
        let mut h = History::new(10, 360);
        let names: Vec<String> = (0..MAX_NODES + 10).map(|i| format!("n{i}")).collect();
        for t in 0..3 {
            h.record(t * 10, names.iter().map(|n| (n.as_str(), s(0.5, 1.0))));
        }
        assert_eq!(h.len(), MAX_NODES);
        assert_eq!(h.bytes(), MAX_NODES * 360 * 8);
    }
}
