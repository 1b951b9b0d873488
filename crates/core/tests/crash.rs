//! Crash consistency: a seeded workload runs on a device that loses power at a random
//! write; the image it leaves must mount, and hold exactly the state after some op at or
//! after the last successful fsync (the journal replays a prefix of whole commits).
//!
//! `GPUFS_CRASH_CUTS` sets the number of cut points (default 200), `GPUFS_CRASH_SEED` the
//! first seed (cut `i` uses seed + i). A failure prints its seed: rerun it alone with
//! `GPUFS_CRASH_SEED=<seed> GPUFS_CRASH_CUTS=1`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gpufs_core::device::{Device, FaultDevice, PowerCut};
use gpufs_core::fs::RenameMode;
use gpufs_core::{fsck, mkfs, Caller, Filesystem, FsError, MkfsOptions, OpenOptions};
use gpufs_format::{checksum, FileKind};

const DEVICE_BYTES: usize = 32 << 20;
const JOURNAL_BLOCKS: u64 = 64;
const OPS: usize = 150;
const MAX_DIRS: usize = 3;
const MAX_FILES: usize = 30;
const MAX_WRITE: u64 = 200 << 10;
const MAX_FILE: u64 = 700 << 10;
const ROOT: u64 = 1;
const DEFAULT_CUTS: u64 = 200;
const DEFAULT_SEED: u64 = 0x6b70_6673_0000;
/// A file written and synced before the workload, which never touches it: it fills most
/// of the device so the allocator wraps and reuses freed blocks during the workload.
const BALLAST: &str = "ballast";
/// Free space left beside the ballast and the workload's peak of live data.
const HEADROOM: u64 = 4 << 20;

/// splitmix64: small, seedable, stable across crate versions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5851_F42D_4C95_7F2D)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            Some(&v[self.below(v.len() as u64) as usize])
        }
    }
}

