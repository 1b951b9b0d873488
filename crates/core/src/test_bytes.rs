//! Seeded pseudo-random bytes for unit tests (xorshift): incompressible, varied, the
//! same for the same seed.

/// `len` bytes from seed `x` (any seed; zero is made odd).
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
