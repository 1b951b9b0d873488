//! `gpufs receive`: applies a replication stream (`fs/send.rs`) and creates its snapshot.
//!
//! All or nothing: commits are held for the whole receive, so the ops change memory and
//! write data only to free blocks (frees stay deferred: nothing the image refers to is
//! overwritten). Only after the stream's end has checked out (frame count, length,
//! BLAKE3) and the namespace built has the fingerprint the sender computed does one
//! checkpoint record the result together with its snapshot. A damaged stream, a crash or
//! a power cut before that leaves the image as it was; the caller drops this
//! filesystem after a failure ([`Filesystem::abandon`]).
//!
//! What a stream may be applied to: a full stream to a filesystem whose root is empty;
//! an incremental one to a filesystem holding its base snapshot (same name, creation
//! time and fingerprint) whose live tree is still that snapshot's (access times aside).

use std::io::Read;

use gpufs_format::send::{SendOp, StreamHeader};
use gpufs_format::{FileKind, InodeRecord, ROOT_INO};

use super::stream::{StreamError, StreamReader};
use super::{Filesystem, Inner};
use crate::error::FsError;
use crate::units::Ino;

/// Why a receive was refused or failed; nothing was applied.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// Not a stream, another version, damaged, truncated, or not what it claims.
    #[error("damaged stream: {0}")]
    Damaged(String),
    /// A snapshot of the stream's name exists here.
    #[error("a snapshot named {0:?} exists here")]
    Exists(String),
    /// The incremental stream's base is not here (or is another filesystem's).
    #[error("{0}")]
    BaseMissing(String),
    /// The filesystem is not what the stream applies to (changed since the base; not
    /// empty for a full stream).
    #[error("{0}")]
    TargetChanged(String),
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl From<StreamError> for ReceiveError {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Damaged(m) => ReceiveError::Damaged(m),
            StreamError::Io(e) => ReceiveError::Fs(FsError::Io(e)),
        }
    }
}

/// What a receive applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceiveSummary {
    pub name: String,
    pub incremental: bool,
    pub frames: u64,
    pub bytes: u64,
    pub data_bytes: u64,
}

fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn bad(what: impl Into<String>) -> ReceiveError {
    ReceiveError::Damaged(what.into())
}

impl Inner {
    /// Refuses the stream unless this filesystem is what it applies to.
    fn check_target(&mut self, header: &StreamHeader) -> Result<(), ReceiveError> {
        if self.vol.snapshot(header.name()).is_ok() {
            return Err(ReceiveError::Exists(show(header.name())));
        }
        let Some(base) = header.base() else {
            if !self.vol.namespace().is_empty_dir(ROOT_INO) {
                return Err(ReceiveError::TargetChanged(
                    "a full stream is received into an empty filesystem, and this one holds \
                     files (make a new one, or send an incremental stream)"
                        .into(),
                ));
            }
            return Ok(());
        };
        let rec = self.vol.snapshot(&base.name).map_err(|_| {
            ReceiveError::BaseMissing(format!(
                "the stream's base, snapshot {:?}, is not here: receive the streams before \
                 it first",
                show(&base.name)
            ))
        })?;
        let ns = self.vol.snapshot_namespace(&rec)?;
        if rec.created_ns != base.created_ns || ns.fingerprint() != base.fingerprint {
            return Err(ReceiveError::BaseMissing(format!(
                "snapshot {:?} here is not the stream's base (the stream is for another \
                 filesystem, or that name was made again)",
                show(&base.name)
            )));
        }
        if self.vol.namespace().fingerprint() != base.fingerprint {
            return Err(ReceiveError::TargetChanged(format!(
                "the filesystem changed since snapshot {:?}: roll it back to that snapshot \
                 first (gpufs snapshot rollback)",
                show(&base.name)
            )));
        }
        Ok(())
    }

    /// A live regular file of the stream, and its attributes.
    fn stream_file(&self, ino: u32) -> Result<(Ino, InodeRecord), ReceiveError> {
        let i = Ino::new(ino);
        match self.vol.inode(i) {
            Some(r) if r.kind() == Some(FileKind::Regular) => Ok((i, *r)),
            _ => Err(bad(format!(
                "data for inode {ino}, not a file of the stream"
            ))),
        }
    }

