//! zstd record decompression of the compute layer (what a read of a zstd-flagged record
//! runs) on arbitrary bytes: never panics; the record either fails, leaving its output
//! zeroed, or yields exactly its expected length, the same bytes the zstd library's
//! one-shot decoder yields.
#![no_main]
use gpufs_compute::kernels::zstd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // The first three bytes choose the expected size (up to 1 MiB), the rest is the frame.
    let expected = (u32::from(data[0]) | u32::from(data[1]) << 8 | u32::from(data[2]) << 16)
        % (1 << 20);
    let frame = &data[3..];
    let mut out = vec![0xA5u8; expected as usize];
    let ours = zstd::decompress_one(frame, &mut out);
    let reference = ::zstd::bulk::decompress(frame, expected as usize);
    match ours {
        Ok(()) => {
            let r = reference.expect("accepted a frame the library refuses");
            assert_eq!(r, out);
        }
        Err(_) => {
            assert!(out.iter().all(|b| *b == 0));
            if let Ok(r) = reference {
                assert_ne!(r.len(), expected as usize);
            }
        }
    }
});
