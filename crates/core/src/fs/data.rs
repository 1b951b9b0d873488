//! File data: open/release, read, write, truncate, fallocate, SEEK_DATA/SEEK_HOLE.
//!
//! A file is a sequence of records of `record_size` bytes. Record `i` covers file bytes
//! `i*R .. (i+1)*R`; it stores its first `logical_len` bytes, and the rest of its span
//! reads as zeros, as does a record that is not stored (a hole). Invariant: a record
//! never stores bytes at or past the file size.

use std::sync::Arc;

use gpufs_format::{FileKind, InodeRecord};

use super::names::NewNode;
use super::{now, Caller, Filesystem, Inner, MAX_FILE_SIZE};
use crate::error::{FsError, FsResult};
use crate::records::Span;
use crate::units::{FileOffset, Ino, RecordIndex};
use crate::volume::{AtimeMode, PendingRead, RecordLookup};

pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
pub const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

const SEEK_DATA: i32 = 3;
const SEEK_HOLE: i32 = 4;
/// relatime: atime moves when older than mtime/ctime or than this.
const ATIME_MAX_AGE_NS: i64 = 24 * 3600 * 1_000_000_000;

/// Copies the bytes of `span` from its record's logical bytes `bytes` into `out` (the
/// part past the record's stored bytes stays zero).
fn copy_span(out: &mut [u8], span: &Span, bytes: &[u8]) {
    let hi = span.end().min(bytes.len());
    if span.offset < hi {
        let dst = span.at as usize;
        out[dst..dst + hi - span.offset].copy_from_slice(&bytes[span.offset..hi]);
    }
}

impl Inner {
    fn file_inode(&self, ino: Ino) -> FsResult<InodeRecord> {
        let rec = self.inode(ino)?;
        match rec.kind() {
            Some(FileKind::Regular) => Ok(rec),
            Some(FileKind::Directory) => Err(FsError::IsDir),
            _ => Err(FsError::Invalid("not a regular file")),
        }
    }

    /// Debug builds: no record of `ino` stores bytes at or past `size`, the invariant
    /// reads, truncation and SEEK_HOLE rely on.
    pub(crate) fn debug_check_size(&self, ino: Ino, size: u64) {
        if !cfg!(debug_assertions) {
            return;
        }
        let geo = self.vol.geometry();
        // A dirty record replaces the stored one of its index (a truncation leaves the
        // stored one longer until the next flush).
        let stored_past = self.vol.records(ino).last().is_some_and(|(i, p)| {
            let index = RecordIndex::new(*i);
            let len = self.vol.record_len(ino, index).unwrap_or(p.logical_len);
            geo.data_end(index, len).get() > size
        });
        let first_past = geo.first_record_from(FileOffset::new(size));
        // The record holding the size's last byte ends at the size at most.
        let straddling = first_past.get().checked_sub(1).is_some_and(|i| {
            let index = RecordIndex::new(i);
            self.vol
                .record_len(ino, index)
                .is_some_and(|len| geo.data_end(index, len).get() > size)
        });
        debug_assert!(
            !stored_past && !straddling && !self.vol.has_dirty_from(ino, first_past),
            "inode {ino}: a record stores bytes past the size {size}"
        );
    }

