//! Key slot tables on arbitrary bytes (the key area of an image, read before any key is
//! known): a table decodes or is refused, never panics; a decoded table re-encodes to
//! the same table.
#![no_main]
use gpufs_format::keyslot::KeyTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = KeyTable::decode(data) {
        let again = KeyTable::decode(&t.encode()).expect("a table re-encodes");
        assert_eq!(again, t);
        for i in t.active() {
            let _ = t.slots[i].associated_data(&t.uuid);
        }
    }
});
