//! File data: open/release, read, write, truncate, fallocate, SEEK_DATA/SEEK_HOLE.
//!
//! A file is a sequence of records of `record_size` bytes. Record `i` covers file bytes
//! `i*R .. (i+1)*R`; it stores its first `logical_len` bytes, and the rest of its span
//! reads as zeros, as does a record that is not stored (a hole). Invariant: a record
//! never stores bytes at or past the file size.

use gpufs_format::{FileKind, InodeRecord, JournalOp};

use super::{ino32, now, Caller, Filesystem, Inner, MAX_FILE_SIZE};
use crate::error::{FsError, FsResult};

pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
pub const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

const SEEK_DATA: i32 = 3;
const SEEK_HOLE: i32 = 4;
/// relatime: atime moves when older than mtime/ctime or than this.
const ATIME_MAX_AGE_NS: i64 = 24 * 3600 * 1_000_000_000;

/// Device blocks one whole record takes.
fn record_blocks(record_size: u64) -> u64 {
    record_size.div_ceil(gpufs_format::BLOCK_SIZE as u64)
}

impl Inner {
    fn file_inode(&self, ino: u32) -> FsResult<InodeRecord> {
        let rec = self.inode(ino)?;
        match rec.kind() {
            Some(FileKind::Regular) => Ok(rec),
            Some(FileKind::Directory) => Err(FsError::IsDir),
            _ => Err(FsError::Invalid("not a regular file")),
        }
    }

    /// Rewrites record `index` of `ino` with bytes `lo..hi` of its span replaced by
    /// `data` (or zeros when `data` is `None`), keeping at most `keep` bytes.
    fn patch_record(
        &mut self,
        ino: u32,
        index: u64,
        lo: usize,
        hi: usize,
        data: Option<&[u8]>,
        keep: usize,
    ) -> FsResult<()> {
        let old = self.vol.ns.extent(ino, index).copied();
        let old_len = old.map_or(0, |p| p.logical_len as usize);
        let new_len = match data {
            Some(_) => old_len.max(hi),
            None => old_len,
        }
        .min(keep);
        if new_len == 0 {
            if old.is_some() {
                self.vol.apply(JournalOp::ExtentDrop {
                    ino,
                    from: index,
                    to: index + 1,
                })?;
            }
            return Ok(());
        }
        let mut buf = vec![0u8; new_len];
        let covers_old = lo == 0 && hi >= old_len && data.is_some();
        if let (Some(p), false) = (old, covers_old) {
            let bytes = self.vol.read_record(&p)?;
            let n = old_len.min(new_len);
            buf[..n].copy_from_slice(&bytes[..n]);
        }
        let hi_in = hi.min(new_len);
        if lo < hi_in {
            match data {
                Some(d) => buf[lo..hi_in].copy_from_slice(&d[..hi_in - lo]),
                None => buf[lo..hi_in].fill(0),
            }
        }
        if data.is_none() && buf.iter().all(|b| *b == 0) {
            return self.vol.apply(JournalOp::ExtentDrop {
                ino,
                from: index,
                to: index + 1,
            });
        }
        let ptr = self.vol.write_record(&buf)?;
        self.vol.apply(JournalOp::ExtentPut { ino, index, ptr })
    }

