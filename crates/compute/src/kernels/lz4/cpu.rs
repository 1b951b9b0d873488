//! The CPU twin of the LZ4 kernels: `lz4_flex` block compression and safe decoding,
//! rayon over records (and one-thread variants for the benchmark).

use lz4_flex::block::{self, DecompressError};
use rayon::prelude::*;

use super::{output_layout, Compressed, Decompressed, Lz4Error};
use crate::error::ComputeResult;
use crate::records::RecordBatch;

/// The block of `record` when it is strictly shorter than the record, using `buf` as
/// room for the compressor: the block is `buf[..n]`.
pub fn compress_one(record: &[u8], buf: &mut Vec<u8>) -> Option<usize> {
    if record.is_empty() {
        return None;
    }
    buf.resize(block::get_maximum_output_size(record.len()), 0);
    match block::compress_into(record, buf) {
        Ok(n) if n < record.len() => Some(n),
        _ => None,
    }
}

/// Packs per-record blocks (None = not shrunk) into a [`Compressed`].
fn pack(blocks: Vec<Option<Vec<u8>>>) -> Compressed {
    let bytes: usize = blocks.iter().flatten().map(Vec::len).sum();
    let mut out = Compressed {
        blocks: RecordBatch::with_capacity(blocks.len(), bytes),
        shrunk: Vec::with_capacity(blocks.len()),
    };
    for b in blocks {
        let block = b.as_deref().unwrap_or(&[]);
        // A block is shorter than its record, so it always fits a batch.
        let pushed = out.blocks.push(block).is_ok();
        if !pushed {
            let _ = out.blocks.push(&[]);
        }
        out.shrunk.push(pushed && b.is_some());
    }
    out
}

/// Compresses every record on all cores.
pub fn compress_cpu(batch: &RecordBatch) -> Compressed {
    let blocks: Vec<Option<Vec<u8>>> = (0..batch.len())
        .into_par_iter()
        .map_init(Vec::new, |buf, i| {
            let rec = batch.get(i);
            compress_one(rec, buf).and_then(|n| buf.get(..n).map(<[u8]>::to_vec))
        })
        .collect();
    pack(blocks)
}

/// Compresses every record on one thread.
pub fn compress_cpu_one_thread(batch: &RecordBatch) -> Compressed {
    let mut buf = Vec::new();
    let blocks: Vec<Option<Vec<u8>>> = batch
        .iter()
        .map(|rec| compress_one(rec, &mut buf).and_then(|n| buf.get(..n).map(<[u8]>::to_vec)))
        .collect();
    pack(blocks)
}

/// Decodes one block into `out` (its expected length); zeroes `out` on failure.
pub fn decompress_one(block: &[u8], out: &mut [u8]) -> Result<(), Lz4Error> {
    let expected = out.len() as u32;
    let got = match block::decompress_into(block, out) {
        Ok(n) if n == out.len() => Ok(()),
        Ok(n) => Err(Lz4Error::TooShort {
            expected,
            got: n as u32,
        }),
        Err(DecompressError::OutputTooSmall { .. }) => Err(Lz4Error::TooLong { expected }),
        Err(_) => Err(Lz4Error::Malformed),
    };
    if got.is_err() {
        out.fill(0);
    }
    got
}

/// Decompresses block `i` to exactly `sizes[i]` bytes, on all cores. A record whose
/// block is invalid or decodes to another length fails alone and is left zeroed.
pub fn decompress_cpu(blocks: &RecordBatch, sizes: &[u32]) -> ComputeResult<Decompressed> {
    let mut out = Decompressed::default();
    decompress_cpu_into(blocks, sizes, &mut out)?;
    Ok(out)
}

/// [`decompress_cpu`] into `out`, reusing its buffer when it already has the record
/// lengths `sizes` asks for: a reader decompressing batch after batch allocates once
/// (and a fresh gigabyte costs more in page faults than its decoding). Every byte of
/// every record is written, by the decoder or as zeros on failure.
pub fn decompress_cpu_into(
    blocks: &RecordBatch,
    sizes: &[u32],
    out: &mut Decompressed,
) -> ComputeResult<()> {
    decode_into(blocks, sizes, out, true)
}

/// [`decompress_cpu`] on one thread.
pub fn decompress_cpu_one_thread(
    blocks: &RecordBatch,
    sizes: &[u32],
) -> ComputeResult<Decompressed> {
    let mut out = Decompressed::default();
    decode_into(blocks, sizes, &mut out, false)?;
    Ok(out)
}

/// [`decompress_cpu_into`] on one thread.
pub fn decompress_cpu_one_thread_into(
    blocks: &RecordBatch,
    sizes: &[u32],
    out: &mut Decompressed,
) -> ComputeResult<()> {
    decode_into(blocks, sizes, out, false)
}

/// Every block into its record of `out`, on every core or on this thread.
fn decode_into(
    blocks: &RecordBatch,
    sizes: &[u32],
    out: &mut Decompressed,
    parallel: bool,
) -> ComputeResult<()> {
    reuse_layout(blocks, sizes, out)?;
    let records = out.data.records_mut();
    let decode = |(i, rec): (usize, &mut [u8])| decompress_one(blocks.get(i), rec);
    out.status = if parallel {
        records.into_par_iter().enumerate().map(decode).collect()
    } else {
        records.into_iter().enumerate().map(decode).collect()
    };
    Ok(())
}

/// Gives `out.data` the record lengths `sizes`, keeping its buffer when they match.
fn reuse_layout(blocks: &RecordBatch, sizes: &[u32], out: &mut Decompressed) -> ComputeResult<()> {
    if sizes.len() != blocks.len() || out.data.lens() != sizes {
        out.data = output_layout(blocks, sizes)?;
    }
    Ok(())
}
