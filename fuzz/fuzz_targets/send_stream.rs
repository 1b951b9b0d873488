//! Replication streams on arbitrary bytes (what `gpufs receive` reads from a pipe):
//! the header and every frame decode or are refused, never panic; a decoded frame
//! re-encodes to the bytes it came from.
#![no_main]
use gpufs_format::send::{SendOp, StreamHeader, FRAME_HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = StreamHeader::decode(data);
    let mut rest = data;
    while rest.len() >= FRAME_HEADER_LEN {
        let Ok(head) = SendOp::check_header(rest) else {
            break;
        };
        let end = FRAME_HEADER_LEN + head.len as usize;
        let Some(payload) = rest.get(FRAME_HEADER_LEN..end) else {
            break;
        };
        let Ok(op) = SendOp::decode(&head, payload) else {
            break;
        };
        let mut out = Vec::new();
        op.encode(&mut out);
        assert_eq!(out, &rest[..end]);
        rest = &rest[end..];
    }
});
