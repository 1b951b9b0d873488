//! zstd compression of single records (one zstd frame each), CPU only, with a
//! compression and a decompression context kept per thread: a context costs far more to
//! make than a 64 KiB record costs to compress.
//!
//! Decompression checks the frame against the length the caller expects: a frame that
//! is not valid zstd, or decodes to more or fewer bytes, is an error and leaves the
//! output zeroed, never a panic.

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};

/// Name under which the statistics count the codec.
pub const NAME: &str = "zstd";

/// Why one frame did not decompress, or a record did not compress.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZstdError {
    #[error("not a valid zstd frame of {expected} bytes: {why}")]
    Malformed { expected: u32, why: String },
    #[error("the frame decodes to {got} bytes, {expected} expected")]
    TooShort { expected: u32, got: u32 },
    #[error("zstd compressor: {0}")]
    Compressor(String),
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// The frame of `record` at `level` into `out` (resized to fit), when it is strictly
/// shorter than the record: the frame is `out[..n]`.
pub fn compress_one(
    record: &[u8],
    level: i32,
    out: &mut Vec<u8>,
) -> Result<Option<usize>, ZstdError> {
    if record.is_empty() {
        return Ok(None);
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let err = |e: std::io::Error| ZstdError::Compressor(e.to_string());
        let ctx = match slot.as_mut() {
            Some((l, c)) if *l == level => c,
            _ => {
                let c = Compressor::new(level).map_err(err)?;
                &mut slot.insert((level, c)).1
            }
        };
        out.clear();
        // A frame no longer than the record is the only one worth keeping.
        out.resize(record.len(), 0);
        match ctx.compress_to_buffer(record, out.as_mut_slice()) {
            Ok(n) if n < record.len() => Ok(Some(n)),
            // Too small a buffer: the frame would not have been shorter.
            Ok(_) | Err(_) => Ok(None),
        }
    })
}

/// Decodes one frame into `out` (its expected length); zeroes `out` on failure.
pub fn decompress_one(frame: &[u8], out: &mut [u8]) -> Result<(), ZstdError> {
    let expected = out.len() as u32;
    let got = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let ctx = match slot.as_mut() {
            Some(d) => d,
            None => {
                let d = Decompressor::new().map_err(|e| ZstdError::Malformed {
                    expected,
                    why: e.to_string(),
                })?;
                slot.insert(d)
            }
        };
        match ctx.decompress_to_buffer(frame, &mut *out) {
            Ok(n) if n == out.len() => Ok(()),
            Ok(n) => Err(ZstdError::TooShort {
                expected,
                got: n as u32,
            }),
            Err(e) => Err(ZstdError::Malformed {
                expected,
                why: e.to_string(),
            }),
        }
    });
    if got.is_err() {
        out.fill(0);
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog; "
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()
    }

    #[test]
    fn records_round_trip_at_every_level_and_length() {
        let mut frame = Vec::new();
        for level in [1, 3, 9, 19] {
            for len in [1usize, 100, 4096, 65536] {
                let rec = text(len);
                let Some(n) = compress_one(&rec, level, &mut frame).unwrap() else {
                    assert!(len < 64, "{len} bytes of text did not shrink");
                    continue;
                };
                assert!(n < len);
                let mut out = vec![0xAA; len];
                decompress_one(&frame[..n], &mut out).unwrap();
                assert_eq!(out, rec);
            }
        }
    }

    #[test]
    fn incompressible_records_are_not_kept() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let rec: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(compress_one(&rec, 3, &mut Vec::new()).unwrap(), None);
        assert_eq!(compress_one(&[], 3, &mut Vec::new()).unwrap(), None);
    }

    #[test]
    fn damaged_frames_and_wrong_lengths_are_errors_with_zeroed_output() {
        let rec = text(20000);
        let mut frame = Vec::new();
        let n = compress_one(&rec, 3, &mut frame).unwrap().unwrap();
        let frame = &frame[..n];
        let mut short = vec![1u8; 19999];
        assert!(decompress_one(frame, &mut short).is_err());
        assert!(short.iter().all(|b| *b == 0));
        let mut long = vec![1u8; 20001];
        assert!(matches!(
            decompress_one(frame, &mut long),
            Err(ZstdError::TooShort { got: 20000, .. })
        ));
        for cut in [0, 1, 4, n / 2, n - 1] {
            let mut out = vec![1u8; 20000];
            assert!(
                decompress_one(&frame[..cut], &mut out).is_err(),
                "cut {cut}"
            );
        }
        for i in 0..n {
            let mut bad = frame.to_vec();
            bad[i] ^= 0x5A;
            let mut out = vec![0u8; 20000];
            // A flip may still decode (in literals), but never to the wrong length,
            // and never panics.
            let _ = decompress_one(&bad, &mut out);
        }
    }
}