    /// The bytes the record of `span` holds once the span's bytes are replaced by `data`
    /// (or zeros when `data` is `None`), keeping at most `keep` bytes of the record; empty
    /// when nothing is left of it.
    fn patched(
        &mut self,
        ino: Ino,
        span: &Span,
        data: Option<&[u8]>,
        keep: usize,
    ) -> FsResult<Vec<u8>> {
        let index = span.index;
        let (lo, hi) = (span.offset, span.end());
        debug_assert!(data.is_none_or(|d| d.len() == span.len));
        let old_len = self.vol.record_len(ino, index).map_or(0, |n| n as usize);
        let new_len = match data {
            Some(_) => old_len.max(hi),
            None => old_len,
        }
        .min(keep);
        if new_len == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; new_len];
        let covers_old = lo == 0 && hi >= old_len && data.is_some();
        if !covers_old {
            if let Some(bytes) = self.vol.read_record(ino, index)? {
                let n = old_len.min(new_len);
                buf[..n].copy_from_slice(&bytes[..n]);
            }
        }
        let hi_in = hi.min(new_len);
        if lo < hi_in {
            match data {
                Some(d) => buf[lo..hi_in].copy_from_slice(&d[..hi_in - lo]),
                None => buf[lo..hi_in].fill(0),
            }
        }
        Ok(buf)
    }

    /// Rewrites the record of `span` with the span's bytes replaced by `data` (or zeros
    /// when `data` is `None`), keeping at most `keep` bytes of the record. (A record
    /// left all zeros becomes a hole in the pipeline.)
    fn patch_record(
        &mut self,
        ino: Ino,
        span: &Span,
        data: Option<&[u8]>,
        keep: usize,
    ) -> FsResult<()> {
        let buf = self.patched(ino, span, data, keep)?;
        if buf.is_empty() {
            if self.vol.record_len(ino, span.index).is_some() {
                self.vol.drop_records(ino, span.index, span.index.next())?;
            }
            return Ok(());
        }
        self.vol.store_record(ino, span.index, &buf)
    }

    /// Writes `data` at `offset`; returns the bytes written. The records are prepared
    /// together (compressed on every core); a failure after the first record makes a
    /// short write (as write(2) does): the caller must still cover the records already
    /// stored with the file size.
    pub(super) fn write_data(&mut self, ino: Ino, offset: u64, data: &[u8]) -> FsResult<u64> {
        let geo = self.vol.geometry();
        let end = offset + data.len() as u64;
        let keep = geo.record_size() as usize;
        let mut spans: Vec<Span> = geo
            .spans(FileOffset::new(offset), FileOffset::new(end))
            .collect();
        // A write into a buffered record changes it in place (the common case of small
        // writes); the others are rebuilt whole and stored together.
        let mut patched_to = 0;
        while let Some(span) = spans.first() {
            let chunk = &data[span.in_buffer()];
            if !self.vol.patch_dirty(ino, span.index, span.offset, chunk) {
                break;
            }
            patched_to = span.at + span.len as u64;
            spans.remove(0);
        }
        if spans.is_empty() {
            return Ok(patched_to);
        }
        let mut bufs = Vec::with_capacity(spans.len());
        for span in &spans {
            bufs.push(self.patched(ino, span, Some(&data[span.in_buffer()]), keep)?);
        }
        debug_assert!(bufs.iter().all(|b| !b.is_empty()));
        let recs: Vec<(RecordIndex, &[u8])> = spans
            .iter()
            .zip(&bufs)
            .map(|(s, b)| (s.index, b.as_slice()))
            .collect();
        let stored = match self.vol.store_records(ino, &recs) {
            Ok(n) => n,
            Err(_) if patched_to > 0 => 0,
            Err(e) => return Err(e),
        };
        if stored < spans.len() {
            tracing::debug!(%ino, stored, "short write");
        }
        Ok(spans[..stored]
            .last()
            .map_or(patched_to, |s| s.at + s.len as u64))
    }

    /// Drops or zeroes everything at and past `new_size`.
    pub(crate) fn truncate_data(&mut self, ino: Ino, new_size: u64, size: u64) -> FsResult<()> {
        if new_size >= size {
            return Ok(());
        }
        let geo = self.vol.geometry();
        let cut = FileOffset::new(new_size);
        // The record cut in two (where the first span of what goes starts inside its
        // record) is rewritten first: that can fail for lack of space, and then nothing
        // has changed.
        if let Some(first) = geo.spans(cut, FileOffset::new(size)).next() {
            let keep = first.offset;
            let longer = self
                .vol
                .record_len(ino, first.index)
                .is_some_and(|n| n as usize > keep);
            if keep != 0 && longer {
                self.vol.make_room_for_records(1)?;
                self.patch_record(ino, &first, None, keep)?;
            }
        }
        let first_whole = geo.first_record_from(cut);
        let stored_past = self
            .vol
            .records(ino)
            .last()
            .is_some_and(|(i, _)| *i >= first_whole.get());
        if stored_past || self.vol.has_dirty_from(ino, first_whole) {
            self.vol.drop_records(ino, first_whole, RecordIndex::END)?;
        }
        Ok(())
    }

    /// Zeroes file bytes `start..end` (already clamped to the size): the records cut at
    /// either end are rewritten, the whole ones between dropped at once (however long
    /// the range, only the records stored in it cost anything).
    pub(crate) fn zero_range(&mut self, ino: Ino, start: u64, end: u64) -> FsResult<()> {
        let geo = self.vol.geometry();
        self.vol.make_room_for_records(2)?;
        let first_whole = geo.first_record_from(FileOffset::new(start));
        let end_whole = RecordIndex::new(end / geo.record_size());
        let head_end = geo.start_of(first_whole).get().min(end);
        let mut cut = geo
            .spans(FileOffset::new(start), FileOffset::new(head_end))
            .collect::<Vec<Span>>();
        if end_whole >= first_whole {
            let from = geo.start_of(end_whole).get().max(start);
            cut.extend(geo.spans(FileOffset::new(from), FileOffset::new(end)));
        }
        for span in cut {
            if self.vol.record_len(ino, span.index).is_none() {
                continue;
            }
            if span.is_whole() {
                self.vol.drop_records(ino, span.index, span.index.next())?;
            } else {
                self.patch_record(ino, &span, None, geo.record_size() as usize)?;
            }
        }
        if first_whole < end_whole {
            let stored = self.vol.records(ino);
            let at = stored.partition_point(|(i, _)| *i < first_whole.get());
            let any_stored = stored.get(at).is_some_and(|(i, _)| *i < end_whole.get());
            if any_stored || self.vol.has_dirty_from(ino, first_whole) {
                self.vol.drop_records(ino, first_whole, end_whole)?;
            }
        }
        Ok(())
    }
}

