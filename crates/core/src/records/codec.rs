//! The compression stage's decisions: whether a record is worth trying (a sampled
//! entropy estimate, in the manner of btrfs's compression heuristic), which codec runs,
//! and whether its output is worth keeping (at least one eighth smaller and at least one
//! block fewer). The codecs themselves are compute kernels.

use gpufs_compute::kernels::{lz4, zstd};
use gpufs_format::{Compression, RecordPtr, BLOCK_SIZE};

/// Bytes sampled from a record to estimate its entropy.
const SAMPLE_CHUNK: usize = 32;
/// Distance between sampled chunks: 32 of every 512 bytes, 4 KiB of a 64 KiB record.
const SAMPLE_STRIDE: usize = 512;
/// Shannon entropy (bits per byte) of the sample above which a record is taken for
/// incompressible: random and already compressed data measure 7.9 and more, text
/// 4 to 5.5, binaries 5 to 6.5.
const ENTROPY_LIMIT_BITS: f64 = 7.4;

/// Why the compression stage stored a record raw, or how it stored it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Compression is off for this record.
    Off,
    /// The sample said incompressible: no compressor ran.
    Skipped,
    /// The compressor ran and did not save an eighth and a block.
    NotWorth,
    /// Stored compressed with this pointer flag.
    Compressed(u32),
}

/// Is the record worth running a compressor on? One pass over a 1/16 sample: a byte
/// histogram and its entropy.
pub fn looks_compressible(data: &[u8]) -> bool {
    if data.len() <= SAMPLE_STRIDE * 2 {
        return true;
    }
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for start in (0..data.len()).step_by(SAMPLE_STRIDE) {
        let end = (start + SAMPLE_CHUNK).min(data.len());
        for &b in &data[start..end] {
            counts[b as usize] += 1;
        }
        total += (end - start) as u32;
    }
    let n = f64::from(total);
    let entropy: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy < ENTROPY_LIMIT_BITS
}

/// Is `compressed` bytes for `raw` bytes worth storing: at least one eighth smaller and
/// at least one 4 KiB block fewer?
pub fn worth_keeping(raw: usize, compressed: usize) -> bool {
    compressed <= raw - raw / 8 && compressed.div_ceil(BLOCK_SIZE) < raw.div_ceil(BLOCK_SIZE)
}

/// The verdict on `data` without running a compressor, when one is already certain:
/// compression off, a record too short to save a block, or a sample that says
/// incompressible. `None`: run the compressor.
pub fn verdict_before(how: Compression, data: &[u8]) -> Option<Verdict> {
    if how == Compression::None {
        return Some(Verdict::Off);
    }
    // A record of one block cannot shrink by a block.
    if data.len() <= BLOCK_SIZE {
        return Some(Verdict::NotWorth);
    }
    if !looks_compressible(data) {
        return Some(Verdict::Skipped);
    }
    None
}

/// Runs `how` on `data`: the compressed bytes when worth storing, and the verdict.
pub fn compress(how: Compression, data: &[u8]) -> (Option<Vec<u8>>, Verdict) {
    if let Some(verdict) = verdict_before(how, data) {
        return (None, verdict);
    }
    let mut out = Vec::new();
    let (n, flag) = match how {
        Compression::None => return (None, Verdict::Off),
        Compression::Lz4 => (lz4::compress_one(data, &mut out), RecordPtr::FLAG_LZ4),
        Compression::Zstd { level } => match zstd::compress_one(data, i32::from(level), &mut out) {
            Ok(n) => (n, RecordPtr::FLAG_ZSTD),
            Err(e) => {
                tracing::warn!("zstd failed, storing raw: {e}");
                (None, RecordPtr::FLAG_ZSTD)
            }
        },
    };
    match n {
        Some(n) if worth_keeping(data.len(), n) => {
            out.truncate(n);
            (Some(out), Verdict::Compressed(flag))
        }
        _ => (None, Verdict::NotWorth),
    }
}

/// Decodes `stored` (compressed as `flag` says) into `out`, whose length is the record's
/// logical length.
pub fn decompress(flag: u32, stored: &[u8], out: &mut [u8]) -> Result<(), String> {
    match flag {
        RecordPtr::FLAG_LZ4 => lz4::decompress_one(stored, out).map_err(|e| e.to_string()),
        RecordPtr::FLAG_ZSTD => zstd::decompress_one(stored, out).map_err(|e| e.to_string()),
        other => Err(format!("compression flags {other:#x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(len: usize, x: u64) -> Vec<u8> {
        crate::test_bytes::random_bytes(len, x)
    }

    fn text(len: usize) -> Vec<u8> {
        let words = [
            "record", "pipeline", "checksum", "gpufs", "the", "of", "a", "block",
        ];
        let mut out = Vec::with_capacity(len);
        let mut x = 7u64;
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 60) as usize % words.len()].as_bytes());
            out.push(if x & 0x100 == 0 { b' ' } else { b'\n' });
        }
        out.truncate(len);
        out
    }

    #[test]
    fn the_sample_tells_random_from_text() {
        assert!(!looks_compressible(&random(65536, 1)));
        assert!(!looks_compressible(&random(8192, 2)));
        assert!(looks_compressible(&text(65536)));
        assert!(looks_compressible(&vec![0u8; 65536]));
        // Short records are always tried.
        assert!(looks_compressible(&random(1000, 3)));
    }

    #[test]
    fn only_savings_of_an_eighth_and_a_block_are_kept() {
        assert!(worth_keeping(65536, 57344));
        assert!(!worth_keeping(65536, 57345));
        assert!(worth_keeping(65536, 4096));
        // 8 KiB to 7 KiB saves an eighth but no block.
        assert!(!worth_keeping(8192, 7168));
        assert!(worth_keeping(8192, 4096));
    }

    #[test]
    fn each_codec_round_trips_and_random_data_stays_raw() {
        let data = text(65536);
        for how in [
            Compression::Lz4,
            Compression::Zstd { level: 3 },
            Compression::Zstd { level: 19 },
        ] {
            let (stored, verdict) = compress(how, &data);
            let Verdict::Compressed(flag) = verdict else {
                panic!("{how}: {verdict:?}");
            };
            let stored = stored.unwrap();
            assert!(stored.len() < data.len() / 2, "{how}: {}", stored.len());
            let mut out = vec![0u8; data.len()];
            decompress(flag, &stored, &mut out).unwrap();
            assert_eq!(out, data);
            assert_eq!(compress(how, &random(65536, 9)).1, Verdict::Skipped);
            assert_eq!(compress(how, &text(4096)).1, Verdict::NotWorth);
        }
        assert_eq!(compress(Compression::None, &data).1, Verdict::Off);
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let data = text(65536);
        for how in [Compression::Lz4, Compression::Zstd { level: 3 }] {
            let (stored, verdict) = compress(how, &data);
            let Verdict::Compressed(flag) = verdict else {
                panic!()
            };
            let stored = stored.unwrap();
            let mut out = vec![0u8; data.len()];
            assert!(decompress(flag, &stored[..stored.len() / 2], &mut out).is_err());
            let mut wrong_len = vec![0u8; data.len() - 1];
            assert!(decompress(flag, &stored, &mut wrong_len).is_err());
            assert!(decompress(
                RecordPtr::FLAG_LZ4 | RecordPtr::FLAG_ZSTD,
                &stored,
                &mut out
            )
            .is_err());
        }
    }
}
