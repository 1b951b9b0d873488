//! Directory sort: the entries of one directory (dirent ids in listing order) ordered by
//! name (byte order, a proper prefix first), size or mtime, ascending or descending; ties
//! keep their input order in both directions. The CPU twin of kernels/dir_sort*.wgsl, an
//! exact stable LSD radix sort on the GPU whose algorithm is described at the top of
//! kernels/dir_sort.wgsl. Both backends return the same ids in the same order.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::view::NamespaceView;

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
pub use gpu::gpu;

pub const NAME: &str = "dir_sort";

/// What the entries are ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// Byte-wise lexicographic order of the names; a proper prefix sorts first.
    Name,
    /// The inode's `size` (u64).
    Size,
    /// The inode's `mtime_ns` (i64: before the epoch sorts first).
    Mtime,
}

/// The name of entry `id` as both backends see it: the dirent's range of the name arena,
/// where the arena counts in whole words as the GPU mirror holds it (bytes past the end
/// of `view.names` but inside its last word read as 0). An id past the dirent table, an
/// offset of 4 GiB or more, or a range past the arena is the empty name.
fn sort_name<'a>(view: &NamespaceView<'a>, id: u32) -> Cow<'a, [u8]> {
    let Some(d) = view.dirents.get(id as usize) else {
        return Cow::Borrowed(&[]);
    };
    let names: &'a [u8] = view.names;
    let arena = (names.len() as u64)
        .next_multiple_of(4)
        .min(u64::from(u32::MAX));
    let (off, len) = (d.name_offset, u64::from(d.name_len));
    if off > arena || len > arena - off {
        return Cow::Borrowed(&[]);
    }
    let (start, end) = (off as usize, (off + len) as usize);
    match names.get(start..end) {
        Some(s) => Cow::Borrowed(s),
        None => {
            let mut v = names.get(start..).unwrap_or(&[]).to_vec();
            v.resize(end - start, 0);
            Cow::Owned(v)
        }
    }
}

/// The u64 entry `id` is ordered by for [`SortKey::Size`] or [`SortKey::Mtime`] (mtime
/// with its sign bit flipped, so i64 order is u64 order). An id past the dirent table or
/// an inode past the inode table counts as size 0 / mtime 0.
fn number_key(view: &NamespaceView<'_>, id: u32, mtime: bool) -> u64 {
    let inode = view
        .dirents
        .get(id as usize)
        .and_then(|d| view.inodes.get(d.ino as usize));
    if mtime {
        (inode.map_or(0, |i| i.mtime_ns) as u64) ^ (1 << 63)
    } else {
        inode.map_or(0, |i| i.size)
    }
}

/// Name bytes `level..level + 8`, big-endian, zero past the end: chunks compare like the
/// names as far as they decide (a zero sorts below every byte a name holds).
fn chunk(name: &[u8], level: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(rest) = name.get(level..) {
        let k = rest.len().min(8);
        b[..k].copy_from_slice(&rest[..k]);
    }
    u64::from_be_bytes(b)
}

/// Runs this short are ordered by comparing whole names.
const SMALL_RUN: usize = 16;

/// The CPU twin: `ids` sorted stably by `key`, reversed key order when `descending`
/// (ties keep their input order either way). Runs on every core.
pub fn cpu(view: &NamespaceView<'_>, ids: &[u32], key: SortKey, descending: bool) -> Vec<u32> {
    sort_ids(view, ids, key, descending, true)
}

/// The same on one thread (the benchmark's baseline).
pub fn cpu_one_thread(
    view: &NamespaceView<'_>,
    ids: &[u32],
    key: SortKey,
    descending: bool,
) -> Vec<u32> {
    sort_ids(view, ids, key, descending, false)
}

/// Sorts `keys` (all distinct), on every core when `parallel`.
fn sort_keys(keys: &mut [u128], parallel: bool) {
    if parallel {
        keys.par_sort_unstable();
    } else {
        keys.sort_unstable();
    }
}

