//! Checkpoint pages: the blob cut into content-defined pages (FastCDC: a change to a few
//! files changes the pages around them, not the pages after them), the pages each copy
//! of the current checkpoint already holds (a checkpoint names those where they lie and
//! writes only the others), and the blob read back from a copy's pages.
//!
//! On an encrypted image every page is sealed (`crate::crypt::seal`): its identity is
//! the first 16 bytes of its tag (a keyed BLAKE3, so equal pages still share), the
//! checksum is the CRC32C of the ciphertext (damage is found without the key), and the
//! ciphertext is at least 16 bytes.

use hashbrown::HashMap;
use rayon::prelude::*;

use gpufs_compute::kernels::blake3::{self, Blake3Mode};
use gpufs_format::pages::{PageEntry, MAX_PAGE_BYTES};
use gpufs_format::{checksum, BLOCK_SIZE};

use crate::crypt::seal::sealed_len;
use crate::crypt::{Domain, SealKeys};
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::units::BlockNo;

/// Shortest, typical and longest page the chunker cuts.
const MIN_PAGE_BYTES: u32 = 16 * 1024;
const AVG_PAGE_BYTES: u32 = 64 * 1024;

/// One page of a blob being written: where it lies in the blob and what names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CutPage {
    /// Where its bytes lie in the blob being written (meaningless when `kept`).
    pub start: usize,
    pub len: u32,
    pub checksum: u32,
    pub hash: [u8; 16],
    /// A page of a segment that did not change: both copies of the current checkpoint
    /// hold it, and the blob being written does not have its bytes.
    pub kept: bool,
}

/// What a sealed page's tag binds besides its bytes: its length.
fn page_context(len: u32) -> [u8; 4] {
    len.to_le_bytes()
}

/// The bytes of `page` as stored: as they are, or sealed.
fn seal_page(bytes: &[u8], keys: &SealKeys) -> (Vec<u8>, [u8; 32]) {
    let mut buf = bytes.to_vec();
    let tag = keys.seal(Domain::Page, &page_context(bytes.len() as u32), &mut buf);
    (buf, tag)
}

impl CutPage {
    fn of(blob: &[u8], start: usize, len: usize, keys: Option<&SealKeys>) -> CutPage {
        let bytes = &blob[start..start + len];
        let mut hash = [0u8; 16];
        let crc = match keys {
            Some(k) => {
                let (sealed, tag) = seal_page(bytes, k);
                hash.copy_from_slice(&tag[..16]);
                checksum(&sealed)
            }
            None => {
                let full = blake3::hash_one(bytes, &Blake3Mode::Hash);
                hash.copy_from_slice(&full[..16]);
                checksum(bytes)
            }
        };
        CutPage {
            start,
            len: len as u32,
            checksum: crc,
            hash,
            kept: false,
        }
    }

    /// The page's single-block pieces, for an image with no contiguous room for it.
    pub fn pieces(&self, blob: &[u8], keys: Option<&SealKeys>) -> Vec<CutPage> {
        (self.start..self.start + self.len as usize)
            .step_by(BLOCK_SIZE)
            .map(|s| {
                let len = BLOCK_SIZE.min(self.start + self.len as usize - s);
                CutPage::of(blob, s, len, keys)
            })
            .collect()
    }

    /// The bytes to write for this page of `blob`, zero-padded to whole blocks.
    pub fn stored(&self, blob: &[u8], keys: Option<&SealKeys>) -> Vec<u8> {
        let bytes = &blob[self.start..self.start + self.len as usize];
        let mut out = match keys {
            Some(k) => seal_page(bytes, k).0,
            None => bytes.to_vec(),
        };
        debug_assert_eq!(checksum(&out), self.checksum);
        out.resize(self.blocks() as usize * BLOCK_SIZE, 0);
        out
    }

    pub fn blocks(&self) -> u64 {
        u64::from(self.len).div_ceil(BLOCK_SIZE as u64)
    }

