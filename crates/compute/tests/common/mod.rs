//! Shared by the kernel tests: seeded random namespaces and the GPU contexts.
//!
//! The GPU tests never skip: without a Vulkan/Metal/DX12 adapter (lavapipe counts) they
//! fail, so CI cannot pass with the GPU side untested. Set GPUFS_GPU_TESTS=skip to run
//! only the CPU side on a machine that has no driver at all.

#![allow(dead_code, unused_imports)]

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "no_gpu.rs"]
mod gpu;

pub use gpu::{gpu, gpus, tight_gpu, GpuContext};

use gpufs_compute::index::{free_slot, home, probe, EMPTY, TOMBSTONE};
use gpufs_compute::synth::rng::SplitMix;
use gpufs_compute::view::{DirtyRanges, NamespaceView, OwnersView, NO_ENTRY};
use gpufs_format::records::mode_bits;
use gpufs_format::{name_hash, DirentRecord, FileKind, InodeRecord, ROOT_INO};

/// The crate's SplitMix stream, with the helpers the tests draw with.
pub struct Rng(SplitMix);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix::new(seed ^ 0x9E37_79B9_7F4A_7C15))
    }
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.below(n)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How names are drawn.
#[derive(Clone, Copy, Debug)]
pub enum Alphabet {
    /// Every byte a name may hold: 1..=255 except '/'.
    AnyByte,
    /// A few letters of both cases, digits, '.', '-', '_': lots of matches.
    Small,
}

/// A name no filesystem refuses: never "." or "..".
pub fn random_name(rng: &mut Rng, alphabet: Alphabet, max_len: u64) -> Vec<u8> {
    loop {
        let name = random_bytes(rng, alphabet, max_len);
        if name != b"." && name != b".." {
            return name;
        }
    }
}

fn random_bytes(rng: &mut Rng, alphabet: Alphabet, max_len: u64) -> Vec<u8> {
    let len = 1 + rng.below(max_len.clamp(1, 255));
    (0..len)
        .map(|_| match alphabet {
            Alphabet::AnyByte => loop {
                let b = 1 + rng.below(255) as u8;
                if b != b'/' {
                    break b;
                }
            },
            Alphabet::Small => b"abcABC01.-_xX"[rng.below(13) as usize],
        })
        .collect()
}

/// The dirent index as the core keeps it, simply: ids placed as [`free_slot`] says,
/// removed ones left as tombstones, everything placed again in a table twice the size
/// when three quarters of the slots are taken; the slots changed are marked dirty.
#[derive(Clone, Debug)]
pub struct Index {
    pub slots: Vec<u32>,
    taken: usize,
    pub dirty: DirtyRanges,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            slots: vec![EMPTY; 16],
            taken: 0,
            dirty: DirtyRanges::default(),
        }
    }
}

impl Index {
    fn insert(&mut self, hash: u32, id: u32, hash_of: impl Fn(u32) -> u32) {
        if (self.taken + 1) * 4 > self.slots.len() * 3 {
            let grown = vec![EMPTY; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, grown);
            self.taken = 0;
            for id in old.into_iter().filter(|&s| s < TOMBSTONE) {
                let at = free_slot(&self.slots, hash_of(id)).expect("room");
                self.slots[at] = id;
                self.taken += 1;
            }
            self.dirty.mark_all(self.slots.len() as u64);
        }
        let at = free_slot(&self.slots, hash).expect("room");
        if self.slots[at] == EMPTY {
            self.taken += 1;
        }
        self.slots[at] = id;
        self.dirty.mark(at as u64, at as u64 + 1);
    }

    fn remove(&mut self, hash: u32, id: u32) {
        let mask = self.slots.len() - 1;
        let mut at = home(hash, self.slots.len());
        while self.slots[at] != EMPTY {
            if self.slots[at] == id {
                self.slots[at] = TOMBSTONE;
                self.dirty.mark(at as u64, at as u64 + 1);
                return;
            }
            at = (at + 1) & mask;
        }
    }

