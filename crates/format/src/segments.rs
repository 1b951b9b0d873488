//! Version 7 checkpoint blobs: the namespace in segments by inode range, so that a
//! checkpoint encodes, hashes and writes only the segments that changed.
//!
//! A version 7 blob is a sequence of segments, each a [`SegmentHeader`] followed by a
//! version 5 blob (`GPUFSBL5`, [`CheckpointImage::encode`]) of what the segment holds:
//!
//! - first the head, `first_ino = end_ino = 0`: the data bitmap, the snapshot table, the
//!   union of the snapshots' bitmaps and the next snapshot id; no namespace;
//! - then one segment per [`SEGMENT_SLOTS`] inode slots, in order, the first from slot 0,
//!   each starting where the one before ended: the inode slots `first_ino..end_ino`, the
//!   entries of the directories among them (by directory, then cookie) with their names
//!   (name offsets count from the segment's own name arena), and the records, xattrs and
//!   symlink targets of those inodes.
//!
//! The checkpoint writer cuts every segment into its own pages, so a segment that did not
//! change keeps its pages where they lie. Decoding merges the segments into the one
//! [`CheckpointImage`] a version 6 blob would have held.

use bytemuck::{Pod, Zeroable};

use crate::checkpoint::{CheckpointImage, BLOB_MAGIC_V5};
use crate::FormatError;

/// Magic of a segment header, and so of a version 7 blob.
pub const SEGMENT_MAGIC: [u8; 8] = *b"GPUFSSG7";

/// Inode slots one namespace segment covers (the last may cover fewer).
pub const SEGMENT_SLOTS: u32 = 1024;

/// Header of one segment.
///
/// ```text
/// off size field
///   0    8 magic        "GPUFSSG7"
///   8    4 first_ino    first inode slot it holds (0 for the head)
///  12    4 end_ino      one past its last slot (0 for the head)
///  16    8 payload_len  bytes of the version 5 blob that follows
///  24    8 reserved     0
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SegmentHeader {
    pub magic: [u8; 8],
    pub first_ino: u32,
    pub end_ino: u32,
    pub payload_len: u64,
    pub reserved: u64,
}
const _: () = assert!(std::mem::size_of::<SegmentHeader>() == 32);

/// Where one segment lies in a blob: its slots and its bytes, header included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSpan {
    pub first_ino: u32,
    pub end_ino: u32,
    pub start: usize,
    pub len: usize,
}

/// True for a version 7 (segmented) blob.
pub fn is_segmented(blob: &[u8]) -> bool {
    blob.get(..8) == Some(&SEGMENT_MAGIC[..])
}

/// The segment of slots `first_ino..end_ino` holding `img` (the head: `0..0`).
pub fn encode_segment(first_ino: u32, end_ino: u32, img: &CheckpointImage) -> Vec<u8> {
    debug_assert!(first_ino <= end_ino);
    let payload = img.encode();
    let hdr = SegmentHeader {
        magic: SEGMENT_MAGIC,
        first_ino,
        end_ino,
        payload_len: payload.len() as u64,
        reserved: 0,
    };
    let mut out = Vec::with_capacity(32 + payload.len());
    out.extend_from_slice(bytemuck::bytes_of(&hdr));
    out.extend_from_slice(&payload);
    out
}

fn bad(detail: impl Into<String>) -> FormatError {
    FormatError::corrupted("checkpoint segment", detail)
}

