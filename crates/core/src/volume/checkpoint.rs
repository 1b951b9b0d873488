//! Writing and loading checkpoints.

use gpufs_format::checkpoint::{CheckpointImage, CheckpointRoot, CKPT_MAGIC};
use gpufs_format::superblock::SUPERBLOCK_SLOTS;
use gpufs_format::{checksum, Superblock, BLOCK_SIZE, FORMAT_VERSION};

use super::Volume;
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::namespace::Namespace;
use crate::time::now_ns;
use crate::units::BlockNo;

impl Volume {
    /// Writes the whole namespace copy-on-write and makes it current. Afterwards the
    /// journal is empty and every deferred free is released.
    pub fn checkpoint(&mut self) -> FsResult<()> {
        self.write_checkpoint_marked(false)
    }

    /// A checkpoint whose superblock says `clean` (unmount) or not (the session goes on
    /// writing journal blocks under it).
    pub(super) fn write_checkpoint_marked(&mut self, clean: bool) -> FsResult<()> {
        if self.read_only {
            return Err(FsError::ReadOnly);
        }
        self.check_failed()?;
        if self.ns.dead_name_bytes() > (1 << 20)
            && self.ns.dead_name_bytes() > self.ns.name_estimate()
        {
            self.ns.compact_names();
        }
        // Data written so far must be durable before a checkpoint refers to it.
        self.dev.flush()?;

        // The bitmap of data blocks the current namespace uses: not the checkpoint's own
        // blocks, not blocks whose free is still pending.
        let mut data_only = self.alloc.clone();
        for &(s, n) in &self.ckpt_runs {
            data_only.free_now(s, n)?;
        }
        data_only.release_pending()?;
        let data_used = data_only.used();
        let blob = self.ns.to_image(data_only.to_bitmap()).encode();
        drop(data_only);

        let blob_blocks = (blob.len() as u64).div_ceil(BLOCK_SIZE as u64);
        let root_rel = self.alloc.alloc(1).ok_or(FsError::NoSpace)?;
        let Some(runs) = self
            .alloc
            .alloc_scattered(blob_blocks, CheckpointRoot::MAX_EXTENTS)
        else {
            let _ = self.alloc.free_now(root_rel, 1);
            return Err(FsError::NoSpace);
        };
        let result = self.write_checkpoint(&blob, root_rel, &runs, data_used, clean);
        if let Err(e) = result {
            let _ = self.alloc.free_now(root_rel, 1);
            for &(s, n) in &runs {
                let _ = self.alloc.free_now(s, n);
            }
            return Err(e);
        }
        for (s, n) in std::mem::take(&mut self.ckpt_runs) {
            self.alloc.free_now(s, n)?;
        }
        self.alloc.release_pending()?;
        self.ckpt_runs = runs;
        self.ckpt_runs.push((root_rel, 1));
        self.journal.restart(self.sb.generation);
        self.journal.discard_pending();
        self.counters.checkpoints += 1;
        self.clean_on_disk = clean;
        self.changed = false;
        Ok(())
    }

    fn write_checkpoint(
        &mut self,
        blob: &[u8],
        root_rel: u64,
        runs: &[(u64, u64)],
        data_used: u64,
        clean: bool,
    ) -> FsResult<()> {
        let ds = self.sb.data_start;
        let mut off = 0usize;
        for &(s, n) in runs {
            let len = (n as usize * BLOCK_SIZE).min(blob.len() - off);
            let mut chunk = blob[off..off + len].to_vec();
            chunk.resize(n as usize * BLOCK_SIZE, 0);
            self.dev
                .write_at(&chunk, BlockNo::new(ds + s).byte_offset())?;
            off += len;
        }
        let gen = self.sb.generation + 1;
        let abs_runs: Vec<(u64, u64)> = runs.iter().map(|&(s, n)| (ds + s, n)).collect();
        let root = CheckpointRoot {
            magic: CKPT_MAGIC,
            version: FORMAT_VERSION,
            extent_count: 0,
            generation: gen,
            blob_len: blob.len() as u64,
            blob_checksum: checksum(blob),
            checksum: 0,
        }
        .encode(&abs_runs)?;
        self.dev
            .write_at(&root, BlockNo::new(ds + root_rel).byte_offset())?;
        self.dev.flush()?;

        let (head, seq) = self.journal.position();
        let ckpt_blocks: u64 = runs.iter().map(|r| r.1).sum::<u64>() + 1;
        let sb = Superblock {
            generation: gen,
            journal_head: head,
            journal_seq: seq,
            checkpoint_root: ds + root_rel,
            used_blocks: data_used + ckpt_blocks,
            inode_count: self.ns.live_inodes(),
            checkpoint_ns: now_ns(),
            flags: if clean {
                self.sb.flags | Superblock::FLAG_CLEAN
            } else {
                self.sb.flags & !Superblock::FLAG_CLEAN
            },
            ..self.sb
        };
        self.store_superblocks(sb)
    }
}