    #[cfg(test)]
    pub fn bytes<'a>(&self, blob: &'a [u8]) -> &'a [u8] {
        &blob[self.start..self.start + self.len as usize]
    }

    /// Its entry in a page table once it lies at `block` (absolute).
    pub fn entry(&self, block: u64) -> PageEntry {
        PageEntry {
            block,
            len: self.len,
            checksum: self.checksum,
            hash: self.hash,
        }
    }
}

/// Cuts `blob` into pages at content-defined points and names each (BLAKE3 on every
/// core, CRC32C; sealed under `keys` on an encrypted image).
#[cfg(test)]
pub(super) fn cut_pages(blob: &[u8], keys: Option<&SealKeys>) -> Vec<CutPage> {
    cut_pages_in(blob, 0..blob.len(), keys)
}

/// [`cut_pages`] of the part `range` of `blob` (page starts count from the blob's).
pub(super) fn cut_pages_in(
    blob: &[u8],
    range: std::ops::Range<usize>,
    keys: Option<&SealKeys>,
) -> Vec<CutPage> {
    let part = &blob[range.clone()];
    let cuts: Vec<(usize, usize)> =
        fastcdc::v2020::FastCDC::new(part, MIN_PAGE_BYTES, AVG_PAGE_BYTES, MAX_PAGE_BYTES)
            .map(|c| (range.start + c.offset, c.length))
            .collect();
    let pages = name_pages(cuts, |(start, len)| CutPage::of(blob, start, len, keys));
    debug_assert_eq!(
        pages.iter().map(|p| p.len as usize).sum::<usize>(),
        range.len()
    );
    pages
}

/// Shortest, typical and longest page of a page table (a table page names ~128 pages;
/// a checkpoint rewrites the ones naming pages it wrote).
const MIN_TABLE_PAGE_BYTES: u32 = 1024;
const AVG_TABLE_PAGE_BYTES: u32 = 4096;
const MAX_TABLE_PAGE_BYTES: u32 = 16 * 1024;

/// Cuts an encoded page table into content-defined pages (its entries are hashes and
/// block numbers: cut points fall everywhere) and names each (sealed under `keys`).
pub(super) fn cut_table_pages(table: &[u8], keys: Option<&SealKeys>) -> Vec<CutPage> {
    let cuts: Vec<(usize, usize)> = fastcdc::v2020::FastCDC::new(
        table,
        MIN_TABLE_PAGE_BYTES,
        AVG_TABLE_PAGE_BYTES,
        MAX_TABLE_PAGE_BYTES,
    )
    .map(|c| (c.offset, c.length))
    .collect();
    name_pages(cuts, |(start, len)| CutPage::of(table, start, len, keys))
}

/// Length of the head segment's pages (but a section's last).
pub(super) const HEAD_PAGE_BYTES: usize = 16 * 1024;

/// Cuts each part `bounds[i]..bounds[i + 1]` of `blob` into pages of
/// [`HEAD_PAGE_BYTES`] counted from the part's start. For the head segment, whose
/// bitmaps are long runs of equal bytes where content-defined cuts never fall: a changed
/// bit changes one page, and a longer snapshot table moves no page of the union.
///
/// `before` is an earlier blob and its pages: a page at the same place with the same
/// bytes there is taken as it is, not hashed (or sealed) again.
pub(super) fn cut_fixed_in(
    blob: &[u8],
    bounds: &[usize],
    keys: Option<&SealKeys>,
    before: Option<&(Vec<u8>, Vec<CutPage>)>,
) -> Vec<CutPage> {
    debug_assert!(bounds.windows(2).all(|w| w[0] <= w[1]));
    let known: HashMap<(usize, u32), &CutPage> = before
        .map(|(_, pages)| pages.iter().map(|p| ((p.start, p.len), p)).collect())
        .unwrap_or_default();
    let cuts: Vec<(usize, usize)> = bounds
        .windows(2)
        .flat_map(|w| {
            (w[0]..w[1])
                .step_by(HEAD_PAGE_BYTES)
                .map(move |s| (s, HEAD_PAGE_BYTES.min(w[1] - s)))
        })
        .collect();
    name_pages(cuts, |(start, len)| {
        let same = before
            .zip(known.get(&(start, len as u32)))
            .filter(|((old, _), _)| old.get(start..start + len) == Some(&blob[start..start + len]));
        match same {
            Some((_, page)) => CutPage {
                kept: false,
                ..**page
            },
            None => CutPage::of(blob, start, len, keys),
        }
    })
}

