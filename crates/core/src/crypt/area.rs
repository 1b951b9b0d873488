//! The key area of an encrypted image: reading and writing its two copies of the slot
//! table, and what a user does with it (open the volume, list, add and remove keys).
//! Nothing here writes outside the key area: adding or removing a key never touches the
//! data, and a refused key changes nothing at all.

use std::sync::Arc;

use gpufs_format::keyslot::{KeyTable, KEY_AREA_BLOCKS, KEY_SLOTS};
use gpufs_format::{Superblock, BLOCK_SIZE};

use super::keys::{make_slot, open_slot, KdfParams, Passphrase, VolumeKey};
use super::seal::SealKeys;
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::time::now_ns;
use crate::volume::pick_superblock;

/// The slot table with the highest generation among the valid copies of `sb`'s key
/// area, and whether the other copy was damaged or behind.
pub fn read_key_table(dev: &dyn Device, sb: &Superblock) -> FsResult<(KeyTable, bool)> {
    if !sb.is_encrypted() {
        return Err(FsError::Key("the image is not encrypted".into()));
    }
    let mut best: Option<KeyTable> = None;
    let mut disagree = false;
    let mut block = vec![0u8; BLOCK_SIZE];
    for i in 0..KEY_AREA_BLOCKS {
        dev.read_at(&mut block, (u64::from(sb.key_area) + i) * BLOCK_SIZE as u64)?;
        match KeyTable::decode(&block) {
            Ok(t) if t.uuid == sb.uuid => {
                if let Some(b) = &best {
                    disagree |= b != &t;
                }
                if best.as_ref().is_none_or(|b| t.generation > b.generation) {
                    best = Some(t);
                }
            }
            Ok(_) => disagree = true,
            Err(e) => {
                tracing::warn!("key slot copy {i}: {e}");
                disagree = true;
            }
        }
    }
    best.map(|t| (t, disagree)).ok_or_else(|| {
        FsError::BadImage(
            "both copies of the key slots are damaged: the image cannot be opened".into(),
        )
    })
}

/// Writes `table` (its generation one past the last) to both copies, the first made
/// durable before the second is touched.
pub fn write_key_table(dev: &dyn Device, sb: &Superblock, table: &KeyTable) -> FsResult<()> {
    let block = table.encode();
    for i in 0..KEY_AREA_BLOCKS {
        dev.write_at(&block, (u64::from(sb.key_area) + i) * BLOCK_SIZE as u64)?;
        dev.flush()?;
    }
    Ok(())
}

/// The volume key `pass` opens in `table`, and the slot that opened it.
pub fn unlock_table(table: &KeyTable, pass: &Passphrase) -> FsResult<(VolumeKey, usize)> {
    for i in table.active() {
        if let Some(key) = open_slot(&table.slots[i], pass, &table.uuid)? {
            return Ok((key, i));
        }
    }
    Err(FsError::Key(
        "no key slot opens with this key: wrong passphrase or key file".into(),
    ))
}

/// The current superblock of the image on `dev` (whether it is encrypted, and where its
/// key slots are), and notes on a damaged slot.
pub fn superblock_of(dev: &dyn Device) -> FsResult<(Superblock, Vec<String>)> {
    pick_superblock(dev)
}

/// The sealing keys of the encrypted image on `dev`, opened with `pass`.
pub fn unlock(dev: &dyn Device, pass: &Passphrase) -> FsResult<Arc<SealKeys>> {
    let (sb, _) = pick_superblock(dev)?;
    let (table, _) = read_key_table(dev, &sb)?;
    let (key, _) = unlock_table(&table, pass)?;
    Ok(Arc::new(SealKeys::new(&key)))
}

/// One key slot as `gpufs key list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    pub slot: usize,
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
    pub created_ns: i64,
}

/// The active slots of the image on `dev` (no key needed).
pub fn list_keys(dev: &dyn Device) -> FsResult<Vec<SlotInfo>> {
    let (sb, _) = pick_superblock(dev)?;
    let (table, _) = read_key_table(dev, &sb)?;
    Ok(table
        .active()
        .map(|i| {
            let s = &table.slots[i];
            SlotInfo {
                slot: i,
                memory_kib: s.memory_kib,
                iterations: s.iterations,
                lanes: s.lanes,
                created_ns: s.created_ns,
            }
        })
        .collect())
}

/// Adds a slot that `new` opens, proving the right to with `old`: returns its number.
pub fn add_key(
    dev: &dyn Device,
    old: &Passphrase,
    new: &Passphrase,
    params: KdfParams,
) -> FsResult<usize> {
    let (sb, _) = pick_superblock(dev)?;
    let (mut table, _) = read_key_table(dev, &sb)?;
    let (key, _) = unlock_table(&table, old)?;
    let free = (0..KEY_SLOTS)
        .find(|&i| !table.slots[i].is_active())
        .ok_or_else(|| FsError::Key(format!("all {KEY_SLOTS} key slots are in use")))?;
    table.slots[free] = make_slot(&key, new, params, &sb.uuid, now_ns())?;
    table.generation += 1;
    write_key_table(dev, &sb, &table)?;
    Ok(free)
}

