//! POSIX behaviour through a real FUSE mount.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{Mounted, Rng, Scratch};

/// Writes across record boundaries, overwrites in the middle and appends; returns
/// what `a` holds.
fn write_overwrite_append(m: &Mounted) -> Vec<u8> {
    // Write and read back across record boundaries.
    let mut rng = Rng(7);
    let data = rng.bytes(300_000);
    fs::write(m.path("a"), &data).unwrap();
    assert_eq!(fs::read(m.path("a")).unwrap(), data);

    // Overwrite in the middle, append, and read at an offset.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(m.path("a"))
        .unwrap();
    f.seek(SeekFrom::Start(65_000)).unwrap();
    f.write_all(&[9u8; 1000]).unwrap();
    drop(f);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(m.path("a"))
        .unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    let mut want = data.clone();
    want[65_000..66_000].fill(9);
    want.extend_from_slice(b"tail");
    assert_eq!(fs::read(m.path("a")).unwrap(), want);
    want
}

/// A sparse file over 4 GiB reads zeros in its holes and allocates none of them.
fn sparse_file(m: &Mounted) {
    // A sparse file over 4 GiB.
    let f = fs::File::create(m.path("sparse")).unwrap();
    f.set_len(5 << 30).unwrap();
    drop(f);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.path("sparse"))
        .unwrap();
    f.seek(SeekFrom::Start((5 << 30) - 3)).unwrap();
    f.write_all(b"end").unwrap();
    f.seek(SeekFrom::Start(1 << 32)).unwrap();
    let mut buf = [1u8; 4096];
    f.read_exact(&mut buf).unwrap();
    assert!(buf.iter().all(|b| *b == 0));
    assert_eq!(f.metadata().unwrap().len(), 5 << 30);
    assert!(
        f.metadata().unwrap().blocks() < 1024,
        "sparse file allocated its holes"
    );
    seek_data_and_hole(&f, 5 << 30);
    drop(f);
}

/// SEEK_DATA and SEEK_HOLE as on ext4: the data at the end of a file of `size` bytes
/// whose start is a hole, and ENXIO before the start and at the end.
fn seek_data_and_hole(f: &fs::File, size: i64) {
    use nix::errno::Errno;
    use nix::unistd::{lseek, Whence};
    let data = lseek(f, 0, Whence::SeekData).unwrap();
    assert!(data > 0 && data <= size - 3, "first data at {data}");
    assert_eq!(lseek(f, 0, Whence::SeekHole).unwrap(), 0);
    assert_eq!(lseek(f, size - 1, Whence::SeekHole).unwrap(), size);
    for whence in [Whence::SeekData, Whence::SeekHole] {
        assert_eq!(lseek(f, -1, whence), Err(Errno::ENXIO), "{whence:?} at -1");
        assert_eq!(
            lseek(f, size, whence),
            Err(Errno::ENXIO),
            "{whence:?} at the end"
        );
    }
}

/// Directories, hard links, symlinks, renames, long names, set-id modes; `want` is
/// what `a` holds before `b` replaces it.
fn links_and_renames(m: &Mounted, want: &[u8]) {
    // Directories, hard links, symlinks, renames.
    fs::create_dir(m.path("d")).unwrap();
    fs::create_dir(m.path("d/e")).unwrap();
    assert_eq!(fs::metadata(m.path("d")).unwrap().nlink(), 3);
    fs::hard_link(m.path("a"), m.path("d/a2")).unwrap();
    assert_eq!(fs::metadata(m.path("a")).unwrap().nlink(), 2);
    std::os::unix::fs::symlink("../a", m.path("d/link")).unwrap();
    assert_eq!(
        fs::read_link(m.path("d/link")).unwrap().to_str(),
        Some("../a")
    );
    assert_eq!(fs::read(m.path("d/link")).unwrap(), want);
    fs::write(m.path("b"), b"bee").unwrap();
    fs::rename(m.path("b"), m.path("a")).unwrap();
    assert_eq!(fs::read(m.path("a")).unwrap(), b"bee");
    assert_eq!(fs::metadata(m.path("d/a2")).unwrap().nlink(), 1);
    assert_eq!(
        fs::remove_dir(m.path("d")).unwrap_err().raw_os_error(),
        Some(libc::ENOTEMPTY)
    );
    let long = "x".repeat(256);
    assert_eq!(
        fs::write(m.path(&long), b"").unwrap_err().raw_os_error(),
        Some(libc::ENAMETOOLONG)
    );
    fs::write(m.path(&long[..255]), b"ok").unwrap();
    fs::set_permissions(m.path("a"), fs::Permissions::from_mode(0o4711)).unwrap();
    assert_eq!(fs::metadata(m.path("a")).unwrap().mode() & 0o7777, 0o4711);
}

