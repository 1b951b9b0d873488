//! Names: lookup, create, rename, link counts, rmdir, name lengths, readdir cookies.

use std::collections::BTreeMap;

use gpufs_format::records::mode_bits::S_IFIFO;

use super::*;

#[test]
fn create_lookup_getattr() {
    let (_dev, fs) = fresh();
    let root = fs.getattr(ROOT).unwrap();
    assert_eq!(root.kind, FileKind::Directory);
    assert_eq!(root.nlink, 2);
    assert_eq!(root.perm, 0o755);

    let a = fs.create(ROOT, b"a", 0o640, USER).unwrap();
    assert_eq!(a.kind, FileKind::Regular);
    assert_eq!(a.perm, 0o640);
    assert_eq!((a.uid, a.gid), (1000, 100));
    assert_eq!(a.nlink, 1);
    assert_eq!(a.size, 0);
    assert_eq!(a.blocks, 0);
    assert_eq!(a.blksize, R as u32);
    assert_ne!(a.ino, ROOT);
    assert_eq!(fs.lookup(ROOT, b"a").unwrap(), a);
    assert_eq!(fs.getattr(a.ino).unwrap(), a);
    assert_err!(fs.lookup(ROOT, b"b"), FsError::NotFound);
    assert_err!(fs.create(ROOT, b"a", 0o644, USER), FsError::Exists);
    // A file is no parent.
    assert_err!(fs.lookup(a.ino, b"x"), FsError::NotDir);
    assert_err!(fs.create(a.ino, b"x", 0o644, USER), FsError::NotDir);
    assert_err!(fs.getattr(9999), FsError::NotFound);
    for bad in [&b"."[..], b"..", b"", b"a/b", b"a\0b"] {
        assert!(
            matches!(fs.create(ROOT, bad, 0o644, USER), Err(FsError::Invalid(_))),
            "{bad:?}"
        );
    }
    let d = fs.mkdir(ROOT, b"d", 0o750, USER).unwrap();
    assert_eq!(d.kind, FileKind::Directory);
    assert_eq!(d.nlink, 2);
    assert_eq!(d.perm, 0o750);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    assert_eq!(
        names(&fs, ROOT),
        BTreeSet::from([b"a".to_vec(), b"d".to_vec()])
    );
    assert_eq!(dotdot(&fs, d.ino), ROOT);
    assert_eq!(dotdot(&fs, ROOT), ROOT);
}