    /// The slots changed since the last call.
    pub fn take_dirty(&mut self) -> DirtyRanges {
        std::mem::take(&mut self.dirty)
    }
}

/// An owned namespace like the core's: inode table, dirent table, name arena, index,
/// and the owner of each name in the arena.
#[derive(Clone, Debug, Default)]
pub struct Ns {
    pub dirents: Vec<DirentRecord>,
    pub names: Vec<u8>,
    pub inodes: Vec<InodeRecord>,
    pub index: Index,
    pub allocated: Vec<u64>,
    pub dir_entry: Vec<u32>,
    owner_offsets: Vec<u64>,
    owner_ids: Vec<u32>,
    owner_lens: Vec<u8>,
}

impl Ns {
    pub fn view(&self) -> NamespaceView<'_> {
        NamespaceView {
            dirents: &self.dirents,
            names: &self.names,
            inodes: &self.inodes,
            index: &self.index.slots,
            allocated: &self.allocated,
            dir_entry: &self.dir_entry,
            owners: Some(OwnersView {
                offsets: &self.owner_offsets,
                ids: &self.owner_ids,
                lens: &self.owner_lens,
            }),
            dirs: None,
        }
    }

    /// Records that entry `id`'s name of `len` bytes was appended at `offset`.
    fn own(&mut self, offset: u64, id: u32, len: usize) {
        self.owner_offsets.push(offset);
        self.owner_ids.push(id);
        self.owner_lens.push(len as u8);
    }

    pub fn name(&self, id: u32) -> &[u8] {
        let d = &self.dirents[id as usize];
        &self.names[d.name_offset as usize..d.name_offset as usize + usize::from(d.name_len)]
    }

    pub fn lookup(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let h = name_hash(parent, name);
        probe(&self.index.slots, h, |id| {
            let d = &self.dirents[id as usize];
            d.ino != 0 && d.parent == parent && self.name(id) == name
        })
    }

    fn new_inode(&mut self, rng: &mut Rng, kind: FileKind) -> u32 {
        let mode = match kind {
            FileKind::Directory => mode_bits::S_IFDIR | 0o755,
            FileKind::Symlink => mode_bits::S_IFLNK | 0o777,
            _ => mode_bits::S_IFREG | 0o644,
        };
        let size = match rng.below(4) {
            0 => 0,
            1 => rng.below(4096),
            2 => rng.below(1 << 30),
            _ => rng.next() >> 20,
        };
        self.inodes.push(InodeRecord {
            mode,
            nlink: 1,
            size,
            mtime_ns: (rng.next() >> 2) as i64 - (1 << 60),
            ..Default::default()
        });
        self.allocated
            .push(size.next_multiple_of(4096) / if rng.chance(20) { 2 } else { 1 });
        self.dir_entry.push(NO_ENTRY);
        (self.inodes.len() - 1) as u32
    }

    /// Adds entry `name` of `kind` under directory `parent`; None if the name is taken.
    pub fn add(&mut self, rng: &mut Rng, parent: u32, name: &[u8], kind: FileKind) -> Option<u32> {
        if self.lookup(parent, name).is_some() {
            return None;
        }
        let ino = self.new_inode(rng, kind);
        // Now and then dead bytes in the arena, as renames and unlinks leave.
        if rng.chance(5) {
            let junk = random_name(rng, Alphabet::AnyByte, 9);
            // A stale owner, as a renamed entry leaves: the entry now lives elsewhere.
            if !self.dirents.is_empty() {
                let stale = rng.below(self.dirents.len() as u64) as u32;
                self.own(self.names.len() as u64, stale, junk.len());
            }
            self.names.extend_from_slice(&junk);
        }
        let id = self.dirents.len() as u32;
        self.own(self.names.len() as u64, id, name.len());
        self.dirents.push(DirentRecord {
            parent,
            ino,
            name_hash: name_hash(parent, name),
            name_len: name.len() as u8,
            kind: kind as u8,
            flags: 0,
            name_offset: self.names.len() as u64,
            cookie: u64::from(id) + 3,
        });
        self.names.extend_from_slice(name);
        let hash = name_hash(parent, name);
        let dirents = &self.dirents;
        self.index
            .insert(hash, id, |i| dirents[i as usize].name_hash);
        if kind == FileKind::Directory {
            self.dir_entry[ino as usize] = id;
        }
        Some(id)
    }

    /// Frees entry `id` (slot stays, `ino = 0`), as an unlink does.
    pub fn remove(&mut self, id: u32) {
        let d = self.dirents[id as usize];
        if d.ino == 0 {
            return;
        }
        self.index.remove(d.name_hash, id);
        self.dirents[id as usize].ino = 0;
        if d.kind == FileKind::Directory as u8 {
            self.dir_entry[d.ino as usize] = NO_ENTRY;
        }
    }
}

