//! An encrypted volume: what reaches the device is sealed (records, checkpoint pages,
//! journal blocks), everything reads back with the keys, and a journal block changed
//! without the key refuses the mount instead of being replayed or silently dropped.

use super::*;
use crate::crypt::{unlock, KdfParams, Passphrase};
use crate::volume::NewKey;

const MARKER: &[u8] = b"QZXSEALED";

fn pass() -> Passphrase {
    Passphrase::new(b"test key".to_vec())
}

fn mount_sealed(image: Vec<u8>) -> FsResult<(Arc<FaultDevice>, Filesystem)> {
    let dev = Arc::new(FaultDevice::new(image));
    let d: Arc<dyn Device> = dev.clone();
    let keys = unlock(d.as_ref(), &pass())?;
    let fs = Filesystem::mount_with_keys(d, OpenOptions::default(), Some(keys))?;
    Ok((dev, fs))
}

fn fresh_sealed() -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(vec![0u8; 16 << 20]));
    let opts = MkfsOptions {
        encrypt: Some(NewKey {
            passphrase: pass(),
            kdf: KdfParams::new(64, 1).unwrap(),
        }),
        ..MkfsOptions::default()
    };
    mkfs(dev.clone(), &opts).unwrap();
    mount_sealed(dev.volatile_image()).unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn journal_checkpoint_and_records_hold_no_plaintext() {
    let (dev, fs) = fresh_sealed();
    let name = [MARKER, b"-name"].concat();
    let text: Vec<u8> = MARKER
        .iter()
        .chain(b" text ")
        .copied()
        .cycle()
        .take(200_000)
        .collect();
    let ino = create_file(&fs, ROOT, &name, &text);
    fs.fsync(ino).unwrap();
    // Committed to the journal only (no checkpoint yet): sealed there too.
    assert!(!contains(&dev.volatile_image(), MARKER));
    let (dev, fs) = mount_sealed(dev.power_cut(&mut PowerCut::new(3))).unwrap();
    same(read_all(&fs, fs.lookup(ROOT, &name).unwrap().ino), &text);
    fs.close().unwrap();
    let img = dev.volatile_image();
    assert!(!contains(&img, MARKER));
    // Without the keys the image does not open; with the wrong key neither.
    let plain = Filesystem::mount(
        Arc::new(FaultDevice::new(img.clone())),
        OpenOptions::default(),
    );
    assert!(matches!(plain, Err(FsError::Key(_))));
    let wrong = unlock(
        &FaultDevice::new(img.clone()),
        &Passphrase::new(b"x".to_vec()),
    );
    assert!(matches!(wrong, Err(FsError::Key(_))));
    let (_, fs) = mount_sealed(img).unwrap();
    same(read_all(&fs, fs.lookup(ROOT, &name).unwrap().ino), &text);
}

#[test]
fn a_journal_block_changed_without_the_key_refuses_the_mount() {
    let (dev, fs) = fresh_sealed();
    let sb = *fs.lock().vol.superblock();
    let ino = create_file(&fs, ROOT, b"f", b"journaled");
    fs.fsync(ino).unwrap();
    let img = dev.volatile_image();
    drop(fs);
    // The crash image replays as it is.
    let (_, again) = mount_sealed(img.clone()).unwrap();
    same(
        read_all(&again, again.lookup(ROOT, b"f").unwrap().ino),
        b"journaled",
    );
    drop(again);
    // One payload byte changed in both copies, each block's CRC32C made to match.
    let mut forged = img;
    for start in [sb.journal_start, sb.journal_copy_start] {
        let at = ((start + sb.journal_head) as usize) * BLOCK_SIZE;
        let block = &mut forged[at..at + BLOCK_SIZE];
        block[60] ^= 1;
        block[4..8].fill(0);
        let crc = gpufs_format::checksum(block);
        block[4..8].copy_from_slice(&crc.to_le_bytes());
    }
    match mount_sealed(forged) {
        Err(FsError::Corrupt(msg)) => assert!(msg.contains("authentication"), "{msg}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a forged journal block was replayed"),
    }
}

#[test]
fn a_page_table_not_made_by_the_key_refuses_the_mount() {
    use gpufs_format::checkpoint::CheckpointRoot;
    let (dev, fs) = fresh_sealed();
    create_file(&fs, ROOT, b"f", b"checkpointed");
    fs.close().unwrap();
    let sb = *fs.lock().vol.superblock();
    drop(fs);
    let clean = dev.volatile_image();
    mount_sealed(clean.clone()).unwrap();
    // Each copy's page table with its MAC cleared, its root's checksums made to match:
    // what someone without the key could write.
    let mut forged = clean;
    for root_block in [sb.checkpoint_root, sb.checkpoint_root_copy] {
        let at = root_block as usize * BLOCK_SIZE;
        let (mut root, runs) = CheckpointRoot::decode(&forged[at..at + BLOCK_SIZE]).unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
        let table_at = runs[0].0 as usize * BLOCK_SIZE;
        let len = root.blob_len as usize;
        forged[table_at + 24..table_at + 32].fill(0);
        root.blob_checksum = gpufs_format::checksum(&forged[table_at..table_at + len]);
        forged[at..at + BLOCK_SIZE].copy_from_slice(&root.encode(&runs).unwrap());
    }
    match mount_sealed(forged) {
        Err(e) => assert!(e.to_string().contains("authentication"), "{e}"),
        Ok(_) => panic!("a page table without its MAC was read"),
    }
}
