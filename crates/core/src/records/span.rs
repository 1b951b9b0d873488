//! Where a byte range of a file falls in its records: the one place that divides file
//! offsets by the record size. Record `i` covers file bytes `i*R .. (i+1)*R`; a range
//! `start..end` touches records `start/R ..= (end-1)/R`, each in one [`Span`], and only
//! the first and the last of them can be partial.

use std::ops::Range;

use gpufs_format::BLOCK_SIZE;

use crate::units::{FileOffset, RecordIndex};

/// How a file's bytes fall into records of one size (a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordGeometry {
    size: u64,
}

impl RecordGeometry {
    pub fn new(record_size: u32) -> RecordGeometry {
        debug_assert!(record_size.is_power_of_two(), "record size {record_size}");
        RecordGeometry {
            size: u64::from(record_size),
        }
    }

    /// Bytes of file data one record covers.
    pub fn record_size(self) -> u64 {
        self.size
    }

    /// Device blocks one whole record takes.
    pub fn blocks_per_record(self) -> u64 {
        self.size.div_ceil(BLOCK_SIZE as u64)
    }

    /// The record holding file byte `offset`.
    pub fn index_of(self, offset: FileOffset) -> RecordIndex {
        RecordIndex::new(offset.get() / self.size)
    }

    /// Where record `index` starts in its file (saturating: an index read from a
    /// damaged image may be past any file).
    pub fn start_of(self, index: RecordIndex) -> FileOffset {
        FileOffset::new(index.get().saturating_mul(self.size))
    }

    /// Where the data of record `index` ends when it holds `len` bytes.
    pub fn data_end(self, index: RecordIndex, len: u32) -> FileOffset {
        FileOffset::new(self.start_of(index).get().saturating_add(u64::from(len)))
    }

    /// Does a record holding `len` bytes hold its whole span?
    pub fn is_full(self, len: u32) -> bool {
        u64::from(len) == self.size
    }

    /// The first record that starts at or past `offset`: after a truncation to
    /// `offset`, it and every record after it are dropped whole.
    pub fn first_record_from(self, offset: FileOffset) -> RecordIndex {
        RecordIndex::new(offset.get().div_ceil(self.size))
    }

    /// The records bytes `start..end` touch (empty when `end <= start`).
    pub fn records_touching(self, start: FileOffset, end: FileOffset) -> Range<RecordIndex> {
        if end <= start {
            let i = self.index_of(start);
            return i..i;
        }
        self.index_of(start)..self.first_record_from(end)
    }

    /// The spans of bytes `start..end`, one per record touched, in file order.
    pub fn spans(self, start: FileOffset, end: FileOffset) -> Spans {
        Spans {
            size: self.size,
            start: start.get(),
            pos: start.get(),
            end: end.get().max(start.get()),
        }
    }
}

/// One record's share of a byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub index: RecordIndex,
    /// First byte of the span within the record.
    pub offset: usize,
    /// Bytes in the span (never 0).
    pub len: usize,
    /// Where the span starts, counted from the start of the range (its place in the
    /// caller's buffer).
    pub at: u64,
    whole: bool,
}

impl Span {
    /// One past the span's last byte, within the record.
    pub fn end(&self) -> usize {
        self.offset + self.len
    }

    /// The span's place in a buffer holding the whole range.
    pub fn in_buffer(&self) -> Range<usize> {
        let at = self.at as usize;
        at..at + self.len
    }

    /// The span covers its record from start to end. Only the first and the last
    /// span of a range can cover part of theirs.
    pub fn is_whole(&self) -> bool {
        self.whole
    }
}

/// The spans of a byte range ([`RecordGeometry::spans`]).
#[derive(Clone, Debug)]
pub struct Spans {
    size: u64,
    start: u64,
    pos: u64,
    end: u64,
}