#[test]
fn rename_replaces_files_and_empty_dirs() {
    let (dev, fs) = fresh();
    let a = create_file(&fs, ROOT, b"a", b"AAAA");
    let b = create_file(&fs, ROOT, b"b", b"BB");
    fs.rename(ROOT, b"a", ROOT, b"b", RenameMode::Replace)
        .unwrap();
    assert_eq!(fs.lookup(ROOT, b"b").unwrap().ino, a);
    assert_err!(fs.lookup(ROOT, b"a"), FsError::NotFound);
    assert_err!(fs.getattr(b), FsError::NotFound);
    same(read_all(&fs, a), b"AAAA");
    assert_eq!(fs.getattr(a).unwrap().nlink, 1);

    // A directory replaces an empty directory in another parent.
    let p = fs.mkdir(ROOT, b"p", 0o755, Caller::ROOT).unwrap().ino;
    let q = fs.mkdir(ROOT, b"q", 0o755, Caller::ROOT).unwrap().ino;
    let d1 = fs.mkdir(p, b"d1", 0o755, Caller::ROOT).unwrap().ino;
    fs.mkdir(d1, b"inner", 0o755, Caller::ROOT).unwrap();
    let d2 = fs.mkdir(q, b"d2", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.getattr(p).unwrap().nlink, 3);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 4);
    fs.rename(p, b"d1", q, b"d2", RenameMode::Replace).unwrap();
    assert_err!(fs.getattr(d2), FsError::NotFound);
    assert_eq!(fs.lookup(q, b"d2").unwrap().ino, d1);
    assert_eq!(fs.getattr(p).unwrap().nlink, 2);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(fs.getattr(d1).unwrap().nlink, 3);
    assert_eq!(dotdot(&fs, d1), q);
    assert!(names(&fs, p).is_empty());

    // Within one directory, a directory over an empty directory.
    let e1 = fs.mkdir(q, b"e1", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.getattr(q).unwrap().nlink, 4);
    fs.rename(q, b"d2", q, b"e1", RenameMode::Replace).unwrap();
    assert_err!(fs.getattr(e1), FsError::NotFound);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(names(&fs, q), BTreeSet::from([b"e1".to_vec()]));

    // Errors leave everything in place.
    create_file(&fs, q, b"file", b"f");
    // Directory over a non-empty directory.
    let full = fs.mkdir(ROOT, b"full", 0o755, Caller::ROOT).unwrap().ino;
    create_file(&fs, full, b"x", b"");
    assert_err!(
        fs.rename(q, b"e1", ROOT, b"full", RenameMode::Replace),
        FsError::NotEmpty
    );
    // File over a directory, directory over a file.
    assert_err!(
        fs.rename(q, b"file", ROOT, b"full", RenameMode::Replace),
        FsError::IsDir
    );
    assert_err!(
        fs.rename(q, b"e1", q, b"file", RenameMode::Replace),
        FsError::NotDir
    );
    assert_err!(
        fs.rename(q, b"nope", q, b"x", RenameMode::Replace),
        FsError::NotFound
    );
    assert_eq!(
        names(&fs, q),
        BTreeSet::from([b"e1".to_vec(), b"file".to_vec()])
    );
    assert_eq!(names(&fs, full), BTreeSet::from([b"x".to_vec()]));
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 5);

    // Renaming onto itself, or onto another link of the same inode, does nothing.
    fs.rename(q, b"file", q, b"file", RenameMode::Replace)
        .unwrap();
    let f = fs.lookup(q, b"file").unwrap().ino;
    fs.link(f, ROOT, b"flink").unwrap();
    fs.rename(q, b"file", ROOT, b"flink", RenameMode::Replace)
        .unwrap();
    assert_eq!(fs.lookup(q, b"file").unwrap().ino, f);
    assert_eq!(fs.lookup(ROOT, b"flink").unwrap().ino, f);
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);

    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.lookup(q, b"e1").unwrap().ino, d1);
    assert_eq!(fs.getattr(d1).unwrap().nlink, 3);
    assert_eq!(fs.getattr(q).unwrap().nlink, 3);
    assert_eq!(fs.getattr(p).unwrap().nlink, 2);
    assert_eq!(dotdot(&fs, d1), q);
    same(read_all(&fs, a), b"AAAA");
}

