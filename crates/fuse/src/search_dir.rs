//! The search directory any program can use without the gpufs CLI:
//! `MOUNT/.gpufs/search/PATTERN/` lists the entries matching PATTERN as symbolic links to
//! them, found the moment the directory is read. PATTERN is a substring, or
//! `glob:PATTERN`, `regex:PATTERN`, with an `i` before the prefix (`i:`, `iglob:`,
//! `iregex:`) to ignore ASCII case. `.gpufs` is not listed in the root (a lookup finds
//! it), everything below it is read-only, and results are those the reading user may
//! see, as with `gpufs search`. `.gpufs/snapshots/` holds the snapshots
//! (`snapshot_dir.rs`).

use std::collections::HashMap;

use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery, ALL_KINDS};
use gpufs_compute::LazyCompute;
use gpufs_core::fs::SearchQuery;
use gpufs_core::{Attr, Caller, Filesystem, FsError};
use gpufs_format::FileKind;
use parking_lot::Mutex;

use crate::reply::blank_attr;
use crate::snapshot_dir;

/// Name of the directory at the root.
pub const DIR_NAME: &[u8] = b".gpufs";
/// First inode number of virtual entries: above every real one (real ones are 32-bit).
const FIRST: u64 = 1 << 40;
pub const GPUFS_DIR: u64 = FIRST;
pub const SEARCH_DIR: u64 = FIRST + 1;
/// `.gpufs/snapshots` (its entries are `snapshot_dir`'s).
pub const SNAPSHOTS_DIR: u64 = FIRST + 2;
/// Links remembered before the table is cleared (each `ls` of a search makes new ones).
const MAX_LINKS: usize = 1 << 20;

/// What a virtual inode is.
#[derive(Clone, Debug)]
enum Node {
    Pattern(Vec<u8>),
    Link(Vec<u8>),
}

#[derive(Default)]
struct Table {
    nodes: HashMap<u64, Node>,
    patterns: HashMap<Vec<u8>, u64>,
    next: u64,
}

/// The virtual part of the namespace.
pub struct SearchDir {
    table: Mutex<Table>,
}

impl Default for SearchDir {
    fn default() -> Self {
        SearchDir {
            table: Mutex::new(Table {
                next: FIRST + 3,
                ..Default::default()
            }),
        }
    }
}

pub fn is_virtual(ino: u64) -> bool {
    ino >= FIRST
}

/// The query a directory name asks for.
pub fn parse(name: &[u8]) -> Result<NameQuery, FsError> {
    let (fold, rest) = match name.first() {
        Some(b'i')
            if name.starts_with(b"i:")
                || name.starts_with(b"iglob:")
                || name.starts_with(b"iregex:") =>
        {
            (true, &name[1..])
        }
        _ => (false, name),
    };
    let q = if let Some(p) = rest.strip_prefix(b"glob:") {
        NameQuery::Glob {
            pattern: p.to_vec(),
            fold,
        }
    } else if let Some(p) = rest.strip_prefix(b"regex:") {
        let pattern = String::from_utf8(p.to_vec())
            .map_err(|_| FsError::BadQuery("regex is not UTF-8".into()))?;
        NameQuery::Regex { pattern, fold }
    } else {
        let needle = rest.strip_prefix(b":").unwrap_or(rest).to_vec();
        NameQuery::Substring { needle, fold }
    };
    NameMatcher::new(&q).map_err(|e| FsError::BadQuery(e.to_string()))?;
    Ok(q)
}

fn dir_attr(ino: u64) -> Attr {
    Attr {
        perm: 0o555,
        nlink: 2,
        blksize: 4096,
        ..blank_attr(ino, FileKind::Directory)
    }
}

fn link_attr(ino: u64, target: &[u8]) -> Attr {
    Attr {
        kind: FileKind::Symlink,
        perm: 0o777,
        nlink: 1,
        size: target.len() as u64,
        ..dir_attr(ino)
    }
}

/// One result: a unique link name and the link's target (relative, so it works
/// wherever the filesystem is mounted).
pub struct Entry {
    pub name: Vec<u8>,
    pub target: Vec<u8>,
}

impl SearchDir {
    /// Attributes of virtual inode `ino`.
    pub fn getattr(&self, fs: &Filesystem, ino: u64) -> Result<Attr, FsError> {
        if snapshot_dir::is_snapshot(ino) {
            return snapshot_dir::getattr(fs, ino);
        }
        if ino == GPUFS_DIR || ino == SEARCH_DIR || ino == SNAPSHOTS_DIR {
            return Ok(dir_attr(ino));
        }
        match self.table.lock().nodes.get(&ino) {
            Some(Node::Pattern(_)) => Ok(dir_attr(ino)),
            Some(Node::Link(t)) => Ok(link_attr(ino, t)),
            None => Err(FsError::NotFound),
        }
    }

    pub fn readlink(&self, fs: &Filesystem, ino: u64) -> Result<Vec<u8>, FsError> {
        if snapshot_dir::is_snapshot(ino) {
            return snapshot_dir::readlink(fs, ino);
        }
        match self.table.lock().nodes.get(&ino) {
            Some(Node::Link(t)) => Ok(t.clone()),
            _ => Err(FsError::Invalid("not a symbolic link")),
        }
    }

    /// The directory inode of a pattern (made on first use).
    fn pattern_ino(&self, name: &[u8]) -> u64 {
        let mut t = self.table.lock();
        if let Some(&ino) = t.patterns.get(name) {
            return ino;
        }
        let ino = t.next;
        t.next += 1;
        t.patterns.insert(name.to_vec(), ino);
        t.nodes.insert(ino, Node::Pattern(name.to_vec()));
        ino
    }

