//! Copies that share records instead of bytes: `copy_file_range` between files of the
//! filesystem (and `gpufs clone`, which calls it). Where a destination record is covered
//! whole by the copy, and the source's record lines up with it, the destination's
//! pointer becomes a second reference to the source's record (a journal `ExtentShare`):
//! nothing is read, written or allocated. The rest (the partial records at the edges,
//! or a whole copy whose offsets do not line up within a record) is copied as bytes
//! through the ordinary write path. A later write to either file replaces only that
//! file's pointer (copy-on-write), and the record is freed with its last reference.

use gpufs_format::{FileKind, InodeRecord};

use super::{now, Filesystem, Inner, MAX_FILE_SIZE};
use crate::error::{FsError, FsResult};
use crate::units::{FileOffset, Ino, RecordIndex};

/// Bytes copied as bytes per step (each step a read of the source and a write).
const BYTE_STEP: u64 = 1 << 20;
/// Records shared between two checks whether the journal wants a commit.
const SHARES_PER_COMMIT_CHECK: u64 = 4096;

/// What a copy did, for counters and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyOutcome {
    /// Bytes copied in all (what copy_file_range returns).
    pub bytes: u64,
    /// Records shared instead of copied (holes included).
    pub shared_records: u64,
    /// Bytes copied as bytes.
    pub copied_bytes: u64,
}

impl Inner {
    /// The file bytes `offset..offset+len` of `ino` (within its size), read under the
    /// lock.
    fn read_locked(&mut self, ino: Ino, offset: u64, len: u64) -> FsResult<Vec<u8>> {
        let mut out = vec![0u8; len as usize];
        let geo = self.vol.geometry();
        for span in geo.spans(FileOffset::new(offset), FileOffset::new(offset + len)) {
            if let Some(bytes) = self.vol.read_record(ino, span.index)? {
                let hi = span.end().min(bytes.len());
                if span.offset < hi {
                    let at = span.at as usize;
                    out[at..at + hi - span.offset].copy_from_slice(&bytes[span.offset..hi]);
                }
            }
        }
        Ok(out)
    }

    /// Can destination record `di` take source record `si` whole, for a copy of `chunk`
    /// bytes starting at both records' first byte? A full record always can; a shorter
    /// chunk (the copy's last) only when neither record holds bytes past it.
    fn can_share(&self, src: Ino, si: RecordIndex, dst: Ino, di: RecordIndex, chunk: u64) -> bool {
        if chunk == self.vol.geometry().record_size() {
            return true;
        }
        let src_len = self.vol.record_len(src, si).map_or(0, u64::from);
        let dst_len = self.vol.record_len(dst, di).map_or(0, u64::from);
        src_len <= chunk && dst_len <= chunk
    }

    /// Grows the size of `dst` to `end` (when shorter) and moves its times: a copy
    /// covers what it wrote with the size before anything commits.
    fn cover(&mut self, dst: Ino, end: u64) -> FsResult<()> {
        let t = now();
        let cur = self.inode(dst)?;
        let rec = InodeRecord {
            size: cur.size.max(end),
            mtime_ns: t,
            ctime_ns: t,
            ..cur
        };
        self.put(dst, rec)?;
        self.debug_check_size(dst, rec.size);
        Ok(())
    }

    /// Makes destination record `di` the source's record `si` (a hole when that is one).
    fn share_one(&mut self, src: Ino, si: RecordIndex, dst: Ino, di: RecordIndex) -> FsResult<()> {
        match self.vol.record(src, si).copied() {
            Some(ptr) => self.vol.share_record(dst, di, ptr),
            None if self.vol.record_len(dst, di).is_some() => {
                self.vol.drop_records(dst, di, di.next())
            }
            None => Ok(()),
        }
    }

    /// Copies `len` bytes from `src` at `s` to `dst` at `d` through the write path;
    /// returns how many were written (fewer on a short write).
    fn copy_bytes(&mut self, src: Ino, s: u64, dst: Ino, d: u64, len: u64) -> FsResult<u64> {
        let bytes = self.read_locked(src, s, len)?;
        self.write_data(dst, d, &bytes)
    }

