//! The transforming stages over a whole batch of records at once, as compute kernels:
//! BLAKE3 (dedup on), LZ4 compression and CRC32C go to the backend the compute layer's dispatch policy picks
//! for the batch's size (the GPU from the batch size its calibration measured faster,
//! else the CPU twins); the other stages run record by record on every core.
//!
//! The decisions are the same as [`super::pipeline::prepare`]'s: the sample, the size
//! and the policy rule out a compressor first ([`codec::verdict_before`]), and a block is
//! kept only when [`codec::worth_keeping`] says so. Only the bytes of the compressed
//! blocks may differ between backends (the GPU matches within 4 KiB segments), and any
//! of them decodes with the one LZ4 decoder of the read path.

use std::borrow::Cow;

use gpufs_compute::kernels::blake3::Blake3Mode;
use gpufs_compute::kernels::lz4;
use gpufs_compute::records::RecordBatch;
use gpufs_compute::{Backend, Compute};
use gpufs_format::{Compression, RecordPtr};
use rayon::prelude::*;

use super::codec::{self, Verdict};
use super::stage::{self, Stage, WriteIo, WritePolicy};

/// Batches of fewer bytes never go to the compute layer: no GPU gains on them what the
/// upload costs, and the per-record path runs them on every core already.
pub const DEVICE_MIN_BYTES: u64 = 1 << 20;

/// Would `compute` run the kernels of a batch of `bytes` for `policy` on the GPU? Only
/// then is the batch path taken (on the CPU it would only add copies).
pub fn wants_device(compute: &Compute, policy: &WritePolicy, bytes: u64) -> bool {
    let on_gpu = |kernel: &str| compute.backend_for(kernel, bytes) == Backend::Gpu;
    bytes >= DEVICE_MIN_BYTES
        && (policy.compression == Compression::Lz4 && on_gpu(lz4::COMPRESS)
            || policy.dedup && on_gpu(gpufs_compute::kernels::blake3::NAME)
            || on_gpu(gpufs_compute::kernels::crc32c::NAME))
}

/// Runs the transforming stages of `stages` over `records` (none empty), LZ4 and CRC32C
/// as batch kernels through `compute`: the same records [`super::pipeline::prepare`]
/// gives, one per input, in order.
pub fn prepare_on<'a>(
    compute: &Compute,
    stages: &[Stage],
    policy: &WritePolicy,
    records: &[&'a [u8]],
) -> Vec<WriteIo<'a>> {
    debug_assert!(stage::is_valid_pipeline(stages), "{stages:?}");
    let mut ios: Vec<WriteIo<'a>> = records
        .iter()
        .map(|r| WriteIo::new(r, policy.clone()))
        .collect();
    for &s in stages.iter().filter(|s| !s.places()) {
        match s {
            Stage::Compress if policy.compression == Compression::Lz4 => {
                compress_lz4(compute, &mut ios)
            }
            Stage::Hash if policy.dedup && policy.keys.is_none() => hash(compute, &mut ios),
            Stage::Checksum => checksum(compute, &mut ios),
            _ => ios
                .par_iter_mut()
                .filter(|io| !io.hole)
                .for_each(|io| s.transform(io)),
        }
    }
    ios
}

/// The compression stage as one LZ4 batch: the records the sample leaves to a compressor
/// are compressed together; a block is kept when worth it. A failed batch (only with
/// `--compute gpu`) is compressed record by record on the CPU.
fn compress_lz4(compute: &Compute, ios: &mut [WriteIo<'_>]) {
    let mut tried = Vec::new();
    let mut batch = RecordBatch::new();
    for (i, io) in ios.iter_mut().enumerate().filter(|(_, io)| !io.hole) {
        match codec::verdict_before(Compression::Lz4, &io.stored) {
            Some(verdict) => io.verdict = verdict,
            None => {
                if batch.push(&io.stored).is_ok() {
                    tried.push(i);
                } else {
                    Stage::Compress.transform(io);
                }
            }
        }
    }
    if tried.is_empty() {
        return;
    }
    let (compressed, backend) = match compute.lz4_compress_on(&batch) {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!("batched LZ4 failed, compressing on the CPU: {e}");
            for &i in &tried {
                Stage::Compress.transform(&mut ios[i]);
            }
            return;
        }
    };
    for (k, &i) in tried.iter().enumerate() {
        let io = &mut ios[i];
        io.backend = backend;
        let block = compressed.blocks.get(k);
        let shrunk = compressed.shrunk.get(k).copied().unwrap_or(false);
        if shrunk && codec::worth_keeping(io.stored.len(), block.len()) {
            io.ptr.flags |= RecordPtr::FLAG_LZ4;
            io.verdict = Verdict::Compressed(RecordPtr::FLAG_LZ4);
            io.stored = Cow::Owned(block.to_vec());
        } else {
            io.verdict = Verdict::NotWorth;
        }
    }
}