/// A random tree of about `entries` entries: directories about one in `dir_every`,
/// some entries removed again.
pub fn random_tree(seed: u64, entries: usize, alphabet: Alphabet, max_name: u64) -> Ns {
    let mut rng = Rng::new(seed);
    let mut ns = Ns {
        inodes: vec![InodeRecord::default()],
        allocated: vec![0],
        dir_entry: vec![NO_ENTRY],
        ..Default::default()
    };
    let mut rng2 = Rng::new(seed ^ 1);
    let root = ns.new_inode(&mut rng2, FileKind::Directory);
    assert_eq!(root, ROOT_INO);
    let mut dirs = vec![ROOT_INO];
    let mut attempts = 0;
    while ns.dirents.len() < entries && attempts < entries * 4 + 16 {
        attempts += 1;
        let parent = dirs[rng.below(dirs.len() as u64) as usize];
        let kind = match rng.below(10) {
            0 | 1 => FileKind::Directory,
            2 => FileKind::Symlink,
            _ => FileKind::Regular,
        };
        let name = random_name(&mut rng, alphabet, max_name);
        if let Some(id) = ns.add(&mut rng, parent, &name, kind) {
            if kind == FileKind::Directory {
                dirs.push(ns.dirents[id as usize].ino);
            }
        }
    }
    // Unlink some non-directories.
    for id in 0..ns.dirents.len() as u32 {
        if ns.dirents[id as usize].kind != FileKind::Directory as u8 && rng.chance(3) {
            ns.remove(id);
        }
    }
    ns
}

/// Sizes every kernel is tried at: empty, one, a workgroup and its neighbours.
pub const EDGE_SIZES: [usize; 6] = [0, 1, 255, 256, 257, 3000];

/// Record bytes for the data kernels: repeated text or random bytes.
pub fn record(rng: &mut Rng, len: usize) -> Vec<u8> {
    if rng.chance(50) {
        let text = b"the quick brown fox jumps over the lazy dog 0123456789 ";
        (0..len).map(|i| text[i % text.len()]).collect()
    } else {
        (0..len).map(|_| rng.next() as u8).collect()
    }
}

/// A batch of records of `sizes`, then `random_records` more of random sizes (below
/// `small`, below 70,000, or up to the largest record).
pub fn random_batch(
    seed: u64,
    sizes: &[usize],
    random_records: usize,
    small: u64,
) -> gpufs_compute::records::RecordBatch {
    use gpufs_compute::records::{RecordBatch, MAX_RECORD_BYTES};
    let mut rng = Rng::new(seed);
    let mut batch = RecordBatch::new();
    for &len in sizes {
        batch.push(&record(&mut rng, len)).expect("record fits");
    }
    for _ in 0..random_records {
        let len = match rng.below(3) {
            0 => rng.below(small),
            1 => rng.below(70_000),
            _ => rng.below(MAX_RECORD_BYTES as u64 + 1),
        } as usize;
        batch.push(&record(&mut rng, len)).expect("record fits");
    }
    batch
}