/// (key, position) packed in a u128: distinct, so an unstable sort of them is the stable
/// sort by key. The key is inverted when descending; the position never is.
fn packed(key: u64, position: usize, descending: bool) -> u128 {
    let key = if descending { !key } else { key };
    (u128::from(key) << 64) | position as u128
}

fn sort_ids(
    view: &NamespaceView<'_>,
    ids: &[u32],
    key: SortKey,
    descending: bool,
    parallel: bool,
) -> Vec<u32> {
    let order: Vec<usize> = match key {
        SortKey::Name => {
            let names: Vec<Cow<'_, [u8]>> = if parallel {
                ids.par_iter().map(|&id| sort_name(view, id)).collect()
            } else {
                ids.iter().map(|&id| sort_name(view, id)).collect()
            };
            let mut order: Vec<usize> = (0..ids.len()).collect();
            refine(&names, &mut order, 0, descending, parallel);
            order
        }
        SortKey::Size | SortKey::Mtime => {
            let mtime = key == SortKey::Mtime;
            let pack = |(p, &id): (usize, &u32)| packed(number_key(view, id, mtime), p, descending);
            let mut keys: Vec<u128> = if parallel {
                ids.par_iter().enumerate().map(pack).collect()
            } else {
                ids.iter().enumerate().map(pack).collect()
            };
            sort_keys(&mut keys, parallel);
            keys.iter().map(|&k| k as u64 as usize).collect()
        }
    };
    order.iter().map(|&p| ids[p]).collect()
}

/// Orders `run`, positions in ascending order whose names agree on their first `level`
/// bytes (zero-padded), by name: by the next 8 bytes (with the position, so ties keep
/// their order), then each run of equal chunks on to the next level; short runs, and runs
/// with no name longer than `level`, by comparing whole names (stable).
fn refine(
    names: &[Cow<'_, [u8]>],
    run: &mut [usize],
    level: usize,
    descending: bool,
    parallel: bool,
) {
    let by_name = |a: &usize, b: &usize| {
        let o = names[*a].cmp(&names[*b]);
        if descending {
            o.reverse()
        } else {
            o
        }
    };
    let Some(&first) = run.first() else {
        return;
    };
    if run.len() <= SMALL_RUN {
        run.sort_by(by_name);
        return;
    }
    if run.iter().all(|&p| names[p].len() <= level) {
        // Equal up to zero padding: the same names, unless a corrupt one holds a zero byte.
        if run.iter().any(|&p| names[p].len() != names[first].len()) {
            run.sort_by(by_name);
        }
        return;
    }
    let mut keys: Vec<u128> = run
        .iter()
        .map(|&p| packed(chunk(&names[p], level), p, descending))
        .collect();
    if keys.iter().all(|k| k >> 64 == keys[0] >> 64) {
        // One shared chunk (a common prefix): nothing to sort at this level.
        return refine(names, run, level + 8, descending, parallel);
    }
    sort_keys(&mut keys, parallel);
    for (slot, k) in run.iter_mut().zip(&keys) {
        *slot = *k as u64 as usize;
    }
    let mut groups: Vec<&mut [usize]> = Vec::new();
    let mut rest = run;
    let mut start = 0;
    while start < keys.len() {
        let chunk_of = |k: &u128| k >> 64;
        let len = keys[start..]
            .iter()
            .take_while(|k| chunk_of(k) == chunk_of(&keys[start]))
            .count();
        let (group, tail) = rest.split_at_mut(len);
        rest = tail;
        if len > 1 {
            groups.push(group);
        }
        start += len;
    }
    if parallel {
        groups
            .into_par_iter()
            .for_each(|g| refine(names, g, level + 8, descending, true));
    } else {
        for g in groups {
            refine(names, g, level + 8, descending, false);
        }
    }
}
