//! Checkpoint pages (format version 5): the checkpoint blob cut into content-defined
//! pages, each stored as one run of blocks and named by a page table. A checkpoint
//! writes only the pages no earlier checkpoint of the same copy holds; the rest it
//! names where they already lie. Versions 5 to 7: the page table is what a checkpoint
//! root points at; version 8: the table lies in pages too, named by a page index (the
//! same layout, another magic) that the root points at.

use bytemuck::{Pod, Zeroable};

use crate::{checksum, FormatError, BLOCK_SIZE};

pub const PAGE_TABLE_MAGIC: [u8; 8] = *b"GPUFSPGT";
/// Magic of a page index (version 8): what a checkpoint root points at, naming the pages
/// that hold the page table.
pub const PAGE_INDEX_MAGIC: [u8; 8] = *b"GPUFSPGI";
/// First format version whose checkpoint roots point at a page index (and whose page
/// tables lie in pages, like the blob).
pub const PAGE_INDEX_VERSION: u32 = 8;
/// Longest page the chunker cuts (the shortest is a quarter of the target, except the
/// last page of a blob and the single-block pieces a fragmented image forces).
pub const MAX_PAGE_BYTES: u32 = 256 * 1024;

/// Header of a page table (and of a page index, magic [`PAGE_INDEX_MAGIC`], whose
/// `blob_len` is the table's length); `page_count` entries follow.
///
/// ```text
/// off size field
///   0    8 magic       "GPUFSPGT"
///   8    8 page_count  PageEntry x n follow
///  16    8 blob_len    bytes of the checkpoint blob the pages hold, in order
///  24    8 mac         an encrypted image's (v6), in what the root points at (v8: the
///                      index; the table in pages has 0): the first 8 bytes of the
///                      keyed BLAKE3 of the checkpoint's generation and these bytes
///                      with `mac` zero, so that no table of another checkpoint passes
///                      for it; else 0
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PageTableHeader {
    pub magic: [u8; 8],
    pub page_count: u64,
    pub blob_len: u64,
    pub mac: u64,
}
const _: () = assert!(std::mem::size_of::<PageTableHeader>() == 32);

/// Byte range of [`PageTableHeader::mac`] in an encoded table.
pub const PAGE_TABLE_MAC: std::ops::Range<usize> = 24..32;

/// One page of a checkpoint blob.
///
/// ```text
/// off size field
///   0    8 block     absolute block where the page starts (ceil(len/4096) blocks)
///   8    4 len       bytes in the page (1..=MAX_PAGE_BYTES)
///  12    4 checksum  CRC32C of the page's bytes (encrypted image: of its ciphertext,
///                    at least 16 bytes)
///  16   16 hash      the first 16 bytes of the BLAKE3 of the page's bytes: its identity
///                    (encrypted image: of its seal's tag, a keyed BLAKE3)
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct PageEntry {
    pub block: u64,
    pub len: u32,
    pub checksum: u32,
    pub hash: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<PageEntry>() == 32);

impl PageEntry {
    /// Blocks the page takes.
    pub fn blocks(&self) -> u64 {
        u64::from(self.len).div_ceil(BLOCK_SIZE as u64)
    }

    /// Checks `bytes` are this page's.
    pub fn verify(&self, bytes: &[u8]) -> Result<(), FormatError> {
        if bytes.len() != self.len as usize {
            return Err(FormatError::corrupted("checkpoint page", "wrong length"));
        }
        let computed = checksum(bytes);
        if computed != self.checksum {
            return Err(FormatError::Checksum {
                what: "checkpoint page",
                stored: self.checksum,
                computed,
            });
        }
        Ok(())
    }
}

/// Encodes a page table for a blob of `blob_len` bytes.
pub fn encode_page_table(blob_len: u64, pages: &[PageEntry]) -> Vec<u8> {
    encode_pages(PAGE_TABLE_MAGIC, blob_len, pages)
}

/// Encodes a page index: the pages holding a page table of `table_len` bytes. The same
/// layout as a page table (its pages are the table's, its `blob_len` the table's length).
pub fn encode_page_index(table_len: u64, pages: &[PageEntry]) -> Vec<u8> {
    encode_pages(PAGE_INDEX_MAGIC, table_len, pages)
}

/// Decodes a page index: the page table's length and the pages that hold it.
pub fn decode_page_index(bytes: &[u8]) -> Result<(u64, Vec<PageEntry>), FormatError> {
    decode_pages(PAGE_INDEX_MAGIC, "checkpoint page index", bytes)
}