impl Iterator for Spans {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        if self.pos >= self.end {
            return None;
        }
        let index = self.pos / self.size;
        let record_start = index * self.size;
        let offset = self.pos - record_start;
        let stop = (self.end - record_start).min(self.size);
        let span = Span {
            index: RecordIndex::new(index),
            offset: offset as usize,
            len: (stop - offset) as usize,
            at: self.pos - self.start,
            whole: offset == 0 && stop == self.size,
        };
        debug_assert!(span.len > 0 && span.end() as u64 <= self.size);
        self.pos = record_start + stop;
        Some(span)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.pos >= self.end {
            0
        } else {
            ((self.end - 1) / self.size - self.pos / self.size + 1) as usize
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Spans {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn geo(size: u32) -> RecordGeometry {
        RecordGeometry::new(size)
    }

    fn spans(size: u32, start: u64, end: u64) -> Vec<Span> {
        geo(size)
            .spans(FileOffset::new(start), FileOffset::new(end))
            .collect()
    }

    /// The spans of `start..end` worked out one byte at a time.
    fn naive(size: u64, start: u64, end: u64) -> Vec<(u64, usize, usize, u64, bool)> {
        let mut out: Vec<(u64, usize, usize, u64, bool)> = Vec::new();
        for b in start..end {
            let (index, offset) = (b / size, (b % size) as usize);
            match out.last_mut() {
                Some(last) if last.0 == index => last.2 += 1,
                _ => out.push((index, offset, 1, b - start, false)),
            }
        }
        for s in &mut out {
            s.4 = s.1 == 0 && s.2 as u64 == size;
        }
        out
    }

    #[test]
    fn a_range_inside_one_record_is_one_partial_span() {
        let s = spans(4096, 10, 20);
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].index, s[0].offset, s[0].len, s[0].at),
            (RecordIndex::new(0), 10, 10, 0)
        );
        assert!(!s[0].is_whole());
        assert_eq!(s[0].end(), 20);
        assert_eq!(s[0].in_buffer(), 0..10);
    }

    #[test]
    fn only_the_ends_of_a_range_are_partial() {
        let s = spans(4096, 4000, 3 * 4096 + 5);
        let shape: Vec<(u64, usize, usize, u64, bool)> = s
            .iter()
            .map(|s| (s.index.get(), s.offset, s.len, s.at, s.is_whole()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 4000, 96, 0, false),
                (1, 0, 4096, 96, true),
                (2, 0, 4096, 96 + 4096, true),
                (3, 0, 5, 96 + 2 * 4096, false),
            ]
        );
        assert!(spans(4096, 4096, 8192)[0].is_whole());
    }

    #[test]
    fn an_empty_or_reversed_range_has_no_spans() {
        assert!(spans(4096, 100, 100).is_empty());
        assert!(spans(4096, 100, 50).is_empty());
        let g = geo(4096);
        let r = g.records_touching(FileOffset::new(100), FileOffset::new(50));
        assert!(r.is_empty());
    }

    #[test]
    fn offsets_and_indexes() {
        let g = geo(65536);
        assert_eq!(g.blocks_per_record(), 16);
        assert_eq!(geo(1 << 20).blocks_per_record(), 256);
        assert_eq!(g.index_of(FileOffset::new(65535)), RecordIndex::new(0));
        assert_eq!(g.index_of(FileOffset::new(65536)), RecordIndex::new(1));
        assert_eq!(g.start_of(RecordIndex::new(3)), FileOffset::new(3 * 65536));
        assert_eq!(g.start_of(RecordIndex::END), FileOffset::new(u64::MAX));
        assert_eq!(
            g.data_end(RecordIndex::new(2), 10),
            FileOffset::new(2 * 65536 + 10)
        );
        assert_eq!(g.first_record_from(FileOffset::new(0)), RecordIndex::new(0));
        assert_eq!(g.first_record_from(FileOffset::new(1)), RecordIndex::new(1));
        assert_eq!(
            g.first_record_from(FileOffset::new(65536)),
            RecordIndex::new(1)
        );
        assert!(g.is_full(65536) && !g.is_full(65535));
    }

    proptest! {
        #[test]
        fn spans_equal_the_byte_by_byte_model(
            shift in 0u32..7,
            start in 0u64..3000,
            len in 0u64..3000,
        ) {
            let size = 1u32 << shift;
            let end = start + len;
            let got = spans(size, start, end);
            let shape: Vec<(u64, usize, usize, u64, bool)> = got
                .iter()
                .map(|s| (s.index.get(), s.offset, s.len, s.at, s.is_whole()))
                .collect();
            prop_assert_eq!(&shape, &naive(u64::from(size), start, end));
            let g = geo(size);
            let it = g.spans(FileOffset::new(start), FileOffset::new(end));
            prop_assert_eq!(it.len(), got.len());
            let touched = g.records_touching(FileOffset::new(start), FileOffset::new(end));
            let indexes: Vec<RecordIndex> = got.iter().map(|s| s.index).collect();
            let want: Vec<RecordIndex> =
                (touched.start.get()..touched.end.get()).map(RecordIndex::new).collect();
            prop_assert_eq!(indexes, want);
            // Spans tile the range: each starts where the one before ended.
            let mut at = 0u64;
            for s in &got {
                prop_assert_eq!(s.at, at);
                prop_assert_eq!(g.start_of(s.index).get() + s.offset as u64, start + at);
                at += s.len as u64;
            }
            prop_assert_eq!(at, len);
        }
    }
}