#[test]
fn rename_noreplace_and_exchange() {
    let (dev, fs) = fresh();
    let a = create_file(&fs, ROOT, b"a", b"A");
    let b = create_file(&fs, ROOT, b"b", b"B");
    assert_err!(
        fs.rename(ROOT, b"a", ROOT, b"b", RenameMode::NoReplace),
        FsError::Exists
    );
    assert_err!(
        fs.rename(ROOT, b"a", ROOT, b"a", RenameMode::NoReplace),
        FsError::Exists
    );
    assert_eq!(fs.lookup(ROOT, b"a").unwrap().ino, a);
    assert_eq!(fs.lookup(ROOT, b"b").unwrap().ino, b);
    fs.rename(ROOT, b"a", ROOT, b"c", RenameMode::NoReplace)
        .unwrap();
    assert_eq!(fs.lookup(ROOT, b"c").unwrap().ino, a);

    // Exchange of two files in one directory.
    fs.rename(ROOT, b"c", ROOT, b"b", RenameMode::Exchange)
        .unwrap();
    assert_eq!(fs.lookup(ROOT, b"c").unwrap().ino, b);
    assert_eq!(fs.lookup(ROOT, b"b").unwrap().ino, a);
    same(read_all(&fs, fs.lookup(ROOT, b"b").unwrap().ino), b"A");
    assert_err!(
        fs.rename(ROOT, b"c", ROOT, b"missing", RenameMode::Exchange),
        FsError::NotFound
    );

    // A directory (with a subdirectory) and a file across parents.
    let p1 = fs.mkdir(ROOT, b"p1", 0o755, Caller::ROOT).unwrap().ino;
    let p2 = fs.mkdir(ROOT, b"p2", 0o755, Caller::ROOT).unwrap().ino;
    let x = fs.mkdir(p1, b"x", 0o755, Caller::ROOT).unwrap().ino;
    fs.mkdir(x, b"sub", 0o755, Caller::ROOT).unwrap();
    let y = create_file(&fs, p2, b"y", b"why");
    assert_eq!(fs.getattr(p1).unwrap().nlink, 3);
    assert_eq!(fs.getattr(p2).unwrap().nlink, 2);
    fs.rename(p1, b"x", p2, b"y", RenameMode::Exchange).unwrap();
    assert_eq!(fs.lookup(p1, b"x").unwrap().ino, y);
    assert_eq!(fs.lookup(p1, b"x").unwrap().kind, FileKind::Regular);
    assert_eq!(fs.lookup(p2, b"y").unwrap().ino, x);
    assert_eq!(fs.getattr(p1).unwrap().nlink, 2);
    assert_eq!(fs.getattr(p2).unwrap().nlink, 3);
    assert_eq!(fs.getattr(x).unwrap().nlink, 3);
    assert_eq!(dotdot(&fs, x), p2);
    let kinds: BTreeMap<Vec<u8>, FileKind> = list(&fs, p2)
        .into_iter()
        .map(|(_, n, _, k)| (n, k))
        .collect();
    assert_eq!(kinds[&b"y".to_vec()], FileKind::Directory);

    // Two directories across parents: link counts do not move.
    let z = fs.mkdir(p1, b"z", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.getattr(p1).unwrap().nlink, 3);
    fs.rename(p1, b"z", p2, b"y", RenameMode::Exchange).unwrap();
    assert_eq!(fs.lookup(p1, b"z").unwrap().ino, x);
    assert_eq!(fs.lookup(p2, b"y").unwrap().ino, z);
    assert_eq!(fs.getattr(p1).unwrap().nlink, 3);
    assert_eq!(fs.getattr(p2).unwrap().nlink, 3);
    assert_eq!(dotdot(&fs, x), p1);
    assert_eq!(dotdot(&fs, z), p2);

    // A directory cannot be exchanged with something below itself.
    let deep = create_file(&fs, x, b"deep", b"");
    assert_err!(
        fs.rename(p1, b"z", x, b"deep", RenameMode::Exchange),
        FsError::Invalid(_)
    );
    assert_err!(
        fs.rename(x, b"deep", p1, b"z", RenameMode::Exchange),
        FsError::Invalid(_)
    );
    assert_eq!(fs.lookup(x, b"deep").unwrap().ino, deep);

    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.lookup(p1, b"z").unwrap().ino, x);
    assert_eq!(fs.lookup(p2, b"y").unwrap().ino, z);
    assert_eq!(fs.lookup(p1, b"x").unwrap().ino, y);
    assert_eq!(fs.getattr(p1).unwrap().nlink, 3);
    assert_eq!(fs.getattr(p2).unwrap().nlink, 3);
    assert_eq!(dotdot(&fs, x), p1);
    assert_eq!(dotdot(&fs, z), p2);
}

#[test]
fn rename_of_a_directory_below_itself_is_invalid() {
    let (_dev, fs) = fresh();
    let a = fs.mkdir(ROOT, b"a", 0o755, Caller::ROOT).unwrap().ino;
    let b = fs.mkdir(a, b"b", 0o755, Caller::ROOT).unwrap().ino;
    let c = fs.mkdir(b, b"c", 0o755, Caller::ROOT).unwrap().ino;
    for (np, nn) in [(a, &b"x"[..]), (b, b"x"), (c, b"x"), (c, b"a")] {
        assert!(
            matches!(
                fs.rename(ROOT, b"a", np, nn, RenameMode::Replace),
                Err(FsError::Invalid(_))
            ),
            "into {np}/{nn:?}"
        );
    }
    assert_err!(
        fs.rename(a, b"b", c, b"b2", RenameMode::NoReplace),
        FsError::Invalid(_)
    );
    assert_eq!(fs.lookup(ROOT, b"a").unwrap().ino, a);
    assert_eq!(fs.lookup(a, b"b").unwrap().ino, b);
    assert_eq!(fs.getattr(a).unwrap().nlink, 3);
    // Moving a subdirectory up is fine.
    fs.rename(b, b"c", ROOT, b"c", RenameMode::Replace).unwrap();
    assert_eq!(fs.getattr(b).unwrap().nlink, 2);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 4);
    assert_eq!(dotdot(&fs, c), ROOT);
}

