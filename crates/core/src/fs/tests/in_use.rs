//! The in-use marker: a read-write open with a holder marks the superblock, a clean
//! close clears it; another machine's marker refuses an open (read-only too) without
//! changing a byte unless forced; this machine's own stale marker is taken over.

use gpufs_format::superblock::InUse;
use gpufs_format::Superblock;

use super::*;

fn holder(host: u8, mount_point: &str) -> InUse {
    InUse {
        host: [host; 16],
        pid: 4242,
        reserved: 0,
        since_ns: 0,
        mount_point: InUse::mount_point_bytes(mount_point),
    }
}

fn open_as(img: Vec<u8>, who: InUse, read_only: bool, force: bool) -> FsResult<Filesystem> {
    let d: Arc<dyn Device> = Arc::new(FaultDevice::new(img));
    let opts = OpenOptions {
        read_only,
        holder: Some(who),
        force,
        ..OpenOptions::default()
    };
    Filesystem::mount(d, opts)
}

/// The marker of the newest valid superblock slot of `img`.
fn marker(img: &[u8]) -> InUse {
    let slots = [0usize, 1].map(|i| Superblock::decode(&img[i * 4096..(i + 1) * 4096]).ok());
    slots
        .into_iter()
        .flatten()
        .max_by_key(|sb| sb.generation)
        .unwrap()
        .in_use
}

#[test]
fn another_machines_marker_refuses_and_a_clean_unmount_clears_it() {
    let (dev, fs) = fresh();
    create_file(&fs, ROOT, b"f", b"kept");
    fs.close().unwrap();
    drop(fs);
    let clean = dev.volatile_image();
    assert!(!marker(&clean).is_held(), "no holder given, nothing marked");

    // Machine A mounts it and goes down without unmounting.
    let dev_a = Arc::new(FaultDevice::new(clean));
    let opts = OpenOptions {
        holder: Some(holder(0xA, "/mnt/on-a")),
        ..OpenOptions::default()
    };
    let da: Arc<dyn Device> = dev_a.clone();
    let fs_a = Filesystem::mount(da, opts).unwrap();
    let held = dev_a.volatile_image();
    let m = marker(&held);
    assert_eq!(
        (m.host, m.pid, m.mount_point()),
        ([0xA; 16], 4242, "/mnt/on-a".into())
    );
    assert!(m.since_ns > 0);
    drop(fs_a);

    // Machine B is refused, read-write and read-only alike, with the holder named.
    for read_only in [false, true] {
        match open_as(held.clone(), holder(0xB, "/mnt/b"), read_only, false) {
            Err(FsError::InUse(msg)) => {
                assert!(
                    msg.contains("/mnt/on-a") && msg.contains("pid 4242"),
                    "{msg}"
                )
            }
            Err(e) => panic!("expected InUse, got {e}"),
            Ok(_) => panic!("expected InUse, got a mount"),
        }
    }
    // A refused open writes nothing.
    let dev_b = Arc::new(FaultDevice::new(held.clone()));
    let db: Arc<dyn Device> = dev_b.clone();
    let refused = Filesystem::mount(
        db,
        OpenOptions {
            holder: Some(holder(0xB, "/mnt/b")),
            ..OpenOptions::default()
        },
    );
    assert!(refused.is_err());
    assert_eq!(dev_b.writes(), 0);

    // A itself takes its stale marker over, with a note; its clean unmount clears it.
    let fs_a = open_as(held.clone(), holder(0xA, "/mnt/on-a"), false, false).unwrap();
    assert!(
        fs_a.notes()
            .iter()
            .any(|n| n.contains("ended without unmounting")),
        "{:?}",
        fs_a.notes()
    );
    drop(fs_a);

    // B with force takes it over; a clean close leaves nobody's marker.
    let dev_f = Arc::new(FaultDevice::new(held));
    let df: Arc<dyn Device> = dev_f.clone();
    let fs_b = Filesystem::mount(
        df,
        OpenOptions {
            holder: Some(holder(0xB, "/mnt/b")),
            force: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    assert!(fs_b.notes().iter().any(|n| n.contains("-o force")));
    assert_eq!(marker(&dev_f.volatile_image()).host, [0xB; 16]);
    let ino = fs_b.lookup(ROOT, b"f").unwrap().ino;
    assert_eq!(read_all(&fs_b, ino), b"kept");
    fs_b.close().unwrap();
    drop(fs_b);
    let closed = dev_f.volatile_image();
    assert!(!marker(&closed).is_held());
    fsck_clean(&dev_f);
    // Once cleared, any machine mounts it.
    open_as(closed, holder(0xC, "/mnt/c"), false, false).unwrap();
}