    /// Applies one op of the stream.
    fn apply_stream_op(&mut self, op: SendOp) -> Result<(), ReceiveError> {
        let applied = |r: Result<(), FsError>| {
            r.map_err(|e| match e {
                FsError::Corrupt(m) => bad(format!("an op does not fit the filesystem: {m}")),
                other => ReceiveError::Fs(other),
            })
        };
        match op {
            SendOp::Inode { ino, mut rec } => {
                if ino == 0 || !rec.is_live() || rec.kind().is_none() {
                    return Err(bad(format!("inode {ino} with mode {:o}", rec.mode)));
                }
                rec.prealloc_blocks = 0;
                let i = Ino::new(ino);
                if let Some(cur) = self.vol.inode(i).copied() {
                    if cur.kind() == Some(FileKind::Regular) && rec.size < cur.size {
                        applied(self.truncate_data(i, rec.size, cur.size))?;
                    }
                }
                applied(self.vol.put_inode(i, rec))
            }
            SendOp::Free { ino } => {
                if self.vol.inode(Ino::new(ino)).is_none() {
                    return Err(bad(format!("free of inode {ino}, not live")));
                }
                applied(self.vol.free_inode(Ino::new(ino)))
            }
            SendOp::Entry {
                parent,
                ino,
                kind,
                cookie,
                name,
            } => {
                let kind =
                    FileKind::from_u8(kind).ok_or_else(|| bad(format!("entry kind {kind}")))?;
                if self.vol.entry(Ino::new(parent), &name).is_some() {
                    return Err(bad(format!("entry {:?} exists in {parent}", show(&name))));
                }
                applied(
                    self.vol
                        .put_entry(Ino::new(parent), &name, Ino::new(ino), kind, cookie),
                )
            }
            SendOp::Unlink { parent, name } => {
                applied(self.vol.remove_entry(Ino::new(parent), &name))
            }
            SendOp::Symlink { ino, target } => {
                applied(self.vol.set_symlink(Ino::new(ino), &target))
            }
            SendOp::Xattr { ino, name, value } => {
                applied(self.vol.set_xattr(Ino::new(ino), &name, &value))
            }
            SendOp::XattrDel { ino, name } => applied(self.vol.remove_xattr(Ino::new(ino), &name)),
            SendOp::Write { ino, offset, data } => {
                let (i, rec) = self.stream_file(ino)?;
                let end = offset + data.len() as u64;
                if end > rec.size {
                    return Err(bad(format!("data past the end of inode {ino}")));
                }
                let mut done = 0usize;
                while done < data.len() {
                    let n = self.write_data(i, offset + done as u64, &data[done..])?;
                    if n == 0 {
                        return Err(ReceiveError::Fs(FsError::NoSpace));
                    }
                    done += n as usize;
                }
                Ok(())
            }
            SendOp::Zero { ino, offset, len } => {
                let (i, rec) = self.stream_file(ino)?;
                let end = (offset + len).min(rec.size);
                if offset < end {
                    applied(self.zero_range(i, offset, end))?;
                }
                Ok(())
            }
            SendOp::End { .. } => Err(bad("a second end")),
        }
    }
}

impl Inner {
    /// Applies every op of `reader`, checks the end and the tree, and creates the
    /// snapshot (the checkpoint that ends the hold of commits).
    fn apply_stream<R: Read>(
        &mut self,
        reader: &mut StreamReader<R>,
        header: &StreamHeader,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ReceiveSummary, ReceiveError> {
        let mut summary = ReceiveSummary {
            name: show(header.name()),
            incremental: header.base().is_some(),
            ..Default::default()
        };
        if header.base().is_none() {
            // A full stream sets the root's xattrs afresh.
            let root = Ino::new(ROOT_INO);
            let names: Vec<Vec<u8>> = self
                .vol
                .namespace()
                .xattrs(ROOT_INO)
                .iter()
                .map(|(n, _)| n.clone())
                .collect();
            for n in names {
                self.vol.remove_xattr(root, &n)?;
            }
        }
        // No stream makes more inode slots than it has inodes beyond what is here.
        let slots_bound = self.vol.namespace().inode_slots() as u64 + header.inodes + 1;
        let mut last = 0;
        while let Some(op) = reader.next_op()? {
            match &op {
                SendOp::Write { data, .. } => summary.data_bytes += data.len() as u64,
                SendOp::Inode { ino, .. } if u64::from(*ino) > slots_bound => {
                    return Err(bad(format!("inode {ino} past any the stream holds")));
                }
                _ => {}
            }
            self.apply_stream_op(op)?;
            if reader.bytes() - last >= 4 << 20 {
                last = reader.bytes();
                progress(last);
            }
        }
        if summary.data_bytes != header.data_bytes {
            return Err(bad(format!(
                "{} bytes of data where the header said {}",
                summary.data_bytes, header.data_bytes
            )));
        }
        if self.vol.namespace().fingerprint() != header.fingerprint {
            return Err(bad(
                "the tree received is not the tree sent (its fingerprint differs)",
            ));
        }
        self.vol
            .create_snapshot_at(header.name(), header.created_ns)?;
        self.last_commit = std::time::Instant::now();
        summary.bytes = reader.bytes();
        summary.frames = reader.frames();
        progress(summary.bytes);
        Ok(summary)
    }
}

impl Filesystem {
    /// Applies the stream read from `input` and creates its snapshot (see the module).
    /// `progress(bytes read)` is called now and then. After an error nothing is applied
    /// on disk, but this filesystem's memory holds part of the stream: drop it with
    /// [`Filesystem::abandon`].
    pub fn receive(
        &self,
        input: impl Read,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ReceiveSummary, ReceiveError> {
        let (mut reader, header) = StreamReader::open(input)?;
        let mut g = self.lock();
        g.writable()?;
        if !g.open.is_empty() {
            return Err(FsError::Busy("files are open".into()).into());
        }
        g.check_target(&header)?;
        g.vol.hold_commits();
        let received = g.apply_stream(&mut reader, &header, progress);
        if received.is_err() {
            // Nothing more may reach the image from this memory (a close, a snapshot).
            if let Err(e) = g.vol.abandon() {
                tracing::warn!("after a failed receive: {e}");
            }
        }
        drop(g);
        self.forget_views();
        received
    }

    /// Drops what a failed receive left in memory: the image stays as its last
    /// checkpoint made it, and this filesystem writes nothing more.
    pub fn abandon(&self) -> Result<(), FsError> {
        let mut g = self.lock();
        g.vol.hold_commits();
        g.vol.abandon()
    }
}