/// Bytes of pages below which they are named on the calling thread (a checkpoint of a
/// few changed pages does not wait for the pool to wake).
const SERIAL_PAGE_BYTES: usize = 1 << 20;

/// `name` of every cut `(start, len)`, on every core when there is enough to hash.
fn name_pages(
    cuts: Vec<(usize, usize)>,
    name: impl Fn((usize, usize)) -> CutPage + Sync + Send,
) -> Vec<CutPage> {
    if cuts.iter().map(|c| c.1).sum::<usize>() <= SERIAL_PAGE_BYTES {
        cuts.into_iter().map(name).collect()
    } else {
        cuts.into_par_iter().map(name).collect()
    }
}

/// The pages one copy of a checkpoint holds, by identity (absolute blocks).
#[derive(Clone, Debug, Default)]
pub(crate) struct PageSet {
    by_hash: HashMap<[u8; 16], PageEntry>,
}

impl PageSet {
    pub fn of(pages: &[PageEntry]) -> PageSet {
        PageSet {
            by_hash: pages.iter().map(|p| (p.hash, *p)).collect(),
        }
    }

    /// Where a page with `page`'s bytes already lies, if this copy holds one.
    pub fn find(&self, hash: &[u8; 16], len: u32) -> Option<PageEntry> {
        self.by_hash.get(hash).copied().filter(|p| p.len == len)
    }

    pub fn insert(&mut self, page: PageEntry) {
        self.by_hash.insert(page.hash, page);
    }
}

/// The blob the pages of one copy hold, each page verified; a damaged page is read from
/// the page of the same identity in `others` (another copy). Returns the blob and how
/// many pages came from another copy.
pub(super) fn read_pages(
    dev: &dyn Device,
    pages: &[PageEntry],
    blob_len: u64,
    others: &[&PageSet],
    keys: Option<&SealKeys>,
) -> FsResult<(Vec<u8>, Vec<u64>)> {
    let len = usize::try_from(blob_len).map_err(|_| FsError::corrupt("checkpoint too long"))?;
    let total: usize = pages.iter().map(|p| p.len as usize).sum();
    if total != len {
        return Err(FsError::corrupt("checkpoint pages shorter than the blob"));
    }
    // Each page read straight into its place in the blob.
    let mut blob = vec![0u8; len];
    let mut healed = Vec::new();
    let mut at = 0;
    for page in pages {
        let dst = &mut blob[at..at + page.len as usize];
        at += page.len as usize;
        let mut fine = read_page_into(dev, page, dst, keys);
        if let Err(e) = &fine {
            tracing::warn!(block = page.block, "checkpoint page damaged: {e}");
            for other in others {
                if let Some(alt) = other.find(&page.hash, page.len) {
                    fine = read_page_into(dev, &alt, dst, keys);
                    if fine.is_ok() {
                        healed.push(page.block);
                        break;
                    }
                }
            }
        }
        fine.map_err(|e| {
            FsError::corrupt(format!("checkpoint page at block {}: {e}", page.block))
        })?;
    }
    Ok((blob, healed))
}