/// An unlinked file stays readable through its open handle; `rm -rf` of a big
/// directory works although readdir cookies change under it.
fn unlinked_and_removed(m: &Mounted) {
    // An unlinked file stays readable through its open handle.
    fs::write(m.path("gone"), b"still here").unwrap();
    let mut h = fs::File::open(m.path("gone")).unwrap();
    fs::remove_file(m.path("gone")).unwrap();
    assert!(!m.path("gone").exists());
    let mut s2 = String::new();
    h.read_to_string(&mut s2).unwrap();
    assert_eq!(s2, "still here");
    drop(h);
    removed_directories_stay_open(m);

    // rm -rf of a big directory: readdir cookies survive removals mid-listing.
    fs::create_dir(m.path("big")).unwrap();
    for i in 0..3000 {
        fs::write(m.path(&format!("big/file-{i:05}")), b"").unwrap();
    }
    assert_eq!(fs::read_dir(m.path("big")).unwrap().count(), 3000);
    fs::remove_dir_all(m.path("big")).unwrap();
    assert!(!m.path("big").exists());
}

/// An open directory that is removed, or renamed over, answers `fstat` with nlink 0
/// (as on ext4) until it is closed; its inode is then freed.
fn removed_directories_stay_open(m: &Mounted) {
    fs::create_dir(m.path("rmd")).unwrap();
    let d = fs::File::open(m.path("rmd")).unwrap();
    let ino = d.metadata().unwrap().ino();
    fs::remove_dir(m.path("rmd")).unwrap();
    let meta = d.metadata().unwrap();
    assert!(meta.is_dir());
    assert_eq!((meta.ino(), meta.nlink()), (ino, 0));
    drop(d);

    fs::create_dir(m.path("over")).unwrap();
    fs::create_dir(m.path("victim")).unwrap();
    let v = fs::File::open(m.path("victim")).unwrap();
    fs::rename(m.path("over"), m.path("victim")).unwrap();
    assert_eq!(v.metadata().unwrap().nlink(), 0);
    drop(v);
    assert!(m.path("victim").is_dir());
    fs::remove_dir(m.path("victim")).unwrap();
}

#[test]
fn files_directories_links_and_renames_behave() {
    let s = Scratch::new();
    let img = s.mkfs("img", "2G");
    let m = Mounted::new(&img, &s.path("mnt"));
    let want = write_overwrite_append(&m);
    sparse_file(&m);
    links_and_renames(&m, &want);
    unlinked_and_removed(&m);
    m.unmount();

    // Everything is there after a remount.
    let m = Mounted::new(&img, &s.path("mnt"));
    assert_eq!(fs::read(m.path("a")).unwrap(), b"bee");
    assert_eq!(fs::read(m.path("d/a2")).unwrap(), want);
    assert_eq!(fs::metadata(m.path("sparse")).unwrap().len(), 5 << 30);
    assert_eq!(fs::metadata(m.path("a")).unwrap().mode() & 0o7777, 0o4711);
    assert_eq!(
        fs::read_link(m.path("d/link")).unwrap().to_str(),
        Some("../a")
    );
    m.unmount();

    common::assert_fsck(&img, 0);
}

#[test]
fn extended_attributes_round_trip() {
    let s = Scratch::new();
    let img = s.mkfs("img", "64M");
    let m = Mounted::new(&img, &s.path("mnt"));
    let f = m.path("x");
    fs::write(&f, b"").unwrap();
    let set = common::run(
        std::process::Command::new("setfattr")
            .args(["-n", "user.k", "-v", "value"])
            .arg(&f),
    );
    assert!(
        set.status.success(),
        "setfattr (package attr): {}",
        String::from_utf8_lossy(&set.stderr)
    );
    let get = common::run(
        std::process::Command::new("getfattr")
            .args(["--only-values", "-n", "user.k"])
            .arg(&f),
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout), "value");
    let rm = common::run(
        std::process::Command::new("setfattr")
            .args(["-x", "user.k"])
            .arg(&f),
    );
    assert!(rm.status.success());
    let get = common::run(
        std::process::Command::new("getfattr")
            .args(["-n", "user.k"])
            .arg(&f),
    );
    assert!(!get.status.success());
    m.unmount();
}

