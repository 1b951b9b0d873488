//! Journal blocks and transaction streams on arbitrary bytes: never panic; decoded ops
//! re-encode to the bytes they came from.
#![no_main]
use gpufs_format::{JournalBlockHeader, JournalOp, BLOCK_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= BLOCK_SIZE {
        let _ = JournalBlockHeader::decode_block(&data[..BLOCK_SIZE]);
    }
    if let Ok(ops) = JournalOp::decode_all(data) {
        let mut out = Vec::new();
        for op in &ops {
            op.encode(&mut out);
        }
        assert_eq!(out, data);
    }
});