/// Bytes a write op stores, derived from its seed.
fn write_bytes(seed: u64, len: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = vec![0u8; len as usize];
    for chunk in out.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

#[derive(Clone, Debug)]
enum Op {
    Create(String),
    Write {
        path: String,
        off: u64,
        len: u64,
        seed: u64,
    },
    Truncate {
        path: String,
        size: u64,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink(String),
    Mkdir(String),
    Rmdir(String),
    Link {
        from: String,
        to: String,
    },
    Symlink {
        path: String,
        target: Vec<u8>,
    },
    Fsync,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    /// A regular file: its content id (shared by hard links).
    File(u32),
    Symlink(Vec<u8>),
}

/// What the workload expects: paths (root is "") and file contents by id, and the
/// ballast file's content.
#[derive(Clone, Default)]
struct Model {
    nodes: BTreeMap<String, Node>,
    contents: BTreeMap<u32, Blob>,
    next_id: u32,
    ballast: Option<Blob>,
}

/// File content with its CRC, computed once.
#[derive(Clone, Debug)]
struct Blob {
    data: Arc<Vec<u8>>,
    crc: u32,
}

impl Blob {
    fn new(data: Vec<u8>) -> Self {
        Blob {
            crc: checksum(&data),
            data: Arc::new(data),
        }
    }
}

fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

fn name_of(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// True when `path` is `dir` or lies below it.
fn within(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(&format!("{dir}/"))
}

impl Model {
    fn dirs(&self) -> Vec<String> {
        let mut v = vec![String::new()];
        v.extend(
            self.nodes
                .iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(p, _)| p.clone()),
        );
        v
    }
    fn files(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }
    fn non_dirs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| **n != Node::Dir)
            .map(|(p, _)| p.clone())
            .collect()
    }
    fn children(&self, dir: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| parent_of(p) == dir)
            .cloned()
            .collect()
    }
    fn content(&self, path: &str) -> &[u8] {
        match self.nodes.get(path) {
            Some(Node::File(id)) => &self.contents[id].data,
            _ => &[],
        }
    }
    fn set_content(&mut self, path: &str, data: Vec<u8>) {
        if let Some(Node::File(id)) = self.nodes.get(path) {
            self.contents.insert(*id, Blob::new(data));
        }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Create(p) => {
                let id = self.next_id;
                self.next_id += 1;
                self.contents.insert(id, Blob::new(Vec::new()));
                self.nodes.insert(p.clone(), Node::File(id));
            }
            Op::Write {
                path,
                off,
                len,
                seed,
            } => {
                let mut c = self.content(path).to_vec();
                let end = (off + len) as usize;
                if c.len() < end {
                    c.resize(end, 0);
                }
                c[*off as usize..end].copy_from_slice(&write_bytes(*seed, *len));
                self.set_content(path, c);
            }
            Op::Truncate { path, size } => {
                let mut c = self.content(path).to_vec();
                c.resize(*size as usize, 0);
                self.set_content(path, c);
            }
            Op::Rename { from, to } => {
                let node = self.nodes[from].clone();
                if let (Node::File(a), Some(Node::File(b))) = (&node, self.nodes.get(to)) {
                    if a == b {
                        return; // two links of one inode: rename does nothing
                    }
                }
                self.nodes.remove(to);
                if node == Node::Dir {
                    let moved: Vec<String> = self
                        .nodes
                        .keys()
                        .filter(|p| within(p, from) && *p != from)
                        .cloned()
                        .collect();
                    for p in moved {
                        let n = self.nodes.remove(&p).unwrap();
                        self.nodes.insert(format!("{to}{}", &p[from.len()..]), n);
                    }
                }
                self.nodes.remove(from);
                self.nodes.insert(to.clone(), node);
            }
            Op::Unlink(p) | Op::Rmdir(p) => {
                self.nodes.remove(p);
            }
            Op::Mkdir(p) => {
                self.nodes.insert(p.clone(), Node::Dir);
            }
            Op::Link { from, to } => {
                let n = self.nodes[from].clone();
                self.nodes.insert(to.clone(), n);
            }
            Op::Symlink { path, target } => {
                self.nodes
                    .insert(path.clone(), Node::Symlink(target.clone()));
            }
            Op::Fsync => {}
        }
        let live: BTreeSet<u32> = self
            .nodes
            .values()
            .filter_map(|n| match n {
                Node::File(id) => Some(*id),
                _ => None,
            })
            .collect();
        self.contents.retain(|id, _| live.contains(id));
    }

    /// True when `op` can run in this state. Ops are generated assuming every earlier op
    /// succeeded; one that failed for lack of space can make a later one invalid.
    fn valid(&self, op: &Op) -> bool {
        let is_dir = |p: &str| p.is_empty() || self.nodes.get(p) == Some(&Node::Dir);
        let free = |p: &str| is_dir(parent_of(p)) && !self.nodes.contains_key(p);
        let is_file = |p: &str| matches!(self.nodes.get(p), Some(Node::File(_)));
        match op {
            Op::Create(p) | Op::Mkdir(p) => free(p),
            Op::Symlink { path, .. } => free(path),
            Op::Write { path, .. } | Op::Truncate { path, .. } => is_file(path),
            Op::Unlink(p) => self.nodes.get(p).is_some_and(|n| *n != Node::Dir),
            Op::Rmdir(p) => self.nodes.get(p) == Some(&Node::Dir) && self.children(p).is_empty(),
            Op::Link { from, to } => is_file(from) && free(to),
            Op::Rename { from, to } => {
                let Some(src) = self.nodes.get(from) else {
                    return false;
                };
                if from == to
                    || !is_dir(parent_of(to))
                    || (*src == Node::Dir && within(parent_of(to), from))
                {
                    return false;
                }
                match (src, self.nodes.get(to)) {
                    (_, None) => true,
                    (Node::Dir, Some(Node::Dir)) => self.children(to).is_empty(),
                    (Node::Dir, _) | (_, Some(Node::Dir)) => false,
                    _ => true,
                }
            }
            Op::Fsync => true,
        }
    }

    /// One random op that is valid in this state, or `None` to try again.
    fn random_op(&self, rng: &mut Rng) -> Option<Op> {
        let dirs = self.dirs();
        let files = self.files();
        let n_dirs = dirs.len() - 1;
        let n_files = self.nodes.len() - n_dirs;
        let roll = rng.below(100);
        let op = match roll {
            0..=11 => {
                let parent = rng.pick(&dirs)?;
                let p = join(parent, &format!("f{}", rng.below(8)));
                if n_files >= MAX_FILES || self.nodes.contains_key(&p) {
                    return None;
                }
                Op::Create(p)
            }
            12..=41 => {
                let path = rng.pick(&files)?.clone();
                let size = self.content(&path).len() as u64;
                let len = if rng.below(2) == 0 {
                    1 + rng.below(8192)
                } else {
                    1 + rng.below(MAX_WRITE)
                };
                let off = match rng.below(10) {
                    0..=3 => size,
                    4..=6 => rng.below(size + 1),
                    _ => rng.below(512 << 10),
                };
                let len = len.min(MAX_FILE.saturating_sub(off));
                if len == 0 {
                    return None;
                }
                Op::Write {
                    path,
                    off,
                    len,
                    seed: rng.next(),
                }
            }
            42..=49 => {
                let path = rng.pick(&files)?.clone();
                let cur = self.content(&path).len() as u64;
                let size = match rng.below(10) {
                    0..=4 => rng.below(cur + 1),
                    5..=7 => (cur + rng.below(200 << 10)).min(MAX_FILE),
                    _ => 0,
                };
                Op::Truncate { path, size }
            }
            50..=61 => {
                let all: Vec<String> = self.nodes.keys().cloned().collect();
                let from = rng.pick(&all)?.clone();
                let src = &self.nodes[&from];
                let parent = rng.pick(&dirs)?.clone();
                let to = if rng.below(2) == 0 {
                    let existing = self.children(&parent);
                    rng.pick(&existing)?.clone()
                } else {
                    let prefix = match src {
                        Node::Dir => "d",
                        Node::File(_) => "f",
                        Node::Symlink(_) => "s",
                    };
                    join(&parent, &format!("{prefix}{}", rng.below(8)))
                };
                if to == from {
                    return None;
                }
                if *src == Node::Dir && within(&parent, &from) {
                    return None;
                }
                match (src, self.nodes.get(&to)) {
                    (_, None) => {}
                    (Node::Dir, Some(Node::Dir)) if self.children(&to).is_empty() => {}
                    (Node::Dir, _) | (_, Some(Node::Dir)) => return None,
                    _ => {}
                }
                Op::Rename { from, to }
            }
            62..=69 => Op::Unlink(rng.pick(&self.non_dirs())?.clone()),
            70..=73 => {
                let parent = rng.pick(&dirs)?;
                let p = join(parent, &format!("d{}", rng.below(3)));
                if n_dirs >= MAX_DIRS || self.nodes.contains_key(&p) {
                    return None;
                }
                Op::Mkdir(p)
            }
            74..=75 => {
                let empty: Vec<String> = dirs[1..]
                    .iter()
                    .filter(|d| self.children(d).is_empty())
                    .cloned()
                    .collect();
                Op::Rmdir(rng.pick(&empty)?.clone())
            }
            76..=81 => {
                let from = rng.pick(&files)?.clone();
                let parent = rng.pick(&dirs)?;
                let to = join(parent, &format!("f{}", rng.below(8)));
                if n_files >= MAX_FILES || self.nodes.contains_key(&to) {
                    return None;
                }
                Op::Link { from, to }
            }
            82..=84 => {
                let parent = rng.pick(&dirs)?;
                let path = join(parent, &format!("s{}", rng.below(3)));
                if n_files >= MAX_FILES || self.nodes.contains_key(&path) {
                    return None;
                }
                let target = format!(
                    "../t{}/{}",
                    rng.below(1000),
                    "x".repeat(rng.below(60) as usize)
                );
                Op::Symlink {
                    path,
                    target: target.into_bytes(),
                }
            }
            _ => Op::Fsync,
        };
        Some(op)
    }

    /// The shape the recovered tree is compared in.
    fn canon(&self) -> Tree {
        let mut links: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        for (p, n) in &self.nodes {
            if let Node::File(id) = n {
                links.entry(*id).or_default().insert(p.clone());
            }
        }
        let mut t = Tree::new();
        t.insert(
            String::new(),
            CNode::Dir {
                nlink: 2 + self
                    .children("")
                    .iter()
                    .filter(|c| self.nodes[*c] == Node::Dir)
                    .count() as u32,
            },
        );
        if let Some(b) = &self.ballast {
            t.insert(
                BALLAST.to_string(),
                CNode::file(b.clone(), 1, BTreeSet::from([BALLAST.to_string()])),
            );
        }
        for (p, n) in &self.nodes {
            let c = match n {
                Node::Dir => CNode::Dir {
                    nlink: 2 + self
                        .children(p)
                        .iter()
                        .filter(|c| self.nodes[*c] == Node::Dir)
                        .count() as u32,
                },
                Node::File(id) => CNode::file(
                    self.contents[id].clone(),
                    links[id].len() as u32,
                    links[id].clone(),
                ),
                Node::Symlink(t) => CNode::Symlink(t.clone()),
            };
            t.insert(p.clone(), c);
        }
        t
    }
}

