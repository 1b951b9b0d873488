//! Full-path reconstruction: for a set of entry ids, the path of each from the root
//! ("/" + names joined by "/"), by walking parent chains through `dir_entry`. The CPU
//! twin of kernels/path_build.wgsl. An entry whose chain is broken (dead entry, missing
//! directory entry, deeper than [`MAX_DEPTH`]) gets an empty path on both backends.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{arrays_group, GpuContext, Slot};
use crate::mirror::NamespaceMirror;
use crate::view::NamespaceView;

pub const NAME: &str = "path_build";
const SOURCE: &str = include_str!("../../kernels/path_build.wgsl");

/// Longest parent chain followed.
pub const MAX_DEPTH: usize = 4096;

/// Paths packed end to end: path i is `bytes[offsets[i]..offsets[i + 1]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathList {
    pub bytes: Vec<u8>,
    pub offsets: Vec<usize>,
}

impl PathList {
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Path `i` (empty when its chain is broken).
    pub fn get(&self, i: usize) -> &[u8] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => &self.bytes[s..e],
            _ => &[],
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// Bytes of the path of `first` ("/" + names joined by "/"), or 0 when its chain is
/// broken: a dead or missing entry, or deeper than [`MAX_DEPTH`].
fn path_len(view: &NamespaceView<'_>, first: u32) -> usize {
    let mut e = first;
    let mut total = 0;
    for _ in 0..MAX_DEPTH {
        let Some(d) = view.dirents.get(e as usize) else {
            return 0;
        };
        if d.ino == 0 {
            return 0;
        }
        total += usize::from(d.name_len) + 1;
        if d.parent == gpufs_format::ROOT_INO {
            return total;
        }
        match view.entry_of_dir(d.parent) {
            Some(up) => e = up,
            None => return 0,
        }
    }
    0
}

/// The path of one entry, appended to `buf`: measured first, then written from its
/// last byte back, as the kernel does, so nothing is allocated per path.
pub fn path_of(view: &NamespaceView<'_>, id: u32, buf: &mut Vec<u8>) {
    let len = path_len(view, id);
    if len == 0 {
        return;
    }
    let start = buf.len();
    buf.resize(start + len, 0);
    let mut pos = start + len;
    let mut e = id;
    while pos > start {
        let d = &view.dirents[e as usize];
        let name = view.name_of(d);
        pos -= name.len();
        buf[pos..pos + name.len()].copy_from_slice(name);
        pos -= 1;
        buf[pos] = b'/';
        match view.entry_of_dir(d.parent) {
            Some(up) if pos > start => e = up,
            _ => break,
        }
    }
}

/// Builds paths with each directory's path made once and reused for every entry in it
/// (most results share directories), so a path costs one name copy instead of a walk.
/// Gives exactly what [`path_of`] gives: a broken chain or one deeper than
/// [`MAX_DEPTH`] is an empty path.
struct DirPaths {
    /// Directory inode -> (start, len, depth) in `bytes`; len 0 = broken chain.
    known: HashMap<u32, (usize, usize, usize)>,
    bytes: Vec<u8>,
}

impl DirPaths {
    fn new() -> Self {
        DirPaths {
            known: HashMap::new(),
            bytes: Vec::new(),
        }
    }

    /// (start, len, depth) of directory `dir`'s path; depth counts its entries.
    fn of(&mut self, view: &NamespaceView<'_>, dir: u32) -> (usize, usize, usize) {
        if let Some(&k) = self.known.get(&dir) {
            return k;
        }
        let got = match view.entry_of_dir(dir) {
            Some(e) => {
                let start = self.bytes.len();
                path_of(view, e, &mut self.bytes);
                let len = self.bytes.len() - start;
                let depth = if len == 0 { 0 } else { chain_depth(view, e) };
                (start, len, depth)
            }
            None => (0, 0, 0),
        };
        self.known.insert(dir, got);
        got
    }

    /// Appends the path of entry `id` to `out`.
    fn append(&mut self, view: &NamespaceView<'_>, id: u32, out: &mut Vec<u8>) {
        let Some(d) = view.dirents.get(id as usize) else {
            return;
        };
        if d.ino == 0 {
            return;
        }
        let name = view.name_of(d);
        if d.parent == gpufs_format::ROOT_INO {
            out.push(b'/');
            out.extend_from_slice(name);
            return;
        }
        let (start, len, depth) = self.of(view, d.parent);
        if len == 0 || depth + 1 > MAX_DEPTH {
            return;
        }
        out.extend_from_slice(&self.bytes[start..start + len]);
        out.push(b'/');
        out.extend_from_slice(name);
    }
}

/// Entries on the chain from `first` to the root (1 for a child of the root).
fn chain_depth(view: &NamespaceView<'_>, first: u32) -> usize {
    let mut e = first;
    for depth in 1..=MAX_DEPTH {
        let Some(d) = view.dirents.get(e as usize) else {
            return 0;
        };
        if d.parent == gpufs_format::ROOT_INO {
            return depth;
        }
        match view.entry_of_dir(d.parent) {
            Some(up) => e = up,
            None => return 0,
        }
    }
    0
}

/// CPU twin on every core.
pub fn cpu(view: &NamespaceView<'_>, ids: &[u32]) -> PathList {
    let parts: Vec<(Vec<u8>, Vec<usize>)> = ids
        .par_chunks(16_384)
        .map(|chunk| {
            let mut dirs = DirPaths::new();
            let mut bytes = Vec::with_capacity(chunk.len() * 48);
            let mut lens = Vec::with_capacity(chunk.len());
            for &id in chunk {
                let before = bytes.len();
                dirs.append(view, id, &mut bytes);
                lens.push(bytes.len() - before);
            }
            (bytes, lens)
        })
        .collect();
    let mut list = PathList {
        bytes: Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum()),
        offsets: Vec::with_capacity(ids.len() + 1),
    };
    list.offsets.push(0);
    for (bytes, lens) in parts {
        for l in lens {
            let last = list.offsets.last().copied().unwrap_or(0);
            list.offsets.push(last + l);
        }
        list.bytes.extend_from_slice(&bytes);
    }
    list
}

