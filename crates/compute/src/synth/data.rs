//! Seeded data corpora for the data-kernel benchmark and tests: batches of records
//! that look like text, like binary files, or like nothing (random). Each record is
//! drawn from its own seed, so a corpus is built on every core and is the same on every
//! machine.

use rayon::prelude::*;

use super::rng::SplitMix;
use crate::error::ComputeResult;
use crate::records::RecordBatch;

/// What the records look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// Lines of English-like words with a skewed word frequency, numbers and
    /// punctuation: like logs, source and documents (LZ4 about 2-3x).
    Text,
    /// Arrays of little-endian structs — counters, small integers, smooth floats, zero
    /// padding, a few random hashes — like databases and object files (LZ4 about 2x).
    Binary,
    /// Uniform random bytes: like compressed or encrypted files (LZ4 1x).
    Random,
}

impl DataKind {
    pub const ALL: [DataKind; 3] = [DataKind::Text, DataKind::Binary, DataKind::Random];

    pub fn name(self) -> &'static str {
        match self {
            DataKind::Text => "text",
            DataKind::Binary => "binary",
            DataKind::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<DataKind> {
        DataKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

const SYLLABLES: &[&str] = &[
    "the", "an", "re", "in", "er", "on", "at", "es", "or", "te", "of", "ed", "is", "it", "al",
    "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le", "ve", "co", "me", "de", "hi",
    "ri", "ro", "ic", "ne", "ea", "ra", "ce", "li", "ch", "ll", "be", "ma", "si", "om", "ur",
];

/// A vocabulary of `n` pseudo-words of one to four syllables.
fn vocabulary(n: usize) -> Vec<Vec<u8>> {
    let mut rng = SplitMix::new(0x0007_0CAB);
    (0..n)
        .map(|_| {
            let syllables = 1 + rng.below(4);
            (0..syllables)
                .flat_map(|_| rng.pick(SYLLABLES).bytes())
                .collect()
        })
        .collect()
}

/// Word rank with a Zipf-like skew: small ranks far more often.
fn skewed_rank(rng: &mut SplitMix, n: usize) -> usize {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
}

fn fill_text(rng: &mut SplitMix, words: &[Vec<u8>], out: &mut [u8]) {
    let mut pos = 0;
    let mut line = 0usize;
    while pos < out.len() {
        let piece: Vec<u8> = match rng.below(20) {
            0 => format!("{}", rng.below(100_000)).into_bytes(),
            1 => b", ".to_vec(),
            2 => b". ".to_vec(),
            _ => words[skewed_rank(rng, words.len())].clone(),
        };
        let n = piece.len().min(out.len() - pos);
        out[pos..pos + n].copy_from_slice(&piece[..n]);
        pos += n;
        line += n;
        if pos < out.len() {
            out[pos] = if line > 60 + rng.below(30) as usize {
                line = 0;
                b'\n'
            } else {
                b' '
            };
            pos += 1;
        }
    }
}

fn fill_binary(rng: &mut SplitMix, out: &mut [u8]) {
    let mut id = rng.below(1 << 20);
    let base = rng.below(1000) as f32;
    for (k, rec) in out.chunks_mut(64).enumerate() {
        let mut s = [0u8; 64];
        s[0..8].copy_from_slice(&id.to_le_bytes());
        s[8..12].copy_from_slice(&(rng.below(16) as u32).to_le_bytes());
        s[12..16].copy_from_slice(&(base + k as f32 * 0.25).to_le_bytes());
        s[16..20].copy_from_slice(&(rng.below(1 << 12) as u32).to_le_bytes());
        if rng.below(4) == 0 {
            s[24..32].copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        s[32..40].copy_from_slice(&(0x5555_0000_0000 + id * 64).to_le_bytes());
        id += 1 + rng.below(3);
        rec.copy_from_slice(&s[..rec.len()]);
    }
}

/// `records` records of `record_bytes` each, of `kind`, from `seed`.
pub fn corpus(
    kind: DataKind,
    seed: u64,
    records: usize,
    record_bytes: usize,
) -> ComputeResult<RecordBatch> {
    let mut batch = RecordBatch::with_capacity(records, records * record_bytes);
    for _ in 0..records {
        batch.push_zeroed(record_bytes)?;
    }
    let words = vocabulary(2_000);
    batch
        .records_mut()
        .into_par_iter()
        .enumerate()
        .for_each(|(i, out)| {
            let mut rng = SplitMix::new(seed ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93));
            match kind {
                DataKind::Text => fill_text(&mut rng, &words, out),
                DataKind::Binary => fill_binary(&mut rng, out),
                DataKind::Random => rng.fill(out),
            }
        });
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpora_are_seeded_and_shaped() {
        for kind in DataKind::ALL {
            let a = corpus(kind, 1, 8, 5000).unwrap();
            let b = corpus(kind, 1, 8, 5000).unwrap();
            assert_eq!(a, b, "{kind:?} is reproducible");
            assert_eq!(a.len(), 8);
            assert!(a.iter().all(|r| r.len() == 5000));
            assert_ne!(a.get(0), a.get(1), "records differ");
        }
        let text = corpus(DataKind::Text, 3, 1, 4096).unwrap();
        assert!(text.get(0).iter().all(|&c| c.is_ascii()));
    }
}