/// Removes the slot `pass` opens, unless it is the last: returns its number.
pub fn remove_key(dev: &dyn Device, pass: &Passphrase) -> FsResult<usize> {
    let (sb, _) = pick_superblock(dev)?;
    let (mut table, _) = read_key_table(dev, &sb)?;
    let (_, slot) = unlock_table(&table, pass)?;
    if table.active().count() <= 1 {
        return Err(FsError::Key(
            "this is the last key slot: removing it would lose the filesystem (add another \
             key first)"
                .into(),
        ));
    }
    table.slots[slot] = bytemuck::Zeroable::zeroed();
    table.generation += 1;
    write_key_table(dev, &sb, &table)?;
    Ok(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{FaultDevice, PowerCut};
    use crate::volume::{mkfs, MkfsOptions, NewKey};

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.as_bytes().to_vec())
    }

    fn quick() -> KdfParams {
        KdfParams::new(64, 1).unwrap()
    }

    fn encrypted_image() -> Vec<u8> {
        let dev = Arc::new(FaultDevice::new(vec![0u8; 8 << 20]));
        let opts = MkfsOptions {
            uuid: [9; 16],
            encrypt: Some(NewKey {
                passphrase: pass("a"),
                kdf: quick(),
            }),
            ..MkfsOptions::default()
        };
        mkfs(dev.clone(), &opts).unwrap();
        dev.volatile_image()
    }

    /// Which of the keys "a" and "b" open the image.
    fn opening(img: &[u8]) -> (bool, bool) {
        let dev = FaultDevice::new(img.to_vec());
        let opens = |p: &str| unlock(&dev, &pass(p)).is_ok();
        (opens("a"), opens("b"))
    }

    /// A power cut before each write of `op` (every torn and reordered variant the
    /// device models, three seeds each) leaves the slots as before or as after, never
    /// unreadable, and the filesystem untouched.
    fn each_cut(
        img: &[u8],
        op: impl Fn(&FaultDevice) -> FsResult<usize>,
        before: (bool, bool),
        after: (bool, bool),
    ) {
        let probe = FaultDevice::new(img.to_vec());
        op(&probe).unwrap();
        assert_eq!(opening(&probe.volatile_image()), after);
        let writes = probe.writes();
        assert!(writes >= 2);
        let mut seen = std::collections::HashSet::new();
        for n in 0..=writes {
            for seed in 0..3 {
                let dev = FaultDevice::new(img.to_vec());
                dev.arm_cut(n, PowerCut::new(seed));
                let _ = op(&dev);
                let cut = dev
                    .cut_image()
                    .unwrap_or_else(|| dev.power_cut(&mut PowerCut::new(seed)));
                let got = opening(&cut);
                assert!(got == before || got == after, "cut {n}/{seed}: {got:?}");
                seen.insert(got);
                let d: Arc<dyn Device> = Arc::new(FaultDevice::new(cut));
                let keys = unlock(d.as_ref(), &pass(if got.0 { "a" } else { "b" })).unwrap();
                let report =
                    crate::fsck::check_with_keys(d, Some(keys), None, &mut |_, _| {}).unwrap();
                assert!(
                    report.problems.is_empty(),
                    "cut {n}/{seed}: {:?}",
                    report.problems
                );
            }
        }
        assert!(seen.contains(&before) && seen.contains(&after), "{seen:?}");
    }

    #[test]
    fn adding_and_removing_keys_survive_a_power_cut_at_every_write() {
        let img = encrypted_image();
        assert_eq!(opening(&img), (true, false));
        let add = |d: &FaultDevice| add_key(d, &pass("a"), &pass("b"), quick());
        each_cut(&img, add, (true, false), (true, true));
        let two = FaultDevice::new(img.clone());
        add(&two).unwrap();
        let img2 = two.volatile_image();
        let remove = |d: &FaultDevice| remove_key(d, &pass("a"));
        each_cut(&img2, remove, (true, true), (false, true));
    }

    #[test]
    fn the_last_key_and_a_wrong_key_are_refused_and_nothing_is_written() {
        let img = encrypted_image();
        let dev = FaultDevice::new(img.clone());
        assert!(matches!(remove_key(&dev, &pass("a")), Err(FsError::Key(_))));
        assert!(matches!(remove_key(&dev, &pass("x")), Err(FsError::Key(_))));
        assert!(matches!(
            add_key(&dev, &pass("x"), &pass("b"), quick()),
            Err(FsError::Key(_))
        ));
        assert_eq!(dev.writes(), 0);
        assert_eq!(dev.volatile_image(), img);
        assert_eq!(list_keys(&dev).unwrap().len(), 1);
        // Every slot in use: a clear refusal.
        for i in 1..KEY_SLOTS {
            add_key(&dev, &pass("a"), &pass(&format!("k{i}")), quick()).unwrap();
        }
        assert!(matches!(
            add_key(&dev, &pass("a"), &pass("z"), quick()),
            Err(FsError::Key(_))
        ));
    }

    #[test]
    fn a_damaged_copy_of_the_slots_is_read_from_the_other() {
        let mut img = encrypted_image();
        let (sb, _) = pick_superblock(&FaultDevice::new(img.clone())).unwrap();
        let at = sb.key_area as usize * BLOCK_SIZE + 100;
        img[at] ^= 1;
        let (_, disagree) = read_key_table(&FaultDevice::new(img.clone()), &sb).unwrap();
        assert!(disagree);
        assert_eq!(opening(&img), (true, false));
        img[at + BLOCK_SIZE] ^= 1;
        assert!(matches!(
            read_key_table(&FaultDevice::new(img), &sb),
            Err(FsError::BadImage(_))
        ));
    }
}