    /// Copies `len` bytes (already clamped to the source's size) from `src` at `src_off`
    /// to `dst` at `dst_off`, sharing the records that line up.
    fn copy_range(
        &mut self,
        src: Ino,
        src_off: u64,
        dst: Ino,
        dst_off: u64,
        len: u64,
    ) -> FsResult<CopyOutcome> {
        // What is shared must be placed: the source's buffered records go first.
        self.vol.flush_dirty_of(src)?;
        let geo = self.vol.geometry();
        let record = geo.record_size();
        let aligned = src_off % record == dst_off % record;
        // Room for what is copied as bytes (the two edge records, or every record of a
        // copy that does not line up), made before anything changes: a commit in the
        // middle would make part of the copy durable.
        let byte_records = if aligned {
            2
        } else {
            geo.spans(FileOffset::new(dst_off), FileOffset::new(dst_off + len))
                .len() as u64
        };
        self.vol.make_room_for_records(byte_records)?;
        let mut out = CopyOutcome::default();
        let mut since_check = 0u64;
        while out.bytes < len {
            let s = src_off + out.bytes;
            let d = dst_off + out.bytes;
            let left = len - out.bytes;
            let into_record = d % record;
            let whole = aligned && into_record == 0;
            let chunk = if whole {
                left.min(record)
            } else if aligned {
                // Up to the next record boundary, then whole records.
                left.min(record - into_record)
            } else {
                left.min(BYTE_STEP)
            };
            let si = geo.index_of(FileOffset::new(s));
            let di = geo.index_of(FileOffset::new(d));
            let step = if whole && self.can_share(src, si, dst, di, chunk) {
                since_check += 1;
                self.share_one(src, si, dst, di).map(|()| {
                    out.shared_records += 1;
                    chunk
                })
            } else {
                self.copy_bytes(src, s, dst, d, chunk).inspect(|n| {
                    out.copied_bytes += n;
                })
            };
            // What was done stays done: a failure after some progress is a short copy,
            // which the caller covers with the destination's size.
            let done = match step {
                Ok(n) => n,
                Err(e) if out.bytes > 0 => {
                    tracing::debug!(%dst, copied = out.bytes, "short copy: {e}");
                    break;
                }
                Err(e) => return Err(e),
            };
            out.bytes += done;
            if done < chunk {
                break;
            }
            if since_check >= SHARES_PER_COMMIT_CHECK {
                since_check = 0;
                // A commit never holds records past the size: it grows first.
                let covered = self.cover(dst, dst_off + out.bytes);
                if let Err(e) = covered.and_then(|()| self.maybe_commit()) {
                    tracing::debug!(%dst, copied = out.bytes, "short copy: {e}");
                    break;
                }
            }
        }
        Ok(out)
    }
}

impl Filesystem {
    /// `copy_file_range`: copies up to `len` bytes of `src` from `src_off` to `dst` at
    /// `dst_off`, sharing whole records where the offsets line up within a record;
    /// returns what it copied (0 at or past the source's end).
    pub fn copy_file_range(
        &self,
        src: u64,
        src_off: u64,
        dst: u64,
        dst_off: u64,
        len: u64,
    ) -> FsResult<CopyOutcome> {
        let mut g = self.lock();
        g.writable()?;
        let (src, dst) = (Ino::from_kernel(src)?, Ino::from_kernel(dst)?);
        let src_rec = g.inode(src)?;
        let dst_rec = g.inode(dst)?;
        for rec in [&src_rec, &dst_rec] {
            match rec.kind() {
                Some(FileKind::Regular) => {}
                Some(FileKind::Directory) => return Err(FsError::IsDir),
                _ => return Err(FsError::Invalid("not a regular file")),
            }
        }
        g.may_write_at(dst, dst_off)?;
        let len = len.min(src_rec.size.saturating_sub(src_off));
        if len == 0 {
            return Ok(CopyOutcome::default());
        }
        let end = dst_off
            .checked_add(len)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(FsError::FileTooBig)?;
        if src == dst && src_off < end && dst_off < src_off + len {
            return Err(FsError::Invalid("overlapping ranges of one file"));
        }
        let done = g.copy_range(src, src_off, dst, dst_off, len)?;
        g.cover(dst, dst_off + done.bytes)?;
        g.maybe_commit()?;
        Ok(done)
    }
}
