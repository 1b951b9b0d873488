//! The in-memory namespace: flat arrays (inode table, dirent table, name arena) with a
//! flat open-addressing index over `(parent, name)` (`index.rs`: the slots the GPU's path
//! lookup probes too, laid out as `gpufs_compute::index` says), the owner of each name
//! in the arena (`owners.rs`), per-directory cookie lists (`dir_entries.rs`), and the
//! per-file record maps. The kernels read all of it through [`Namespace::view`]. Every
//! change goes through [`Namespace::apply`] with a [`JournalOp`], live and on replay
//! alike, so replay rebuilds exactly what ran.

mod apply;
mod dir_entries;
mod fingerprint;
mod image;
mod index;
mod owners;
mod segments;

use std::collections::HashMap;

use gpufs_compute::dir_tree::DirTree;
use gpufs_compute::view::{NamespaceDirty, NamespaceView, NO_ENTRY};
use gpufs_format::{name_hash, DirentRecord, InodeRecord, RecordPtr, BLOCK_SIZE, ROOT_INO};

pub use apply::SpaceChange;
pub use dir_entries::DirEntries;
use index::DirentIndex;
use owners::NameOwners;
pub use segments::SegmentDirty;

/// Extended attributes of one inode: (name, value) pairs.
type XattrList = Vec<(Vec<u8>, Vec<u8>)>;

/// First cookie handed to a real entry; 1 and 2 are "." and "..".
pub const FIRST_COOKIE: u64 = 3;

/// One directory's listing: its entries by cookie, and who holds it.
#[derive(Clone, Debug, Default)]
pub struct DirList {
    pub parent: u32,
    pub entries: DirEntries,
    pub next_cookie: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Namespace {
    inodes: Vec<InodeRecord>,
    free_inodes: Vec<u32>,
    dirents: Vec<DirentRecord>,
    free_dirents: Vec<u32>,
    names: Vec<u8>,
    dead_name_bytes: usize,
    /// The entry owning each name in the arena, for whole-arena name scans.
    name_owners: NameOwners,
    /// The flat open-addressing index over (parent, name) that the GPU kernels probe too.
    index: DirentIndex,
    /// Entry id naming each directory inode ([`NO_ENTRY`] otherwise), for path walks.
    dir_entry: Vec<u32>,
    /// Bytes of data blocks each inode holds, for subtree totals.
    allocated: Vec<u64>,
    /// What changed since the GPU mirror was last brought up to date.
    dirty: NamespaceDirty,
    /// Every directory's path, built on demand ([`Namespace::prepare_dir_tree`]) and
    /// dropped when a directory entry is put or removed.
    dir_tree: Option<DirTree>,
    /// Keyed by directory inode with a fast hasher: full-path search and `du` look up
    /// thousands of directories per query.
    dirs: hashbrown::HashMap<u32, DirList>,
    extents: HashMap<u32, Vec<(u64, RecordPtr)>>,
    /// References beyond the first to each shared record, by its first block: a record
    /// is freed when a pointer to it goes and it has none here. Not stored: counted from
    /// the pointers when a checkpoint loads (it holds all of them), then kept by
    /// [`JournalOp::ExtentShare`] and every release.
    shared: HashMap<u64, u32>,
    xattrs: HashMap<u32, XattrList>,
    symlinks: HashMap<u32, Vec<u8>>,
    live_inodes: u64,
    /// Sum of every live inode's `prealloc_blocks`.
    prealloc_blocks: u64,
    extent_entries: u64,
    xattr_bytes: u64,
    /// Checkpoint segments changed since the last checkpoint took them.
    segment_dirty: SegmentDirty,
}

/// The namespace's own directory lists, for kernels that visit a few directories
/// instead of every entry.
impl gpufs_compute::view::DirListing for Namespace {
    fn entry_count(&self, dir: u32) -> usize {
        self.dirs.get(&dir).map_or(0, |l| l.entries.len())
    }

    fn entries(&self, dir: u32) -> gpufs_compute::view::EntryList<'_> {
        self.dirs
            .get(&dir)
            .map(|l| l.entries.list())
            .unwrap_or_default()
    }
}

impl Namespace {
    /// An empty namespace with nothing but slot 0 reserved.
    pub fn empty() -> Self {
        let mut ns = Namespace {
            inodes: vec![InodeRecord::default()],
            dir_entry: vec![NO_ENTRY],
            allocated: vec![0],
            ..Default::default()
        };
        ns.mark_all_dirty();
        ns.segment_dirty.all = true;
        ns
    }

    pub fn inode(&self, ino: u32) -> Option<&InodeRecord> {
        self.inodes.get(ino as usize).filter(|r| r.is_live())
    }

    /// Generation stored in an inode slot, live or free (bumped on every free).
    pub fn raw_generation(&self, ino: u32) -> u32 {
        self.inodes.get(ino as usize).map_or(0, |r| r.generation)
    }

    /// Number of inode slots (the table's length, slot 0 included).
    pub fn inode_slots(&self) -> usize {
        self.inodes.len()
    }

