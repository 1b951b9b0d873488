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
