//! Key slots of an encrypted image (format version 6): the random volume key, wrapped
//! once per passphrase in the manner of LUKS2 keyslots. Each slot records how its
//! wrapping key is derived from a passphrase (Argon2id and its parameters, a salt) and
//! the volume key sealed under it (AES-256-GCM, the image's uuid and the slot's own
//! parameters as associated data). Adding or removing a passphrase rewrites only these
//! blocks, never the data.
//!
//! The key area is [`KEY_AREA_BLOCKS`] blocks at the superblock's `key_area`, each a
//! whole copy of the slot table; a writer writes the first, flushes, then the second,
//! and a reader takes the valid copy of the highest generation, so a crash in between
//! leaves either table.

use bytemuck::{Pod, Zeroable};

use crate::{checksum, FormatError, BLOCK_SIZE};

pub const KEY_AREA_MAGIC: [u8; 8] = *b"GPUFSKEY";
/// Blocks of the key area: two copies of the slot table.
pub const KEY_AREA_BLOCKS: u64 = 2;
/// Slots in a table.
pub const KEY_SLOTS: usize = 16;
/// Bytes of the volume key.
pub const VOLUME_KEY_BYTES: usize = 32;
/// [`KeySlot::kdf`] of Argon2id, version 0x13 (RFC 9106).
pub const KDF_ARGON2ID: u32 = 1;

/// Header of a slot table; [`KEY_SLOTS`] slots follow.
///
/// ```text
/// off size field
///   0    8 magic       "GPUFSKEY"
///   8    4 version     1
///  12    4 slot_count  KEY_SLOTS
///  16    8 generation  +1 per rewrite of the table; the higher valid copy wins
///  24   16 uuid        the image's uuid (a table of another image is refused)
///  40   20 reserved    0
///  60    4 checksum    CRC32C of bytes 0..(64 + 128 x slot_count) with this field zero
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct KeyAreaHeader {
    pub magic: [u8; 8],
    pub version: u32,
    pub slot_count: u32,
    pub generation: u64,
    pub uuid: [u8; 16],
    pub reserved: [u8; 20],
    pub checksum: u32,
}
const _: () = assert!(std::mem::size_of::<KeyAreaHeader>() == 64);

/// One key slot.
///
/// ```text
/// off size field
///   0    4 state        0 empty, 1 active
///   4    4 kdf          KDF_ARGON2ID
///   8    4 memory_kib   Argon2 memory cost (KiB)
///  12    4 iterations   Argon2 time cost
///  16    4 lanes        Argon2 parallelism
///  20    4 reserved     0
///  24   32 salt         random, per slot
///  56   12 nonce        AES-256-GCM nonce, random, per write of the slot
///  68    4 reserved2    0
///  72   32 wrapped      the volume key encrypted under the derived key
/// 104   16 tag          the GCM tag; associated data: the uuid, then bytes 0..56
/// 120    8 created_ns   when the slot was added (ns since the epoch)
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct KeySlot {
    pub state: u32,
    pub kdf: u32,
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
    pub reserved: u32,
    pub salt: [u8; 32],
    pub nonce: [u8; 12],
    pub reserved2: u32,
    pub wrapped: [u8; VOLUME_KEY_BYTES],
    pub tag: [u8; 16],
    pub created_ns: i64,
}
const _: () = assert!(std::mem::size_of::<KeySlot>() == 128);

impl KeySlot {
    pub const ACTIVE: u32 = 1;

    pub fn is_active(&self) -> bool {
        self.state == Self::ACTIVE
    }

    /// The associated data its GCM tag covers: the image's uuid, then the slot's state,
    /// derivation parameters and salt (so that no parameter can be changed unnoticed).
    pub fn associated_data(&self, uuid: &[u8; 16]) -> Vec<u8> {
        let mut ad = uuid.to_vec();
        ad.extend_from_slice(&bytemuck::bytes_of(self)[..56]);
        ad
    }
}

/// A decoded slot table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyTable {
    pub generation: u64,
    pub uuid: [u8; 16],
    pub slots: [KeySlot; KEY_SLOTS],
}

/// Bytes of an encoded table (header and slots).
const TABLE_BYTES: usize = 64 + 128 * KEY_SLOTS;
const _: () = assert!(TABLE_BYTES <= BLOCK_SIZE);

