//! What the write pipeline did with the records it was given, for `gpufs stats`.

use gpufs_compute::Backend;
use gpufs_format::{RecordPtr, BLOCK_SIZE};

use super::codec::Verdict;
use super::pipeline::Outcome;

/// Records of one kind and their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub records: u64,
    /// Bytes of file data they hold.
    pub logical_bytes: u64,
    /// Bytes they take on the device, whole blocks.
    pub physical_bytes: u64,
}

impl Totals {
    fn add(&mut self, logical: u32, stored: usize) {
        self.records += 1;
        self.logical_bytes += u64::from(logical);
        self.physical_bytes += (stored.div_ceil(BLOCK_SIZE) * BLOCK_SIZE) as u64;
    }
}

/// Records written since mount, by how they were stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordCounters {
    /// Stored as they are.
    pub raw: Totals,
    pub lz4: Totals,
    pub zstd: Totals,
    /// Records of zeros left as holes (no physical bytes).
    pub holes: Totals,
    /// Raw because the sample looked incompressible (no compressor ran).
    pub skipped_by_sample: u64,
    /// Raw because the compressor did not save an eighth and a block.
    pub not_worth: u64,
    /// Records whose compression and checksum ran on the CPU cores, and on the GPU
    /// (batches the compute layer's dispatch policy sent there).
    pub cpu_records: u64,
    pub gpu_records: u64,
}

impl RecordCounters {
    /// Counts a record of zeros the write-back cache turned into a hole before the
    /// pipeline saw it.
    pub fn count_hole(&mut self, logical: u32) {
        self.cpu_records += 1;
        self.holes.add(logical, 0);
    }

    /// Counts one placed record, prepared on `backend`.
    pub fn count(
        &mut self,
        backend: Backend,
        verdict: Verdict,
        outcome: &Outcome,
        logical: u32,
        stored: usize,
    ) {
        match backend {
            Backend::Cpu => self.cpu_records += 1,
            Backend::Gpu => self.gpu_records += 1,
        }
        match outcome {
            Outcome::Hole => self.holes.add(logical, 0),
            Outcome::Stored(ptr) => match verdict {
                Verdict::Compressed(RecordPtr::FLAG_LZ4) => self.lz4.add(logical, stored),
                Verdict::Compressed(_) => self.zstd.add(logical, stored),
                Verdict::Skipped => {
                    self.skipped_by_sample += 1;
                    self.raw.add(logical, stored)
                }
                Verdict::NotWorth => {
                    self.not_worth += 1;
                    self.raw.add(logical, stored)
                }
                Verdict::Off => {
                    // Stored as it came: no compression flag (a hash, a seal or a second
                    // copy may be flagged).
                    debug_assert_eq!(ptr.flags & (RecordPtr::FLAG_LZ4 | RecordPtr::FLAG_ZSTD), 0);
                    self.raw.add(logical, stored)
                }
            },
        }
    }
}
