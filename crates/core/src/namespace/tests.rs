use super::*;
use gpufs_format::{FileKind, JournalOp};

fn dir_rec() -> InodeRecord {
    InodeRecord {
        mode: FileKind::Directory.mode_bits() | 0o755,
        nlink: 2,
        ..Default::default()
    }
}

fn file_rec() -> InodeRecord {
    InodeRecord {
        mode: FileKind::Regular.mode_bits() | 0o644,
        nlink: 1,
        ..Default::default()
    }
}

fn ns_with_root() -> Namespace {
    let mut ns = Namespace::empty();
    ns.apply(
        &JournalOp::InodePut {
            ino: 1,
            rec: dir_rec(),
        },
        &mut Vec::new(),
    )
    .unwrap();
    ns
}

#[test]
fn entries_are_found_listed_and_removed() {
    let mut ns = ns_with_root();
    let mut sp = Vec::new();
    for i in 0..1000u32 {
        let ino = ns.next_free_ino().unwrap();
        ns.apply(
            &JournalOp::InodePut {
                ino,
                rec: file_rec(),
            },
            &mut sp,
        )
        .unwrap();
        let cookie = ns.next_cookie(1);
        ns.apply(
            &JournalOp::DirentPut {
                parent: 1,
                ino,
                kind: FileKind::Regular as u8,
                cookie,
                name: format!("f{i}").into_bytes(),
            },
            &mut sp,
        )
        .unwrap();
    }
    assert_eq!(ns.entries_after(1, 0).count(), 1000);
    let id = ns.lookup(1, b"f500").unwrap();
    let c = ns.dirent(id).cookie;
    // Removing entries mid-listing does not move the ones after the cookie.
    let after: Vec<_> = ns.entries_after(1, c).map(|(c, _)| c).collect();
    ns.apply(
        &JournalOp::DirentDel {
            parent: 1,
            name: b"f10".to_vec(),
        },
        &mut sp,
    )
    .unwrap();
    let after2: Vec<_> = ns.entries_after(1, c).map(|(c, _)| c).collect();
    assert_eq!(after, after2);
    assert!(ns.lookup(1, b"f10").is_none());
    assert!(ns.lookup(1, b"f11").is_some());
    ns.compact_names();
    assert_eq!(
        ns.name_bytes(ns.dirent(ns.lookup(1, b"f999").unwrap())),
        b"f999"
    );
}

#[test]
fn replay_of_invalid_ops_is_refused_without_change() {
    let mut ns = ns_with_root();
    let mut sp = Vec::new();
    // Entry to a free inode.
    assert!(ns
        .apply(
            &JournalOp::DirentPut {
                parent: 1,
                ino: 9,
                kind: 1,
                cookie: 3,
                name: b"x".to_vec()
            },
            &mut sp
        )
        .is_err());
    assert_eq!(ns.entries_after(1, 0).count(), 0);
    assert!(ns
        .apply(
            &JournalOp::DirentDel {
                parent: 1,
                name: b"x".to_vec()
            },
            &mut sp
        )
        .is_err());
    assert!(ns.apply(&JournalOp::InodeFree { ino: 5 }, &mut sp).is_err());
}

#[test]
fn image_round_trip_keeps_everything() {
    let mut ns = ns_with_root();
    let mut sp = Vec::new();
    ns.apply(
        &JournalOp::InodePut {
            ino: 2,
            rec: file_rec(),
        },
        &mut sp,
    )
    .unwrap();
    ns.apply(
        &JournalOp::DirentPut {
            parent: 1,
            ino: 2,
            kind: 1,
            cookie: 7,
            name: b"a".to_vec(),
        },
        &mut sp,
    )
    .unwrap();
    let ptr = RecordPtr {
        block: 5,
        logical_len: 100,
        phys_len: 100,
        ..Default::default()
    };
    ns.apply(
        &JournalOp::ExtentPut {
            ino: 2,
            index: 3,
            ptr,
        },
        &mut sp,
    )
    .unwrap();
    ns.apply(
        &JournalOp::XattrPut {
            ino: 2,
            name: b"user.k".to_vec(),
            value: b"v".to_vec(),
        },
        &mut sp,
    )
    .unwrap();
    let img = ns.to_image(vec![1]);
    let (back, bm) = Namespace::from_image(img.clone()).unwrap();
    assert_eq!(bm, vec![1]);
    assert_eq!(back.to_image(vec![1]), img);
    assert_eq!(back.extent(2, 3), Some(&ptr));
    assert_eq!(back.next_cookie(1), 8);
}

/// A copy of the compute arrays kept current only through `take_dirty` ranges, as the
/// GPU mirror is: after any mix of ops it must equal the real arrays.
#[derive(Default)]
struct RangeMirror {
    dirents: Vec<DirentRecord>,
    names: Vec<u8>,
    inodes: Vec<InodeRecord>,
    index: Vec<u32>,
    allocated: Vec<u64>,
    dir_entry: Vec<u32>,
}

