//! For unit tests: a tiny deterministic random number generator (xorshift64),
//! so that randomised tests repeat exactly from their seed. Imports nothing.

/// xorshift64: fast, deterministic, good enough to spread test inputs.
pub struct XorShift(u64);

impl XorShift {
    /// A generator started from `seed` (not zero).
    pub fn new(seed: u64) -> XorShift {
        assert_ne!(seed, 0, "xorshift never leaves zero");
        XorShift(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn a_seed_gives_the_same_spread_sequence() {
        let mut a = XorShift::new(7);
        let mut b = XorShift::new(7);
        let xs: Vec<u64> = (0..1000).map(|_| a.below(10)).collect();
        assert!(
            xs.iter()
                .zip((0..1000).map(|_| b.below(10)))
                .all(|(x, y)| *x == y)
        );
        // Every value of 0..10 comes up, none much more than its share.
        for v in 0..10 {
            let n = xs.iter().filter(|&&x| x == v).count();
            assert!((60..=140).contains(&n), "{v}: {n} times in 1000");
        }
    }
}
