//! Extended attributes, symlinks and special files.

use std::collections::BTreeMap;

use gpufs_format::records::mode_bits::{S_IFCHR, S_IFDIR, S_IFIFO, S_IFREG};

use super::*;
use crate::fs::attrs::{XATTR_CREATE, XATTR_REPLACE};

fn xattr_names(fs: &Filesystem, ino: u64) -> BTreeSet<Vec<u8>> {
    let raw = fs.listxattr(ino).unwrap();
    assert!(raw.is_empty() || raw.last() == Some(&0));
    raw.split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| n.to_vec())
        .collect()
}

#[test]
fn xattrs_create_replace_list_remove() {
    let (dev, fs) = fresh();
    let f = create_file(&fs, ROOT, b"f", b"");
    assert!(fs.listxattr(f).unwrap().is_empty());
    fs.setxattr(f, b"user.a", b"1", 0).unwrap();
    assert_eq!(fs.getxattr(f, b"user.a").unwrap(), b"1");
    assert_err!(
        fs.setxattr(f, b"user.a", b"2", XATTR_CREATE),
        FsError::Exists
    );
    assert_err!(
        fs.setxattr(f, b"user.b", b"2", XATTR_REPLACE),
        FsError::NoData
    );
    assert_err!(fs.getxattr(f, b"user.b"), FsError::NoData);
    fs.setxattr(f, b"user.b", b"", XATTR_CREATE).unwrap();
    fs.setxattr(f, b"user.a", b"replaced", XATTR_REPLACE)
        .unwrap();
    fs.setxattr(f, b"trusted.t", &[0u8, 1, 2, 255], 0).unwrap();
    assert_eq!(fs.getxattr(f, b"user.a").unwrap(), b"replaced");
    assert_eq!(fs.getxattr(f, b"user.b").unwrap(), b"");
    assert_eq!(
        xattr_names(&fs, f),
        BTreeSet::from([
            b"user.a".to_vec(),
            b"user.b".to_vec(),
            b"trusted.t".to_vec()
        ])
    );
    fs.removexattr(f, b"user.a").unwrap();
    assert_err!(fs.getxattr(f, b"user.a"), FsError::NoData);
    assert_err!(fs.removexattr(f, b"user.a"), FsError::NoData);
    assert_eq!(
        xattr_names(&fs, f),
        BTreeSet::from([b"user.b".to_vec(), b"trusted.t".to_vec()])
    );
    // Unknown namespaces, bad names, oversized values.
    assert_err!(fs.setxattr(f, b"other.x", b"v", 0), FsError::NotSupported);
    assert_err!(fs.setxattr(f, b"user.", b"v", 0), FsError::NotSupported);
    assert_err!(fs.setxattr(f, b"", b"v", 0), FsError::Invalid(_));
    let long_name = [b"user.".to_vec(), vec![b'x'; 251]].concat();
    assert_err!(fs.setxattr(f, &long_name, b"v", 0), FsError::Range);
    assert_err!(
        fs.setxattr(f, b"user.big", &vec![0u8; 65_537], 0),
        FsError::TooBig
    );
    fs.setxattr(f, b"user.max", &vec![7u8; 65_536], 0).unwrap();
    // user.* is for files and directories only.
    let l = fs.symlink(ROOT, b"l", b"f", Caller::ROOT).unwrap().ino;
    assert_err!(fs.setxattr(l, b"user.a", b"v", 0), FsError::NotPermitted);
    fs.setxattr(ROOT, b"user.dir", b"d", 0).unwrap();

    let (dev2, fs) = close_and_remount(&dev, fs);
    assert_eq!(
        xattr_names(&fs, f),
        BTreeSet::from([
            b"user.b".to_vec(),
            b"trusted.t".to_vec(),
            b"user.max".to_vec()
        ])
    );
    assert_eq!(fs.getxattr(f, b"trusted.t").unwrap(), [0u8, 1, 2, 255]);
    assert_eq!(fs.getxattr(f, b"user.max").unwrap(), vec![7u8; 65_536]);
    assert_eq!(fs.getxattr(ROOT, b"user.dir").unwrap(), b"d");
    // Removal and replacement survive a journal replay too.
    fs.removexattr(f, b"user.b").unwrap();
    fs.setxattr(f, b"trusted.t", b"new", XATTR_REPLACE).unwrap();
    fs.sync().unwrap();
    let img = dev2.power_cut(&mut PowerCut::new(3));
    drop(fs);
    let (_dev, fs) = mount_image(img);
    assert_eq!(
        xattr_names(&fs, f),
        BTreeSet::from([b"trusted.t".to_vec(), b"user.max".to_vec()])
    );
    assert_eq!(fs.getxattr(f, b"trusted.t").unwrap(), b"new");
    // An unlinked file's attributes go with it.
    fs.unlink(ROOT, b"f").unwrap();
    assert_err!(fs.getxattr(f, b"user.max"), FsError::NotFound);
}

