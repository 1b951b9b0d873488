//! Seeded synthetic namespaces with realistic names, for calibration and benchmarks:
//! directories of source trees, photos, logs and documents, about one directory per
//! `files_per_dir` entries, names like `IMG_20231104_183012.jpg` or `parser_test.rs`.

pub mod data;
pub mod rng;

use gpufs_format::records::mode_bits;
use gpufs_format::{name_hash, DirentRecord, FileKind, InodeRecord, ROOT_INO};

use crate::index::{free_slot, probe, EMPTY};
use crate::view::{NamespaceView, OwnersView, NO_ENTRY};

/// An owned namespace in the arrays the kernels read. Entries are only added, each name
/// appended to the arena, so the owner map is one pair per entry in id order.
#[derive(Clone, Debug, Default)]
pub struct SynthNamespace {
    pub dirents: Vec<DirentRecord>,
    pub names: Vec<u8>,
    pub inodes: Vec<InodeRecord>,
    /// Index slots, sized once for every entry generated (it never grows).
    pub index: Vec<u32>,
    pub allocated: Vec<u64>,
    pub dir_entry: Vec<u32>,
    /// Inode numbers of the directories, root first.
    pub dirs: Vec<u32>,
    /// The owner map, one pair per entry in id order: entry `k`'s name lies at
    /// `owner_offsets[k]` and has `owner_lens[k]` bytes (`owner_ids[k] == k`).
    owner_offsets: Vec<u64>,
    owner_ids: Vec<u32>,
    owner_lens: Vec<u8>,
}

type Rng = rng::SplitMix;

const WORDS: &[&str] = &[
    "report",
    "parser",
    "main",
    "index",
    "config",
    "notes",
    "draft",
    "invoice",
    "backup",
    "photo",
    "scan",
    "build",
    "cache",
    "module",
    "test",
    "data",
    "summary",
    "budget",
    "thesis",
    "chapter",
    "slides",
    "readme",
    "server",
    "client",
    "utils",
    "schema",
    "Makefile",
    "kernel",
    "driver",
    "network",
    "storage",
    "README",
    "LICENSE",
    "mod",
    "lib",
    "app",
    "view",
    "model",
    "handler",
    "error",
    "types",
    "queue",
    "vacation",
    "family",
    "meeting",
    "agenda",
    "résumé",
    "café",
    "日本語",
    "données",
];
const EXTS: &[&str] = &[
    "rs", "c", "h", "py", "js", "ts", "md", "txt", "json", "toml", "jpg", "png", "pdf", "docx",
    "xlsx", "log", "gz", "o", "html", "css", "go", "java", "mp3", "mp4", "csv",
];
const DIR_WORDS: &[&str] = &[
    "src",
    "docs",
    "tests",
    "build",
    "assets",
    "images",
    "2023",
    "2024",
    "archive",
    "projects",
    "music",
    "Downloads",
    "node_modules",
    "target",
    "include",
    "lib",
    "bin",
    "photos",
    "work",
    "personal",
    "backup",
    "old",
    "tmp",
    "vendor",
    "examples",
];

fn file_name(rng: &mut Rng, k: u64) -> String {
    match rng.below(5) {
        0 => format!(
            "IMG_2023{:02}{:02}_{:06}.jpg",
            1 + rng.below(12),
            1 + rng.below(28),
            rng.below(240_000)
        ),
        1 => format!("{}_{}.{}", rng.pick(WORDS), rng.pick(WORDS), rng.pick(EXTS)),
        2 => format!("{}-{k}.{}", rng.pick(WORDS), rng.pick(EXTS)),
        3 => format!("{}{}.{}", rng.pick(WORDS), rng.below(1000), rng.pick(EXTS)),
        _ => format!("{}.{}", rng.pick(WORDS), rng.pick(EXTS)),
    }
}

impl SynthNamespace {
    /// About `entries` entries under the root, one directory per `files_per_dir`.
    pub fn generate(seed: u64, entries: usize, files_per_dir: usize) -> SynthNamespace {
        let mut rng = Rng::new(seed ^ 0x5EED);
        let mut ns = SynthNamespace {
            inodes: vec![InodeRecord::default()],
            allocated: vec![0],
            dir_entry: vec![NO_ENTRY],
            // At most three quarters full: it never needs to grow.
            index: vec![
                EMPTY;
                (entries.saturating_mul(4) / 3 + 1)
                    .max(16)
                    .next_power_of_two()
            ],
            ..Default::default()
        };
        ns.dirents.reserve(entries);
        ns.names.reserve(entries * 20);
        let root = ns.new_inode(&mut rng, FileKind::Directory);
        debug_assert_eq!(root, ROOT_INO);
        ns.dirs.push(root);
        let per_dir = files_per_dir.max(2) as u64;
        let mut k = 0u64;
        while ns.dirents.len() < entries {
            k += 1;
            let make_dir = rng.below(per_dir) == 0;
            // A directory goes anywhere (depth grows like a log of the count); files go
            // to recent directories, as they do when trees are filled.
            let n = ns.dirs.len() as u64;
            let parent = if make_dir {
                ns.dirs[rng.below(n) as usize]
            } else {
                ns.dirs[(n - 1 - rng.below(n.min(64))) as usize]
            };
            let (name, kind) = if make_dir {
                (
                    format!(
                        "{}{}",
                        rng.pick(DIR_WORDS),
                        if rng.below(3) == 0 {
                            format!("-{k}")
                        } else {
                            String::new()
                        }
                    ),
                    FileKind::Directory,
                )
            } else {
                (file_name(&mut rng, k), FileKind::Regular)
            };
            if let Some(id) = ns.add(&mut rng, parent, name.as_bytes(), kind) {
                if kind == FileKind::Directory {
                    let ino = ns.dirents[id as usize].ino;
                    ns.dirs.push(ino);
                }
            }
        }
        ns
    }