fn encode_pages(magic: [u8; 8], blob_len: u64, pages: &[PageEntry]) -> Vec<u8> {
    let hdr = PageTableHeader {
        magic,
        page_count: pages.len() as u64,
        blob_len,
        mac: 0,
    };
    let mut out = Vec::with_capacity(32 + pages.len() * 32);
    out.extend_from_slice(bytemuck::bytes_of(&hdr));
    out.extend_from_slice(bytemuck::cast_slice(pages));
    out
}

/// Decodes a page table: the blob's length and its pages, each of a valid length, their
/// lengths adding up to the blob's. Block numbers are the loader's to check.
pub fn decode_page_table(bytes: &[u8]) -> Result<(u64, Vec<PageEntry>), FormatError> {
    decode_pages(PAGE_TABLE_MAGIC, "checkpoint page table", bytes)
}

fn decode_pages(
    magic: [u8; 8],
    what: &'static str,
    bytes: &[u8],
) -> Result<(u64, Vec<PageEntry>), FormatError> {
    let bad = |d: &str| FormatError::corrupted(what, d.to_string());
    if bytes.len() < 32 {
        return Err(bad("shorter than its header"));
    }
    if bytes[..8] != magic {
        return Err(FormatError::BadMagic { what });
    }
    let hdr: PageTableHeader = bytemuck::pod_read_unaligned(&bytes[..32]);
    let body = &bytes[32..];
    if hdr.page_count.checked_mul(32) != Some(body.len() as u64) {
        return Err(bad("page count does not match its length"));
    }
    let pages: Vec<PageEntry> = bytemuck::pod_collect_to_vec(body);
    let mut total: u64 = 0;
    for p in &pages {
        if p.len == 0 || p.len > MAX_PAGE_BYTES {
            return Err(bad("page length out of range"));
        }
        total += u64::from(p.len);
    }
    if total != hdr.blob_len {
        return Err(bad("pages do not add up to the blob"));
    }
    Ok((hdr.blob_len, pages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn page(block: u64, len: u32) -> PageEntry {
        PageEntry {
            block,
            len,
            checksum: 7,
            hash: [block as u8; 16],
        }
    }

    #[test]
    fn table_round_trip() {
        let pages = vec![page(100, 5000), page(300, 1), page(7, MAX_PAGE_BYTES)];
        let blob_len = 5001 + u64::from(MAX_PAGE_BYTES);
        let bytes = encode_page_table(blob_len, &pages);
        assert_eq!(decode_page_table(&bytes).unwrap(), (blob_len, pages));
        assert_eq!(page(1, 4097).blocks(), 2);
    }

    #[test]
    fn an_index_round_trips_and_is_not_a_table() {
        let pages = vec![page(9, 4096), page(40, 100)];
        let bytes = encode_page_index(4196, &pages);
        assert_eq!(decode_page_index(&bytes).unwrap(), (4196, pages.clone()));
        assert!(decode_page_table(&bytes).is_err());
        assert!(decode_page_index(&encode_page_table(4196, &pages)).is_err());
    }

    #[test]
    fn inconsistent_tables_are_refused() {
        let pages = vec![page(100, 5000)];
        assert!(decode_page_table(&encode_page_table(5001, &pages)).is_err());
        assert!(decode_page_table(&encode_page_table(0, &[page(1, 0)])).is_err());
        let long = page(1, MAX_PAGE_BYTES + 1);
        assert!(decode_page_table(&encode_page_table(u64::from(long.len), &[long])).is_err());
        let bytes = encode_page_table(5000, &pages);
        assert!(decode_page_table(&bytes[..bytes.len() - 1]).is_err());
        let mut wrong = bytes.clone();
        wrong[0] ^= 1;
        assert!(decode_page_table(&wrong).is_err());
    }

    #[test]
    fn a_page_verifies_its_bytes() {
        let bytes = b"page bytes".to_vec();
        let p = PageEntry {
            block: 1,
            len: bytes.len() as u32,
            checksum: checksum(&bytes),
            hash: [0; 16],
        };
        assert!(p.verify(&bytes).is_ok());
        let mut flipped = bytes.clone();
        flipped[3] ^= 0x10;
        assert!(p.verify(&flipped).is_err());
        assert!(p.verify(&bytes[1..]).is_err());
    }

    proptest! {
        #[test]
        fn table_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut b = bytes;
            if b.len() >= 8 { b[..8].copy_from_slice(&PAGE_TABLE_MAGIC); }
            if let Ok((len, pages)) = decode_page_table(&b) {
                prop_assert_eq!(encode_page_table(len, &pages), b);
            }
        }
    }
}
