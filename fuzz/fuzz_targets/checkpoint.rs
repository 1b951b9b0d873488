//! Checkpoint roots, page indexes, page tables and blobs on arbitrary bytes: never panic;
//! an accepted page index, page table or blob re-encodes to the same bytes; an accepted
//! segmented (version 7) blob's segments cover it exactly and merge into an image that
//! round-trips.
#![no_main]
use gpufs_format::checkpoint::{CheckpointImage, CheckpointRoot, BLOB_MAGIC, BLOB_MAGIC_V5};
use gpufs_format::pages::{
    decode_page_index, decode_page_table, encode_page_index, encode_page_table,
    PAGE_INDEX_MAGIC, PAGE_TABLE_MAGIC,
};
use gpufs_format::segments::{segment_spans, SEGMENT_MAGIC};
use gpufs_format::BLOCK_SIZE;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= BLOCK_SIZE {
        let _ = CheckpointRoot::decode(&data[..BLOCK_SIZE]);
    }
    let mut table = data.to_vec();
    if table.len() >= 8 {
        table[..8].copy_from_slice(&PAGE_TABLE_MAGIC);
    }
    if let Ok((len, pages)) = decode_page_table(&table) {
        assert_eq!(encode_page_table(len, &pages), table);
    }
    if table.len() >= 8 {
        table[..8].copy_from_slice(&PAGE_INDEX_MAGIC);
    }
    if let Ok((len, pages)) = decode_page_index(&table) {
        assert_eq!(encode_page_index(len, &pages), table);
    }
    // Both blob forms: a version 5 blob re-encodes to itself; a version 4 blob decodes
    // to what its re-encoding decodes to.
    for magic in [BLOB_MAGIC_V5, BLOB_MAGIC] {
        let mut blob = data.to_vec();
        if blob.len() >= 8 {
            blob[..8].copy_from_slice(&magic);
        }
        if let Ok(img) = CheckpointImage::decode(&blob) {
            let again = img.encode();
            if magic == BLOB_MAGIC_V5 {
                assert_eq!(again, blob);
            }
            assert_eq!(CheckpointImage::decode(&again).ok(), Some(img));
        }
    }
    let mut blob = data.to_vec();
    if blob.len() >= 8 {
        blob[..8].copy_from_slice(&SEGMENT_MAGIC);
    }
    if let Ok(img) = CheckpointImage::decode(&blob) {
        let spans = segment_spans(&blob).expect("a decoded blob has segments");
        assert_eq!(spans.iter().map(|s| s.len).sum::<usize>(), blob.len());
        assert_eq!(CheckpointImage::decode(&img.encode()).ok(), Some(img));
    }
});