impl KeyTable {
    /// An empty table of the image `uuid`.
    pub fn new(uuid: [u8; 16]) -> KeyTable {
        KeyTable {
            generation: 0,
            uuid,
            slots: [KeySlot::zeroed(); KEY_SLOTS],
        }
    }

    /// Indices of the active slots.
    pub fn active(&self) -> impl Iterator<Item = usize> + '_ {
        (0..KEY_SLOTS).filter(|&i| self.slots[i].is_active())
    }

    /// Encodes the table as one block (checksum filled in, the rest zero).
    pub fn encode(&self) -> Vec<u8> {
        let hdr = KeyAreaHeader {
            magic: KEY_AREA_MAGIC,
            version: 1,
            slot_count: KEY_SLOTS as u32,
            generation: self.generation,
            uuid: self.uuid,
            reserved: [0; 20],
            checksum: 0,
        };
        let mut block = vec![0u8; BLOCK_SIZE];
        block[..64].copy_from_slice(bytemuck::bytes_of(&hdr));
        for (i, slot) in self.slots.iter().enumerate() {
            block[64 + i * 128..64 + (i + 1) * 128].copy_from_slice(bytemuck::bytes_of(slot));
        }
        let crc = checksum(&block[..TABLE_BYTES]);
        block[60..64].copy_from_slice(&crc.to_le_bytes());
        block
    }

    /// Decodes and checks one copy: magic, version, slot count, checksum, and every slot
    /// either empty or an Argon2id slot.
    pub fn decode(block: &[u8]) -> Result<KeyTable, FormatError> {
        let bad = |d: &str| FormatError::corrupted("key slots", d);
        if block.len() < TABLE_BYTES {
            return Err(bad("block too short"));
        }
        if block[..8] != KEY_AREA_MAGIC {
            return Err(FormatError::BadMagic { what: "key slots" });
        }
        let hdr: KeyAreaHeader = bytemuck::pod_read_unaligned(&block[..64]);
        let mut copy = block[..TABLE_BYTES].to_vec();
        copy[60..64].fill(0);
        let computed = checksum(&copy);
        if computed != hdr.checksum {
            return Err(FormatError::Checksum {
                what: "key slots",
                stored: hdr.checksum,
                computed,
            });
        }
        if hdr.version != 1 || hdr.slot_count as usize != KEY_SLOTS {
            return Err(bad("unknown version or slot count"));
        }
        let mut slots = [KeySlot::zeroed(); KEY_SLOTS];
        for (i, slot) in slots.iter_mut().enumerate() {
            *slot = bytemuck::pod_read_unaligned(&block[64 + i * 128..64 + (i + 1) * 128]);
            match slot.state {
                0 => {}
                KeySlot::ACTIVE if slot.kdf == KDF_ARGON2ID => {}
                _ => return Err(bad("a slot of unknown state or derivation")),
            }
        }
        Ok(KeyTable {
            generation: hdr.generation,
            uuid: hdr.uuid,
            slots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> KeyTable {
        let mut t = KeyTable::new([7; 16]);
        t.generation = 3;
        t.slots[2] = KeySlot {
            state: KeySlot::ACTIVE,
            kdf: KDF_ARGON2ID,
            memory_kib: 65536,
            iterations: 3,
            lanes: 1,
            salt: [9; 32],
            wrapped: [1; 32],
            tag: [2; 16],
            ..KeySlot::zeroed()
        };
        t
    }

    #[test]
    fn tables_round_trip_and_every_flip_is_caught() {
        let t = table();
        let block = t.encode();
        assert_eq!(KeyTable::decode(&block).unwrap(), t);
        assert_eq!(t.active().collect::<Vec<_>>(), vec![2]);
        for i in 0..TABLE_BYTES {
            let mut b = block.clone();
            b[i] ^= 0x10;
            assert!(KeyTable::decode(&b).is_err(), "flip at {i}");
        }
        assert!(KeyTable::decode(&block[..100]).is_err());
        assert!(KeyTable::decode(&[0u8; BLOCK_SIZE]).is_err());
    }

    #[test]
    fn associated_data_covers_the_parameters() {
        let t = table();
        let mut s = t.slots[2];
        let ad = s.associated_data(&t.uuid);
        s.iterations = 1;
        assert_ne!(s.associated_data(&t.uuid), ad);
        assert_ne!(t.slots[2].associated_data(&[0; 16]), ad);
    }
}
