//! The GPU copy of the namespace arrays. Uploaded once, then kept current by writing
//! only the ranges that changed, so a query never re-uploads the namespace. Arrays
//! larger than one binding are chunked ([`ChunkedArray`]).

use gpufs_format::{DirentRecord, InodeRecord};

use crate::error::ComputeResult;
use crate::gpu::{ChunkedArray, GpuContext};
use crate::view::{DirtyRanges, NamespaceDirty, NamespaceView};

/// Spare capacity added when an array is (re)allocated, as a fraction: 1/4.
const HEADROOM_DIV: u64 = 4;

/// Device copies of dirents, names, inodes, index slots, allocated bytes and the
/// directory-to-entry map.
#[derive(Debug)]
pub struct NamespaceMirror {
    pub dirents: ChunkedArray,
    pub names: ChunkedArray,
    pub inodes: ChunkedArray,
    pub index: ChunkedArray,
    pub allocated: ChunkedArray,
    pub dir_entry: ChunkedArray,
    pub dirent_count: u32,
    pub inode_count: u32,
    pub index_slots: u32,
    /// Entries of `dir_entry`.
    pub dir_entry_count: u32,
    /// Bytes written to the device by the last [`NamespaceMirror::update`].
    pub last_update_bytes: u64,
}

/// One array's bytes and element size.
struct Part<'a> {
    label: &'static str,
    bytes: &'a [u8],
    elem: u64,
}

fn parts<'a>(view: &NamespaceView<'a>) -> [Part<'a>; 6] {
    [
        Part {
            label: "dirents",
            bytes: bytemuck::cast_slice(view.dirents),
            elem: std::mem::size_of::<DirentRecord>() as u64,
        },
        Part {
            label: "names",
            bytes: view.names,
            elem: 1,
        },
        Part {
            label: "inodes",
            bytes: bytemuck::cast_slice(view.inodes),
            elem: std::mem::size_of::<InodeRecord>() as u64,
        },
        Part {
            label: "index",
            bytes: bytemuck::cast_slice(view.index),
            elem: 4,
        },
        Part {
            label: "allocated",
            bytes: bytemuck::cast_slice(view.allocated),
            elem: 8,
        },
        Part {
            label: "dir_entry",
            bytes: bytemuck::cast_slice(view.dir_entry),
            elem: 4,
        },
    ]
}

fn fresh(ctx: &GpuContext, part: &Part<'_>) -> ComputeResult<ChunkedArray> {
    let words = (part.bytes.len() as u64).div_ceil(4);
    ChunkedArray::from_bytes(ctx, part.label, part.bytes, words / HEADROOM_DIV + 64)
}

impl NamespaceMirror {
    /// Uploads every array of `view`.
    pub fn upload(ctx: &GpuContext, view: &NamespaceView<'_>) -> ComputeResult<NamespaceMirror> {
        let [d, n, i, x, a, e] = parts(view);
        let mirror = NamespaceMirror {
            dirents: fresh(ctx, &d)?,
            names: fresh(ctx, &n)?,
            inodes: fresh(ctx, &i)?,
            index: fresh(ctx, &x)?,
            allocated: fresh(ctx, &a)?,
            dir_entry: fresh(ctx, &e)?,
            dirent_count: count(view.dirents.len())?,
            inode_count: count(view.inodes.len())?,
            index_slots: count(view.index.len())?,
            dir_entry_count: count(view.dir_entry.len())?,
            last_update_bytes: [d, n, i, x, a, e]
                .iter()
                .map(|p| p.bytes.len() as u64)
                .sum(),
        };
        Ok(mirror)
    }

    /// Brings the mirror up to `view` by writing the ranges `dirty` names (in elements
    /// of each array), and clears `dirty`. An array that outgrew its capacity is
    /// uploaded again whole.
    pub fn update(
        &mut self,
        ctx: &GpuContext,
        view: &NamespaceView<'_>,
        dirty: &mut NamespaceDirty,
    ) -> ComputeResult<()> {
        let [d, n, i, x, a, e] = parts(view);
        let mut written = 0;
        written += sync(ctx, &mut self.dirents, &d, &mut dirty.dirents)?;
        written += sync(ctx, &mut self.names, &n, &mut dirty.names)?;
        written += sync(ctx, &mut self.inodes, &i, &mut dirty.inodes)?;
        written += sync(ctx, &mut self.index, &x, &mut dirty.index)?;
        written += sync(ctx, &mut self.allocated, &a, &mut dirty.allocated)?;
        written += sync(ctx, &mut self.dir_entry, &e, &mut dirty.dir_entry)?;
        self.dirent_count = count(view.dirents.len())?;
        self.inode_count = count(view.inodes.len())?;
        self.index_slots = count(view.index.len())?;
        self.dir_entry_count = count(view.dir_entry.len())?;
        self.last_update_bytes = written;
        dirty.clear();
        Ok(())
    }
}

fn count(n: usize) -> ComputeResult<u32> {
    u32::try_from(n).map_err(|_| crate::error::ComputeError::TooLarge(format!("{n} elements")))
}

/// Writes the dirty ranges of one array; returns bytes written.
fn sync(
    ctx: &GpuContext,
    array: &mut ChunkedArray,
    part: &Part<'_>,
    dirty: &mut DirtyRanges,
) -> ComputeResult<u64> {
    let words = (part.bytes.len() as u64).div_ceil(4);
    if words > array.capacity_words() {
        *array = fresh(ctx, part)?;
        return Ok(part.bytes.len() as u64);
    }
    dirty.normalize();
    let mut written = 0;
    for &(s, e) in dirty.ranges() {
        // Element range to whole words.
        let start = (s * part.elem / 4 * 4).min(part.bytes.len() as u64);
        // Whole words: a padded partial word would zero bytes that did not change.
        let end = (e * part.elem)
            .next_multiple_of(4)
            .min(part.bytes.len() as u64);
        if start >= end {
            continue;
        }
        array.write_bytes(ctx, start, &part.bytes[start as usize..end as usize])?;
        written += end - start;
    }
    array.set_len_words(words);
    Ok(written)
}