    fn link_ino(&self, target: &[u8]) -> u64 {
        let mut t = self.table.lock();
        if t.nodes.len() > MAX_LINKS {
            let keep: HashMap<u64, Node> = t
                .nodes
                .iter()
                .filter(|(_, n)| matches!(n, Node::Pattern(_)))
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            t.nodes = keep;
        }
        let ino = t.next;
        t.next += 1;
        t.nodes.insert(ino, Node::Link(target.to_vec()));
        ino
    }

    /// Lookup of `name` in virtual (or root, for `.gpufs`) directory `parent`.
    pub fn lookup(
        &self,
        fs: &Filesystem,
        compute: &LazyCompute,
        parent: u64,
        name: &[u8],
        who: (Caller, &[u32]),
    ) -> Result<Attr, FsError> {
        if snapshot_dir::is_snapshot(parent) {
            return snapshot_dir::lookup(fs, parent, name);
        }
        match parent {
            1 if name == DIR_NAME => Ok(dir_attr(GPUFS_DIR)),
            GPUFS_DIR if name == b"search" => Ok(dir_attr(SEARCH_DIR)),
            GPUFS_DIR if name == b"snapshots" => Ok(dir_attr(SNAPSHOTS_DIR)),
            GPUFS_DIR => Err(FsError::NotFound),
            SNAPSHOTS_DIR => snapshot_dir::lookup_snapshot(fs, name),
            SEARCH_DIR => {
                parse(name)?;
                Ok(dir_attr(self.pattern_ino(name)))
            }
            _ => {
                let entries = self.entries(fs, compute, parent, who)?;
                let e = entries
                    .into_iter()
                    .find(|e| e.name == name)
                    .ok_or(FsError::NotFound)?;
                let ino = self.link_ino(&e.target);
                Ok(link_attr(ino, &e.target))
            }
        }
    }

    /// The links directory `dir` holds now ("." and ".." aside).
    pub fn entries(
        &self,
        fs: &Filesystem,
        compute: &LazyCompute,
        dir: u64,
        (caller, groups): (Caller, &[u32]),
    ) -> Result<Vec<Entry>, FsError> {
        let pattern = match self.table.lock().nodes.get(&dir) {
            Some(Node::Pattern(p)) => p.clone(),
            _ => return Ok(Vec::new()),
        };
        let compute = compute.get().map_err(FsError::Compute)?;
        let q = SearchQuery {
            pattern: parse(&pattern)?,
            full_path: false,
            kinds: ALL_KINDS,
            min_size: None,
            max_size: None,
            newer_ns: None,
            older_ns: None,
            under: None,
            limit: None,
            want_paths: true,
            text: None,
        };
        let hits = fs.search(compute, &q, caller, groups)?;
        let mut seen: HashMap<Vec<u8>, u32> = HashMap::new();
        Ok((0..hits.len())
            .map(|i| {
                let path = hits.path(i);
                let base = path.rsplit(|&b| b == b'/').next().unwrap_or(&[]).to_vec();
                let n = seen.entry(base.clone()).or_insert(0);
                *n += 1;
                let name = if *n == 1 {
                    base
                } else {
                    let mut b = base;
                    b.extend_from_slice(format!("~{n}").as_bytes());
                    b
                };
                // From MOUNT/.gpufs/search/PATTERN/ up three levels is MOUNT.
                let mut target = b"../../..".to_vec();
                target.extend_from_slice(path);
                Entry { name, target }
            })
            .collect())
    }

    /// Directory entries of virtual directory `dir` after `offset`, as (ino, kind, name).
    pub fn listing(
        &self,
        fs: &Filesystem,
        compute: &LazyCompute,
        dir: u64,
        who: (Caller, &[u32]),
    ) -> Result<Vec<(u64, FileKind, Vec<u8>)>, FsError> {
        let mut out = vec![
            (dir, FileKind::Directory, b".".to_vec()),
            (dir, FileKind::Directory, b"..".to_vec()),
        ];
        match dir {
            GPUFS_DIR => {
                out.push((SEARCH_DIR, FileKind::Directory, b"search".to_vec()));
                out.push((SNAPSHOTS_DIR, FileKind::Directory, b"snapshots".to_vec()));
            }
            SEARCH_DIR => {}
            SNAPSHOTS_DIR => out.extend(
                snapshot_dir::snapshot_entries(fs)
                    .into_iter()
                    .map(|(ino, name)| (ino, FileKind::Directory, name)),
            ),
            _ => {
                for e in self.entries(fs, compute, dir, who)? {
                    let ino = self.link_ino(&e.target);
                    out.push((ino, FileKind::Symlink, e.name));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pick_the_pattern_kind() {
        let cases: [(&[u8], &str, bool); 7] = [
            (b"report", "substring", false),
            (b"i:report", "substring", true),
            (b"glob:*.jpg", "glob", false),
            (b"iglob:*.JPG", "glob", true),
            (b"regex:^a.c$", "regex", false),
            (b"iregex:x", "regex", true),
            (b"index", "substring", false),
        ];
        for (name, kind, want_fold) in cases {
            let (got, fold) = match parse(name) {
                Ok(NameQuery::Substring { fold, .. }) => ("substring", fold),
                Ok(NameQuery::Glob { fold, .. }) => ("glob", fold),
                Ok(NameQuery::Regex { fold, .. }) => ("regex", fold),
                other => panic!("{name:?}: {other:?}"),
            };
            assert_eq!((got, fold), (kind, want_fold), "{name:?}");
        }
        assert!(parse(b"regex:(").is_err());
        assert!(parse(b"glob:").is_err());
    }
}
