//! The data kernels as the filesystem calls them: each batch goes to the backend the
//! policy picks for its size in bytes (the GPU in `auto` only from the batch size its
//! calibration measured), with the CPU twin as the fallback; every call is counted in
//! the statistics.

use super::{on_gpu, Compute};
use crate::choice::Backend;
use crate::error::ComputeResult;
use crate::kernels::blake3::{self, Blake3Mode};
use crate::kernels::crc32c;
use crate::kernels::lz4::{self, Compressed, Decompressed};
use crate::kernels::xts::{self, Direction, XtsKey};
use crate::records::RecordBatch;

impl Compute {
    /// CRC32C of each record.
    pub fn crc32c(&self, batch: &RecordBatch) -> ComputeResult<Vec<u32>> {
        self.crc32c_on(batch).map(|(v, _)| v)
    }

    /// [`Compute::crc32c`], and where it ran.
    pub fn crc32c_on(&self, batch: &RecordBatch) -> ComputeResult<(Vec<u32>, Backend)> {
        self.run_on(
            crc32c::NAME,
            batch.data_bytes(),
            true,
            |g| on_gpu!(g => crc32c::gpu(g.ctx(), batch)),
            || crc32c::cpu(batch),
        )
    }

    /// BLAKE3 of each record (keyed for encrypted filesystems).
    pub fn blake3(&self, batch: &RecordBatch, mode: &Blake3Mode) -> ComputeResult<Vec<[u8; 32]>> {
        self.blake3_on(batch, mode).map(|(v, _)| v)
    }

    /// [`Compute::blake3`], and where it ran.
    pub fn blake3_on(
        &self,
        batch: &RecordBatch,
        mode: &Blake3Mode,
    ) -> ComputeResult<(Vec<[u8; 32]>, Backend)> {
        self.run_on(
            blake3::NAME,
            batch.data_bytes(),
            true,
            |g| on_gpu!(g => blake3::gpu(g.ctx(), batch, mode)),
            || blake3::cpu(batch, mode),
        )
    }

    /// AES-256-XTS of each record in 4 KiB data units; record `i`'s first unit has
    /// tweak `first_sectors[i]`.
    pub fn xts(
        &self,
        batch: &RecordBatch,
        key: &XtsKey,
        first_sectors: &[u64],
        dir: Direction,
    ) -> ComputeResult<RecordBatch> {
        self.run(
            xts::NAME,
            batch.data_bytes(),
            true,
            |g| on_gpu!(g => xts::gpu(g.ctx(), batch, key, first_sectors, dir).map(Ok)),
            || xts::cpu(batch, key, first_sectors, dir),
        )?
    }

    /// LZ4 block of each record; records that do not shrink are flagged to be stored
    /// raw.
    pub fn lz4_compress(&self, batch: &RecordBatch) -> ComputeResult<Compressed> {
        self.lz4_compress_on(batch).map(|(v, _)| v)
    }

    /// [`Compute::lz4_compress`], and where it ran.
    pub fn lz4_compress_on(&self, batch: &RecordBatch) -> ComputeResult<(Compressed, Backend)> {
        self.run_on(
            lz4::COMPRESS,
            batch.data_bytes(),
            true,
            |g| on_gpu!(g => lz4::compress_gpu(g.ctx(), batch)),
            || lz4::compress_cpu(batch),
        )
    }

    /// Each block decompressed to exactly `sizes[i]` bytes, or an error for that record.
    pub fn lz4_decompress(
        &self,
        blocks: &RecordBatch,
        sizes: &[u32],
    ) -> ComputeResult<Decompressed> {
        let bytes = sizes.iter().map(|&s| u64::from(s)).sum();
        self.run(
            lz4::DECOMPRESS,
            bytes,
            true,
            |g| on_gpu!(g => lz4::decompress_gpu(g.ctx(), blocks, sizes).map(Ok)),
            || lz4::decompress_cpu(blocks, sizes),
        )?
    }
}