/// The hash stage (dedup on) as one BLAKE3 batch over the logical bytes.
fn hash(compute: &Compute, ios: &mut [WriteIo<'_>]) {
    let live: Vec<usize> = (0..ios.len()).filter(|&i| !ios[i].hole).collect();
    let batch = RecordBatch::from_records(live.iter().map(|&i| &*ios[i].stored));
    match batch.and_then(|b| compute.blake3_on(&b, &Blake3Mode::Hash)) {
        Ok((hashes, backend)) if hashes.len() == live.len() => {
            for (&i, h) in live.iter().zip(hashes) {
                ios[i].ptr.hash = h;
                ios[i].ptr.flags |= RecordPtr::FLAG_HASH_VALID;
                if backend == Backend::Gpu {
                    ios[i].backend = backend;
                }
            }
        }
        other => {
            if let Err(e) = other {
                tracing::warn!("batched BLAKE3 failed, hashing on the CPU: {e}");
            }
            for &i in &live {
                Stage::Hash.transform(&mut ios[i]);
            }
        }
    }
}

/// The checksum stage as one CRC32C batch over the bytes to store.
fn checksum(compute: &Compute, ios: &mut [WriteIo<'_>]) {
    let live: Vec<usize> = (0..ios.len()).filter(|&i| !ios[i].hole).collect();
    let batch = RecordBatch::from_records(live.iter().map(|&i| &*ios[i].stored));
    let sums = batch.and_then(|b| compute.crc32c_on(&b));
    match sums {
        Ok((sums, backend)) if sums.len() == live.len() => {
            for (&i, sum) in live.iter().zip(sums) {
                ios[i].ptr.checksum = sum;
                if backend == Backend::Gpu {
                    ios[i].backend = backend;
                }
            }
        }
        other => {
            if let Err(e) = other {
                tracing::warn!("batched CRC32C failed, checksumming on the CPU: {e}");
            }
            for &i in &live {
                Stage::Checksum.transform(&mut ios[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::pipeline::prepare;
    use crate::records::stage::WRITE;

    fn mixed_records() -> Vec<Vec<u8>> {
        let mut seed = 99u64;
        let mut random = |n: usize| -> Vec<u8> {
            seed += 1;
            crate::test_bytes::random_bytes(n, seed)
        };
        let text: Vec<u8> = b"batched records of text compress on any backend\n"
            .iter()
            .copied()
            .cycle()
            .take(65536)
            .collect();
        vec![
            text.clone(),
            vec![0; 65536],
            random(65536),
            text[..3000].to_vec(),
            text[..20000].to_vec(),
            random(100),
        ]
    }

    /// The batch path on the CPU twins decides exactly as the record path does.
    #[test]
    fn batches_decide_as_single_records_do() {
        let compute = Compute::cpu_only();
        let recs = mixed_records();
        let refs: Vec<&[u8]> = recs.iter().map(|r| &r[..]).collect();
        for (compression, dedup) in [
            (Compression::Lz4, false),
            (Compression::Lz4, true),
            (Compression::None, true),
            (Compression::Zstd { level: 3 }, false),
        ] {
            let policy = WritePolicy {
                compression,
                copies: 1,
                dedup,
                keys: None,
            };
            let batched = prepare_on(&compute, WRITE, &policy, &refs);
            for (b, r) in batched.iter().zip(&refs) {
                let single = prepare(WRITE, &policy, r);
                assert_eq!(b.hole, single.hole);
                assert_eq!(b.verdict, single.verdict, "{compression}");
                assert_eq!(b.ptr.flags, single.ptr.flags);
                assert_eq!(&*b.stored, &*single.stored);
                assert_eq!(b.ptr.checksum, single.ptr.checksum);
                assert_eq!(b.ptr.hash, single.ptr.hash);
                assert_eq!(b.backend, Backend::Cpu);
            }
        }
        assert!(!wants_device(&compute, &WritePolicy::RAW, 1 << 30));
    }
}
