//! Caches of values that are valid until a given instant, bounded in
//! entries and in bytes ([`SetCache`]): the rules by which the engine keeps
//! decisions ([`TimedCache`]) and rendered answers ([`TimedBytes`], whose
//! strings are in a [`ByteRing`], written over oldest first). An expired
//! value (or a string written over) is never returned; a new value takes the
//! place, among the few its key may use, of the one that expires first (an
//! expired one if any).

use std::hash::Hash;
use std::time::Instant;

use crate::bounded::{ByteRing, HeapSize, SetCache, Span};

/// Instants as ranks in a [`SetCache`]: nanoseconds since the cache was made.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn rank(self, t: Instant) -> u64 {
        t.saturating_duration_since(self.0).as_nanos() as u64
    }

    fn instant(self, rank: u64) -> Instant {
        self.0 + std::time::Duration::from_nanos(rank)
    }
}

pub struct TimedCache<K, V> {
    map: SetCache<K, V>,
    clock: Clock,
}

impl<K: Hash + Eq + HeapSize, V: HeapSize> TimedCache<K, V> {
    /// At most `max_entries` values and `budget` bytes (see [`SetCache`]).
    pub fn new(budget: usize, max_entries: usize) -> Self {
        TimedCache {
            map: SetCache::new(budget, max_entries),
            clock: Clock(Instant::now()),
        }
    }

    /// The value for `k` if it is still valid at `now`, and until when.
    pub fn get(&self, k: &K, now: Instant) -> Option<(&V, Instant)> {
        let (v, until) = self.map.get(k)?;
        (until > self.clock.rank(now)).then(|| (v, self.clock.instant(until)))
    }