/// Writes both superblock slots, the one this generation owns first, with a flush after
/// each: a power cut can tear at most one of them.
pub(crate) fn write_superblocks(dev: &dyn Device, sb: &Superblock) -> FsResult<()> {
    let bytes = sb.encode();
    let first = (sb.generation % 2) as usize;
    for slot in [first, 1 - first] {
        dev.write_at(&bytes, SUPERBLOCK_SLOTS[slot] * BLOCK_SIZE as u64)?;
        dev.flush()?;
    }
    Ok(())
}

/// A loaded checkpoint: namespace, data bitmap, and the checkpoint's own block runs
/// (absolute, root included).
pub struct LoadedCheckpoint {
    pub ns: Namespace,
    pub bitmap: Vec<u8>,
    pub runs: Vec<(u64, u64)>,
}

/// Reads, verifies and decodes the checkpoint `sb` points at.
pub fn load_checkpoint(dev: &dyn Device, sb: &Superblock) -> FsResult<LoadedCheckpoint> {
    let (img, mut runs) = read_checkpoint(dev, sb)?;
    let (ns, bitmap) = Namespace::from_image(img)?;
    runs.push((sb.checkpoint_root, 1));
    Ok(LoadedCheckpoint { ns, bitmap, runs })
}

/// The checkpoint image `sb` points at, verified, and the block runs holding its blob
/// (absolute, root not included).
pub fn read_checkpoint(
    dev: &dyn Device,
    sb: &Superblock,
) -> FsResult<(CheckpointImage, Vec<(u64, u64)>)> {
    let mut root = vec![0u8; BLOCK_SIZE];
    dev.read_at(&mut root, BlockNo::new(sb.checkpoint_root).byte_offset())?;
    let (root, runs) = CheckpointRoot::decode(&root)
        .map_err(|e| FsError::corrupt(format!("checkpoint root: {e}")))?;
    if root.generation != sb.generation {
        return Err(FsError::corrupt(format!(
            "checkpoint generation {} does not match superblock generation {}",
            root.generation, sb.generation
        )));
    }
    let mut blob = Vec::with_capacity(root.blob_len as usize);
    for &(s, n) in &runs {
        if s < sb.data_start || s.saturating_add(n) > sb.total_blocks {
            return Err(FsError::corrupt("checkpoint extent outside the data area"));
        }
        let want = (n as usize * BLOCK_SIZE).min(root.blob_len as usize - blob.len());
        let at = blob.len();
        blob.resize(at + want, 0);
        dev.read_at(&mut blob[at..], BlockNo::new(s).byte_offset())?;
    }
    if blob.len() as u64 != root.blob_len {
        return Err(FsError::corrupt("checkpoint shorter than its length"));
    }
    let computed = checksum(&blob);
    if computed != root.blob_checksum {
        return Err(FsError::corrupt(format!(
            "checkpoint checksum mismatch: stored {:#010x}, computed {computed:#010x}",
            root.blob_checksum
        )));
    }
    Ok((CheckpointImage::decode(&blob)?, runs))
}
