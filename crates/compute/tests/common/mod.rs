//! Shared by the kernel tests: seeded random namespaces and the GPU contexts.
//!
//! The GPU tests never skip: without a Vulkan/Metal/DX12 adapter (lavapipe counts) they
//! fail, so CI cannot pass with the GPU side untested. Set GPUFS_GPU_TESTS=skip to run
//! only the CPU side on a machine that has no driver at all.

#![allow(dead_code)]

use std::sync::OnceLock;

use gpufs_compute::gpu::{GpuContext, GpuOptions};
use gpufs_compute::index::DirentIndex;
use gpufs_compute::rng::SplitMix;
use gpufs_compute::view::{NameOwners, NamespaceView, NO_ENTRY};
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

/// An owned namespace like the core's: inode table, dirent table, name arena, index.
#[derive(Clone, Debug, Default)]
pub struct Ns {
    pub dirents: Vec<DirentRecord>,
    pub names: Vec<u8>,
    pub inodes: Vec<InodeRecord>,
    pub index: DirentIndex,
    pub allocated: Vec<u64>,
    pub dir_entry: Vec<u32>,
    pub owners: NameOwners,
}

impl Ns {
    pub fn view(&self) -> NamespaceView<'_> {
        NamespaceView {
            dirents: &self.dirents,
            names: &self.names,
            inodes: &self.inodes,
            index: self.index.slots(),
            allocated: &self.allocated,
            dir_entry: &self.dir_entry,
            owners: Some(self.owners.view()),
            dirs: None,
        }
    }

    pub fn name(&self, id: u32) -> &[u8] {
        let d = &self.dirents[id as usize];
        &self.names[d.name_offset as usize..d.name_offset as usize + usize::from(d.name_len)]
    }

    pub fn lookup(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let h = name_hash(parent, name);
        self.index.find(h, |id| {
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
                self.owners
                    .push(self.names.len() as u64, stale, junk.len() as u8);
            }
            self.names.extend_from_slice(&junk);
        }
        let id = self.dirents.len() as u32;
        self.owners
            .push(self.names.len() as u64, id, name.len() as u8);
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

fn skip_gpu() -> bool {
    std::env::var("GPUFS_GPU_TESTS").is_ok_and(|v| v == "skip")
}

fn open(opts: GpuOptions) -> Option<GpuContext> {
    if skip_gpu() {
        return None;
    }
    match GpuContext::open(&opts) {
        Ok(ctx) => Some(ctx),
        Err(e) => panic!(
            "GPU tests need a Vulkan/Metal/DX12 adapter (lavapipe will do: apt-get install \
             mesa-vulkan-drivers), or GPUFS_GPU_TESTS=skip: {e}"
        ),
    }
}

/// The GPU as the device reports it.
pub fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        open(GpuOptions {
            allow_software: true,
            ..Default::default()
        })
    })
    .as_ref()
}

/// The GPU with 128 KiB bindings and at most 4 workgroups per dimension, so small inputs
/// already take the chunked-array and 2-D grid paths.
pub fn tight_gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        open(GpuOptions {
            allow_software: true,
            chunk_bytes: Some(128 << 10),
            max_groups_per_dim: Some(4),
        })
    })
    .as_ref()
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