    /// Writes `data` at `offset`; returns the bytes written. A failure after the first
    /// record makes a short write (as write(2) does): the caller must still cover the
    /// records already stored with the file size.
    fn write_data(&mut self, ino: u32, offset: u64, data: &[u8]) -> FsResult<u64> {
        let r = u64::from(self.vol.record_size());
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let index = pos / r;
            let span_start = index * r;
            let lo = (pos - span_start) as usize;
            let hi = ((end - span_start).min(r)) as usize;
            let chunk = &data[(pos - offset) as usize..(pos - offset) as usize + (hi - lo)];
            if let Err(e) = self.patch_record(ino, index, lo, hi, Some(chunk), r as usize) {
                if pos == offset {
                    return Err(e);
                }
                tracing::debug!(ino, written = pos - offset, "short write: {e}");
                break;
            }
            pos = span_start + hi as u64;
        }
        Ok(pos - offset)
    }

    /// Drops or zeroes everything at and past `new_size`.
    pub(crate) fn truncate_data(&mut self, ino: u32, new_size: u64, size: u64) -> FsResult<()> {
        if new_size >= size {
            return Ok(());
        }
        let r = u64::from(self.vol.record_size());
        // The record cut in two is rewritten first: that can fail for lack of space, and
        // then nothing has changed.
        let keep = (new_size % r) as usize;
        if keep != 0 {
            let index = new_size / r;
            if self
                .vol
                .ns
                .extent(ino, index)
                .is_some_and(|p| p.logical_len as usize > keep)
            {
                self.vol.make_room(record_blocks(r), record_blocks(r))?;
                self.patch_record(ino, index, keep, keep, None, keep)?;
            }
        }
        let first_whole = new_size.div_ceil(r);
        if self
            .vol
            .ns
            .extents(ino)
            .last()
            .is_some_and(|(i, _)| *i >= first_whole)
        {
            self.vol.apply(JournalOp::ExtentDrop {
                ino,
                from: first_whole,
                to: u64::MAX,
            })?;
        }
        Ok(())
    }

    /// Zeroes file bytes `start..end` (already clamped to the size).
    fn zero_range(&mut self, ino: u32, start: u64, end: u64) -> FsResult<()> {
        let r = u64::from(self.vol.record_size());
        // At most the first and last records are rewritten; the others are dropped.
        self.vol.make_room(2 * record_blocks(r), record_blocks(r))?;
        let mut pos = start;
        while pos < end {
            let index = pos / r;
            let span_start = index * r;
            let lo = (pos - span_start) as usize;
            let hi = ((end - span_start).min(r)) as usize;
            if self.vol.ns.extent(ino, index).is_some() {
                if lo == 0 && hi == r as usize {
                    self.vol.apply(JournalOp::ExtentDrop {
                        ino,
                        from: index,
                        to: index + 1,
                    })?;
                } else {
                    self.patch_record(ino, index, lo, hi, None, r as usize)?;
                }
            }
            pos = span_start + hi as u64;
        }
        Ok(())
    }
}

impl Filesystem {
    /// Opens `ino`; an unlinked file stays readable until its last release.
    pub fn open(&self, ino: u64, truncate: bool) -> FsResult<()> {
        let mut g = self.lock();
        let ino = ino32(ino)?;
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
        let mut g = self.lock();
        let (ino, rec) = g.create_node(ino32(parent)?, name, FileKind::Regular, mode, 0, caller)?;
        *g.open.entry(ino).or_insert(0) += 1;
        g.maybe_commit()?;
        Ok(g.attr(ino, &rec))
    }

