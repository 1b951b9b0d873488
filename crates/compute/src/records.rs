//! Batches of file records for the data kernels (CRC32C, BLAKE3, LZ4, AES-XTS): many
//! records packed end to end in one byte buffer, each starting on a
//! [`RECORD_ALIGN`]-byte boundary with zeroed gap bytes, so one upload serves a whole
//! batch and a GPU invocation finds record `i` from its (start, length) pair.
//! On the device a batch larger than one binding goes up in parts (`records/gpu.rs`).

use std::ops::Range;

use crate::error::{ComputeError, ComputeResult};

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::{upload_part, upload_parts, GpuPart, PART_BYTES};

/// Every record starts at a multiple of this many bytes (one AES block, four words).
pub const RECORD_ALIGN: usize = 16;
/// Largest record a batch holds: the largest record size of the on-disk format.
pub const MAX_RECORD_BYTES: usize = gpufs_format::MAX_RECORD_SIZE as usize;

/// Records packed for both backends: record `i` is
/// `bytes[starts[i]..starts[i] + lens[i]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordBatch {
    bytes: Vec<u8>,
    starts: Vec<u64>,
    lens: Vec<u32>,
}

impl RecordBatch {
    pub fn new() -> RecordBatch {
        RecordBatch::default()
    }

    /// Room for `records` records of `bytes` bytes in all.
    pub fn with_capacity(records: usize, bytes: usize) -> RecordBatch {
        RecordBatch {
            bytes: Vec::with_capacity(bytes + records * RECORD_ALIGN),
            starts: Vec::with_capacity(records),
            lens: Vec::with_capacity(records),
        }
    }