#[test]
fn symlinks_and_special_files() {
    let (dev, fs) = fresh();
    let l = fs.symlink(ROOT, b"l", b"some/where/else", USER).unwrap();
    assert_eq!(l.kind, FileKind::Symlink);
    assert_eq!(l.size, 15);
    assert_eq!(l.perm, 0o777);
    assert_eq!(l.uid, 1000);
    assert_eq!(fs.readlink(l.ino).unwrap(), b"some/where/else");
    assert_eq!(fs.lookup(ROOT, b"l").unwrap().ino, l.ino);
    assert_err!(fs.symlink(ROOT, b"l", b"x", USER), FsError::Exists);
    assert_err!(fs.symlink(ROOT, b"e", b"", USER), FsError::NotFound);
    assert_err!(
        fs.symlink(ROOT, b"e", &vec![b'a'; 4096], USER),
        FsError::NameTooLong
    );
    let long_target = vec![b'a'; 4095];
    let ll = fs.symlink(ROOT, b"long", &long_target, USER).unwrap().ino;
    assert_err!(fs.readlink(ROOT), FsError::Invalid(_));
    assert_err!(fs.read(l.ino, 0, 10), FsError::Invalid(_));

    let fifo = fs
        .mknod(ROOT, b"fifo", S_IFIFO | 0o600, 1234, USER)
        .unwrap();
    assert_eq!(fifo.kind, FileKind::Fifo);
    assert_eq!(fifo.perm, 0o600);
    assert_eq!(fifo.rdev, 0);
    assert_eq!(fifo.nlink, 1);
    let chr = fs
        .mknod(ROOT, b"chr", S_IFCHR | 0o644, 0x0103, USER)
        .unwrap();
    assert_eq!(chr.kind, FileKind::CharDevice);
    assert_eq!(chr.rdev, 0x0103);
    let reg = fs.mknod(ROOT, b"reg", S_IFREG | 0o644, 0, USER).unwrap();
    assert_eq!(reg.kind, FileKind::Regular);
    assert_err!(
        fs.mknod(ROOT, b"dir", S_IFDIR | 0o755, 0, USER),
        FsError::Invalid(_)
    );
    let kinds: BTreeMap<Vec<u8>, (u64, FileKind)> = list(&fs, ROOT)
        .into_iter()
        .map(|(_, n, i, k)| (n, (i, k)))
        .collect();
    assert_eq!(kinds[&b"fifo".to_vec()], (fifo.ino, FileKind::Fifo));
    assert_eq!(kinds[&b"chr".to_vec()], (chr.ino, FileKind::CharDevice));
    assert_eq!(kinds[&b"l".to_vec()], (l.ino, FileKind::Symlink));

    let before: Vec<Attr> = [l.ino, ll, fifo.ino, chr.ino, reg.ino]
        .iter()
        .map(|i| fs.getattr(*i).unwrap())
        .collect();
    let (_dev, fs) = close_and_remount(&dev, fs);
    let after: Vec<Attr> = [l.ino, ll, fifo.ino, chr.ino, reg.ino]
        .iter()
        .map(|i| fs.getattr(*i).unwrap())
        .collect();
    assert_eq!(before, after);
    assert_eq!(fs.readlink(l.ino).unwrap(), b"some/where/else");
    assert_eq!(fs.readlink(ll).unwrap(), long_target);
    fs.unlink(ROOT, b"l").unwrap();
    assert_err!(fs.readlink(l.ino), FsError::NotFound);
}

