//! Checks of a recovered filesystem: reading its whole tree back, comparing trees, fsck.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use gpufs_core::device::{Device, FaultDevice};
use gpufs_core::{fsck, Filesystem};
use gpufs_format::FileKind;

use crate::model::{join, Blob, CNode, Tree};
use crate::ROOT;

pub(crate) fn trees_equal(a: &Tree, b: &Tree, bytes: bool) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((pa, na), (pb, nb))| pa == pb && na.same(nb, bytes))
}

pub(crate) fn tree_diff(got: &Tree, want: &Tree) -> String {
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
pub(crate) fn walk(fs: &Filesystem) -> Result<Tree, String> {
    let mut tree = Tree::new();
    let mut inos: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut files: Vec<(String, u64, u32, Blob)> = Vec::new();
    let root = fs
        .getattr(ROOT)
        .map_err(|e| format!("getattr(root): {e}"))?;
    tree.insert(String::new(), CNode::Dir { nlink: root.nlink });
    let mut stack = vec![(String::new(), ROOT, ROOT)];
    while let Some((dir, ino, parent)) = stack.pop() {
        let entries = list_dir(fs, &dir, ino, parent)?;
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
                    let data = read_file(fs, &path, eino, a.size)?;
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

/// The listing of directory `dir` (inode `ino`, below `parent`), checked to start
/// with "." and "..".
fn list_dir(
    fs: &Filesystem,
    dir: &str,
    ino: u64,
    parent: u64,
) -> Result<Vec<(Vec<u8>, u64, FileKind)>, String> {
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
    Ok(entries)
}

/// The `size` bytes of file `ino` (at `path`), read in 1 MiB calls.
fn read_file(fs: &Filesystem, path: &str, ino: u64, size: u64) -> Result<Vec<u8>, String> {
    let mut data = Vec::with_capacity(size as usize);
    while (data.len() as u64) < size {
        let chunk = fs
            .read(ino, data.len() as u64, 1 << 20)
            .map_err(|e| format!("read(/{path}): {e}"))?;
        if chunk.is_empty() {
            return Err(format!("/{path}: short read at {}", data.len()));
        }
        data.extend_from_slice(&chunk);
    }
    if data.len() as u64 != size {
        return Err(format!("/{path}: read past the size {size}"));
    }
    Ok(data)
}

pub(crate) fn fsck_image(img: Vec<u8>, when: &str) -> Result<(), String> {
    let dev: Arc<dyn Device> = Arc::new(FaultDevice::new(img));
    let keys = crate::devices::keys_of(dev.as_ref())?;
    let report = fsck::check_with_keys(dev, keys, None, &mut |_, _| {})
        .map_err(|e| format!("fsck {when}: {e}"))?;
    if !report.problems.is_empty() {
        return Err(format!("fsck {when}: {:?}", report.problems));
    }
    Ok(())
}
