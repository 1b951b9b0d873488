//! `gpufs diff` compares only the checkpoint segments that changed: over random changes
//! to a namespace of several segments it says exactly what a comparison of everything
//! says, between snapshots and against the live filesystem, before and after a remount.

use super::*;
use crate::fs::diff::{diff_namespaces, diff_namespaces_in};
use crate::namespace::Namespace;
use gpufs_format::{InodeRecord, JournalOp};

/// A deterministic stream of numbers.
pub(super) fn stream(mut seed: u64) -> impl FnMut() -> u32 {
    move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    }
}

/// Random creates, unlinks (numbers then reused), renames, writes, xattrs and mkdirs.
pub(super) fn churn(
    fs: &Filesystem,
    dirs: &mut Vec<u64>,
    next: &mut impl FnMut() -> u32,
    ops: u32,
) {
    for i in 0..ops {
        let dir = dirs[next() as usize % dirs.len()];
        let entries = list(fs, dir);
        let files: Vec<_> = entries
            .iter()
            .filter(|e| e.3 == FileKind::Regular)
            .collect();
        match next() % 6 {
            0 | 1 => {
                create_file(fs, dir, format!("c{i}-{}", next()).as_bytes(), b"new");
            }
            2 if !files.is_empty() => {
                let f = files[next() as usize % files.len()];
                fs.unlink(dir, &f.1).unwrap();
            }
            3 if !files.is_empty() => {
                let f = files[next() as usize % files.len()];
                let to = dirs[next() as usize % dirs.len()];
                let name = format!("m{i}-{}", next());
                fs.rename(dir, &f.1, to, name.as_bytes(), RenameMode::Replace)
                    .unwrap();
            }
            4 if !files.is_empty() => {
                let f = files[next() as usize % files.len()];
                if next().is_multiple_of(2) {
                    fs.write(f.0, 0, b"changed").unwrap();
                } else {
                    fs.setxattr(f.0, b"user.k", &next().to_le_bytes(), 0)
                        .unwrap();
                }
            }
            _ => {
                let d = fs
                    .mkdir(
                        dir,
                        format!("d{i}-{}", next()).as_bytes(),
                        0o755,
                        Caller::ROOT,
                    )
                    .unwrap()
                    .ino;
                dirs.push(d);
            }
        }
    }
}

/// `count` directories `dirNN` of 100 one-byte files each (101 inode slots a directory,
/// so ten directories to a segment); their inode numbers.
pub(super) fn tree_of(fs: &Filesystem, count: u32) -> Vec<u64> {
    (0..count)
        .map(|d| {
            let dir = fs
                .mkdir(ROOT, format!("dir{d:02}").as_bytes(), 0o755, Caller::ROOT)
                .unwrap()
                .ino;
            for f in 0..100 {
                create_file(fs, dir, format!("f{f:03}").as_bytes(), b"x");
            }
            dir
        })
        .collect()
}

#[test]
fn diff_of_the_segments_that_changed_is_the_diff_of_everything() {
    let (dev, fs) = fresh_sized(256 << 20);
    let mut dirs = tree_of(&fs, 40);
    // Changes in the first ten directories (the first segment) and in new inodes (the
    // last ones): the segments between stay as they were.
    let mut middle = dirs[20..30].to_vec();
    dirs.truncate(10);
    let mut next = stream(7);
    snap(&fs, "a");
    churn(&fs, &mut dirs, &mut next, 60);
    snap(&fs, "b");
    churn(&fs, &mut dirs, &mut next, 60);
    let (_dev, fs) = close_and_remount(&dev, fs);
    for round in 0..2 {
        let a = fs.snapshot_view(fs.snapshot_names()[0].0).unwrap();
        let b = fs.snapshot_view(fs.snapshot_names()[1].0).unwrap();
        let only = a
            .segments
            .differing(&b.segments, a.ns.inode_slots().max(b.ns.inode_slots()));
        assert!(!only.is_empty() && only.len() <= 3, "{only:?}");
        assert!(!only.contains(&(2048, 3072)), "{only:?}");
        let full = diff_namespaces(&a.ns, &b.ns);
        assert!(full.len() > 20, "{full:?}");
        let got = fs.diff(b"a", Some(b"b")).unwrap();
        assert!(
            got == full,
            "round {round}: {} changes, not {}",
            got.len(),
            full.len()
        );
        let live = {
            let g = fs.lock();
            diff_namespaces(&b.ns, g.vol.namespace())
        };
        assert!(!live.is_empty());
        let got = fs.diff(b"b", None).unwrap();
        assert!(
            got == live,
            "round {round}: {} changes, not {}",
            got.len(),
            live.len()
        );
        // Changes not yet in a checkpoint count too, in a segment the checkpoint has
        // as it was in `b`; and (the second time) in segments past the table's end at
        // the last checkpoint.
        churn(&fs, &mut middle, &mut next, 20);
        if round == 0 {
            // Past the end of the table: a directory in a segment no checkpoint has
            // seen, holding a new file and one moved in.
            for f in 0..1100 {
                create_file(&fs, middle[0], format!("g{f}").as_bytes(), b"");
            }
            let dir = fs.mkdir(ROOT, b"grown", 0o755, Caller::ROOT).unwrap().ino;
            assert!(dir > 5120, "{dir}");
            create_file(&fs, dir, b"new", b"");
            let from = list(&fs, dirs[1]);
            let f = from.iter().find(|e| e.3 == FileKind::Regular).unwrap();
            fs.rename(dirs[1], &f.1, dir, b"moved", RenameMode::Replace)
                .unwrap();
        }
    }
}

fn snap(fs: &Filesystem, name: &str) {
    fs.create_snapshot(name.as_bytes()).unwrap();
}

/// A slot that holds another file on the other side, named from a directory whose segment
/// reads the same on both: the restricted diff still finds the change (the directory's
/// segment is brought in), for a file and for a directory.
#[test]
fn a_reused_number_named_from_an_unchanged_directory_is_found() {
    let rec = |kind: FileKind, generation: u32| InodeRecord {
        mode: kind.mode_bits() | 0o755,
        nlink: if kind == FileKind::Directory { 2 } else { 1 },
        generation,
        ..Default::default()
    };
    for kind in [FileKind::Regular, FileKind::Directory] {
        let mut old = Namespace::empty();
        let mut sp = Vec::new();
        for op in [
            JournalOp::InodePut {
                ino: 1,
                rec: rec(FileKind::Directory, 0),
            },
            JournalOp::InodePut {
                ino: 1500,
                rec: rec(kind, 1),
            },
            JournalOp::DirentPut {
                parent: 1,
                ino: 1500,
                kind: kind as u8,
                cookie: 3,
                name: b"x".to_vec(),
            },
        ] {
            old.apply(&op, &mut sp).unwrap();
        }
        let mut new = old.clone();
        new.apply(
            &JournalOp::InodePut {
                ino: 1500,
                rec: rec(kind, 2),
            },
            &mut sp,
        )
        .unwrap();
        let full = diff_namespaces(&old, &new);
        assert!(!full.is_empty(), "{kind:?}");
        let only = [(1024, 2048)];
        assert_eq!(
            diff_namespaces_in(&old, &new, Some(&only)),
            full,
            "{kind:?}"
        );
    }
}