/// Every segment of a version 7 blob, headers checked (the head first, then namespace
/// segment k holding slots `k * SEGMENT_SLOTS..`, each but the last whole), payloads not
/// decoded.
pub fn segment_spans(blob: &[u8]) -> Result<Vec<SegmentSpan>, FormatError> {
    let mut spans: Vec<SegmentSpan> = Vec::new();
    let mut at = 0usize;
    while at < blob.len() {
        let head = blob
            .get(at..at + 32)
            .ok_or_else(|| bad("a segment header runs past the blob"))?;
        let hdr: SegmentHeader = bytemuck::pod_read_unaligned(head);
        if hdr.magic != SEGMENT_MAGIC || hdr.reserved != 0 {
            return Err(bad(format!("no segment header at byte {at}")));
        }
        let len = usize::try_from(hdr.payload_len)
            .ok()
            .and_then(|n| n.checked_add(32))
            .filter(|n| *n <= blob.len() - at)
            .ok_or_else(|| bad("a segment runs past the blob"))?;
        // Namespace segment k holds slots k * SEGMENT_SLOTS.. (what comparisons of two
        // checkpoints by segment rely on); only the last may end short.
        let expected_first = (spans.len() as u64).saturating_sub(1) * u64::from(SEGMENT_SLOTS);
        let after_previous = spans.last().is_none_or(|l| {
            l.first_ino == l.end_ino
                || u64::from(l.end_ino) == u64::from(l.first_ino) + u64::from(SEGMENT_SLOTS)
        });
        let ok = if spans.is_empty() {
            hdr.first_ino == 0 && hdr.end_ino == 0
        } else {
            u64::from(hdr.first_ino) == expected_first
                && hdr.end_ino > hdr.first_ino
                && u64::from(hdr.end_ino) <= expected_first + u64::from(SEGMENT_SLOTS)
                && after_previous
        };
        if !ok {
            return Err(bad(format!(
                "segment of slots {}..{} out of order",
                hdr.first_ino, hdr.end_ino
            )));
        }
        spans.push(SegmentSpan {
            first_ino: hdr.first_ino,
            end_ino: hdr.end_ino,
            start: at,
            len,
        });
        at += len;
    }
    if spans.is_empty() {
        return Err(bad("a blob without its head segment"));
    }
    Ok(spans)
}