#[test]
fn writes_and_truncation_by_others_drop_set_id_bits_and_capabilities() {
    // The mount handles this itself (FUSE_HANDLE_KILLPRIV_V2): the kernel asks with a
    // write flag, and truncation by an unprivileged caller drops them here.
    let (_dev, fs) = fresh();
    let f = create_file(&fs, ROOT, b"f", b"data");
    let setid = |mode: u32| SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    };
    fs.setattr(f, &setid(0o6755), Caller::ROOT).unwrap();
    fs.setxattr(f, b"security.capability", b"caps", 0).unwrap();
    fs.kill_privileges(f, USER, &[]).unwrap();
    assert_eq!(fs.getattr(f).unwrap().perm, 0o755);
    assert_err!(fs.getxattr(f, b"security.capability"), FsError::NoData);
    // Set-group-ID without group execute stays for a member of the file's group (by
    // its primary group or a supplementary one), and goes for anyone else.
    fs.setattr(f, &setid(0o2644), Caller::ROOT).unwrap();
    let member = Caller {
        uid: 1000,
        gid: 0,
        umask: 0,
    };
    fs.kill_privileges(f, member, &[]).unwrap();
    fs.kill_privileges(f, USER, &[7, 0]).unwrap();
    assert_eq!(fs.getattr(f).unwrap().perm, 0o2644);
    fs.kill_privileges(f, USER, &[7]).unwrap();
    assert_eq!(fs.getattr(f).unwrap().perm, 0o644);
    // With group execute it goes for members too.
    fs.setattr(f, &setid(0o2754), Caller::ROOT).unwrap();
    fs.kill_privileges(f, member, &[]).unwrap();
    assert_eq!(fs.getattr(f).unwrap().perm, 0o754);
    // Truncation: by root the bits stay, by another user they go.
    fs.setattr(f, &setid(0o6755), Caller::ROOT).unwrap();
    let trunc = |size| SetAttr {
        size: Some(size),
        ..SetAttr::default()
    };
    fs.setattr(f, &trunc(2), Caller::ROOT).unwrap();
    assert_eq!(fs.getattr(f).unwrap().perm, 0o6755);
    fs.setattr(f, &trunc(1), USER).unwrap();
    assert_eq!(fs.getattr(f).unwrap().perm, 0o755);
}

/// `-o noatime` never moves access times on read, `-o strictatime` at every read, and
/// relatime (the default) only when the access time is not newer than the change.
#[test]
fn atime_modes_are_honoured() {
    use crate::volume::AtimeMode;
    let (dev, fs) = fresh();
    let f = create_file(&fs, ROOT, b"f", b"data");
    fs.close().unwrap();
    drop(fs);
    let img = dev.volatile_image();
    for mode in [
        AtimeMode::NoAtime,
        AtimeMode::Relatime,
        AtimeMode::StrictAtime,
    ] {
        let d: Arc<dyn Device> = Arc::new(FaultDevice::new(img.clone()));
        let opts = OpenOptions {
            atime: mode,
            ..OpenOptions::default()
        };
        let fs = Filesystem::mount(d, opts).unwrap();
        let a0 = fs.getattr(f).unwrap().atime_ns;
        fs.read(f, 0, 4).unwrap();
        let a1 = fs.getattr(f).unwrap().atime_ns;
        std::thread::sleep(std::time::Duration::from_millis(2));
        fs.read(f, 0, 4).unwrap();
        let a2 = fs.getattr(f).unwrap().atime_ns;
        match mode {
            AtimeMode::NoAtime => assert_eq!((a1, a2), (a0, a0)),
            // The first read after the write moves it; the second (atime now newer
            // than mtime and ctime, less than a day old) does not.
            AtimeMode::Relatime => assert!(a1 > a0 && a2 == a1, "{a0} {a1} {a2}"),
            AtimeMode::StrictAtime => assert!(a1 > a0 && a2 > a1, "{a0} {a1} {a2}"),
        }
    }
}