#[test]
fn link_counts_and_rmdir() {
    let (dev, fs) = fresh();
    let f = create_file(&fs, ROOT, b"f", b"data");
    let d = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.link(f, d, b"g").unwrap().nlink, 2);
    assert_eq!(fs.link(f, ROOT, b"h").unwrap().nlink, 3);
    assert_eq!(fs.getattr(f).unwrap().nlink, 3);
    assert_eq!(fs.lookup(d, b"g").unwrap().ino, f);
    assert_err!(fs.link(f, ROOT, b"h"), FsError::Exists);
    assert_err!(fs.link(d, ROOT, b"dl"), FsError::NotPermitted);
    fs.unlink(ROOT, b"f").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 2);
    same(read_all(&fs, f), b"data");
    fs.unlink(ROOT, b"h").unwrap();
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    assert_err!(fs.unlink(ROOT, b"h"), FsError::NotFound);

    // Directories: 2 + subdirectories; files do not count.
    assert_eq!(fs.getattr(d).unwrap().nlink, 2);
    let s1 = fs.mkdir(d, b"s1", 0o755, Caller::ROOT).unwrap().ino;
    fs.mkdir(d, b"s2", 0o755, Caller::ROOT).unwrap();
    fs.mknod(d, b"fifo", S_IFIFO | 0o644, 0, Caller::ROOT)
        .unwrap();
    assert_eq!(fs.getattr(d).unwrap().nlink, 4);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    assert_err!(fs.rmdir(ROOT, b"d"), FsError::NotEmpty);
    assert_err!(fs.unlink(ROOT, b"d"), FsError::IsDir);
    assert_err!(fs.rmdir(d, b"g"), FsError::NotDir);
    assert_err!(fs.rmdir(d, b"nope"), FsError::NotFound);
    fs.mkdir(s1, b"t", 0o755, Caller::ROOT).unwrap();
    assert_err!(fs.rmdir(d, b"s1"), FsError::NotEmpty);
    fs.rmdir(s1, b"t").unwrap();
    fs.rmdir(d, b"s1").unwrap();
    assert_err!(fs.getattr(s1), FsError::NotFound);
    assert_eq!(fs.getattr(d).unwrap().nlink, 3);

    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.getattr(d).unwrap().nlink, 3);
    assert_eq!(fs.getattr(f).unwrap().nlink, 1);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 3);
    fs.unlink(d, b"g").unwrap();
    fs.unlink(d, b"fifo").unwrap();
    fs.rmdir(d, b"s2").unwrap();
    fs.rmdir(ROOT, b"d").unwrap();
    assert_err!(fs.getattr(f), FsError::NotFound);
    assert_eq!(fs.getattr(ROOT).unwrap().nlink, 2);
    assert!(names(&fs, ROOT).is_empty());
}

