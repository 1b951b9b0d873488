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
        self.flush_dirty()?;
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
        for (s, n) in self.fixed_metadata_runs() {
            data_only.free_now(s, n)?;
        }
        data_only.release_pending()?;
        let data_used = data_only.used();
        let blob = self.ns.to_image(data_only.to_bitmap()).encode();
        drop(data_only);

        let blob_blocks = (blob.len() as u64).div_ceil(BLOCK_SIZE as u64);
        let copies = self.alloc_checkpoint_copies(blob_blocks)?;
        let result = self.write_checkpoint(&blob, &copies, data_used, clean);
        let new_runs: Vec<(u64, u64)> = copies
            .iter()
            .flat_map(|c| c.runs.iter().copied().chain([(c.root, 1)]))
            .collect();
        if let Err(e) = result {
            for &(s, n) in &new_runs {
                let _ = self.alloc.free_now(s, n);
            }
            return Err(e);
        }
        for (s, n) in std::mem::take(&mut self.ckpt_runs) {
            self.alloc.free_now(s, n)?;
        }
        self.alloc.release_pending()?;
        self.ckpt_runs = new_runs;
        self.journal.restart(self.sb.generation);
        self.journal.discard_pending();
        self.counters.checkpoints += 1;
        self.clean_on_disk = clean;
        self.changed = false;
        Ok(())
    }

    /// Room for the two copies of a checkpoint of `blob_blocks` blocks, the second as far
    /// from the first as free space allows (half the area away, where possible).
    fn alloc_checkpoint_copies(&mut self, blob_blocks: u64) -> FsResult<Vec<CheckpointPlace>> {
        let mut copies: Vec<CheckpointPlace> = Vec::with_capacity(2);
        let cursor = self.alloc.cursor();
        for copy in 0..2 {
            if let Some(first) = copies.first() {
                self.alloc.set_cursor(self.alloc.far_from(first.root));
            }
            let place = self.alloc.alloc(1).and_then(|root| {
                match self
                    .alloc
                    .alloc_scattered(blob_blocks, CheckpointRoot::MAX_EXTENTS)
                {
                    Some(runs) => Some(CheckpointPlace { root, runs }),
                    None => {
                        let _ = self.alloc.free_now(root, 1);
                        None
                    }
                }
            });
            let Some(place) = place else {
                for c in &copies {
                    let _ = self.alloc.free_now(c.root, 1);
                    for &(s, n) in &c.runs {
                        let _ = self.alloc.free_now(s, n);
                    }
                }
                self.alloc.set_cursor(cursor);
                tracing::debug!(copy, "no room for a checkpoint copy");
                return Err(FsError::NoSpace);
            };
            copies.push(place);
        }
        // Data goes on where it was going.
        self.alloc.set_cursor(cursor);
        Ok(copies)
    }

    /// Writes `blob` and its root into each of `copies`, flushes, then the superblocks
    /// that point at both.
    fn write_checkpoint(
        &mut self,
        blob: &[u8],
        copies: &[CheckpointPlace],
        data_used: u64,
        clean: bool,
    ) -> FsResult<()> {
        debug_assert_eq!(copies.len(), 2);
        let ds = self.sb.data_start;
        let gen = self.sb.generation + 1;
        let mut ckpt_blocks = 0;
        for copy in copies {
            let mut off = 0usize;
            for &(s, n) in &copy.runs {
                let len = (n as usize * BLOCK_SIZE).min(blob.len() - off);
                let mut chunk = blob[off..off + len].to_vec();
                chunk.resize(n as usize * BLOCK_SIZE, 0);
                self.dev
                    .write_at(&chunk, BlockNo::new(ds + s).byte_offset())?;
                off += len;
            }
            let abs_runs: Vec<(u64, u64)> = copy.runs.iter().map(|&(s, n)| (ds + s, n)).collect();
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
                .write_at(&root, BlockNo::new(ds + copy.root).byte_offset())?;
            ckpt_blocks += copy.runs.iter().map(|r| r.1).sum::<u64>() + 1;
        }
        self.dev.flush()?;

        let (head, seq) = self.journal.position();
        let sb = Superblock {
            generation: gen,
            journal_head: head,
            journal_seq: seq,
            checkpoint_root: ds + copies[0].root,
            checkpoint_root_copy: ds + copies[1].root,
            used_blocks: data_used + ckpt_blocks + self.fixed_metadata_blocks(),
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

/// Where one copy of a checkpoint goes: its root block and the runs of its blob
/// (relative to the data area).
struct CheckpointPlace {
    root: u64,
    runs: Vec<(u64, u64)>,
}

/// Writes both superblock slots, the one this generation owns first, with a flush after
/// each: a power cut can tear at most one of them.
pub(crate) fn write_superblocks(dev: &dyn Device, sb: &Superblock) -> FsResult<()> {
    let bytes = sb.encode();
    let first = (sb.generation % 2) as usize;
    for slot in [first, 1 - first] {
        dev.write_at(&bytes, SUPERBLOCK_SLOTS[slot] * BLOCK_SIZE as u64)?;
        // The far slot goes with the second: a torn write leaves the first whole.
        if slot != first && sb.far_slot != 0 {
            dev.write_at(&bytes, sb.far_slot * BLOCK_SIZE as u64)?;
        }
        dev.flush()?;
    }
    Ok(())
}

/// A loaded checkpoint: namespace, data bitmap, the block runs of every copy whose root
/// is intact (absolute, roots included), and what was found damaged.
pub struct LoadedCheckpoint {
    pub ns: Namespace,
    pub bitmap: Vec<u8>,
    pub runs: Vec<(u64, u64)>,
    /// One line per damaged copy (its root block and why).
    pub damaged: Vec<String>,
}

/// The root blocks of the checkpoint copies `sb` points at (one in a version 1 image).
fn copy_roots(sb: &Superblock) -> Vec<u64> {
    [sb.checkpoint_root, sb.checkpoint_root_copy]
        .into_iter()
        .filter(|r| *r != 0)
        .collect()
}

/// Reads, verifies and decodes the checkpoint `sb` points at: its first copy, or the
/// second when the first is damaged. Fails, naming every copy's root block and what is
/// wrong with it, only when no copy is whole.
pub fn load_checkpoint(dev: &dyn Device, sb: &Superblock) -> FsResult<LoadedCheckpoint> {
    let mut damaged = Vec::new();
    let mut loaded = None;
    let mut runs = Vec::new();
    for root in copy_roots(sb) {
        if loaded.is_none() {
            match read_checkpoint_at(dev, sb, root)
                .and_then(|(img, r)| Namespace::from_image(img).map(|(ns, bitmap)| (ns, bitmap, r)))
            {
                Ok((ns, bitmap, r)) => {
                    runs.extend(r);
                    runs.push((root, 1));
                    loaded = Some((ns, bitmap));
                }
                Err(e) => {
                    damaged.push(format!("checkpoint copy at block {root}: {e}"));
                    // Its blocks stay reserved when its root still names them.
                    if let Ok(r) = read_root_runs(dev, sb, root) {
                        runs.extend(r);
                        runs.push((root, 1));
                    }
                }
            }
            continue;
        }
        // The namespace is loaded: the other copy's root only says which blocks to keep.
        match read_root_runs(dev, sb, root) {
            Ok(r) => {
                runs.extend(r);
                runs.push((root, 1));
            }
            Err(e) => damaged.push(format!("checkpoint copy at block {root}: {e}")),
        }
    }
    let Some((ns, bitmap)) = loaded else {
        return Err(FsError::BadImage(format!(
            "cannot mount: every copy of the checkpoint is damaged ({}); run gpufs fsck",
            damaged.join("; ")
        )));
    };
    Ok(LoadedCheckpoint {
        ns,
        bitmap,
        runs,
        damaged,
    })
}

/// The checkpoint image of the first whole copy `sb` points at, and the block runs
/// holding its blob (absolute, root not included).
pub fn read_checkpoint(
    dev: &dyn Device,
    sb: &Superblock,
) -> FsResult<(CheckpointImage, Vec<(u64, u64)>)> {
    let mut last = FsError::corrupt("no checkpoint");
    for root in copy_roots(sb) {
        match read_checkpoint_at(dev, sb, root) {
            Ok(found) => return Ok(found),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Each copy of the checkpoint `sb` points at, read and verified whole: its root block
/// and what is wrong with it, if anything (fsck, scrub).
pub fn verify_checkpoint_copies(dev: &dyn Device, sb: &Superblock) -> Vec<(u64, Option<String>)> {
    copy_roots(sb)
        .into_iter()
        .map(|root| {
            (
                root,
                read_checkpoint_at(dev, sb, root)
                    .err()
                    .map(|e| e.to_string()),
            )
        })
        .collect()
}

/// The verified root at `root_block` of a checkpoint of `sb`'s generation, and its runs.
fn read_root(
    dev: &dyn Device,
    sb: &Superblock,
    root_block: u64,
) -> FsResult<(CheckpointRoot, Vec<(u64, u64)>)> {
    let mut root = vec![0u8; BLOCK_SIZE];
    dev.read_at(&mut root, BlockNo::new(root_block).byte_offset())?;
    let (root, runs) = CheckpointRoot::decode(&root)
        .map_err(|e| FsError::corrupt(format!("checkpoint root: {e}")))?;
    if root.generation != sb.generation {
        return Err(FsError::corrupt(format!(
            "checkpoint generation {} does not match superblock generation {}",
            root.generation, sb.generation
        )));
    }
    for &(s, n) in &runs {
        if s < sb.data_start || s.saturating_add(n) > sb.total_blocks {
            return Err(FsError::corrupt("checkpoint extent outside the data area"));
        }
    }
    Ok((root, runs))
}

/// The blob runs the root at `root_block` names (absolute).
fn read_root_runs(dev: &dyn Device, sb: &Superblock, root_block: u64) -> FsResult<Vec<(u64, u64)>> {
    read_root(dev, sb, root_block).map(|(_, runs)| runs)
}

/// The checkpoint image of the copy whose root is at `root_block`, verified, and the
/// block runs holding its blob (absolute, root not included).
fn read_checkpoint_at(
    dev: &dyn Device,
    sb: &Superblock,
    root_block: u64,
) -> FsResult<(CheckpointImage, Vec<(u64, u64)>)> {
    let (root, runs) = read_root(dev, sb, root_block)?;
    let mut blob = Vec::with_capacity(root.blob_len as usize);
    for &(s, n) in &runs {
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
        let first = runs.first().map_or(0, |r| r.0);
        return Err(FsError::corrupt(format!(
            "checkpoint checksum mismatch in blocks from {first}: stored {:#010x}, computed \
             {computed:#010x}",
            root.blob_checksum
        )));
    }
    Ok((CheckpointImage::decode(&blob)?, runs))
}