#[derive(Clone, Debug)]
enum CNode {
    Dir {
        nlink: u32,
    },
    File {
        len: usize,
        crc: u32,
        data: Arc<Vec<u8>>,
        nlink: u32,
        links: BTreeSet<String>,
    },
    Symlink(Vec<u8>),
}

impl CNode {
    fn file(blob: Blob, nlink: u32, links: BTreeSet<String>) -> Self {
        CNode::File {
            len: blob.data.len(),
            crc: blob.crc,
            data: blob.data,
            nlink,
            links,
        }
    }

    /// Equal shape; contents by length and CRC unless `bytes`.
    fn same(&self, other: &CNode, bytes: bool) -> bool {
        match (self, other) {
            (CNode::Dir { nlink: a }, CNode::Dir { nlink: b }) => a == b,
            (CNode::Symlink(a), CNode::Symlink(b)) => a == b,
            (
                CNode::File {
                    len: l1,
                    crc: c1,
                    data: d1,
                    nlink: n1,
                    links: k1,
                },
                CNode::File {
                    len: l2,
                    crc: c2,
                    data: d2,
                    nlink: n2,
                    links: k2,
                },
            ) => {
                l1 == l2
                    && c1 == c2
                    && n1 == n2
                    && k1 == k2
                    && (!bytes || Arc::ptr_eq(d1, d2) || d1 == d2)
            }
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            CNode::Dir { nlink } => format!("dir nlink={nlink}"),
            CNode::File {
                len,
                crc,
                nlink,
                links,
                ..
            } => format!("file len={len} crc={crc:#010x} nlink={nlink} links={links:?}"),
            CNode::Symlink(t) => format!("symlink -> {:?}", String::from_utf8_lossy(t)),
        }
    }
}