#[test]
fn names_up_to_255_bytes() {
    let (dev, fs) = fresh();
    let ok = vec![b'n'; 255];
    let long = vec![b'n'; 256];
    let f = fs.create(ROOT, &ok, 0o644, Caller::ROOT).unwrap().ino;
    fs.release(f).unwrap();
    assert_eq!(fs.lookup(ROOT, &ok).unwrap().ino, f);
    assert_eq!(names(&fs, ROOT), BTreeSet::from([ok.clone()]));
    let d = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    let dir255 = fs.mkdir(d, &ok, 0o755, Caller::ROOT).unwrap().ino;
    fs.link(f, dir255, &ok).unwrap();
    fs.symlink(dir255, b"l", &ok, Caller::ROOT).unwrap();
    let nt = |r: FsResult<Attr>| assert_err!(r, FsError::NameTooLong);
    nt(fs.create(ROOT, &long, 0o644, Caller::ROOT));
    nt(fs.mkdir(ROOT, &long, 0o755, Caller::ROOT));
    nt(fs.mknod(ROOT, &long, S_IFIFO | 0o644, 0, Caller::ROOT));
    nt(fs.symlink(ROOT, &long, b"t", Caller::ROOT));
    nt(fs.lookup(ROOT, &long));
    nt(fs.link(f, ROOT, &long));
    assert_err!(
        fs.rename(ROOT, &ok, ROOT, &long, RenameMode::Replace),
        FsError::NameTooLong
    );
    assert_err!(
        fs.rename(ROOT, &long, ROOT, b"x", RenameMode::Replace),
        FsError::NameTooLong
    );
    assert_err!(fs.unlink(ROOT, &long), FsError::NameTooLong);
    fs.rename(ROOT, &ok, d, b"short", RenameMode::Replace)
        .unwrap();
    fs.rename(d, b"short", ROOT, &ok, RenameMode::Replace)
        .unwrap();
    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.lookup(ROOT, &ok).unwrap().ino, f);
    assert_eq!(fs.lookup(dir255, &ok).unwrap().ino, f);
    assert_eq!(fs.lookup(d, &ok).unwrap().ino, dir255);
    let l = fs.lookup(dir255, b"l").unwrap().ino;
    assert_eq!(fs.readlink(l).unwrap(), ok);
}

#[test]
fn readdir_cookies_survive_removals_mid_listing() {
    let (_dev, fs) = fresh();
    let d = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    let all: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("entry{i:03}").into_bytes())
        .collect();
    for n in &all {
        create_file(&fs, d, n, b"");
    }
    // First half: ".", "..", then 48 entries.
    let mut first: Vec<(u64, Vec<u8>)> = Vec::new();
    fs.readdir(d, 0, |e| {
        if first.len() == 50 {
            return true;
        }
        first.push((e.cookie, e.name.to_vec()));
        false
    })
    .unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(first[0].1, b".");
    assert_eq!(first[1].1, b"..");
    let cookies: Vec<u64> = first.iter().map(|(c, _)| *c).collect();
    assert!(cookies.windows(2).all(|w| w[0] < w[1]), "{cookies:?}");
    let listed: BTreeSet<Vec<u8>> = first[2..].iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(listed.len(), 48);
    let last_cookie = first.last().unwrap().0;

    // Remove some already listed (including the last one) and some not listed yet.
    let mut removed_unlisted = BTreeSet::new();
    for (i, n) in all.iter().enumerate() {
        let gone = if listed.contains(n) {
            i % 3 == 0 || n == &first.last().unwrap().1
        } else {
            i % 4 == 1
        };
        if gone {
            fs.unlink(d, n).unwrap();
            if !listed.contains(n) {
                removed_unlisted.insert(n.clone());
            }
        }
    }
    assert!(!removed_unlisted.is_empty());
    let mut rest: Vec<Vec<u8>> = Vec::new();
    let mut rest_cookies = Vec::new();
    fs.readdir(d, last_cookie, |e| {
        rest.push(e.name.to_vec());
        rest_cookies.push(e.cookie);
        false
    })
    .unwrap();
    assert!(rest_cookies.iter().all(|c| *c > last_cookie));
    let rest_set: BTreeSet<Vec<u8>> = rest.iter().cloned().collect();
    assert_eq!(rest_set.len(), rest.len(), "an entry came twice");
    let want: BTreeSet<Vec<u8>> = all
        .iter()
        .filter(|n| !listed.contains(*n) && !removed_unlisted.contains(*n))
        .cloned()
        .collect();
    assert_eq!(rest_set, want);
    assert!(rest_set.is_disjoint(&listed));

    // Resuming in small batches from every cookie gives each entry once.
    let mut seen = Vec::new();
    let mut off = 0;
    loop {
        let mut batch = Vec::new();
        fs.readdir(d, off, |e| {
            if batch.len() == 7 {
                return true;
            }
            batch.push((e.cookie, e.name.to_vec()));
            false
        })
        .unwrap();
        if batch.is_empty() {
            break;
        }
        off = batch.last().unwrap().0;
        seen.extend(batch.into_iter().map(|(_, n)| n));
    }
    let mut expect: Vec<Vec<u8>> = vec![b".".to_vec(), b"..".to_vec()];
    expect.extend(names(&fs, d));
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    expect.sort();
    assert_eq!(seen_sorted, expect);
}