/// CPU twin on one thread.
pub fn cpu_one_thread(view: &NamespaceView<'_>, ids: &[u32]) -> PathList {
    let mut list = PathList {
        bytes: Vec::new(),
        offsets: vec![0],
    };
    for &id in ids {
        path_of(view, id, &mut list.bytes);
        list.offsets.push(list.bytes.len());
    }
    list
}

/// The GPU kernel: same paths as [`cpu`]. Lengths first, then the bytes, in batches
/// that fit one binding.
pub fn gpu(ctx: &GpuContext, mirror: &NamespaceMirror, ids: &[u32]) -> ComputeResult<PathList> {
    let kernel = ctx.kernel(
        NAME,
        SOURCE,
        &["dirents", "names", "dir_entry"],
        &[
            Slot::Uniform,
            Slot::Read,
            Slot::ReadWrite,
            Slot::Read,
            Slot::ReadWrite,
        ],
    )?;
    let mut list = PathList {
        bytes: Vec::new(),
        offsets: vec![0],
    };
    if ids.is_empty() {
        return Ok(list);
    }
    let g0 = arrays_group(
        ctx,
        &kernel,
        &[&mirror.dirents, &mirror.names, &mirror.dir_entry],
    )?;
    let params = |count: usize, pass: u32| -> ComputeResult<wgpu::Buffer> {
        let count = u32::try_from(count)
            .map_err(|_| ComputeError::TooLarge(format!("{count} paths in one call")))?;
        let p = [count, pass, mirror.dirent_count, mirror.dir_entry_count];
        Ok(ctx.uniform(bytemuck::cast_slice(&p)))
    };
    // Pass 0: lengths of all.
    let ids_buf = ctx.upload("ids", bytemuck::cast_slice(ids));
    let lens_buf = ctx.zeroed("lens", ids.len() as u64 * 4);
    let unused_in = ctx.zeroed("unused", 16);
    let unused_out = ctx.zeroed("unused", 16);
    let u0 = params(ids.len(), 0)?;
    let g1 = ctx.own_group(
        &kernel,
        &[&u0, &ids_buf, &lens_buf, &unused_in, &unused_out],
    );
    let mut enc = ctx.encoder();
    ctx.dispatch(&mut enc, &kernel, [&g0, &g1], ids.len() as u64)?;
    let lens_bytes = ctx.finish_and_read(enc, &lens_buf, ids.len() as u64 * 4)?;
    let lens: &[u32] = bytemuck::cast_slice(&lens_bytes);
    // Pass 1: bytes, batch by batch.
    let budget = (ctx.max_binding / 2).max(1 << 16) as usize;
    let mut start = 0;
    while start < ids.len() {
        let mut end = start;
        let mut bytes = 0usize;
        let mut offsets = Vec::new();
        while end < ids.len() && (end == start || bytes + lens[end] as usize <= budget) {
            offsets.push(bytes as u32);
            bytes += lens[end] as usize;
            end += 1;
        }
        let n = end - start;
        let batch_ids = ctx.upload("ids", bytemuck::cast_slice(&ids[start..end]));
        let batch_lens = ctx.upload("lens", bytemuck::cast_slice(&lens[start..end]));
        let offs = ctx.upload("offsets", bytemuck::cast_slice(&offsets));
        let out_bytes = bytes.next_multiple_of(4).max(4) as u64;
        let out = ctx.pool.take(&ctx.device, out_bytes);
        let u1 = params(n, 1)?;
        let g1 = ctx.own_group(&kernel, &[&u1, &batch_ids, &batch_lens, &offs, &out]);
        let mut enc = ctx.encoder();
        enc.clear_buffer(&out, 0, Some(out_bytes));
        ctx.dispatch(&mut enc, &kernel, [&g0, &g1], n as u64)?;
        let got = ctx.finish_and_read(enc, &out, bytes as u64);
        ctx.pool.give(out);
        let got = got?;
        let base = list.bytes.len();
        list.bytes.extend_from_slice(&got[..bytes]);
        for &len in &lens[start..end] {
            let last = list.offsets.last().copied().unwrap_or(base);
            list.offsets.push(last + len as usize);
        }
        start = end;
    }
    Ok(list)
}