fn sync<T: Copy + Default>(copy: &mut Vec<T>, real: &[T], d: &gpufs_compute::view::DirtyRanges) {
    copy.resize(real.len(), T::default());
    for &(s, e) in d.ranges() {
        let (s, e) = (s as usize, (e as usize).min(real.len()));
        if s < e {
            copy[s..e].copy_from_slice(&real[s..e]);
        }
    }
}

impl RangeMirror {
    fn update(&mut self, ns: &mut Namespace) {
        let mut d = ns.take_dirty();
        d.names.normalize();
        let v = ns.view();
        sync(&mut self.dirents, v.dirents, &d.dirents);
        sync(&mut self.names, v.names, &d.names);
        sync(&mut self.inodes, v.inodes, &d.inodes);
        sync(&mut self.index, v.index, &d.index);
        sync(&mut self.allocated, v.allocated, &d.allocated);
        sync(&mut self.dir_entry, v.dir_entry, &d.dir_entry);
        assert_eq!(self.dirents, v.dirents);
        assert_eq!(self.names, v.names);
        assert_eq!(self.inodes, v.inodes);
        assert_eq!(self.index, v.index);
        assert_eq!(self.allocated, v.allocated);
        assert_eq!(self.dir_entry, v.dir_entry);
    }
}

#[test]
fn dirty_ranges_cover_every_change_and_views_resolve_paths() {
    use gpufs_compute::kernels::name_match::{NameMatcher, NameQuery};
    use gpufs_compute::kernels::{path_build, path_lookup};
    let mut ns = ns_with_root();
    let mut mirror = RangeMirror::default();
    mirror.update(&mut ns);
    let mut sp = Vec::new();
    let mut dirs = vec![1u32];
    let mut files: Vec<(u32, Vec<u8>)> = Vec::new();
    let mut seed = 12345u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as u32
    };
    for round in 0..40 {
        for i in 0..50 {
            let parent = dirs[next() as usize % dirs.len()];
            let is_dir = next() % 5 == 0;
            let ino = ns.next_free_ino().unwrap();
            let rec = if is_dir { dir_rec() } else { file_rec() };
            ns.apply(&JournalOp::InodePut { ino, rec }, &mut sp)
                .unwrap();
            let name = format!("n{round}-{i}").into_bytes();
            let kind = if is_dir {
                FileKind::Directory
            } else {
                FileKind::Regular
            } as u8;
            let cookie = ns.next_cookie(parent);
            ns.apply(
                &JournalOp::DirentPut {
                    parent,
                    ino,
                    kind,
                    cookie,
                    name: name.clone(),
                },
                &mut sp,
            )
            .unwrap();
            if is_dir {
                dirs.push(ino);
            } else {
                let ptr = RecordPtr {
                    block: 100 + u64::from(ino),
                    logical_len: 4096,
                    phys_len: 4096,
                    ..Default::default()
                };
                ns.apply(&JournalOp::ExtentPut { ino, index: 0, ptr }, &mut sp)
                    .unwrap();
                files.push((parent, name));
            }
        }
        // Unlink a few files.
        for _ in 0..10 {
            if files.is_empty() {
                break;
            }
            let (parent, name) = files.swap_remove(next() as usize % files.len());
            let id = ns.lookup(parent, &name).unwrap();
            let ino = ns.dirent(id).ino;
            ns.apply(&JournalOp::DirentDel { parent, name }, &mut sp)
                .unwrap();
            ns.apply(&JournalOp::InodeFree { ino }, &mut sp).unwrap();
        }
        if round % 7 == 6 {
            ns.compact_names();
        }
        mirror.update(&mut ns);
        // Whole-arena name scans (through the owner map, with dead names and reused
        // entry slots) find exactly what a scan entry by entry finds.
        for q in [
            NameQuery::Substring {
                needle: b"1-1".to_vec(),
                fold: false,
            },
            NameQuery::Substring {
                needle: b"N3".to_vec(),
                fold: true,
            },
            NameQuery::Glob {
                pattern: b"n2*-4?".to_vec(),
                fold: false,
            },
            NameQuery::Regex {
                pattern: "1-[0-4]+$".into(),
                fold: false,
            },
        ] {
            let m = NameMatcher::new(&q).unwrap();
            let view = ns.view();
            assert_eq!(m.cpu(&view), m.cpu_per_entry(&view), "round {round}: {q:?}");
        }
    }
    // Every live entry's path resolves back to its inode, through the shared index.
    let view = ns.view();
    let ids: Vec<u32> = ns.live_dirents().map(|(id, _)| id).collect();
    let paths = path_build::cpu(&view, &ids);
    let refs: Vec<&[u8]> = paths.iter().collect();
    let found = path_lookup::cpu(&view, &refs);
    for (k, &id) in ids.iter().enumerate() {
        assert!(!paths.get(k).is_empty());
        assert_eq!(found[k], ns.dirent(id).ino);
    }
    for (ino, _) in ns.live_inode_iter() {
        let want: u64 = ns
            .extents(ino)
            .iter()
            .map(|(_, p)| p.block_count() * 4096)
            .sum();
        assert_eq!(ns.allocated_bytes(ino), want);
    }
}