/// Runs `script` as `sh -c script sh FILE` as user and group 65534 (nobody, no
/// supplementary groups: std drops them when root changes the uid).
fn as_nobody(script: &str, file: &std::path::Path) {
    use std::os::unix::process::CommandExt;
    let out = std::process::Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(file)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// As on ext4 (Linux's rules): a write, truncation, fallocate or hole punch by a user
/// without privilege drops set-user-ID, and set-group-ID when the file is
/// group-executable or the user is not in the file's group.
#[test]
fn set_id_bits_are_dropped_by_unprivileged_changes_as_on_ext4() {
    let s = Scratch::new();
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let img = s.mkfs("img", "64M");
    let m = Mounted::with_args(&img, &s.path("mnt"), &["-o", "allow_other"]);
    fs::set_permissions(m.path(""), fs::Permissions::from_mode(0o777)).unwrap();
    let actions = [
        (
            "write",
            "printf y | dd of=\"$1\" bs=1 seek=10 conv=notrunc status=none",
        ),
        ("truncate", "truncate -s 100 \"$1\""),
        ("fallocate", "fallocate -l 65536 \"$1\""),
        ("punch", "fallocate -p -o 0 -l 4096 \"$1\""),
    ];
    // (mode, the file's group, the mode after the change by nobody)
    let cases = [
        (0o2777, 0, 0o777),
        (0o2767, 0, 0o767),
        (0o6777, 0, 0o777),
        (0o2767, 65534, 0o2767),
        (0o2777, 65534, 0o777),
        (0o0777, 0, 0o777),
    ];
    for (name, script) in actions {
        for (mode, group, want) in cases {
            let f = m.path(&format!("{name}-{mode:o}-{group}"));
            fs::write(&f, vec![b'x'; 8192]).unwrap();
            std::os::unix::fs::chown(&f, Some(0), Some(group)).unwrap();
            fs::set_permissions(&f, fs::Permissions::from_mode(mode)).unwrap();
            as_nobody(script, &f);
            let got = fs::metadata(&f).unwrap().mode() & 0o7777;
            assert_eq!(
                got, want,
                "{name} of a {mode:o} file of group {group}: {got:o}"
            );
        }
    }
    m.unmount();
}

/// A listing of a 5,000-entry directory while another thread renames entries in it
/// ends, and each pass returns every entry once (a rename within a directory keeps the
/// entry's place in the listing).
#[test]
fn listing_a_directory_beside_renames_ends_with_each_entry_once() {
    use std::os::unix::fs::DirEntryExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const N: usize = 5000;
    let s = Scratch::new();
    let img = s.mkfs("img", "256M");
    let m = Mounted::new(&img, &s.path("mnt"));
    let dir = m.path("d");
    fs::create_dir(&dir).unwrap();
    for i in 0..N {
        fs::write(dir.join(format!("a{i}")), b"").unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let renamer = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut renames = 0u64;
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            while !stop.load(Ordering::Relaxed) {
                let i = rng.below(N as u64);
                let (a, b) = (dir.join(format!("a{i}")), dir.join(format!("b{i}")));
                if fs::rename(&a, &b).is_err() {
                    fs::rename(&b, &a).unwrap();
                }
                renames += 1;
            }
            renames
        })
    };
    for _ in 0..5 {
        let inos: Vec<u64> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().ino())
            .collect();
        let distinct: std::collections::BTreeSet<u64> = inos.iter().copied().collect();
        assert!(inos.len() <= N, "a pass returned {} entries", inos.len());
        assert_eq!(
            distinct.len(),
            inos.len(),
            "an entry came twice in one pass"
        );
    }
    stop.store(true, Ordering::Relaxed);
    assert!(renamer.join().unwrap() > 0);
    m.unmount();
}

/// A `struct file_handle` with room for any handle FUSE makes.
#[repr(C)]
struct FileHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; 128],
}

/// name_to_handle_at(2) of `path`.
#[allow(unsafe_code)]
fn handle_of(path: &std::path::Path) -> FileHandle {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut h = FileHandle {
        handle_bytes: 128,
        handle_type: 0,
        f_handle: [0; 128],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `c` is a NUL-terminated path; `h` is a file_handle whose handle_bytes
    // says how much room follows; `mount_id` is a valid out pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c.as_ptr(),
            &mut h as *mut FileHandle,
            &mut mount_id as *mut libc::c_int,
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "name_to_handle_at: {}",
        std::io::Error::last_os_error()
    );
    h
}