    fn new_inode(&mut self, rng: &mut Rng, kind: FileKind) -> u32 {
        let (mode, size) = match kind {
            FileKind::Directory => (mode_bits::S_IFDIR | 0o755, 4096),
            _ => {
                let scale = 10 + rng.below(20);
                (mode_bits::S_IFREG | 0o644, rng.below(1 << scale))
            }
        };
        self.inodes.push(InodeRecord {
            mode,
            nlink: 1,
            size,
            mtime_ns: 1_600_000_000_000_000_000 + (rng.below(1 << 40) as i64) * 1000,
            ..Default::default()
        });
        self.allocated.push(size.next_multiple_of(4096));
        self.dir_entry.push(NO_ENTRY);
        (self.inodes.len() - 1) as u32
    }

    fn add(&mut self, rng: &mut Rng, parent: u32, name: &[u8], kind: FileKind) -> Option<u32> {
        let hash = name_hash(parent, name);
        let taken = probe(&self.index, hash, |id| {
            let d = &self.dirents[id as usize];
            d.parent == parent && self.name_of(id) == name
        });
        if taken.is_some() || name.len() > 255 {
            return None;
        }
        let slot = free_slot(&self.index, hash)?;
        let ino = self.new_inode(rng, kind);
        let id = self.dirents.len() as u32;
        self.owner_offsets.push(self.names.len() as u64);
        self.owner_ids.push(id);
        self.owner_lens.push(name.len() as u8);
        self.dirents.push(DirentRecord {
            parent,
            ino,
            name_hash: hash,
            name_len: name.len() as u8,
            kind: kind as u8,
            flags: 0,
            name_offset: self.names.len() as u64,
            cookie: u64::from(id) + 3,
        });
        self.names.extend_from_slice(name);
        self.index[slot] = id;
        if kind == FileKind::Directory {
            self.dir_entry[ino as usize] = id;
        }
        Some(id)
    }

    /// Name bytes of entry `id`.
    pub fn name_of(&self, id: u32) -> &[u8] {
        let d = &self.dirents[id as usize];
        let s = d.name_offset as usize;
        &self.names[s..s + usize::from(d.name_len)]
    }

    pub fn view(&self) -> NamespaceView<'_> {
        self.prefix_view(self.dirents.len())
    }

    /// A view of the first `n` entries: itself a valid namespace, since inode numbers
    /// follow entry order (the first n + 2 inodes, slot 0 and the root included, are
    /// the prefix's own; a later one would be "missing" to every kernel).
    pub fn prefix_view(&self, n: usize) -> NamespaceView<'_> {
        let n = n.min(self.dirents.len());
        let inodes = (n + 2).min(self.inodes.len());
        // Entries were added in id order, one owner pair each: the first n pairs and
        // the arena up to the next name are the prefix's own, so an arena scan of the
        // prefix costs what the prefix holds.
        let arena_end = self
            .owner_offsets
            .get(n)
            .map_or(self.names.len(), |&o| o as usize);
        NamespaceView {
            dirents: &self.dirents[..n],
            names: &self.names[..arena_end.min(self.names.len())],
            inodes: &self.inodes[..inodes],
            index: &self.index,
            allocated: &self.allocated[..inodes.min(self.allocated.len())],
            dir_entry: &self.dir_entry[..inodes.min(self.dir_entry.len())],
            owners: Some(OwnersView {
                offsets: &self.owner_offsets[..n],
                ids: &self.owner_ids[..n],
                lens: &self.owner_lens[..n],
            }),
            dirs: None,
        }
    }

    /// Ids of the entries in directory `dir`.
    pub fn children(&self, dir: u32) -> Vec<u32> {
        (0..self.dirents.len() as u32)
            .filter(|&i| self.dirents[i as usize].parent == dir)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_deterministic_and_sized() {
        let a = SynthNamespace::generate(1, 5000, 30);
        let b = SynthNamespace::generate(1, 5000, 30);
        assert_eq!(a.dirents, b.dirents);
        assert_eq!(a.dirents.len(), 5000);
        assert!(a.dirs.len() > 50);
        for id in 0..a.dirents.len() as u32 {
            let d = a.dirents[id as usize];
            assert!(d.parent == ROOT_INO || a.dir_entry[d.parent as usize] != NO_ENTRY);
        }
    }
}