/// Decodes a version 7 blob into the image its segments make together, checking that
/// each segment holds only what its range owns.
pub fn decode_segmented(blob: &[u8]) -> Result<CheckpointImage, FormatError> {
    let spans = segment_spans(blob)?;
    let mut out = CheckpointImage::default();
    for (i, span) in spans.iter().enumerate() {
        let payload = &blob[span.start + 32..span.start + span.len];
        if payload.get(..8) != Some(&BLOB_MAGIC_V5[..]) {
            return Err(bad("a segment's payload is not a version 5 blob"));
        }
        let img = CheckpointImage::decode(payload)?;
        if i == 0 {
            let empty = img.inodes.is_empty()
                && img.dirents.is_empty()
                && img.names.is_empty()
                && img.extents.is_empty()
                && img.xattrs.is_empty()
                && img.symlinks.is_empty();
            if !empty {
                return Err(bad("the head segment holds namespace"));
            }
            out.bitmap = img.bitmap;
            out.snapshots = img.snapshots;
            out.snapshot_union = img.snapshot_union;
            out.next_snapshot = img.next_snapshot;
            continue;
        }
        let (first, end) = (span.first_ino, span.end_ino);
        let owns = |ino: u32| (first..end).contains(&ino);
        if img.inodes.len() != (end - first) as usize {
            return Err(bad(format!(
                "segment {first}..{end} holds {} inode slots",
                img.inodes.len()
            )));
        }
        if !img.bitmap.is_empty()
            || !img.snapshots.is_empty()
            || !img.snapshot_union.is_empty()
            || img.next_snapshot != 0
        {
            return Err(bad(format!("segment {first}..{end} holds head sections")));
        }
        if !img.dirents.iter().all(|d| owns(d.parent))
            || !img.extents.iter().all(|e| owns(e.ino))
            || !img.xattrs.iter().all(|x| owns(x.0))
            || !img.symlinks.iter().all(|s| owns(s.0))
        {
            return Err(bad(format!(
                "segment {first}..{end} holds what another segment owns"
            )));
        }
        let base = out.names.len() as u64;
        for d in &img.dirents {
            let name_end = d.name_offset.checked_add(u64::from(d.name_len));
            if name_end.is_none_or(|e| e > img.names.len() as u64) {
                return Err(bad(format!(
                    "segment {first}..{end}: an entry's name lies outside its arena"
                )));
            }
        }
        out.inodes.extend_from_slice(&img.inodes);
        out.dirents.extend(img.dirents.into_iter().map(|mut d| {
            d.name_offset += base;
            d
        }));
        out.names.extend_from_slice(&img.names);
        out.extents.extend_from_slice(&img.extents);
        out.xattrs.extend(img.xattrs);
        out.symlinks.extend(img.symlinks);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::ExtentEntry;
    use crate::records::{DirentRecord, InodeRecord};
    use proptest::prelude::*;

    fn inode(mode: u32) -> InodeRecord {
        InodeRecord {
            mode,
            nlink: 1,
            ..Default::default()
        }
    }

    /// A head and two segments, and the image they make together.
    fn sample() -> (Vec<u8>, CheckpointImage) {
        let head = CheckpointImage {
            bitmap: vec![0xff, 1],
            next_snapshot: 1,
            ..Default::default()
        };
        let mut slots = vec![InodeRecord::default(); SEGMENT_SLOTS as usize];
        slots[1] = inode(0o40755);
        slots[2] = inode(0o100644);
        let a = CheckpointImage {
            inodes: slots,
            dirents: vec![DirentRecord {
                parent: 1,
                ino: 2,
                name_len: 3,
                kind: 1,
                cookie: 3,
                ..Default::default()
            }],
            names: b"abc".to_vec(),
            extents: vec![ExtentEntry {
                ino: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        let b = CheckpointImage {
            inodes: vec![inode(0o40700), inode(0o100600)],
            dirents: vec![DirentRecord {
                parent: 1024,
                ino: 1025,
                name_len: 2,
                kind: 1,
                cookie: 3,
                ..Default::default()
            }],
            names: b"xy".to_vec(),
            xattrs: vec![(1025, b"user.k".to_vec(), b"v".to_vec())],
            symlinks: vec![(1024, b"t".to_vec())],
            ..Default::default()
        };
        let mut blob = encode_segment(0, 0, &head);
        blob.extend(encode_segment(0, 1024, &a));
        blob.extend(encode_segment(1024, 1026, &b));
        let mut want = CheckpointImage {
            bitmap: head.bitmap.clone(),
            next_snapshot: 1,
            ..Default::default()
        };
        want.inodes = [a.inodes.clone(), b.inodes.clone()].concat();
        let mut d2 = b.dirents[0];
        d2.name_offset = 3;
        debug_assert_eq!(a.names.len(), 3);
        want.dirents = vec![a.dirents[0], d2];
        want.names = b"abcxy".to_vec();
        want.extents = a.extents.clone();
        want.xattrs = b.xattrs.clone();
        want.symlinks = b.symlinks.clone();
        (blob, want)
    }

    #[test]
    fn segments_merge_into_one_image() {
        let (blob, want) = sample();
        assert!(is_segmented(&blob));
        assert_eq!(decode_segmented(&blob).unwrap(), want);
        assert_eq!(CheckpointImage::decode(&blob).unwrap(), want);
        let spans = segment_spans(&blob).unwrap();
        assert_eq!(
            spans
                .iter()
                .map(|s| (s.first_ino, s.end_ino))
                .collect::<Vec<_>>(),
            vec![(0, 0), (0, 1024), (1024, 1026)]
        );
        assert_eq!(spans.iter().map(|s| s.len).sum::<usize>(), blob.len());
    }

    #[test]
    fn segments_out_of_place_are_refused() {
        let head = encode_segment(0, 0, &CheckpointImage::default());
        let one = CheckpointImage {
            inodes: vec![InodeRecord::default()],
            ..Default::default()
        };
        // A gap, an overlap, a missing head, a segment owning another's entry.
        for blob in [
            [head.clone(), encode_segment(1, 2, &one)].concat(),
            [
                head.clone(),
                encode_segment(0, 1, &one),
                encode_segment(0, 1, &one),
            ]
            .concat(),
            encode_segment(0, 1, &one),
            [
                head.clone(),
                encode_segment(
                    0,
                    1,
                    &CheckpointImage {
                        extents: vec![ExtentEntry {
                            ino: 5,
                            ..Default::default()
                        }],
                        ..one.clone()
                    },
                ),
            ]
            .concat(),
            [head.clone(), encode_segment(0, 2, &one)].concat(),
            // A short segment before another: segment k starts at k * SEGMENT_SLOTS.
            [
                head.clone(),
                encode_segment(0, 1, &one),
                encode_segment(1024, 1025, &one),
            ]
            .concat(),
            [
                head.clone(),
                encode_segment(0, 1, &one),
                encode_segment(1, 2, &one),
            ]
            .concat(),
        ] {
            assert!(CheckpointImage::decode(&blob).is_err());
        }
    }

    proptest! {
        #[test]
        fn garbage_and_truncation_never_panic(cut in 0usize..400, flip in 0usize..400) {
            let (blob, _) = sample();
            let _ = CheckpointImage::decode(&blob[..cut.min(blob.len())]);
            let mut b = blob.clone();
            let at = flip % b.len();
            b[at] ^= 0x41;
            let _ = CheckpointImage::decode(&b);
        }
    }
}