impl Filesystem {
    /// Opens `ino`; an unlinked file stays readable until its last release.
    pub fn open(&self, ino: u64, truncate: bool) -> FsResult<()> {
        let mut g = self.lock();
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        if truncate && rec.kind() == Some(FileKind::Regular) && rec.size > 0 {
            g.writable()?;
            g.truncate_data(ino, 0, rec.size)?;
            let t = now();
            let rec = InodeRecord {
                size: 0,
                mtime_ns: t,
                ctime_ns: t,
                ..rec
            };
            g.put(ino, rec)?;
            g.debug_check_size(ino, rec.size);
        }
        *g.open.entry(ino).or_insert(0) += 1;
        Ok(())
    }

    /// Creates and opens a regular file.
    pub fn create(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        caller: Caller,
    ) -> FsResult<super::Attr> {
        let node = NewNode {
            kind: FileKind::Regular,
            mode,
            rdev: 0,
        };
        self.make_node(parent, name, node, caller, true)
    }

    /// Closes one handle; frees the inode if it was the last one of an unlinked file.
    pub fn release(&self, ino: u64) -> FsResult<()> {
        let mut g = self.lock();
        let ino = Ino::from_kernel(ino)?;
        let left = match g.open.get_mut(&ino) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => return Ok(()),
        };
        if left == 0 {
            g.open.remove(&ino);
            if g.inode(ino).is_ok_and(|r| r.nlink == 0) && !g.vol.is_read_only() {
                g.vol.free_inode(ino)?;
            }
        }
        Ok(())
    }

    /// Reads up to `size` bytes at `offset`. Records that need a device read are read
    /// and verified without the volume lock, so reads of several requests (and
    /// readahead) overlap their I/O; a record that fails there, or changed meanwhile, is
    /// read again under the lock (which heals or reports it).
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let ino = Ino::from_kernel(ino)?;
        let mut pending: Vec<(Span, PendingRead)> = Vec::new();
        let (rec, mut out) = {
            let g = self.lock();
            let rec = g.file_inode(ino)?;
            if offset >= rec.size || size == 0 {
                return Ok(Vec::new());
            }
            let end = rec.size.min(offset + u64::from(size));
            let mut out = vec![0u8; (end - offset) as usize];
            let spans = g
                .vol
                .geometry()
                .spans(FileOffset::new(offset), FileOffset::new(end));
            for span in spans {
                match g.vol.lookup_record(ino, span.index) {
                    // A hole, or the part of a record past its stored bytes, reads as
                    // zeros.
                    RecordLookup::Hole => {}
                    RecordLookup::Ready(bytes) => copy_span(&mut out, &span, &bytes),
                    RecordLookup::Pending(p) => pending.push((span, p)),
                }
            }
            (rec, out)
        };
        // Several records (a large read, readahead) load on every core: the device reads
        // overlap, and so do their checksums, decompression and (encrypted) opening.
        let loaded: Vec<Option<Vec<u8>>> = if pending.len() > 1 {
            use rayon::prelude::*;
            pending.par_iter().map(|(_, p)| p.load()).collect()
        } else {
            pending.iter().map(|(_, p)| p.load()).collect()
        };
        let mut g = self.lock();
        for ((span, p), bytes) in pending.iter().zip(loaded) {
            match bytes {
                Some(b) => {
                    copy_span(&mut out, span, &b);
                    g.vol.cache_loaded(ino, span.index, &p.ptr, Arc::new(b));
                }
                None => {
                    if let Some(b) = g.vol.read_record(ino, span.index)? {
                        copy_span(&mut out, span, &b);
                    }
                }
            }
        }
        let t = now();
        let moves = match g.atime {
            AtimeMode::NoAtime => false,
            AtimeMode::StrictAtime => true,
            AtimeMode::Relatime => {
                rec.atime_ns <= rec.mtime_ns
                    || rec.atime_ns <= rec.ctime_ns
                    || t - rec.atime_ns > ATIME_MAX_AGE_NS
            }
        };
        if !g.vol.is_read_only() && moves {
            let cur = g.inode(ino)?;
            g.put(ino, InodeRecord { atime_ns: t, ..cur })?;
        }
        Ok(out)
    }

    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        g.file_inode(ino)?;
        g.may_write_at(ino, offset)?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(FsError::FileTooBig)?;
        if data.is_empty() {
            return Ok(0);
        }
        let records = g
            .vol
            .geometry()
            .spans(FileOffset::new(offset), FileOffset::new(end))
            .len();
        g.vol.make_room_for_records(records as u64)?;
        let written = g.write_data(ino, offset, data)?;
        debug_assert!(offset + written <= end);
        let t = now();
        let cur = g.inode(ino)?;
        let rec = InodeRecord {
            size: cur.size.max(offset + written),
            mtime_ns: t,
            ctime_ns: t,
            ..cur
        };
        g.put(ino, rec)?;
        g.debug_check_size(ino, rec.size);
        g.maybe_commit()?;
        let prepare = g.vol.wants_preparing();
        drop(g);
        if prepare {
            self.wake_preparer();
        }
        Ok(written as u32)
    }

    pub fn fallocate(&self, ino: u64, offset: u64, length: u64, mode: i32) -> FsResult<()> {
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        let mut rec = g.file_inode(ino)?;
        g.not_frozen(ino)?;
        if length == 0 {
            return Err(FsError::Invalid("zero length"));
        }
        let end = offset
            .checked_add(length)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(FsError::FileTooBig)?;
        let keep_size = mode & FALLOC_FL_KEEP_SIZE != 0;
        let t = now();
        match mode & !FALLOC_FL_KEEP_SIZE {
            0 => {
                // The holes of the range get their space reserved (ENOSPC, nothing
                // reserved, when it is not there); the file's writes use it first.
                g.vol.preallocate(ino, offset, end, end.max(rec.size))?;
            }
            m @ (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)
                if keep_size || m == FALLOC_FL_ZERO_RANGE =>
            {
                let stop = end.min(rec.size);
                if offset < stop {
                    g.zero_range(ino, offset, stop)?;
                }
            }
            _ => return Err(FsError::NotSupported),
        }
        // The reservation (and what zeroing placed) changed the inode: start from it.
        rec = InodeRecord {
            mtime_ns: rec.mtime_ns,
            ctime_ns: rec.ctime_ns,
            ..g.inode(ino)?
        };
        let mut changed = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0;
        if !keep_size && end > rec.size {
            rec.size = end;
            changed = true;
        }
        if changed {
            rec.mtime_ns = t;
            rec.ctime_ns = t;
            g.put(ino, rec)?;
            g.debug_check_size(ino, rec.size);
        }
        g.maybe_commit()
    }

    /// SEEK_DATA / SEEK_HOLE.
    pub fn lseek(&self, ino: u64, offset: u64, whence: i32) -> FsResult<u64> {
        let mut g = self.lock();
        let ino = Ino::from_kernel(ino)?;
        let rec = g.file_inode(ino)?;
        // Where data is depends on what is stored: buffered records are placed first (a
        // record of zeros becomes a hole).
        g.vol.flush_dirty_of(ino)?;
        if offset >= rec.size {
            return Err(FsError::NoSuchOffset);
        }
        let geo = g.vol.geometry();
        let ext = g.vol.records(ino);
        let start_of = |i: u64| geo.start_of(RecordIndex::new(i)).get();
        let data_end = |i: u64, len: u32| geo.data_end(RecordIndex::new(i), len).get();
        match whence {
            SEEK_DATA => ext
                .iter()
                .find(|(i, p)| data_end(*i, p.logical_len) > offset)
                .map(|(i, _)| start_of(*i).max(offset))
                .filter(|pos| *pos < rec.size)
                .ok_or(FsError::NoSuchOffset),
            SEEK_HOLE => {
                let mut pos = offset;
                let first = geo.index_of(FileOffset::new(offset)).get();
                let start = ext.partition_point(|(i, _)| *i < first);
                // Data runs on through records that are stored and full.
                for (i, p) in &ext[start..] {
                    if start_of(*i) > pos {
                        break;
                    }
                    pos = pos.max(data_end(*i, p.logical_len));
                    if !geo.is_full(p.logical_len) {
                        break;
                    }
                }
                Ok(pos.min(rec.size))
            }
            _ => Err(FsError::Invalid("whence")),
        }
    }
}
