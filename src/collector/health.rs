//! Up/down hysteresis of one node's SIP OPTIONS probes. Pure state machine:
//! down after `down_after` failures, up again after `up_after` consecutive
//! answers, overloaded as soon as a 503 answers. Unknown until the first
//! answer or the first `down_after` failures.
//!
//! Failures are forgiven only by `up_after` answers in a row, the evidence
//! that brings a down node back (as gdnsd's `ok_thresh` or HAProxy's `rise`):
//! an isolated answer does not clear them. So a node on a lossy link that
//! answers one probe in three goes down, and stays down until it answers
//! `up_after` times in a row; a node that loses a probe now and then (and
//! answers the ones between) stays up.

use crate::metrics::Health;

/// The result of one probe, as the tracker sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    /// A final response other than 503.
    Answered,
    /// 503: alive but refusing load.
    Overloaded,
    /// No answer in time, refused, or unreachable.
    Failed,
}

/// A state change reported by [`HealthTracker::observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: Option<Health>,
    pub to: Health,
}

#[derive(Clone, Debug)]
pub struct HealthTracker {
    down_after: u32,
    up_after: u32,
    state: Option<Health>,
    failures: u32,
    answers: u32,
}

impl HealthTracker {
    /// Thresholds below 1 are taken as 1.
    pub fn new(down_after: u32, up_after: u32) -> Self {
        HealthTracker {
            down_after: down_after.max(1),
            up_after: up_after.max(1),
            state: None,
            failures: 0,
            answers: 0,
        }
    }

    /// Current state; `None` while unknown.
    pub fn state(&self) -> Option<Health> {
        self.state
    }

    /// Failures not yet forgiven (0 after `up_after` answers in a row).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Feeds one probe result; returns the transition if the state changed.
    pub fn observe(&mut self, r: ProbeResult) -> Option<Transition> {
        let next = match r {
            ProbeResult::Failed => {
                self.answers = 0;
                self.failures = self.failures.saturating_add(1);
                if self.failures >= self.down_after {
                    Some(Health::Down)
                } else {
                    self.state
                }
            }
            ProbeResult::Answered | ProbeResult::Overloaded => {
                self.answers = self.answers.saturating_add(1);
                if self.answers >= self.up_after {
                    self.failures = 0;
                }
                let answered = if r == ProbeResult::Overloaded {
                    Health::Overloaded
                } else {
                    Health::Up
                };
                match self.state {
                    // A down node must answer up_after times in a row first.
                    Some(Health::Down) if self.answers < self.up_after => Some(Health::Down),
                    _ => Some(answered),
                }
            }
        };
        let from = self.state;
        self.state = next;
        match next {
            Some(to) if next != from => Some(Transition { from, to }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProbeResult::{Answered as A, Failed as F, Overloaded as O};
    use super::*;
    use crate::metrics::Health::{Down, Overloaded, Up};

    fn run(t: &mut HealthTracker, seq: &[ProbeResult]) -> Vec<Option<Health>> {
        seq.iter()
            .map(|&r| {
                t.observe(r);
                t.state()
            })
            .collect()
    }

    #[test]
    fn unknown_until_first_answer_or_threshold() {
        let mut t = HealthTracker::new(3, 2);
        assert_eq!(t.state(), None);
        assert_eq!(run(&mut t, &[F, F, F]), [None, None, Some(Down)]);
        let mut t = HealthTracker::new(3, 2);
        assert_eq!(t.observe(A), Some(Transition { from: None, to: Up }));
        let mut t = HealthTracker::new(3, 2);
        assert_eq!(run(&mut t, &[F, O]), [None, Some(Overloaded)]);
    }

    #[test]
    fn hysteresis_up_overloaded_down_up() {
        let mut t = HealthTracker::new(3, 2);
        let got = run(&mut t, &[A, O, F, F, F, A, F, A, A, A]);
        let want = [
            Some(Up),
            Some(Overloaded),
            Some(Overloaded),
            Some(Overloaded),
            Some(Down),
            Some(Down),
            Some(Down),
            Some(Down),
            Some(Up),
            Some(Up),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn isolated_failures_do_not_flap() {
        // One probe in three lost, the answers between in pairs: up.
        let mut t = HealthTracker::new(3, 2);
        let got = run(&mut t, &[A, F, A, A, F, A, A, F, A, A, F, F, A, A]);
        assert!(got.iter().all(|s| *s == Some(Up)), "{got:?}");
        assert_eq!(t.failures(), 0);
    }

    #[test]
    fn a_lossy_node_that_answers_one_probe_in_three_goes_down_and_stays_down() {
        let mut t = HealthTracker::new(3, 2);
        let got = run(&mut t, &[A, F, F, A, F, F, A, F, F]);
        assert_eq!(
            got,
            [
                Some(Up),
                Some(Up),
                Some(Up),
                Some(Up),
                Some(Down),
                Some(Down),
                Some(Down),
                Some(Down),
                Some(Down)
            ]
        );
        // Back only after up_after answers in a row.
        assert_eq!(run(&mut t, &[A, A]), [Some(Down), Some(Up)]);
        assert_eq!(t.failures(), 0);
        // Half the probes lost, alternating: down too (never two answers in
        // a row to forgive the failures).
        let mut t = HealthTracker::new(3, 2);
        let got = run(&mut t, &[A, F, A, F, A, F]);
        assert_eq!(got.last(), Some(&Some(Down)), "{got:?}");
        // With up_after = 1 every answer forgives, as before.
        let mut t = HealthTracker::new(3, 1);
        let got = run(&mut t, &[A, F, F, A, F, F, A]);
        assert!(got.iter().all(|s| *s == Some(Up)), "{got:?}");
    }

    #[test]
    fn transitions_are_reported_once() {
        let mut t = HealthTracker::new(1, 1);
        assert_eq!(t.observe(A), Some(Transition { from: None, to: Up }));
        assert_eq!(t.observe(A), None);
        assert_eq!(
            t.observe(F),
            Some(Transition {
                from: Some(Up),
                to: Down
            })
        );
        assert_eq!(t.observe(F), None);
        assert_eq!(
            t.observe(O),
            Some(Transition {
                from: Some(Down),
                to: Overloaded
            })
        );
        assert_eq!(
            t.observe(A),
            Some(Transition {
                from: Some(Overloaded),
                to: Up
            })
        );
    }

    #[test]
    fn recovering_node_answering_503_becomes_overloaded() {
        let mut t = HealthTracker::new(2, 2);
        assert_eq!(
            run(&mut t, &[F, F, O, O]),
            [None, Some(Down), Some(Down), Some(Overloaded)]
        );
        assert_eq!(
            HealthTracker::new(0, 0).observe(F),
            Some(Transition {
                from: None,
                to: Down
            })
        );
    }
}