    /// Closes one handle; frees the inode if it was the last one of an unlinked file.
    pub fn release(&self, ino: u64) -> FsResult<()> {
        let mut g = self.lock();
        let ino = ino32(ino)?;
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
                g.vol.apply(JournalOp::InodeFree { ino })?;
            }
        }
        Ok(())
    }

    pub fn read(&self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let mut g = self.lock();
        let ino = ino32(ino)?;
        let rec = g.file_inode(ino)?;
        if offset >= rec.size || size == 0 {
            return Ok(Vec::new());
        }
        let end = rec.size.min(offset + u64::from(size));
        let r = u64::from(g.vol.record_size());
        let mut out = vec![0u8; (end - offset) as usize];
        let mut pos = offset;
        while pos < end {
            let index = pos / r;
            let span_start = index * r;
            let span_end = (span_start + r).min(end);
            if let Some(p) = g.vol.ns.extent(ino, index).copied() {
                let bytes = g.vol.read_record(&p)?;
                let lo = (pos - span_start) as usize;
                let hi = ((span_end - span_start) as usize).min(bytes.len());
                if lo < hi {
                    let dst = (pos - offset) as usize;
                    out[dst..dst + hi - lo].copy_from_slice(&bytes[lo..hi]);
                }
            }
            pos = span_end;
        }
        let t = now();
        if !g.vol.is_read_only()
            && (rec.atime_ns <= rec.mtime_ns
                || rec.atime_ns <= rec.ctime_ns
                || t - rec.atime_ns > ATIME_MAX_AGE_NS)
        {
            g.put(ino, InodeRecord { atime_ns: t, ..rec })?;
        }
        Ok(out)
    }

    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let mut g = self.lock();
        g.writable()?;
        let ino = ino32(ino)?;
        g.file_inode(ino)?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(FsError::FileTooBig)?;
        if data.is_empty() {
            return Ok(0);
        }
        let r = u64::from(g.vol.record_size());
        let records = (end - 1) / r - offset / r + 1;
        g.vol
            .make_room(records.saturating_mul(record_blocks(r)), record_blocks(r))?;
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
        g.maybe_commit()?;
        Ok(written as u32)
    }

    pub fn fallocate(&self, ino: u64, offset: u64, length: u64, mode: i32) -> FsResult<()> {
        let mut g = self.lock();
        g.writable()?;
        let ino = ino32(ino)?;
        let mut rec = g.file_inode(ino)?;
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
                // Copy-on-write cannot pin blocks ahead of time; check the room exists.
                let r = u64::from(g.vol.record_size());
                let stored: u64 = g
                    .vol
                    .ns
                    .extents(ino)
                    .iter()
                    .filter(|(i, _)| *i * r < end && (*i + 1) * r > offset)
                    .map(|(_, p)| u64::from(p.logical_len))
                    .sum();
                let want = length.saturating_sub(stored) / gpufs_format::BLOCK_SIZE as u64;
                g.vol.ensure_space(want)?;
            }
            FALLOC_FL_PUNCH_HOLE if keep_size => {
                let stop = end.min(rec.size);
                if offset < stop {
                    g.zero_range(ino, offset, stop)?;
                }
            }
            FALLOC_FL_ZERO_RANGE => {
                let stop = end.min(rec.size);
                if offset < stop {
                    g.zero_range(ino, offset, stop)?;
                }
            }
            _ => return Err(FsError::NotSupported),
        }
        let mut changed = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0;
        if !keep_size && end > rec.size {
            rec.size = end;
            changed = true;
        }
        if changed {
            rec.mtime_ns = t;
            rec.ctime_ns = t;
            g.put(ino, rec)?;
        }
        g.maybe_commit()
    }

    /// SEEK_DATA / SEEK_HOLE.
    pub fn lseek(&self, ino: u64, offset: u64, whence: i32) -> FsResult<u64> {
        let g = self.lock();
        let ino = ino32(ino)?;
        let rec = g.file_inode(ino)?;
        if offset >= rec.size {
            return Err(FsError::NoSuchOffset);
        }
        let r = u64::from(g.vol.record_size());
        let ext = g.vol.ns.extents(ino);
        let data_end = |i: u64, len: u32| i * r + u64::from(len);
        match whence {
            SEEK_DATA => ext
                .iter()
                .find(|(i, p)| data_end(*i, p.logical_len) > offset)
                .map(|(i, _)| (i * r).max(offset))
                .filter(|pos| *pos < rec.size)
                .ok_or(FsError::NoSuchOffset),
            SEEK_HOLE => {
                let mut pos = offset;
                let start = ext.partition_point(|(i, _)| *i < offset / r);
                for (i, p) in &ext[start..] {
                    if i * r > pos {
                        break;
                    }
                    let e = data_end(*i, p.logical_len);
                    if e > pos {
                        pos = e;
                    }
                    if p.logical_len as u64 != r {
                        break;
                    }
                }
                Ok(pos.min(rec.size))
            }
            _ => Err(FsError::Invalid("whence")),
        }
    }
}
