//! The workload's random numbers and the bytes its writes store.

/// splitmix64: small, seedable, stable across crate versions.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_F42D_4C95_7F2D)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub(crate) fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            Some(&v[self.below(v.len() as u64) as usize])
        }
    }
}

/// Bytes a write op stores, derived from its seed.
/// Incompressible bytes: what fills the device as ballast takes its full size.
pub(crate) fn random_bytes(seed: u64, len: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0u8; len as usize];
    for chunk in out.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

/// The bytes of a workload write.
pub(crate) fn write_bytes(seed: u64, len: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0u8; len as usize];
    // A quarter each: random (stored raw), text-like (compressed), zeros (holes), and
    // short runs (compressed, partly zero), so power cuts land in every path of the
    // record pipeline.
    match seed % 4 {
        0 => return random_bytes(seed, len),
        1 => {
            const WORDS: [&[u8]; 6] = [b"gpufs ", b"record ", b"crash\n", b"of ", b"a ", b"cut "];
            let mut at = 0;
            while at < out.len() {
                let w = WORDS[rng.below(WORDS.len() as u64) as usize];
                let n = w.len().min(out.len() - at);
                out[at..at + n].copy_from_slice(&w[..n]);
                at += n;
            }
        }
        2 => {}
        _ => {
            for chunk in out.chunks_mut(512) {
                let v = rng.next() as u8;
                let run = (rng.below(512) as usize).min(chunk.len());
                chunk[..run].fill(v);
            }
        }
    }
    out
}