/// Verifies every page of a kept checkpoint's copies (`copies`, each a list of pages);
/// a damaged page is written again in place from the page of the same identity in
/// another copy (the same bytes: the checkpoint does not change). Returns the pages
/// read, one line per page left damaged, and how many were repaired.
pub(super) fn scrub_pages(
    dev: &dyn Device,
    copies: &[&[PageEntry]],
    keys: Option<&SealKeys>,
) -> (u64, Vec<String>, u64) {
    let sets: Vec<PageSet> = copies.iter().map(|c| PageSet::of(c)).collect();
    let (mut checked, mut damaged, mut repaired) = (0u64, Vec::new(), 0u64);
    let mut buf = vec![0u8; 0];
    for (i, pages) in copies.iter().enumerate() {
        for page in pages.iter() {
            checked += 1;
            if read_page(dev, page, &mut buf, keys).is_ok() {
                continue;
            }
            // The stored bytes of a good page of the same identity (sealing does not
            // depend on where a page lies: they are this page's too).
            let good = sets
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .filter_map(|(_, set)| set.find(&page.hash, page.len))
                .find_map(|alt| {
                    let stored = read_stored(dev, &alt, keys.is_some()).ok()?;
                    open_stored(&alt, stored.clone(), keys).ok().map(|_| stored)
                });
            let fixed = good.is_some_and(|stored| {
                let mut block = stored;
                block.resize(page.blocks() as usize * BLOCK_SIZE, 0);
                dev.write_at(&block, BlockNo::new(page.block).byte_offset())
                    .and_then(|()| dev.flush())
                    .is_ok()
            });
            if fixed {
                repaired += 1;
            } else {
                damaged.push(format!("checkpoint page at block {}", page.block));
            }
        }
    }
    (checked, damaged, repaired)
}

/// Reads one page into `buf` and verifies it.
fn read_page(
    dev: &dyn Device,
    page: &PageEntry,
    buf: &mut Vec<u8>,
    keys: Option<&SealKeys>,
) -> FsResult<()> {
    buf.clear();
    buf.resize(page.len as usize, 0);
    read_page_into(dev, page, buf, keys)
}

/// Reads `page` into `dst` (its length) and verifies it (and opens it, sealed).
fn read_page_into(
    dev: &dyn Device,
    page: &PageEntry,
    dst: &mut [u8],
    keys: Option<&SealKeys>,
) -> FsResult<()> {
    debug_assert_eq!(dst.len(), page.len as usize);
    if keys.is_none() {
        dev.read_at(dst, BlockNo::new(page.block).byte_offset())?;
        return page
            .verify(dst)
            .map_err(|e| FsError::corrupt(e.to_string()));
    }
    let stored = read_stored(dev, page, true)?;
    dst.copy_from_slice(&open_stored(page, stored, keys)?);
    Ok(())
}

/// The bytes stored for `page` (sealed: its ciphertext), their checksum verified.
fn read_stored(dev: &dyn Device, page: &PageEntry, sealed: bool) -> FsResult<Vec<u8>> {
    let len = if sealed {
        sealed_len(page.len as usize)
    } else {
        page.len as usize
    };
    let mut buf = vec![0u8; len];
    dev.read_at(&mut buf, BlockNo::new(page.block).byte_offset())?;
    let computed = checksum(&buf);
    if computed != page.checksum {
        return Err(FsError::corrupt(format!(
            "checkpoint page checksum mismatch (stored {:#010x}, computed {computed:#010x})",
            page.checksum
        )));
    }
    Ok(buf)
}

