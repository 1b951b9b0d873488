//! LZ4 block decompression of the compute layer's CPU path on arbitrary bytes, placed
//! between two valid records of the same batch: never panics; the fuzzed record either
//! fails or yields exactly its expected length and what lz4_flex yields; the neighbours
//! still decode exactly (nothing was written outside the fuzzed record).
#![no_main]
use gpufs_compute::kernels::lz4;
use gpufs_compute::records::RecordBatch;
use libfuzzer_sys::fuzz_target;

const NEIGHBOUR: &[u8] = b"gpufs neighbour record gpufs neighbour record gpufs neighbour record";

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // The first three bytes choose the expected size (up to 1 MiB), the rest is the block.
    let expected = (u32::from(data[0]) | u32::from(data[1]) << 8 | u32::from(data[2]) << 16)
        % (1 << 20);
    let block = &data[3..];
    let packed = lz4_flex::block::compress(NEIGHBOUR);
    let Ok(blocks) = RecordBatch::from_records([&packed[..], block, &packed[..]]) else {
        return;
    };
    let sizes = [NEIGHBOUR.len() as u32, expected, NEIGHBOUR.len() as u32];
    let Ok(out) = lz4::decompress_cpu(&blocks, &sizes) else {
        panic!("a batch of three records is refused");
    };
    assert_eq!(out.data.get(0), NEIGHBOUR);
    assert_eq!(out.data.get(2), NEIGHBOUR);
    assert!(out.status[0].is_ok() && out.status[2].is_ok());
    let mut reference = vec![0u8; expected as usize];
    let lz4_flex_ok = matches!(
        lz4_flex::block::decompress_into(block, &mut reference),
        Ok(n) if n == expected as usize
    );
    match &out.status[1] {
        Ok(()) => {
            assert!(lz4_flex_ok);
            assert_eq!(out.data.get(1), &reference[..]);
        }
        Err(_) => assert!(!lz4_flex_ok),
    }
});