type Tree = BTreeMap<String, CNode>;

fn trees_equal(a: &Tree, b: &Tree, bytes: bool) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((pa, na), (pb, nb))| pa == pb && na.same(nb, bytes))
}

fn tree_diff(got: &Tree, want: &Tree) -> String {
    let mut out = String::new();
    let keys: BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    for k in keys {
        match (got.get(k), want.get(k)) {
            (Some(g), Some(w)) if g.same(w, true) => {}
            (g, w) => {
                let _ = writeln!(
                    out,
                    "    /{k}: got {}, want {}",
                    g.map_or("nothing".into(), CNode::describe),
                    w.map_or("nothing".into(), CNode::describe)
                );
            }
        }
    }
    out
}

/// Reads the whole tree through the POSIX API.
fn walk(fs: &Filesystem) -> Result<Tree, String> {
    let mut tree = Tree::new();
    let mut inos: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut files: Vec<(String, u64, u32, Blob)> = Vec::new();
    let root = fs
        .getattr(ROOT)
        .map_err(|e| format!("getattr(root): {e}"))?;
    tree.insert(String::new(), CNode::Dir { nlink: root.nlink });
    let mut stack = vec![(String::new(), ROOT, ROOT)];
    while let Some((dir, ino, parent)) = stack.pop() {
        let mut entries = Vec::new();
        fs.readdir(ino, 0, |e| {
            entries.push((e.name.to_vec(), e.ino, e.kind));
            false
        })
        .map_err(|e| format!("readdir(/{dir}): {e}"))?;
        if entries.len() < 2 || entries[0].0 != b"." || entries[1].0 != b".." {
            return Err(format!("/{dir}: listing does not start with . and .."));
        }
        if entries[0].1 != ino || entries[1].1 != parent {
            return Err(format!(
                "/{dir}: . is {} and .. is {}, expected {ino} and {parent}",
                entries[0].1, entries[1].1
            ));
        }
        for (name, eino, kind) in entries.into_iter().skip(2) {
            let name_s = String::from_utf8(name.clone()).map_err(|_| "non-UTF-8 name")?;
            let path = join(&dir, &name_s);
            if tree.contains_key(&path) {
                return Err(format!("/{path} listed twice"));
            }
            let a = fs
                .lookup(ino, &name)
                .map_err(|e| format!("lookup(/{path}): {e}"))?;
            if a.ino != eino || a.kind != kind {
                return Err(format!(
                    "/{path}: readdir says ino {eino} {kind:?}, lookup says {} {:?}",
                    a.ino, a.kind
                ));
            }
            match kind {
                FileKind::Directory => {
                    tree.insert(path.clone(), CNode::Dir { nlink: a.nlink });
                    stack.push((path, eino, ino));
                }
                FileKind::Regular => {
                    let mut data = Vec::with_capacity(a.size as usize);
                    while (data.len() as u64) < a.size {
                        let chunk = fs
                            .read(eino, data.len() as u64, 1 << 20)
                            .map_err(|e| format!("read(/{path}): {e}"))?;
                        if chunk.is_empty() {
                            return Err(format!("/{path}: short read at {}", data.len()));
                        }
                        data.extend_from_slice(&chunk);
                    }
                    if data.len() as u64 != a.size {
                        return Err(format!("/{path}: read past the size {}", a.size));
                    }
                    inos.entry(eino).or_default().insert(path.clone());
                    files.push((path, eino, a.nlink, Blob::new(data)));
                }
                FileKind::Symlink => {
                    let t = fs
                        .readlink(eino)
                        .map_err(|e| format!("readlink(/{path}): {e}"))?;
                    if t.len() as u64 != a.size {
                        return Err(format!("/{path}: symlink size {} != target", a.size));
                    }
                    tree.insert(path, CNode::Symlink(t));
                }
                other => return Err(format!("/{path}: unexpected kind {other:?}")),
            }
        }
    }
    for (path, ino, nlink, data) in files {
        tree.insert(path, CNode::file(data, nlink, inos[&ino].clone()));
    }
    Ok(tree)
}

fn resolve(fs: &Filesystem, path: &str) -> Result<u64, FsError> {
    let mut ino = ROOT;
    if path.is_empty() {
        return Ok(ino);
    }
    for part in path.split('/') {
        ino = fs.lookup(ino, part.as_bytes())?.ino;
    }
    Ok(ino)
}

fn at(fs: &Filesystem, path: &str) -> Result<(u64, Vec<u8>), FsError> {
    Ok((
        resolve(fs, parent_of(path))?,
        name_of(path).as_bytes().to_vec(),
    ))
}

