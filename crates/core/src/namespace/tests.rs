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
