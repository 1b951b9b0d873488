//! Superblock slots and signature detection on arbitrary bytes: never panic; anything
//! accepted re-encodes to bytes that decode to the same superblock.
#![no_main]
use gpufs_format::{signature, Superblock};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = signature::detect(data);
    if let Ok(sb) = Superblock::decode(data) {
        let again = Superblock::decode(&sb.encode()).expect("re-encoded superblock decodes");
        assert_eq!(again, Superblock { checksum: again.checksum, ..sb });
    }
});