#[test]
fn a_listing_beside_renames_in_its_directory_sees_each_entry_once() {
    let (_dev, fs) = fresh();
    let dir = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    for i in 0..200 {
        let a = fs.create(dir, format!("f{i}").as_bytes(), 0o644, Caller::ROOT);
        fs.release(a.unwrap().ino).unwrap();
    }
    // A pass that reads 10 entries at a time while every entry is renamed (twice over)
    // between its steps.
    let mut seen: Vec<u64> = Vec::new();
    let mut offset = 0;
    let mut round = 0u32;
    loop {
        let mut got = Vec::new();
        fs.readdir(dir, offset, |e| {
            if e.name != b"." && e.name != b".." {
                got.push((e.cookie, e.ino));
            }
            offset = e.cookie;
            got.len() >= 10
        })
        .unwrap();
        if got.is_empty() {
            break;
        }
        seen.extend(got.iter().map(|g| g.1));
        for name in entry_names(&fs, dir) {
            let new = format!("r{round}-{}", String::from_utf8_lossy(&name));
            fs.rename(dir, &name, dir, new.as_bytes(), RenameMode::Replace)
                .unwrap();
        }
        round += 1;
        assert!(round < 1000, "the listing does not end");
    }
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), 200, "each entry once");
    assert_eq!(distinct.len(), 200);
    // A move into another directory still goes after every entry there.
    let other = fs.mkdir(ROOT, b"o", 0o755, Caller::ROOT).unwrap().ino;
    fs.create(other, b"x", 0o644, Caller::ROOT).unwrap();
    let first = entry_names(&fs, dir)[0].clone();
    fs.rename(dir, &first, other, b"y", RenameMode::Replace)
        .unwrap();
    assert_eq!(entry_names(&fs, other), vec![b"x".to_vec(), b"y".to_vec()]);
}

/// The names in `dir` in readdir order, without "." and "..".
fn entry_names(fs: &Filesystem, dir: u64) -> Vec<Vec<u8>> {
    list(fs, dir)
        .into_iter()
        .map(|e| e.1)
        .filter(|n| n != b"." && n != b"..")
        .collect()
}

#[test]
fn rename_with_whiteout_leaves_a_character_device_at_the_old_name() {
    let (dev, fs) = fresh();
    let a = create_file(&fs, ROOT, b"a", b"data");
    create_file(&fs, ROOT, b"t", b"target");
    let whiteout = |replace| RenameMode::Whiteout {
        replace,
        owner: USER,
    };
    // Without replace, an existing target refuses and nothing changes.
    assert_err!(
        fs.rename(ROOT, b"a", ROOT, b"t", whiteout(false)),
        FsError::Exists
    );
    assert_eq!(fs.lookup(ROOT, b"a").unwrap().ino, a);
    fs.rename(ROOT, b"a", ROOT, b"t", whiteout(true)).unwrap();
    assert_eq!(fs.lookup(ROOT, b"t").unwrap().ino, a);
    let w = fs.lookup(ROOT, b"a").unwrap();
    assert_eq!(
        (w.kind, w.rdev, w.perm, w.uid),
        (FileKind::CharDevice, 0, 0, USER.uid)
    );
    let (_dev, fs) = close_and_remount(&dev, fs);
    assert_eq!(fs.lookup(ROOT, b"a").unwrap().kind, FileKind::CharDevice);
    assert_eq!(read_all(&fs, fs.lookup(ROOT, b"t").unwrap().ino), b"data");
}