/// Runs one op. `Ok(Some(n))` is a short write of `n` bytes.
fn run_op(fs: &Filesystem, op: &Op) -> Result<Option<u64>, FsError> {
    let root = Caller::ROOT;
    match op {
        Op::Create(p) => {
            let (dir, name) = at(fs, p)?;
            let a = fs.create(dir, &name, 0o644, root)?;
            fs.release(a.ino)?;
        }
        Op::Write {
            path,
            off,
            len,
            seed,
        } => {
            let ino = resolve(fs, path)?;
            fs.open(ino, false)?;
            let n = fs.write(ino, *off, &write_bytes(*seed, *len))?;
            fs.release(ino)?;
            if u64::from(n) != *len {
                return Ok(Some(u64::from(n)));
            }
        }
        Op::Truncate { path, size } => {
            let ino = resolve(fs, path)?;
            let set = gpufs_core::SetAttr {
                size: Some(*size),
                ..Default::default()
            };
            fs.setattr(ino, &set, root)?;
        }
        Op::Rename { from, to } => {
            let (d1, n1) = at(fs, from)?;
            let (d2, n2) = at(fs, to)?;
            fs.rename(d1, &n1, d2, &n2, RenameMode::Replace)?;
        }
        Op::Unlink(p) => {
            let (dir, name) = at(fs, p)?;
            fs.unlink(dir, &name)?;
        }
        Op::Rmdir(p) => {
            let (dir, name) = at(fs, p)?;
            fs.rmdir(dir, &name)?;
        }
        Op::Mkdir(p) => {
            let (dir, name) = at(fs, p)?;
            fs.mkdir(dir, &name, 0o755, root)?;
        }
        Op::Link { from, to } => {
            let ino = resolve(fs, from)?;
            let (dir, name) = at(fs, to)?;
            fs.link(ino, dir, &name)?;
        }
        Op::Symlink { path, target } => {
            let (dir, name) = at(fs, path)?;
            fs.symlink(dir, &name, target, root)?;
        }
        Op::Fsync => fs.fsync(ROOT)?,
    }
    Ok(None)
}

/// The first `n` bytes of a write.
fn shortened(op: &Op, n: u64) -> Op {
    match op {
        Op::Write {
            path, off, seed, ..
        } => Op::Write {
            path: path.clone(),
            off: *off,
            len: n,
            seed: *seed,
        },
        other => other.clone(),
    }
}

fn workload(seed: u64) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut m = Model::default();
    let mut ops = Vec::with_capacity(OPS);
    while ops.len() < OPS {
        if let Some(op) = m.random_op(&mut rng) {
            m.apply(&op);
            ops.push(op);
        }
    }
    ops
}

/// Records the offset of every write, to find the metadata writes of a workload, and
/// counts flushes.
struct LogDevice {
    inner: FaultDevice,
    offsets: Mutex<Vec<u64>>,
    flushes: AtomicU64,
}

impl Device for LogDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.offsets.lock().unwrap().push(offset);
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.inner.flush()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
}

/// Loses power during flush number `flush_cut` (counted from the first flush after
/// `arm`): the image is what a cut leaves while that flush is still in flight, and every
/// later call fails. Write cuts go to the inner device's own `arm_cut`.
struct CrashDevice {
    inner: FaultDevice,
    flushes: AtomicU64,
    flush_cut: AtomicU64,
    seed: u64,
    image: Mutex<Option<Vec<u8>>>,
}

impl CrashDevice {
    fn dead(&self) -> bool {
        self.inner.is_dead() || self.image.lock().unwrap().is_some()
    }
    fn check(&self) -> std::io::Result<()> {
        if self.image.lock().unwrap().is_some() {
            return Err(std::io::Error::other("device lost power during a flush"));
        }
        Ok(())
    }
}

impl Device for CrashDevice {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.write_at(buf, offset)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.check()?;
        let n = self.flushes.fetch_add(1, Ordering::Relaxed);
        if n == self.flush_cut.load(Ordering::Relaxed) {
            let img = self.inner.power_cut(&mut PowerCut::new(self.seed));
            *self.image.lock().unwrap() = Some(img);
            return Err(std::io::Error::other("device lost power during a flush"));
        }
        self.inner.flush()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
}

fn format_and_mount(d: Arc<dyn Device>) -> Filesystem {
    let opts = MkfsOptions {
        journal_blocks: Some(JOURNAL_BLOCKS),
        ..Default::default()
    };
    mkfs(d.clone(), &opts).expect("mkfs");
    Filesystem::mount(d, OpenOptions::default()).expect("mount after mkfs")
}