    /// Blocks fallocate reserved, over every file.
    pub fn prealloc_blocks(&self) -> u64 {
        self.prealloc_blocks
    }

    pub fn live_inodes(&self) -> u64 {
        self.live_inodes
    }

    /// Every live inode, with its number.
    pub fn live_inode_iter(&self) -> impl Iterator<Item = (u32, &InodeRecord)> {
        self.inodes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_live())
            .map(|(i, r)| (i as u32, r))
    }

    /// A free inode slot to create into (not yet live: an `InodePut` makes it so).
    pub fn next_free_ino(&mut self) -> Option<u32> {
        while let Some(ino) = self.free_inodes.pop() {
            if !self.inodes[ino as usize].is_live() {
                return Some(ino);
            }
        }
        u32::try_from(self.inodes.len())
            .ok()
            .filter(|i| *i < u32::MAX)
    }

    /// The dirent id of `name` in `parent`.
    pub fn lookup(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let h = name_hash(parent, name);
        self.index.find(h, |id| {
            let d = &self.dirents[id as usize];
            d.name_hash == h && d.parent == parent && self.name_bytes(d) == name
        })
    }

    /// The arrays the compute kernels work on.
    pub fn view(&self) -> NamespaceView<'_> {
        NamespaceView {
            dirents: &self.dirents,
            names: &self.names,
            inodes: &self.inodes,
            index: self.index.slots(),
            allocated: &self.allocated,
            dir_entry: &self.dir_entry,
            owners: Some(self.name_owners.view()),
            dirs: self.dir_tree.as_ref(),
        }
    }

    /// Builds every directory's path unless they are kept already: queries that
    /// match full paths or print paths then read them instead of walking chains.
    pub fn prepare_dir_tree(&mut self) {
        if self.dir_tree.is_none() {
            self.dir_tree = Some(DirTree::build(&self.view()));
        }
    }

    /// The ranges changed since the last call (everything, the first time), for the
    /// GPU mirror's incremental update.
    pub fn take_dirty(&mut self) -> NamespaceDirty {
        let mut d = std::mem::take(&mut self.dirty);
        d.index = self.index.take_dirty();
        d
    }

    /// Marks every array changed (after a load or a compaction).
    pub(crate) fn mark_all_dirty(&mut self) {
        self.dirty.dirents.mark_all(self.dirents.len() as u64);
        self.dirty.names.mark_all(self.names.len() as u64);
        self.dirty.inodes.mark_all(self.inodes.len() as u64);
        self.dirty.allocated.mark_all(self.allocated.len() as u64);
        self.dirty.dir_entry.mark_all(self.dir_entry.len() as u64);
    }

    /// Bytes of data blocks `ino` holds.
    pub fn allocated_bytes(&self, ino: u32) -> u64 {
        self.allocated.get(ino as usize).copied().unwrap_or(0)
    }

    /// Adds (or with `grow == false` removes) one record's blocks to `ino`'s total.
    pub(crate) fn account(&mut self, ino: u32, ptr: &RecordPtr, grow: bool) {
        let bytes = ptr.total_blocks() * BLOCK_SIZE as u64;
        if let Some(a) = self.allocated.get_mut(ino as usize) {
            *a = if grow {
                a.saturating_add(bytes)
            } else {
                a.saturating_sub(bytes)
            };
            self.dirty
                .allocated
                .mark(u64::from(ino), u64::from(ino) + 1);
        }
    }

    /// The entry naming directory `ino` (none for the root or a file).
    pub fn entry_of_dir(&self, ino: u32) -> Option<u32> {
        self.dir_entry
            .get(ino as usize)
            .copied()
            .filter(|&e| e != gpufs_compute::view::NO_ENTRY)
    }

    pub fn dirent(&self, id: u32) -> &DirentRecord {
        &self.dirents[id as usize]
    }

    pub fn name_bytes(&self, d: &DirentRecord) -> &[u8] {
        let start = d.name_offset as usize;
        &self.names[start..start + d.name_len as usize]
    }

    pub fn dir(&self, ino: u32) -> Option<&DirList> {
        self.dirs.get(&ino)
    }

    pub fn is_empty_dir(&self, ino: u32) -> bool {
        self.dirs.get(&ino).is_none_or(|d| d.entries.is_empty())
    }

    /// Entries of `dir` with a cookie above `after`, in cookie order.
    pub fn entries_after(&self, dir: u32, after: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.dirs
            .get(&dir)
            .into_iter()
            .flat_map(move |d| d.entries.after(after))
    }

    /// The cookie the next entry created in `dir` gets.
    pub fn next_cookie(&self, dir: u32) -> u64 {
        self.dirs.get(&dir).map_or(FIRST_COOKIE, |d| d.next_cookie)
    }

    /// Parent directory of a directory (the root is its own parent).
    pub fn parent_of_dir(&self, dir: u32) -> u32 {
        if dir == ROOT_INO {
            return ROOT_INO;
        }
        self.dirs.get(&dir).map_or(ROOT_INO, |d| d.parent)
    }

    /// Directories below `dir` (not `dir` itself), each with the id of the entry naming
    /// it, parents before children: from the directory lists' parent links alone, without
    /// reading any entry.
    pub fn dirs_below(&self, dir: u32) -> Vec<(u32, u32)> {
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&d, list) in &self.dirs {
            if d != ROOT_INO {
                children.entry(list.parent).or_default().push(d);
            }
        }
        let mut out = Vec::new();
        let mut stack = vec![dir];
        // A parent link that loops back to `dir` cannot make this run forever.
        while let Some(d) = stack.pop() {
            if out.len() > self.dirs.len() {
                break;
            }
            for &k in children.get(&d).map_or(&[][..], Vec::as_slice) {
                let Some(&e) = self.dir_entry.get(k as usize) else {
                    continue;
                };
                if e != NO_ENTRY {
                    out.push((k, e));
                    stack.push(k);
                }
            }
        }
        out
    }

    /// The record map of a file, sorted by record index.
    pub fn extents(&self, ino: u32) -> &[(u64, RecordPtr)] {
        self.extents.get(&ino).map_or(&[], |v| v.as_slice())
    }

    /// The record holding `index` of `ino`, if stored.
    pub fn extent(&self, ino: u32, index: u64) -> Option<&RecordPtr> {
        let v = self.extents.get(&ino)?;
        v.binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|p| &v[p].1)
    }

    /// References beyond the first to each shared record, by its first block.
    pub fn shared_records(&self) -> &HashMap<u64, u32> {
        &self.shared
    }

    pub fn all_extents(&self) -> impl Iterator<Item = (u32, u64, &RecordPtr)> {
        self.extents
            .iter()
            .flat_map(|(ino, v)| v.iter().map(move |(i, p)| (*ino, *i, p)))
    }

    pub fn xattrs(&self, ino: u32) -> &[(Vec<u8>, Vec<u8>)] {
        self.xattrs.get(&ino).map_or(&[], |v| v.as_slice())
    }

    #[cfg(test)]
    pub fn all_xattrs(&self) -> impl Iterator<Item = (u32, &[u8], &[u8])> {
        self.xattrs.iter().flat_map(|(ino, v)| {
            v.iter()
                .map(move |(n, val)| (*ino, n.as_slice(), val.as_slice()))
        })
    }

    pub fn symlink(&self, ino: u32) -> Option<&[u8]> {
        self.symlinks.get(&ino).map(|v| v.as_slice())
    }

    #[cfg(test)]
    pub fn all_symlinks(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.symlinks.iter().map(|(i, t)| (*i, t.as_slice()))
    }

    /// Every live dirent, with its id.
    pub fn live_dirents(&self) -> impl Iterator<Item = (u32, &DirentRecord)> {
        self.dirents
            .iter()
            .enumerate()
            .filter(|(_, d)| d.is_live())
            .map(|(i, d)| (i as u32, d))
    }

    /// Live directory entries.
    pub fn dirent_estimate(&self) -> usize {
        self.dirents.len() - self.free_dirents.len()
    }

    /// Bytes of live names.
    pub fn name_estimate(&self) -> usize {
        self.names.len() - self.dead_name_bytes
    }

    /// Record pointers stored, over all files.
    pub fn extent_entries(&self) -> u64 {
        self.extent_entries
    }

    /// Bytes of extended-attribute names and values, with per-entry overhead.
    pub fn xattr_bytes(&self) -> u64 {
        self.xattr_bytes
    }

    /// Bytes of names no entry uses any more.
    pub fn dead_name_bytes(&self) -> usize {
        self.dead_name_bytes
    }

    /// Rewrites the name arena with live names only.
    pub fn compact_names(&mut self) {
        let mut names = Vec::with_capacity(self.names.len() - self.dead_name_bytes);
        self.name_owners.clear();
        for (id, d) in self.dirents.iter_mut().enumerate() {
            if !d.is_live() {
                continue;
            }
            let start = d.name_offset as usize;
            let off = names.len() as u64;
            names.extend_from_slice(&self.names[start..start + d.name_len as usize]);
            d.name_offset = off;
            self.name_owners.push(off, id as u32, d.name_len);
        }
        self.names = names;
        self.dead_name_bytes = 0;
        self.dirty.names.mark_all(self.names.len() as u64);
        self.dirty.dirents.mark_all(self.dirents.len() as u64);
    }

    /// Approximate heap bytes held, for `stats` and the memory budget.
    pub fn heap_bytes(&self) -> usize {
        let ext: usize = self.extents.values().map(|v| 24 + v.capacity() * 72).sum();
        self.inodes.capacity() * 64
            + self.dirents.capacity() * 32
            + self.names.capacity()
            + self.index.heap_bytes()
            + self.dir_entry.capacity() * 4
            + self.name_owners.heap_bytes()
            + self.allocated.capacity() * 8
            + self.dir_tree.as_ref().map_or(0, DirTree::heap_bytes)
            + self
                .dirs
                .values()
                .map(|d| 64 + d.entries.heap_bytes())
                .sum::<usize>()
            + ext
    }
}

#[cfg(test)]
mod tests;
