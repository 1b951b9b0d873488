//! AES-256-XTS (IEEE 1619) over a [`RecordBatch`]: every record is cut into data units
//! ("sectors") of [`SECTOR_BYTES`], sector `j` of record `i` encrypted with tweak
//! `first_sectors[i] + j` (wrapping past `u64::MAX`), the 16-byte little-endian number
//! of `xts_mode::get_tweak_default`. The CPU twin of kernels/aes_xts*.wgsl.
//!
//! Sectors of a record: whole sectors, then the rest as a last, shorter sector. A rest of
//! 1..=15 bytes cannot be a data unit of its own, so it joins the sector before it (that
//! sector is then `SECTOR_BYTES + rest` bytes). Sectors whose length is not a multiple of
//! 16 use ciphertext stealing (IEEE 1619 §5.3.2). A record of 1..=15 bytes has no valid
//! layout and is refused ([`ComputeError::BadInput`]); an empty record stays empty.

#[cfg(feature = "gpu")]
mod gpu;
#[cfg(feature = "gpu")]
mod tables;

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes256;
use rayon::prelude::*;
use xts_mode::{get_tweak_default, Xts128};

use crate::error::{ComputeError, ComputeResult};
use crate::records::RecordBatch;

#[cfg(feature = "gpu")]
pub use gpu::{gpu, gpu_with_sector, read, run, upload, XtsOutput, XtsUpload};

pub const NAME: &str = "aes_xts";

/// Bytes of one XTS data unit in the main API.
pub const SECTOR_BYTES: usize = 4096;
/// Largest data unit accepted by the `*_with_sector` variants.
pub const MAX_SECTOR_BYTES: usize = 1 << 20;

/// The 64 key bytes of AES-256-XTS: Key1 encrypts the data, Key2 the tweaks.
#[derive(Clone, PartialEq, Eq)]
pub struct XtsKey {
    pub data: [u8; 32],
    pub tweak: [u8; 32],
}

impl std::fmt::Debug for XtsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XtsKey { .. }")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// How a record splits into data units: `full` sectors of the sector size, then one of
/// `last` bytes (none when 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectorLayout {
    pub full: usize,
    pub last: usize,
}

impl SectorLayout {
    /// The layout of a record of `len` bytes, or `None` for 1..=15 bytes or a data unit
    /// shorter than 16 bytes.
    pub fn of(len: usize, sector_bytes: usize) -> Option<SectorLayout> {
        if (len > 0 && len < 16) || sector_bytes < 16 {
            return None;
        }
        let full = len / sector_bytes;
        let rest = len % sector_bytes;
        Some(match rest {
            0 => SectorLayout { full, last: 0 },
            1..=15 => SectorLayout {
                full: full - 1,
                last: sector_bytes + rest,
            },
            _ => SectorLayout { full, last: rest },
        })
    }

    /// Data units in all.
    pub fn sectors(&self) -> usize {
        self.full + usize::from(self.last > 0)
    }

    /// Byte length of sector `j` (for `j < sectors()`).
    pub fn len_of(&self, j: usize, sector_bytes: usize) -> usize {
        if j < self.full {
            sector_bytes
        } else {
            self.last
        }
    }
}

/// Checks the arguments shared by both backends.
fn check(batch: &RecordBatch, first_sectors: &[u64], sector_bytes: usize) -> ComputeResult<()> {
    if sector_bytes < 16 || !sector_bytes.is_multiple_of(16) || sector_bytes > MAX_SECTOR_BYTES {
        return Err(ComputeError::BadInput(format!(
            "an XTS data unit of {sector_bytes} bytes (a multiple of 16, 16..={MAX_SECTOR_BYTES})"
        )));
    }
    if first_sectors.len() != batch.len() {
        return Err(ComputeError::BadInput(format!(
            "{} first sector numbers for {} records",
            first_sectors.len(),
            batch.len()
        )));
    }
    if let Some((i, &len)) = batch
        .lens()
        .iter()
        .enumerate()
        .find(|(_, &l)| l > 0 && l < 16)
    {
        return Err(ComputeError::BadInput(format!(
            "record {i} has {len} bytes: AES-XTS needs at least 16 (or none)"
        )));
    }
    Ok(())
}

/// The two AES-256 keys, and `xts_mode`'s cipher for data units that need ciphertext
/// stealing.
struct Ciphers {
    data: Aes256,
    tweak: Aes256,
    stealing: Xts128<Aes256>,
}