/// open_by_handle_at(2) of `h` on the mount `mount_dir` is in.
#[allow(unsafe_code)]
fn open_handle(mount_dir: &fs::File, h: &mut FileHandle) -> std::io::Result<fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: `h` is a handle name_to_handle_at filled; the returned descriptor, when
    // valid, is owned by nobody else.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_dir.as_raw_fd(),
            h as *mut FileHandle,
            libc::O_RDONLY,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is not owned elsewhere.
    Ok(unsafe { fs::File::from_raw_fd(fd as i32) })
}

/// File handles survive the kernel forgetting the inode (export support: NFS, and
/// programs that keep handles), and a handle of a removed file is stale.
#[test]
fn file_handles_survive_the_kernel_forgetting_the_inode() {
    let s = Scratch::new();
    let img = s.mkfs("img", "64M");
    let m = Mounted::new(&img, &s.path("mnt"));
    fs::create_dir_all(m.path("d/e")).unwrap();
    fs::write(m.path("d/e/f"), b"handled").unwrap();
    fs::write(m.path("gone"), b"x").unwrap();
    let mut file = handle_of(&m.path("d/e/f"));
    let mut dir = handle_of(&m.path("d/e"));
    let mut gone = handle_of(&m.path("gone"));
    fs::remove_file(m.path("gone")).unwrap();
    // The kernel drops every unused dentry and inode: the handles must be resolved by
    // the daemon.
    fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    let root = fs::File::open(m.path("")).unwrap();
    let mut f = open_handle(&root, &mut file).unwrap();
    let mut got = String::new();
    f.read_to_string(&mut got).unwrap();
    assert_eq!(got, "handled");
    let d = open_handle(&root, &mut dir).unwrap();
    assert!(d.metadata().unwrap().is_dir());
    let err = open_handle(&root, &mut gone).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESTALE), "{err}");
    drop((f, d, root));
    m.unmount();
}

/// gpufs as an overlayfs upper layer: removing and renaming lower files leaves
/// whiteouts (RENAME_WHITEOUT, character devices 0:0) in the upper directory, and the
/// merged view shows exactly what remains.
#[test]
fn works_as_an_overlayfs_upper_layer() {
    use std::os::unix::fs::FileTypeExt;
    let s = Scratch::new();
    let img = s.mkfs("img", "64M");
    let m = Mounted::new(&img, &s.path("mnt"));
    let (lower, merged) = (s.path("lower"), s.path("merged"));
    fs::create_dir_all(&lower).unwrap();
    fs::create_dir_all(&merged).unwrap();
    fs::write(lower.join("a"), b"lower a").unwrap();
    fs::write(lower.join("b"), b"lower b").unwrap();
    fs::create_dir_all(m.path("upper")).unwrap();
    fs::create_dir_all(m.path("work")).unwrap();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        m.path("upper").display(),
        m.path("work").display()
    );
    let out = common::run(
        std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::remove_file(merged.join("a")).unwrap();
    fs::rename(merged.join("b"), merged.join("c")).unwrap();
    fs::write(merged.join("n"), b"new").unwrap();
    let mut names: Vec<String> = fs::read_dir(&merged)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["c", "n"]);
    assert_eq!(fs::read(merged.join("c")).unwrap(), b"lower b");
    let out = common::run(std::process::Command::new("umount").arg(&merged));
    assert!(out.status.success());
    for gone in ["a", "b"] {
        let meta = fs::symlink_metadata(m.path(&format!("upper/{gone}"))).unwrap();
        assert!(meta.file_type().is_char_device(), "{gone} is no whiteout");
        assert_eq!(meta.rdev(), 0);
    }
    m.unmount();
    common::assert_fsck(&img, 0);
}