/// Ballast length. Two thirds of the workloads get the data area less their peak of
/// live bytes, [`HEADROOM`] and a margin. The others run short of space: a run without
/// ballast measures the workload's peak of used blocks, and the ballast leaves free only
/// that much, from 64 blocks less to 256 blocks more.
fn ballast_len(seed: u64, ops: &[Op]) -> Result<u64, String> {
    let data_area = DEVICE_BYTES as u64 - (2 + JOURNAL_BLOCKS) * 4096;
    if !seed.is_multiple_of(3) {
        let mut m = Model::default();
        let mut peak = 0u64;
        for op in ops {
            m.apply(op);
            peak = peak.max(m.contents.values().map(|c| c.data.len() as u64).sum());
        }
        return Ok(data_area.saturating_sub(peak + HEADROOM + (1 << 20)));
    }
    let dev = Arc::new(FaultDevice::new(vec![0u8; DEVICE_BYTES]));
    let fs = format_and_mount(dev);
    let free0 = fs.statfs().bfree;
    let mut peak = 0u64;
    let mut m = Model::default();
    for op in ops {
        if !m.valid(op) {
            continue;
        }
        match run_op(&fs, op) {
            Ok(None) => m.apply(op),
            Ok(Some(n)) => m.apply(&shortened(op, n)),
            Err(FsError::NoSpace) => {}
            Err(e) => return Err(format!("measuring run: {op:?} failed: {e}")),
        }
        peak = peak.max(free0.saturating_sub(fs.statfs().bfree));
    }
    let slack = Rng::new(seed ^ 0x51AC).below(321);
    // The ballast's own records take room in every checkpoint: about 1/800 of its size.
    let blocks = (free0 + 64).saturating_sub(peak + slack);
    Ok(blocks * 4096 * 799 / 800)
}

/// Formats, mounts, writes the ballast file and syncs.
fn setup(d: Arc<dyn Device>, ballast: &[u8]) -> Result<Filesystem, String> {
    let fs = format_and_mount(d);
    let ino = fs
        .create(ROOT, BALLAST.as_bytes(), 0o644, Caller::ROOT)
        .map_err(|e| format!("create ballast: {e}"))?
        .ino;
    for (i, chunk) in ballast.chunks(1 << 20).enumerate() {
        let n = fs
            .write(ino, (i as u64) << 20, chunk)
            .map_err(|e| format!("write ballast: {e}"))?;
        if n as usize != chunk.len() {
            return Err(format!(
                "the ballast does not fit: short write at chunk {i}"
            ));
        }
    }
    fs.release(ino).map_err(|e| e.to_string())?;
    fs.sync().map_err(|e| format!("sync ballast: {e}"))?;
    Ok(fs)
}

fn mount_image(img: Vec<u8>) -> Result<(Arc<FaultDevice>, Filesystem), String> {
    let dev = Arc::new(FaultDevice::new(img));
    let d: Arc<dyn Device> = dev.clone();
    let fs = Filesystem::mount(d, OpenOptions::default()).map_err(|e| format!("mount: {e}"))?;
    Ok((dev, fs))
}

fn fsck_image(img: Vec<u8>, when: &str) -> Result<(), String> {
    let dev: Arc<dyn Device> = Arc::new(FaultDevice::new(img));
    let report = fsck::check(dev).map_err(|e| format!("fsck {when}: {e}"))?;
    if !report.problems.is_empty() {
        return Err(format!("fsck {when}: {:?}", report.problems));
    }
    Ok(())
}

#[derive(Default)]
struct Outcome {
    died: bool,
    matched_op: usize,
    ops_run: usize,
    mid_op_commits: u64,
    enospc: u64,
    skipped: u64,
    replayed: bool,
}