fn cipher(key: &XtsKey) -> Ciphers {
    let data = Aes256::new(GenericArray::from_slice(&key.data));
    let tweak = Aes256::new(GenericArray::from_slice(&key.tweak));
    Ciphers {
        stealing: Xts128::new(data.clone(), tweak.clone()),
        data,
        tweak,
    }
}

/// Blocks handed to AES at once: the `aes` crate pipelines a slice of blocks through
/// AES-NI (or its bitsliced fallback) instead of one block at a time.
const BATCH_BLOCKS: usize = 32;

/// One data unit in place. A unit of whole blocks runs here: the tweaks of the batch
/// (each the previous times alpha in GF(2^128), little-endian as IEEE 1619 orders it)
/// are XORed in, the blocks go through AES together, the tweaks are XORed out. A unit
/// needing ciphertext stealing goes through `xts_mode`, which the tests hold this to.
fn crypt_sector(c: &Ciphers, sector: &mut [u8], number: u64, dir: Direction) {
    let tweak0 = get_tweak_default(u128::from(number));
    if !sector.len().is_multiple_of(16) {
        match dir {
            Direction::Encrypt => c.stealing.encrypt_sector(sector, tweak0),
            Direction::Decrypt => c.stealing.decrypt_sector(sector, tweak0),
        }
        return;
    }
    let mut t = GenericArray::clone_from_slice(&tweak0);
    c.tweak.encrypt_block(&mut t);
    let mut tweak = u128::from_le_bytes(t.into());
    let mut blocks = [GenericArray::<u8, aes::cipher::consts::U16>::default(); BATCH_BLOCKS];
    let mut tweaks = [0u128; BATCH_BLOCKS];
    for chunk in sector.chunks_mut(16 * BATCH_BLOCKS) {
        let n = chunk.len() / 16;
        for (k, bytes) in chunk.chunks_exact(16).enumerate() {
            tweaks[k] = tweak;
            let mut v = [0u8; 16];
            v.copy_from_slice(bytes);
            blocks[k] = (u128::from_le_bytes(v) ^ tweak).to_le_bytes().into();
            tweak = (tweak << 1) ^ if tweak >> 127 == 1 { 0x87 } else { 0 };
        }
        match dir {
            Direction::Encrypt => c.data.encrypt_blocks(&mut blocks[..n]),
            Direction::Decrypt => c.data.decrypt_blocks(&mut blocks[..n]),
        }
        for (k, bytes) in chunk.chunks_exact_mut(16).enumerate() {
            let mut v = [0u8; 16];
            v.copy_from_slice(&blocks[k]);
            bytes.copy_from_slice(&(u128::from_le_bytes(v) ^ tweaks[k]).to_le_bytes());
        }
    }
}

/// The data units of a record with their sector numbers (records already checked).
fn split_sectors(
    record: &mut [u8],
    first: u64,
    sector_bytes: usize,
) -> impl Iterator<Item = (&mut [u8], u64)> {
    let layout =
        SectorLayout::of(record.len(), sector_bytes).unwrap_or(SectorLayout { full: 0, last: 0 });
    let mut rest = record;
    (0..layout.sectors()).map(move |j| {
        let n = layout.len_of(j, sector_bytes).min(rest.len());
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
        rest = tail;
        (head, first.wrapping_add(j as u64))
    })
}

/// CPU twin on every core (rayon over data units), [`SECTOR_BYTES`] per unit.
pub fn cpu(
    batch: &RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
) -> ComputeResult<RecordBatch> {
    crypt_copy(batch, key, first_sectors, dir, SECTOR_BYTES, true)
}

/// [`cpu`] with data units of `sector_bytes`.
pub fn cpu_with_sector(
    batch: &RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
    sector_bytes: usize,
) -> ComputeResult<RecordBatch> {
    crypt_copy(batch, key, first_sectors, dir, sector_bytes, true)
}

/// [`cpu`] over the records of `batch` in place (what a writer encrypting its own
/// buffers wants: no output to allocate).
pub fn cpu_in_place(
    batch: &mut RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
) -> ComputeResult<()> {
    crypt_in_place(batch, key, first_sectors, dir, SECTOR_BYTES, true)
}

/// CPU twin on one thread.
pub fn cpu_one_thread(
    batch: &RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
) -> ComputeResult<RecordBatch> {
    crypt_copy(batch, key, first_sectors, dir, SECTOR_BYTES, false)
}

/// [`cpu_one_thread`] with data units of `sector_bytes`.
pub fn cpu_one_thread_with_sector(
    batch: &RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
    sector_bytes: usize,
) -> ComputeResult<RecordBatch> {
    crypt_copy(batch, key, first_sectors, dir, sector_bytes, false)
}

