//! A cache of values that are valid until a given instant, bounded in
//! entries and in bytes ([`BoundedMap`]): the one rule by which the engine
//! keeps decisions and rendered answers. An expired value is never returned;
//! when the cache is full, expired values are dropped first, then all.

use std::hash::Hash;
use std::time::Instant;

use crate::bounded::{BoundedMap, HeapSize};

/// A value and until when it may be used.
pub struct Timed<V> {
    pub value: V,
    pub until: Instant,
}

impl<V: HeapSize> HeapSize for Timed<V> {
    fn heap_size(&self) -> usize {
        self.value.heap_size()
    }
}

pub struct TimedCache<K, V> {
    map: BoundedMap<K, Timed<V>>,
}

impl<K: Hash + Eq + HeapSize, V: HeapSize> TimedCache<K, V> {
    /// At most `max_entries` values and `budget` bytes (see [`BoundedMap`]).
    pub fn new(budget: usize, max_entries: usize) -> Self {
        TimedCache {
            map: BoundedMap::new(budget, max_entries),
        }
    }

    /// The value for `k` if it is still valid at `now`, and until when.
    pub fn get(&self, k: &K, now: Instant) -> Option<(&V, Instant)> {
        self.map
            .get(k)
            .filter(|t| t.until > now)
            .map(|t| (&t.value, t.until))
    }

    /// Keeps `value` for `k` until `until`. Returns false if it was not
    /// kept (too large for the budget).
    pub fn insert(&mut self, k: K, value: V, until: Instant, now: Instant) -> bool {
        self.map
            .insert(k, Timed { value, until }, |t| t.until <= now)
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes taken, table included.
    pub fn bytes(&self) -> usize {
        self.map.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_value_is_returned_until_it_expires() {
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(64 * 1024, 448);
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(100);
        assert!(c.insert(1, b"one".to_vec().into(), until, t0));
        assert_eq!(
            c.get(&1, t0).map(|(v, u)| (&**v, u)),
            Some((&b"one"[..], until))
        );
        assert!(c.get(&1, until).is_none(), "not at its expiry instant");
        assert!(c.get(&2, t0).is_none());
    }

    #[test]
    fn when_full_the_expired_values_go_first() {
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(64 * 1024, 448);
        let t0 = Instant::now();
        let short = t0 + Duration::from_millis(10);
        let long = t0 + Duration::from_secs(10);
        for k in 0..448 {
            let until = if k % 2 == 0 { short } else { long };
            assert!(c.insert(k, vec![0u8; 8].into(), until, t0));
        }
        assert_eq!(c.len(), 448);
        // Full: the next insert, after the short ones expired, drops them
        // and keeps every valid one.
        let later = t0 + Duration::from_millis(20);
        assert!(c.insert(1000, vec![1u8; 8].into(), long, later));
        assert_eq!(c.len(), 225);
        assert!((1..448).step_by(2).all(|k| c.get(&k, later).is_some()));
        assert!(c.bytes() <= 64 * 1024);
    }

    #[test]
    fn a_value_larger_than_an_eighth_of_the_budget_is_not_kept() {
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(64 * 1024, 448);
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(1);
        assert!(c.insert(1, vec![0u8; 100].into(), until, t0));
        assert!(!c.insert(2, vec![0u8; 16 * 1024].into(), until, t0));
        assert!(c.get(&2, t0).is_none());
        assert!(c.get(&1, t0).is_some(), "the others stay");
    }
}