    /// Keeps `value` for `k` until `until`. Returns false if it was not
    /// kept (too large for the budget).
    pub fn insert(&mut self, k: K, value: V, until: Instant) -> bool {
        self.map.insert(k, value, self.clock.rank(until))
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

/// Byte strings valid until an instant, each with a small value of its own
/// (`M`, which owns no heap), bounded in entries and in bytes: the table of
/// `max_entries` entries, and the rest of the budget for a [`ByteRing`] that
/// holds the strings. A string is returned until it expires or is written
/// over.
pub struct TimedBytes<K, M> {
    map: SetCache<K, Stored<M>>,
    ring: ByteRing,
    clock: Clock,
}

/// A value and where its string is.
struct Stored<M> {
    value: M,
    span: Span,
}

impl<M> HeapSize for Stored<M> {
    /// The string is in the ring, counted once for all.
    fn heap_size(&self) -> usize {
        0
    }
}

impl<K: Hash + Eq + HeapSize, M> TimedBytes<K, M> {
    /// At most `max_entries` strings and `budget` bytes in all.
    pub fn new(budget: usize, max_entries: usize) -> Self {
        let map = SetCache::new(budget, max_entries);
        // The largest buffer whose allocation fits in what is left.
        let ring = (budget - map.table_bytes()) & !15;
        TimedBytes {
            map,
            ring: ByteRing::new(ring.saturating_sub(16)),
            clock: Clock(Instant::now()),
        }
    }

    /// The value and string for `k` if still valid at `now`.
    pub fn get(&self, k: &K, now: Instant) -> Option<(&M, &[u8])> {
        let (stored, until) = self.map.get(k)?;
        if until <= self.clock.rank(now) {
            return None;
        }
        Some((&stored.value, self.ring.get(stored.span)?))
    }

    /// Keeps `value`, and the concatenation of `parts` as its string, for
    /// `k` until `until`. Returns false if it was not kept (the string is
    /// over an eighth of the ring).
    pub fn insert(&mut self, k: K, value: M, parts: &[&[u8]], until: Instant) -> bool {
        let Some(span) = self.ring.push(parts) else {
            return false;
        };
        self.map
            .insert(k, Stored { value, span }, self.clock.rank(until))
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.ring.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes taken: the table and the ring.
    pub fn bytes(&self) -> usize {
        self.map.bytes() + self.ring.bytes()
    }

    /// The ring's length: what the strings kept at once add up to, at most.
    pub fn ring_capacity(&self) -> usize {
        self.ring.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_value_is_returned_until_it_expires() {
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(64 * 1024, 512);
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(100);
        assert!(c.insert(1, b"one".to_vec().into(), until));
        assert_eq!(
            c.get(&1, t0).map(|(v, u)| (&**v, u)),
            Some((&b"one"[..], until))
        );
        assert!(c.get(&1, until).is_none(), "not at its expiry instant");
        assert!(c.get(&2, t0).is_none());
    }

    #[test]
    fn a_new_value_takes_the_place_of_an_expired_one_then_of_the_first_to_expire() {
        // Four values: one set, so every key competes for the same places.
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(4096, 4);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        for (k, ms) in [(1, 10), (2, 5000), (3, 20), (4, 3000)] {
            assert!(c.insert(k, vec![0u8; 8].into(), at(ms)));
        }
        assert_eq!(c.len(), 4);
        // At 15 ms, 1 has expired: it goes, though 3 expires sooner than 2.
        assert!(c.insert(5, vec![1u8; 8].into(), at(6000)));
        assert!(c.get(&1, at(15)).is_none());
        assert!([2, 3, 4, 5].iter().all(|k| c.get(k, at(15)).is_some()));
        // Nothing expired: the first to expire (3) goes.
        assert!(c.insert(6, vec![1u8; 8].into(), at(6000)));
        assert!(c.get(&3, at(15)).is_none());
        assert!([2, 4, 5, 6].iter().all(|k| c.get(k, at(15)).is_some()));
        assert_eq!(c.len(), 4);
        assert!(c.bytes() <= 4096);
    }

    #[test]
    fn a_value_larger_than_an_eighth_of_the_budget_is_not_kept() {
        let mut c: TimedCache<u32, Box<[u8]>> = TimedCache::new(64 * 1024, 512);
        let t0 = Instant::now();
        let until = t0 + Duration::from_secs(1);
        assert!(c.insert(1, vec![0u8; 100].into(), until));
        assert!(!c.insert(2, vec![0u8; 16 * 1024].into(), until));
        assert!(c.get(&2, t0).is_none());
        assert!(c.get(&1, t0).is_some(), "the others stay");
    }

    #[test]
    fn strings_are_returned_until_they_expire_or_are_written_over() {
        let mut c: TimedBytes<u32, u8> = TimedBytes::new(16 * 1024, 64);
        assert!(c.bytes() <= 16 * 1024);
        let ring = c.ring_capacity();
        assert!(ring > 12 * 1024, "{ring}");
        let t0 = Instant::now();
        let until = t0 + Duration::from_millis(100);
        assert!(c.insert(1, 7, &[b"one", b"!"], until));
        assert_eq!(c.get(&1, t0), Some((&7, &b"one!"[..])));
        assert!(c.get(&1, until).is_none(), "not at its expiry instant");
        // Strings of an eighth of the ring: the ninth one goes over the
        // first string.
        let big = vec![0u8; ring / 8];
        for k in 2..10 {
            assert!(c.insert(k, 0, &[&big], until));
        }
        assert!(c.get(&1, t0).is_none());
        assert!(!c.insert(99, 0, &[&big, b"x"], until), "too long");
        assert!(c.get(&99, t0).is_none());
        assert!(c.bytes() <= 16 * 1024);
        c.clear();
        assert!(c.is_empty() && c.get(&9, t0).is_none());
    }

    #[test]
    fn a_string_written_over_is_gone_and_its_place_goes_by_expiry() {
        // Four entries: one set.
        let mut c: TimedBytes<u32, u8> = TimedBytes::new(4096, 4);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let big = vec![0u8; c.ring_capacity() / 8];
        assert!(c.insert(0, 0, &[b"zero"], at(10_000)));
        // Key 9, written again and again, goes round the ring once: over
        // key 0's string, though key 0 keeps its place.
        for _ in 0..8 {
            assert!(c.insert(9, 9, &[&big], at(10_000)));
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(&0, t0).is_none());
        assert!(c.insert(1, 1, &[b"one"], at(1000)));
        assert!(c.insert(2, 2, &[b"two"], at(2000)));
        // Full: key 1, the first to expire, goes.
        assert!(c.insert(3, 3, &[b"three"], at(10_000)));
        assert!(c.get(&1, t0).is_none());
        for (k, v) in [(9, &big[..]), (2, b"two"), (3, b"three")] {
            assert_eq!(c.get(&k, t0).map(|(_, b)| b), Some(v), "{k}");
        }
        assert_eq!(c.len(), 4);
    }
}
