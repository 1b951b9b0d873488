//! The expected state: paths, file contents and how each op changes them, and the
//! canonical tree ([`Tree`]) a recovered filesystem is compared with.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use gpufs_format::checksum;

use crate::rng::write_bytes;
use crate::workload::Op;
use crate::BALLAST;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Dir,
    /// A regular file: its content id (shared by hard links).
    File(u32),
    Symlink(Vec<u8>),
}

/// What the workload expects: paths (root is "") and file contents by id, and the
/// ballast file's content.
#[derive(Clone, Default)]
pub(crate) struct Model {
    pub(crate) nodes: BTreeMap<String, Node>,
    pub(crate) contents: BTreeMap<u32, Blob>,
    pub(crate) next_id: u32,
    pub(crate) ballast: Option<Blob>,
    /// The tree each snapshot holds, by name.
    pub(crate) snapshots: BTreeMap<String, Snapshot>,
}

/// What a snapshot holds: the paths and contents when it was made.
#[derive(Clone, Default)]
pub(crate) struct Snapshot {
    nodes: BTreeMap<String, Node>,
    contents: BTreeMap<u32, Blob>,
}

/// File content with its CRC, computed once.
#[derive(Clone, Debug)]
pub(crate) struct Blob {
    pub(crate) data: Arc<Vec<u8>>,
    crc: u32,
}

impl Blob {
    pub(crate) fn new(data: Vec<u8>) -> Self {
        Blob {
            crc: checksum(&data),
            data: Arc::new(data),
        }
    }
}

pub(crate) fn parent_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

pub(crate) fn name_of(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// True when `path` is `dir` or lies below it.
pub(crate) fn within(path: &str, dir: &str) -> bool {
    path == dir || path.starts_with(&format!("{dir}/"))
}

impl Model {
    pub(crate) fn dirs(&self) -> Vec<String> {
        let mut v = vec![String::new()];
        v.extend(
            self.nodes
                .iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(p, _)| p.clone()),
        );
        v
    }
    pub(crate) fn files(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::File(_)))
            .map(|(p, _)| p.clone())
            .collect()
    }
    pub(crate) fn non_dirs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| **n != Node::Dir)
            .map(|(p, _)| p.clone())
            .collect()
    }
    pub(crate) fn children(&self, dir: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|p| parent_of(p) == dir)
            .cloned()
            .collect()
    }
    pub(crate) fn content(&self, path: &str) -> &[u8] {
        match self.nodes.get(path) {
            Some(Node::File(id)) => &self.contents[id].data,
            _ => &[],
        }
    }
    /// Does a copy of `len` bytes from `from` at `src_off` onto `to` at `dst_off` overlap
    /// itself (one file, as copy_file_range refuses)?
    pub(crate) fn copy_overlaps(
        &self,
        from: &str,
        to: &str,
        src_off: u64,
        dst_off: u64,
        len: u64,
    ) -> bool {
        let n = copied(self.content(from).len() as u64, src_off, len);
        self.nodes.get(from) == self.nodes.get(to) && src_off < dst_off + n && dst_off < src_off + n
    }

    pub(crate) fn set_content(&mut self, path: &str, data: Vec<u8>) {
        if let Some(Node::File(id)) = self.nodes.get(path) {
            self.contents.insert(*id, Blob::new(data));
        }
    }

    pub(crate) fn apply(&mut self, op: &Op) {
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
            Op::Rename { from, to } => self.rename(from, to),
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
            Op::Copy {
                from,
                to,
                src_off,
                dst_off,
                len,
            } => {
                let src = self.content(from);
                let n = copied(src.len() as u64, *src_off, *len) as usize;
                let start = *src_off as usize;
                let piece = src[start.min(src.len())..][..n].to_vec();
                let mut c = self.content(to).to_vec();
                let at = *dst_off as usize;
                if n > 0 {
                    if c.len() < at + n {
                        c.resize(at + n, 0);
                    }
                    c[at..at + n].copy_from_slice(&piece);
                }
                self.set_content(to, c);
            }
            Op::Fsync => {}
            Op::SnapCreate(name) => {
                let snap = Snapshot {
                    nodes: self.nodes.clone(),
                    contents: self.contents.clone(),
                };
                self.snapshots.insert(name.clone(), snap);
            }
            Op::SnapDelete(name) => {
                self.snapshots.remove(name);
            }
            Op::SnapRollback(name) => {
                if let Some(snap) = self.snapshots.get(name) {
                    self.nodes = snap.nodes.clone();
                    self.contents = snap.contents.clone();
                }
            }
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

    /// The canonical state after `op`, this model left as it is.
    pub(crate) fn after(&self, op: &Op) -> Tree {
        let mut m = self.clone();
        m.apply(op);
        m.canon()
    }

    /// `rename(from, to)`: a directory moves with everything below it.
    fn rename(&mut self, from: &str, to: &str) {
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
        self.nodes.insert(to.to_string(), node);
    }

    /// True when `op` can run in this state. Ops are generated assuming every earlier op
    /// succeeded; one that failed for lack of space can make a later one invalid.
    pub(crate) fn valid(&self, op: &Op) -> bool {
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
            Op::Copy {
                from,
                to,
                src_off,
                dst_off,
                len,
            } => {
                // Sizes may differ from when the op was made (ENOSPC cut writes short):
                // a copy onto itself must still not overlap.
                let overlap = self.copy_overlaps(from, to, *src_off, *dst_off, *len);
                is_file(from) && is_file(to) && !overlap
            }
            Op::Fsync => true,
            Op::SnapCreate(name) => !self.snapshots.contains_key(name),
            Op::SnapDelete(name) | Op::SnapRollback(name) => self.snapshots.contains_key(name),
        }
    }

    pub(crate) fn snapshot_names(&self) -> Vec<String> {
        self.snapshots.keys().cloned().collect()
    }

    /// The shape the recovered tree is compared in.
    pub(crate) fn canon(&self) -> Tree {
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
pub(crate) enum CNode {
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
    pub(crate) fn file(blob: Blob, nlink: u32, links: BTreeSet<String>) -> Self {
        CNode::File {
            len: blob.data.len(),
            crc: blob.crc,
            data: blob.data,
            nlink,
            links,
        }
    }

    /// Equal shape; contents by length and CRC unless `bytes`.
    pub(crate) fn same(&self, other: &CNode, bytes: bool) -> bool {
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

    pub(crate) fn describe(&self) -> String {
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

pub(crate) type Tree = BTreeMap<String, CNode>;

/// Bytes a copy of `len` from `src_off` of a file of `size` bytes moves.
pub(crate) fn copied(size: u64, src_off: u64, len: u64) -> u64 {
    len.min(size.saturating_sub(src_off))
}