/// One cut point; `Err` describes what went wrong.
fn run_cut(seed: u64) -> Result<Outcome, String> {
    let ops = workload(seed);
    let mut rng = Rng::new(seed ^ 0xC0FF_EE00);
    let ballast = Blob::new(write_bytes(seed ^ 0x0BA1_1A57, ballast_len(seed, &ops)?));

    // Dry run: how many writes the workload makes, and which are superblock or journal
    // writes (checkpoints write their blob and root just before the superblocks).
    let (total, meta, flushes) = {
        let dev = Arc::new(LogDevice {
            inner: FaultDevice::new(vec![0u8; DEVICE_BYTES]),
            offsets: Mutex::new(Vec::new()),
            flushes: AtomicU64::new(0),
        });
        let fs = setup(dev.clone(), &ballast.data)?;
        let base = dev.offsets.lock().unwrap().len();
        let flush_base = dev.flushes.load(Ordering::Relaxed);
        let mut m = Model::default();
        for op in &ops {
            if !m.valid(op) {
                continue;
            }
            match run_op(&fs, op) {
                Ok(None) => m.apply(op),
                Ok(Some(n)) => m.apply(&shortened(op, n)),
                Err(FsError::NoSpace) => {}
                Err(e) => return Err(format!("dry run: {op:?} failed: {e}")),
            }
        }
        let offsets = dev.offsets.lock().unwrap();
        let meta_end = (2 + JOURNAL_BLOCKS) * 4096;
        let meta: Vec<u64> = (base..offsets.len())
            .filter(|i| offsets[*i] < meta_end)
            .map(|i| (i - base) as u64)
            .collect();
        let flushes = dev.flushes.load(Ordering::Relaxed) - flush_base;
        ((offsets.len() - base) as u64, meta, flushes)
    };

    // A third of the cuts come during a flush, the rest just before a write: half of
    // those at a write index drawn uniformly, half near a journal or superblock write.
    let dev = Arc::new(CrashDevice {
        inner: FaultDevice::new(vec![0u8; DEVICE_BYTES]),
        flushes: AtomicU64::new(0),
        flush_cut: AtomicU64::new(u64::MAX),
        seed,
        image: Mutex::new(None),
    });
    let fs = setup(dev.clone(), &ballast.data)?;
    if rng.below(3) == 0 {
        let f = rng.below(flushes + 1);
        dev.flush_cut
            .store(dev.flushes.load(Ordering::Relaxed) + f, Ordering::Relaxed);
    } else {
        let w = match rng.pick(&meta) {
            Some(m) if rng.below(2) == 0 => (m + 1).saturating_sub(rng.below(5)),
            _ => rng.below(total + total / 8 + 1),
        };
        dev.inner
            .arm_cut(dev.inner.writes() + w, PowerCut::new(seed));
    }
    let mut model = Model {
        ballast: Some(ballast.clone()),
        ..Default::default()
    };
    let mut snaps: Vec<Tree> = vec![model.canon()];
    let mut last_sync = 0usize;
    let mut extra: Option<Tree> = None;
    let mut out = Outcome::default();
    let mut commits = fs.counters().commits + fs.counters().checkpoints;
    for op in &ops {
        if !model.valid(op) {
            out.skipped += 1;
            continue;
        }
        let result = run_op(&fs, op);
        let alive = !dev.dead();
        match result {
            Ok(None) => {
                model.apply(op);
                snaps.push(model.canon());
                if matches!(op, Op::Fsync) {
                    last_sync = snaps.len() - 1;
                }
            }
            Ok(Some(n)) if alive => {
                // Out of space part way: a short write, as write(2) makes.
                model.apply(&shortened(op, n));
                snaps.push(model.canon());
                out.enospc += 1;
            }
            Err(FsError::NoSpace) if alive => {
                snaps.push(model.canon());
                out.enospc += 1;
            }
            Err(e) if alive => {
                return Err(format!("{op:?} failed on a live device: {e}"));
            }
            Ok(Some(n)) => {
                // A short write: the device failed part way. The write may count in
                // full (its records may all have landed) or not at all.
                let mut m = model.clone();
                m.apply(op);
                extra = Some(m.canon());
                let mut m = model.clone();
                m.apply(&shortened(op, n));
                snaps.push(m.canon());
                break;
            }
            Err(_) => {
                // The op may have become durable in full before the failure.
                let mut m = model.clone();
                m.apply(op);
                extra = Some(m.canon());
                break;
            }
        }
        out.ops_run += 1;
        let c = fs.counters().commits + fs.counters().checkpoints;
        if c != commits && !matches!(op, Op::Fsync) {
            out.mid_op_commits += 1;
        }
        commits = c;
    }
    out.died = dev.dead();
    let flush_image = dev.image.lock().unwrap().take();
    let img = match (flush_image, dev.inner.cut_image()) {
        (Some(img), _) | (None, Some(img)) => img,
        (None, None) => dev
            .inner
            .power_cut(&mut PowerCut::new(seed.wrapping_add(0x1234_5678))),
    };
    drop(fs);
    drop(dev);

    let candidates = || {
        snaps
            .iter()
            .enumerate()
            .skip(last_sync)
            .chain(extra.iter().map(|t| (usize::MAX, t)))
    };
    let explain = |got: &Tree| -> String {
        let mut s = format!(
            "ran {} ops, last fsync after op {last_sync}, {} snapshots; device died: {}\n",
            out.ops_run,
            snaps.len(),
            out.died
        );
        let _ = writeln!(s, "  diff against the last fsync'd state:");
        s += &tree_diff(got, &snaps[last_sync]);
        let _ = writeln!(s, "  diff against the last state:");
        s += &tree_diff(got, snaps.last().unwrap_or(&snaps[0]));
        let lo = out.ops_run.saturating_sub(6);
        for (i, op) in ops.iter().enumerate().take(out.ops_run + 1).skip(lo) {
            let _ = writeln!(s, "  op {}: {op:?}", i + 1);
        }
        s
    };

    // The cut image is consistent as it is (fsck replays the journal in memory).
    fsck_image(img.clone(), "of the cut image")?;

    // (b) It mounts, and holds one of the states at or after the last fsync.
    let (dev2, fs2) = mount_image(img)?;
    out.replayed = fs2.notes().iter().any(|n| n.contains("replayed"));
    let got = walk(&fs2).map_err(|e| format!("walk after recovery: {e}"))?;
    let Some((k, want)) = candidates().find(|(_, t)| trees_equal(&got, t, false)) else {
        return Err(format!(
            "recovered tree matches no state\n{}",
            explain(&got)
        ));
    };
    if !trees_equal(&got, want, true) {
        return Err(format!(
            "recovered tree matches state {k} by checksum only\n{}",
            tree_diff(&got, want)
        ));
    }
    out.matched_op = k;
    let want = want.clone();

    // (c) A clean unmount and mount keep exactly that state.
    fs2.close()
        .map_err(|e| format!("close after recovery: {e}"))?;
    drop(fs2);
    let img2 = dev2.power_cut(&mut PowerCut::new(seed.wrapping_add(7)));
    drop(dev2);
    fsck_image(img2.clone(), "after recovery and close")?;
    let (dev3, fs3) = mount_image(img2)?;
    if !fs3.notes().is_empty() {
        return Err(format!(
            "mount after a clean close: notes {:?}",
            fs3.notes()
        ));
    }
    let again = walk(&fs3).map_err(|e| format!("walk after remount: {e}"))?;
    if !trees_equal(&again, &want, true) {
        return Err(format!(
            "state {k} changed across close and remount\n{}",
            tree_diff(&again, &want)
        ));
    }

    // The recovered allocator is sane: new data never lands on live blocks. (The device
    // may be nearly full: a short write or ENOSPC is fine, a wrong byte is not.)
    let post = write_bytes(seed ^ 0xABCD, 300 << 10);
    let written = match fs3.create(ROOT, b"post", 0o644, Caller::ROOT) {
        Ok(a) => {
            let n = match fs3.write(a.ino, 0, &post) {
                Ok(n) => n as usize,
                Err(FsError::NoSpace) => 0,
                Err(e) => return Err(format!("write after recovery: {e}")),
            };
            fs3.release(a.ino).map_err(|e| e.to_string())?;
            Some(n)
        }
        Err(FsError::NoSpace) => None,
        Err(e) => return Err(format!("create after recovery: {e}")),
    };
    fs3.sync()
        .map_err(|e| format!("sync after recovery: {e}"))?;
    let mut after = walk(&fs3).map_err(|e| format!("walk after new writes: {e}"))?;
    match (after.remove("post"), written) {
        (None, None) => {}
        (Some(CNode::File { data, .. }), Some(n)) if data[..] == post[..n] => {}
        _ => return Err("the file written after recovery reads back wrong".into()),
    }
    if !trees_equal(&after, &want, true) {
        return Err(format!(
            "writing after recovery changed old files\n{}",
            tree_diff(&after, &want)
        ));
    }
    drop(fs3);
    fsck_image(
        dev3.power_cut(&mut PowerCut::new(seed.wrapping_add(9))),
        "after writes on the recovered image",
    )?;
    Ok(out)
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

#[test]
fn power_cuts_leave_a_committed_prefix() {
    let cuts = env_u64("GPUFS_CRASH_CUTS", DEFAULT_CUTS);
    let base = env_u64("GPUFS_CRASH_SEED", DEFAULT_SEED);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(cuts.max(1) as usize);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let stats: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cuts {
                    return;
                }
                let seed = base.wrapping_add(i);
                let result = std::panic::catch_unwind(|| run_cut(seed)).unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(format!("panicked: {msg}"))
                });
                match result {
                    Ok(o) => stats.lock().unwrap().push(o),
                    Err(e) => failures.lock().unwrap().push((seed, e)),
                }
            });
        }
    });
    let stats = stats.into_inner().unwrap();
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|(s, _)| *s);
    let died = stats.iter().filter(|o| o.died).count();
    let replayed = stats.iter().filter(|o| o.replayed).count();
    let mid = stats.iter().map(|o| o.mid_op_commits).sum::<u64>();
    let enospc = stats.iter().map(|o| o.enospc).sum::<u64>();
    let short_runs = stats.iter().filter(|o| o.enospc > 0).count();
    let skipped = stats.iter().map(|o| o.skipped).sum::<u64>();
    let at_end = stats.iter().filter(|o| o.matched_op == OPS).count();
    println!(
        "crash: {} cut points (seeds {base:#x}..{:#x}) in {:.1?} on {threads} threads: \
         {} passed, {} failed; {died} cut mid-workload, {} cut after it; {replayed} replayed \
         a journal; {at_end} recovered the final state; {mid} commits by non-fsync ops; \
         {enospc} ENOSPC results in {short_runs} runs ({skipped} ops skipped after them)",
        cuts,
        base.wrapping_add(cuts),
        started.elapsed(),
        stats.len(),
        failures.len(),
        stats.len() - died,
    );
    if !failures.is_empty() {
        let mut msg = format!("{} of {cuts} cut points failed:\n", failures.len());
        for (seed, e) in failures.iter().take(5) {
            let _ = writeln!(
                msg,
                "seed {seed:#x} (rerun: GPUFS_CRASH_SEED={seed:#x} GPUFS_CRASH_CUTS=1): {e}"
            );
        }
        panic!("{msg}");
    }
}