/// [`cpu_one_thread`] in place.
pub fn cpu_one_thread_in_place(
    batch: &mut RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
) -> ComputeResult<()> {
    crypt_in_place(batch, key, first_sectors, dir, SECTOR_BYTES, false)
}

/// The output in a copy of `batch` (checked before anything is copied).
fn crypt_copy(
    batch: &RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
    sector_bytes: usize,
    parallel: bool,
) -> ComputeResult<RecordBatch> {
    check(batch, first_sectors, sector_bytes)?;
    let mut out = batch.clone();
    crypt_in_place(&mut out, key, first_sectors, dir, sector_bytes, parallel)?;
    Ok(out)
}

/// Every data unit of every record, in place: on every core (rayon over units) or on
/// this thread.
fn crypt_in_place(
    batch: &mut RecordBatch,
    key: &XtsKey,
    first_sectors: &[u64],
    dir: Direction,
    sector_bytes: usize,
    parallel: bool,
) -> ComputeResult<()> {
    check(batch, first_sectors, sector_bytes)?;
    let ciphers = cipher(key);
    let units = batch
        .records_mut()
        .into_iter()
        .zip(first_sectors)
        .flat_map(|(rec, &first)| split_sectors(rec, first, sector_bytes));
    let run = |(s, n): (&mut [u8], u64)| crypt_sector(&ciphers, s, n, dir);
    if parallel {
        units
            .collect::<Vec<_>>()
            .into_par_iter()
            .with_min_len(4)
            .for_each(run);
    } else {
        units.for_each(run);
    }
    Ok(())
}

/// AES-256-XTS with its keys expanded once, for a caller that encrypts one buffer at a
/// time on its own thread (a record, a checkpoint page, a journal block): the same
/// output as [`cpu`] for a batch of that one record.
pub struct XtsCipher(Ciphers);

impl XtsCipher {
    pub fn new(key: &XtsKey) -> XtsCipher {
        XtsCipher(cipher(key))
    }

    /// `buf` (empty, or at least 16 bytes) in place: data units of [`SECTOR_BYTES`],
    /// unit `j` with tweak `first_sector + j`.
    pub fn crypt(&self, buf: &mut [u8], first_sector: u64, dir: Direction) -> ComputeResult<()> {
        if !buf.is_empty() && buf.len() < 16 {
            return Err(ComputeError::BadInput(format!(
                "{} bytes: AES-XTS needs at least 16 (or none)",
                buf.len()
            )));
        }
        for (unit, number) in split_sectors(buf, first_sector, SECTOR_BYTES) {
            crypt_sector(&self.0, unit, number, dir);
        }
        Ok(())
    }
}

impl std::fmt::Debug for XtsCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XtsCipher { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let s = 4096;
        let l = |len| SectorLayout::of(len, s).map(|l| (l.full, l.last));
        assert_eq!(l(0), Some((0, 0)));
        assert_eq!(l(5), None);
        assert_eq!(l(16), Some((0, 16)));
        assert_eq!(l(4095), Some((0, 4095)));
        assert_eq!(l(4096), Some((1, 0)));
        assert_eq!(l(4097), Some((0, 4097)));
        assert_eq!(l(4111), Some((0, 4111)));
        assert_eq!(l(4112), Some((1, 16)));
        assert_eq!(l(8193), Some((1, 4097)));
        assert_eq!(l(1 << 20), Some((256, 0)));
        assert_eq!(SectorLayout::of(100, 0), None);
    }

    #[test]
    fn key_debug_hides_the_bytes() {
        let k = XtsKey {
            data: [0xAB; 32],
            tweak: [0xCD; 32],
        };
        let s = format!("{k:?}");
        assert!(
            !s.contains("171") && !s.to_lowercase().contains("ab"),
            "{s}"
        );
    }

    #[test]
    fn the_one_record_cipher_matches_the_batch_kernel() {
        let key = XtsKey {
            data: [5; 32],
            tweak: [6; 32],
        };
        let c = XtsCipher::new(&key);
        for len in [16usize, 17, 4095, 4096, 4097, 4111, 65536, 70000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let batch = RecordBatch::from_records([data.as_slice()]).unwrap();
            let want = cpu(&batch, &key, &[77], Direction::Encrypt).unwrap();
            let mut one = data.clone();
            c.crypt(&mut one, 77, Direction::Encrypt).unwrap();
            assert_eq!(one, want.get(0), "{len}");
            c.crypt(&mut one, 77, Direction::Decrypt).unwrap();
            assert_eq!(one, data, "{len}");
        }
        assert!(c.crypt(&mut [0u8; 5], 0, Direction::Encrypt).is_err());
    }
}