    /// A batch of `records`; refuses one longer than [`MAX_RECORD_BYTES`].
    pub fn from_records<'a>(
        records: impl IntoIterator<Item = &'a [u8]>,
    ) -> ComputeResult<RecordBatch> {
        let mut b = RecordBatch::new();
        for r in records {
            b.push(r)?;
        }
        Ok(b)
    }

    /// Appends one record.
    pub fn push(&mut self, record: &[u8]) -> ComputeResult<()> {
        let slot = self.push_zeroed(record.len())?;
        self.bytes[slot].copy_from_slice(record);
        Ok(())
    }

    /// Appends a zeroed record of `len` bytes and returns its byte range, to be filled
    /// in place (outputs of kernels are built this way, without a copy).
    pub fn push_zeroed(&mut self, len: usize) -> ComputeResult<Range<usize>> {
        if len > MAX_RECORD_BYTES {
            return Err(ComputeError::TooLarge(format!(
                "a record of {len} bytes (at most {MAX_RECORD_BYTES})"
            )));
        }
        let start = self.bytes.len().next_multiple_of(RECORD_ALIGN);
        self.bytes.resize(start + len, 0);
        self.starts.push(start as u64);
        self.lens.push(len as u32);
        Ok(start..start + len)
    }

    /// Shortens record `i` (the last one pushed, or any: later records do not move) to
    /// `len` bytes. Used when an output is smaller than the room made for it.
    pub fn truncate_record(&mut self, i: usize, len: usize) {
        if let Some(l) = self.lens.get_mut(i) {
            if len < *l as usize {
                let start = self.starts[i] as usize;
                self.bytes[start + len..start + *l as usize].fill(0);
                *l = len as u32;
                if i + 1 == self.starts.len() {
                    self.bytes.truncate(start + len);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Record `i` (empty when out of range).
    pub fn get(&self, i: usize) -> &[u8] {
        match (self.starts.get(i), self.lens.get(i)) {
            (Some(&s), Some(&l)) => &self.bytes[s as usize..s as usize + l as usize],
            _ => &[],
        }
    }

    /// Record `i`, writable.
    pub fn get_mut(&mut self, i: usize) -> &mut [u8] {
        match (self.starts.get(i), self.lens.get(i)) {
            (Some(&s), Some(&l)) => &mut self.bytes[s as usize..s as usize + l as usize],
            _ => &mut [],
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Lengths of the records.
    pub fn lens(&self) -> &[u32] {
        &self.lens
    }

    /// Byte offsets of the records in [`RecordBatch::packed`].
    pub fn starts(&self) -> &[u64] {
        &self.starts
    }

    /// Bytes of record data, gaps not counted.
    pub fn data_bytes(&self) -> u64 {
        self.lens.iter().map(|&l| u64::from(l)).sum()
    }

    /// The packed buffer, gaps included.
    pub fn packed(&self) -> &[u8] {
        &self.bytes
    }

    /// Splits the mutable records apart, for filling outputs in parallel.
    pub fn records_mut(&mut self) -> Vec<&mut [u8]> {
        let mut out = Vec::with_capacity(self.len());
        let mut rest: &mut [u8] = &mut self.bytes;
        let mut consumed = 0usize;
        for (&s, &l) in self.starts.iter().zip(&self.lens) {
            let s = s as usize;
            let taken = std::mem::take(&mut rest);
            let (_, tail) = taken.split_at_mut(s - consumed);
            let (rec, tail) = tail.split_at_mut(l as usize);
            out.push(rec);
            rest = tail;
            consumed = s + l as usize;
        }
        out
    }

    /// Cuts the batch into runs of records whose packed bytes fit `max_bytes` each (a
    /// record larger than `max_bytes` gets a run of its own).
    pub fn parts(&self, max_bytes: u64) -> Vec<Range<usize>> {
        let mut parts = Vec::new();
        let mut first = 0usize;
        while first < self.len() {
            let base = self.starts[first];
            let mut end = first + 1;
            while end < self.len()
                && self.starts[end] + u64::from(self.lens[end]) - base <= max_bytes
            {
                end += 1;
            }
            parts.push(first..end);
            first = end;
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_pack_aligned_with_zero_gaps() {
        let recs: Vec<Vec<u8>> = (0..50).map(|n| vec![0xAB; n * 7]).collect();
        let b = RecordBatch::from_records(recs.iter().map(|r| &r[..])).unwrap();
        assert_eq!(b.len(), 50);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(b.get(i), &r[..]);
            assert_eq!(b.starts()[i] as usize % RECORD_ALIGN, 0);
        }
        let in_records: u64 = b.data_bytes();
        let nonzero = b.packed().iter().filter(|&&x| x != 0).count() as u64;
        assert_eq!(in_records, nonzero, "gap bytes are zero");
        assert!(RecordBatch::new()
            .push(&vec![0; MAX_RECORD_BYTES + 1])
            .is_err());
    }

    #[test]
    fn parts_cover_the_batch_within_the_limit() {
        let recs: Vec<Vec<u8>> = (0..300).map(|n| vec![1; (n * 37) % 5000]).collect();
        let b = RecordBatch::from_records(recs.iter().map(|r| &r[..])).unwrap();
        for max in [1u64, 100, 4096, 50_000, 1 << 30] {
            let parts = b.parts(max);
            let mut next = 0;
            for p in &parts {
                assert_eq!(p.start, next);
                next = p.end;
                let bytes =
                    b.starts()[p.end - 1] + u64::from(b.lens()[p.end - 1]) - b.starts()[p.start];
                assert!(p.len() == 1 || bytes <= max);
            }
            assert_eq!(next, b.len());
        }
    }

    #[test]
    fn mutable_records_and_truncation() {
        let mut b = RecordBatch::new();
        for n in [5usize, 0, 40, 17] {
            b.push_zeroed(n).unwrap();
        }
        for (i, r) in b.records_mut().into_iter().enumerate() {
            r.fill(i as u8 + 1);
        }
        assert_eq!(b.get(2), &[3u8; 40][..]);
        b.truncate_record(2, 3);
        assert_eq!(b.get(2), &[3u8; 3][..]);
        assert_eq!(b.get(3), &[4u8; 17][..]);
        b.truncate_record(3, 1);
        assert_eq!(b.packed().len(), b.starts()[3] as usize + 1);
    }
}