/// `sh -c script` in `dir`, as root or as nobody; its stdout, or `None` if it failed.
fn sh_in(dir: &std::path::Path, script: &str, nobody: bool) -> Option<String> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", script]).current_dir(dir);
    if nobody {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// POSIX ACLs as on ext4: setfacl/getfacl, the mode's group bits showing the mask, the
/// kernel enforcing named entries, chmod rewriting the mask, default ACLs inherited by
/// new files and directories in place of the umask, the umask applied where there is
/// none, and all of it after a remount.
#[test]
fn posix_acls_are_kept_inherited_and_enforced() {
    let s = Scratch::new();
    fs::set_permissions(s.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let img = s.mkfs("img", "64M");
    let mp = s.path("mnt");
    let m = Mounted::with_args(&img, &mp, &["-o", "allow_other"]);
    let mode = |p: &str| fs::metadata(mp.join(p)).unwrap().mode() & 0o7777;
    let acl_of = |p: &str| sh_in(&mp, &format!("getfacl -cp {p}"), false).unwrap();
    sh_in(
        &mp,
        "echo secret > f && chmod 640 f && setfacl -m u:nobody:r f",
        false,
    )
    .unwrap();
    assert_eq!(mode("f"), 0o640, "the group bits show the mask");
    assert!(acl_of("f").contains("user:nobody:r--"), "{}", acl_of("f"));
    assert_eq!(sh_in(&mp, "cat f", true).as_deref(), Some("secret\n"));
    sh_in(&mp, "chmod 600 f", false).unwrap();
    assert!(acl_of("f").contains("mask::---"), "{}", acl_of("f"));
    assert_eq!(
        sh_in(&mp, "cat f", true),
        None,
        "the mask now denies nobody"
    );

    sh_in(&mp, "mkdir d && setfacl -d -m u:nobody:rwx d", false).unwrap();
    sh_in(&mp, "umask 077; touch d/x; mkdir d/y", false).unwrap();
    assert_eq!(mode("d/x"), 0o664, "the default ACL, not the umask");
    assert!(
        acl_of("d/x").contains("user:nobody:rwx"),
        "{}",
        acl_of("d/x")
    );
    assert!(
        acl_of("d/y").contains("default:user:nobody:rwx"),
        "{}",
        acl_of("d/y")
    );
    sh_in(&mp, "umask 027; touch plain; mkdir pdir", false).unwrap();
    assert_eq!((mode("plain"), mode("pdir")), (0o640, 0o750));
    let before: Vec<String> = ["f", "d/x", "d/y"].iter().map(|p| acl_of(p)).collect();
    m.unmount();

    let m = Mounted::with_args(&img, &mp, &["-o", "allow_other"]);
    let after: Vec<String> = ["f", "d/x", "d/y"].iter().map(|p| acl_of(p)).collect();
    assert_eq!(before, after);
    sh_in(&mp, "setfacl -b f", false).unwrap();
    assert!(!acl_of("f").contains("nobody"));
    m.unmount();
    common::assert_fsck(&img, 0);
}

/// chattr `+i` and `+a` are stored (lsattr shows them after a remount) and enforced as
/// on ext4: an immutable file refuses every change, an append-only one everything but
/// appends, and directories refuse new entries (+i) or removals (+i, +a).
#[test]
fn chattr_immutable_and_append_only_are_kept_and_enforced() {
    let s = Scratch::new();
    let img = s.mkfs("img", "64M");
    let mp = s.path("mnt");
    let m = Mounted::new(&img, &mp);
    let ok = |script: &str| sh_in(&mp, script, false).is_some();
    assert!(ok(
        "echo a > f && echo b > l && mkdir d e && touch e/y && chattr +i f d && chattr +a l e"
    ));
    for refused in [
        "echo x >> f",
        "rm f",
        "mv f g",
        "chmod 600 f",
        "ln f h",
        "touch f",
        "setfattr -n user.x -v 1 f",
        "echo over > l",
        "truncate -s 0 l",
        "rm l",
        "touch d/x",
        "rm e/y",
    ] {
        assert!(!ok(refused), "{refused} was allowed");
    }
    assert!(
        ok("echo more >> l && touch e/z"),
        "appends and new entries in +a"
    );
    assert_eq!(fs::read(mp.join("l")).unwrap(), b"b\nmore\n");
    assert_eq!(fs::read(mp.join("f")).unwrap(), b"a\n");
    m.unmount();
    let m = Mounted::new(&img, &mp);
    let flags = sh_in(&mp, "lsattr -d f l d e", false).unwrap();
    let set: Vec<&str> = flags
        .lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    assert!(set[0].contains('i') && set[1].contains('a'), "{flags}");
    assert!(set[2].contains('i') && set[3].contains('a'), "{flags}");
    assert!(ok("chattr -i f d && chattr -a l e && rm f l && rm -r d e"));
    m.unmount();
    common::assert_fsck(&img, 0);
}