/// The page's bytes from what is stored (opened, sealed).
fn open_stored(
    page: &PageEntry,
    mut stored: Vec<u8>,
    keys: Option<&SealKeys>,
) -> FsResult<Vec<u8>> {
    if let Some(k) = keys {
        k.open(
            Domain::Page,
            &page_context(page.len),
            &mut stored,
            page.len as usize,
            &page.hash,
        )
        .map_err(|e| FsError::corrupt(format!("checkpoint page at block {}: {e}", page.block)))?;
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn text(n: usize, seed: u64) -> Vec<u8> {
        crate::test_bytes::random_bytes(n, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    #[test]
    fn pages_cover_the_blob_and_a_local_change_changes_few_pages() {
        let blob = text(4 << 20, 1);
        let pages = cut_pages(&blob, None);
        assert!(pages.len() > 20, "{} pages", pages.len());
        assert!(pages.iter().all(|p| p.len <= MAX_PAGE_BYTES));
        let mut at = 0;
        for p in &pages {
            assert_eq!(p.start, at);
            at += p.len as usize;
        }
        assert_eq!(at, blob.len());

        // An insertion in the middle: the pages before and after it stay.
        let mut changed = blob.clone();
        changed.splice(2 << 20..2 << 20, text(300, 9));
        let before = PageSet::of(&pages.iter().map(|p| p.entry(1)).collect::<Vec<_>>());
        let after = cut_pages(&changed, None);
        let new = after
            .iter()
            .filter(|p| before.find(&p.hash, p.len).is_none())
            .count();
        assert!(new <= 3, "{new} of {} pages new", after.len());
    }

    #[test]
    fn fixed_pages_change_where_the_bytes_change_and_reuse_what_did_not() {
        // A head-like blob: 200 bytes of header, a 256 KiB bitmap, a table, a union.
        let mut bitmap = vec![0u8; 256 << 10];
        bitmap[..40_000].fill(0xFF);
        let table = text(3 * 320, 4);
        let blob = |bitmap: &[u8], table: &[u8]| {
            let mut b = vec![7u8; 200];
            b.extend_from_slice(bitmap);
            b.extend_from_slice(table);
            b.extend_from_slice(bitmap);
            b
        };
        let bounds = |table: &[u8]| {
            let t = 200 + bitmap.len();
            [0, t, t + table.len(), t + table.len() + bitmap.len()]
        };
        let old = blob(&bitmap, &table);
        let old_pages = cut_fixed_in(&old, &bounds(&table), None, None);
        assert!(old_pages.iter().all(|p| p.len as usize <= HEAD_PAGE_BYTES));
        assert_eq!(
            old_pages.iter().map(|p| p.len as usize).sum::<usize>(),
            old.len()
        );
        let ids = |pages: &[CutPage]| pages.iter().map(|p| p.hash).collect::<HashSet<_>>();

        // One bit more in the bitmap, one more snapshot in the table.
        let mut bitmap2 = bitmap.clone();
        bitmap2[100_000] |= 1;
        let mut table2 = table.clone();
        table2.extend_from_slice(&text(320, 5));
        let new = blob(&bitmap2, &table2);
        let before = (old.clone(), old_pages.clone());
        let new_pages = cut_fixed_in(&new, &bounds(&table2), None, Some(&before));
        let fresh = cut_fixed_in(&new, &bounds(&table2), None, None);
        // Reused or hashed anew, the pages are the same.
        assert_eq!(new_pages, fresh);
        let unchanged = ids(&old_pages);
        let changed = new_pages
            .iter()
            .filter(|p| !unchanged.contains(&p.hash))
            .count();
        // The bitmap's page with the bit, the table, the union's page with the bit.
        assert_eq!(changed, 3, "{changed} of {} pages changed", new_pages.len());

        // Sealed pages are reused as they were sealed.
        let keys = SealKeys::new(&crate::crypt::VolumeKey::from_bytes([9; 32]));
        let sealed_old = cut_fixed_in(&old, &bounds(&table), Some(&keys), None);
        let reused = cut_fixed_in(
            &new,
            &bounds(&table2),
            Some(&keys),
            Some(&(old, sealed_old)),
        );
        assert_eq!(
            reused,
            cut_fixed_in(&new, &bounds(&table2), Some(&keys), None)
        );
    }

    #[test]
    fn a_page_table_changed_in_one_place_changes_a_few_of_its_pages() {
        use gpufs_format::pages::encode_page_table;
        let entry = |i: u64| {
            let h = text(16, i + 1000);
            PageEntry {
                block: 1000 + i * 17,
                len: 40_000 + (i as u32 % 7) * 1000,
                checksum: i as u32,
                hash: h[..16].try_into().unwrap(),
            }
        };
        let entries: Vec<PageEntry> = (0..3000).map(entry).collect();
        let len = |e: &[PageEntry]| e.iter().map(|p| u64::from(p.len)).sum::<u64>();
        let old = encode_page_table(len(&entries), &entries);
        let old_pages = cut_table_pages(&old, None);
        assert!(old_pages.len() >= 10, "{} table pages", old_pages.len());
        assert!(old_pages.iter().all(|p| p.len <= 16 * 1024));
        let known = PageSet::of(&old_pages.iter().map(|p| p.entry(1)).collect::<Vec<_>>());
        let changed = |e: &[PageEntry]| {
            let table = encode_page_table(len(e), e);
            let pages = cut_table_pages(&table, None);
            assert_eq!(
                pages.iter().map(|p| p.len as usize).sum::<usize>(),
                table.len()
            );
            pages
                .iter()
                .filter(|p| known.find(&p.hash, p.len).is_none())
                .count()
        };
        // One page of the blob written elsewhere: the table page naming it.
        let mut moved = entries.clone();
        moved[1500] = PageEntry {
            block: 999_999,
            ..entries[1500]
        };
        assert!(
            changed(&moved) <= 2,
            "{} table pages changed",
            changed(&moved)
        );
        // A page cut into three: the header's page and the pages around the change.
        let mut split = entries.clone();
        split.splice(1500..1501, [entry(5000), entry(5001), entry(5002)]);
        assert!(
            changed(&split) <= 4,
            "{} table pages changed",
            changed(&split)
        );
    }

    #[test]
    fn pieces_are_single_blocks_of_the_same_bytes() {
        let blob = text(100_000, 3);
        let page = CutPage::of(&blob, 10, 9000, None);
        let pieces = page.pieces(&blob, None);
        assert_eq!(pieces.len(), 3);
        let joined: Vec<u8> = pieces
            .iter()
            .flat_map(|p| p.bytes(&blob).to_vec())
            .collect();
        assert_eq!(joined, page.bytes(&blob));
        assert!(pieces.iter().all(|p| p.blocks() == 1));
    }

    #[test]
    fn a_sealed_page_changed_without_the_key_is_refused_and_read_from_the_other_copy() {
        use crate::crypt::{SealKeys, VolumeKey};
        use crate::device::FaultDevice;
        let keys = SealKeys::new(&VolumeKey::from_bytes([3; 32]));
        let blob = text(300_000, 5);
        let cut = cut_pages(&blob, Some(&keys));
        assert!(cut.len() >= 2);
        let dev = FaultDevice::new(vec![0u8; 512 * BLOCK_SIZE]);
        // Two copies of every page, 200 blocks apart.
        let mut copies = [Vec::new(), Vec::new()];
        let mut block = 1;
        for page in &cut {
            for (c, copy) in copies.iter_mut().enumerate() {
                let at = block + 200 * c as u64;
                dev.write_at(&page.stored(&blob, Some(&keys)), at * BLOCK_SIZE as u64)
                    .unwrap();
                copy.push(page.entry(at));
            }
            block += page.blocks();
        }
        let len = blob.len() as u64;
        let (back, healed) = read_pages(&dev, &copies[0], len, &[], Some(&keys)).unwrap();
        assert_eq!(back, blob);
        assert!(healed.is_empty());
        // No plaintext stored; without the keys, nothing decodes as the blob.
        let raw = dev.volatile_image();
        assert!(!raw.windows(32).any(|w| w == &blob[1000..1032]));
        let unopened = read_pages(&dev, &copies[0], len, &[], None).map(|r| r.0);
        assert!(unopened.is_err() || unopened.is_ok_and(|b| b != blob));
        // A byte changed in copy 0 with its CRC32C made to match: refused, then read
        // from copy 1.
        let victim = copies[0][1];
        let at = victim.block as usize * BLOCK_SIZE + 10;
        let mut img = dev.volatile_image();
        img[at] ^= 1;
        let stored = &img[victim.block as usize * BLOCK_SIZE..][..victim.len as usize];
        copies[0][1].checksum = checksum(stored);
        let forged = FaultDevice::new(img);
        let err = read_pages(&forged, &copies[0], len, &[], Some(&keys)).unwrap_err();
        assert!(err.to_string().contains("authentication"), "{err}");
        let other = PageSet::of(&copies[1]);
        let (back, healed) = read_pages(&forged, &copies[0], len, &[&other], Some(&keys)).unwrap();
        assert_eq!(back, blob);
        assert_eq!(healed, vec![victim.block]);
    }
}
