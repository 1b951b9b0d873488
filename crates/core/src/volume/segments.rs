//! The checkpoint blob in segments (format version 7): the head (data bitmap, snapshot
//! table) encoded at every checkpoint, and the namespace segments encoded only when they
//! changed. A segment that did not change keeps the pages the last checkpoint cut it into,
//! without being encoded, cut or hashed again: that is what makes a checkpoint, and so a
//! snapshot, cost what changed rather than what the filesystem holds.

use std::ops::Range;

use rayon::prelude::*;

use gpufs_format::checkpoint::CheckpointImage;
use gpufs_format::pages::PageEntry;
use gpufs_format::segments::{encode_segment, segment_spans, SEGMENT_SLOTS};

use super::pages::{cut_fixed_in, cut_pages_in, CutPage, PageSet};
use super::Volume;

/// The pages one namespace segment took at the last checkpoint.
#[derive(Clone, Debug)]
struct CachedSegment {
    /// Its inode slots.
    range: (u32, u32),
    /// Its pages in order (`kept`: their bytes are on disk, not in memory).
    pages: Vec<CutPage>,
    /// Both copies of the current checkpoint hold every one of its pages.
    held: bool,
}

/// The pages of each namespace segment of the current checkpoint, by segment index
/// (`None`: unknown, encoded at the next checkpoint).
#[derive(Clone, Debug, Default)]
pub(crate) struct SegmentPages {
    segments: Vec<Option<CachedSegment>>,
    /// The head segment the last checkpoint wrote, and its pages: a head page whose
    /// bytes did not change is not hashed again.
    head: Option<(Vec<u8>, Vec<CutPage>)>,
}

impl SegmentPages {
    /// Knows no segment.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// What identifies each segment, where known.
    pub fn ids(&self) -> SegmentIds {
        SegmentIds(
            self.segments
                .iter()
                .map(|s| {
                    s.as_ref().map(|s| {
                        let pages = s.pages.iter().map(|p| (p.len, p.hash)).collect();
                        (s.range, pages)
                    })
                })
                .collect(),
        )
    }

    /// Forgets every segment: the next checkpoint encodes them all.
    pub fn clear(&mut self) {
        self.segments.clear();
        self.head = None;
    }

    /// Learns which segments both copies hold whole (`copies`: the pages of each copy
    /// of the current checkpoint): once at mount, after that kept by each checkpoint.
    pub fn note_held(&mut self, copies: &[PageSet; 2]) {
        for seg in self.segments.iter_mut().flatten() {
            seg.held = held_by(&seg.pages, copies);
        }
    }

    /// The pages of segment `index` if they can be named again for `range`: known,
    /// cut for the same slots, and every one held by each copy in `copies` (known
    /// without looking: O(1) a segment).
    fn reusable(
        &self,
        index: usize,
        range: (u32, u32),
        copies: &[PageSet; 2],
    ) -> Option<&[CutPage]> {
        let seg = self.segments.get(index)?.as_ref()?;
        debug_assert!(!seg.held || held_by(&seg.pages, copies));
        (seg.range == range && seg.held).then_some(seg.pages.as_slice())
    }

    /// What a checkpoint loaded from `blob` (its pages `pages`, in order) holds for each
    /// namespace segment; nothing for a blob that is not segmented or whose pages do not
    /// end where its segments do.
    pub fn of_loaded(blob: &[u8], pages: &[PageEntry]) -> SegmentPages {
        let Ok(spans) = segment_spans(blob) else {
            return SegmentPages::default();
        };
        let mut segments = Vec::with_capacity(spans.len().saturating_sub(1));
        let mut next = pages.iter();
        let mut at = 0usize;
        for span in &spans {
            let mut taken = Vec::new();
            while at < span.start + span.len {
                let Some(p) = next.next() else {
                    return SegmentPages::default();
                };
                taken.push(CutPage {
                    start: 0,
                    len: p.len,
                    checksum: p.checksum,
                    hash: p.hash,
                    kept: true,
                });
                at += p.len as usize;
            }
            if at != span.start + span.len {
                return SegmentPages::default();
            }
            if span.end_ino > span.first_ino {
                segments.push(Some(CachedSegment {
                    range: (span.first_ino, span.end_ino),
                    pages: taken,
                    held: false,
                }));
            }
        }
        SegmentPages {
            segments,
            head: None,
        }
    }
}

/// Whether every page of `pages` is held by each copy in `copies`.
fn held_by(pages: &[CutPage], copies: &[PageSet; 2]) -> bool {
    pages
        .iter()
        .all(|p| copies.iter().all(|c| c.find(&p.hash, p.len).is_some()))
}

/// What one namespace segment holds: its slots and its pages' identities (length and
/// hash, or keyed tag).
type SegmentId = ((u32, u32), Vec<(u32, [u8; 16])>);

/// What each namespace segment of a namespace holds, by index, where known. Two
/// namespaces with the same known identity for segment `k` hold the same in it (the same
/// bytes encode it), so a comparison of the two may pass over its slots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentIds(Vec<Option<SegmentId>>);

impl SegmentIds {
    /// The slot ranges in which namespaces with these identities may differ, the larger
    /// of them `slots` inode slots long: every segment of either whose identity is
    /// unknown on a side, or not the same.
    pub fn differing(&self, other: &SegmentIds, slots: usize) -> Vec<(u32, u32)> {
        let n = self
            .0
            .len()
            .max(other.0.len())
            .max(slots.div_ceil(SEGMENT_SLOTS as usize));
        (0..n)
            .filter(|&k| match (self.0.get(k), other.0.get(k)) {
                (Some(Some(a)), Some(Some(b))) => a != b,
                _ => true,
            })
            .map(|k| {
                let first = (k as u32).saturating_mul(SEGMENT_SLOTS);
                (first, first.saturating_add(SEGMENT_SLOTS))
            })
            .collect()
    }
}

/// The longest head kept to compare the next one with (a copy of the bitmap and union:
/// an image of up to ~128 GiB, ~64 GiB with snapshots); a longer one is hashed whole.
const HEAD_CACHE_BYTES: usize = 8 << 20;

/// Up to this many segments to encode (or cut) are done on the checkpoint's thread.
const SERIAL_SEGMENTS: usize = 4;

/// The blob of a checkpoint about to be written.
pub(super) struct BlobPlan {
    /// The bytes of the segments encoded afresh (the head first).
    pub fresh: Vec<u8>,
    /// Every page of the blob in order; `kept` pages are not in `fresh`.
    pub pages: Vec<CutPage>,
    /// The whole blob's length.
    pub len: u64,
    /// Segments encoded afresh: (index, slots, range of their pages in `pages`).
    rebuilt: Vec<(usize, (u32, u32), Range<usize>)>,
    /// Segments in all.
    segment_count: usize,
    /// Bytes and pages of the head (the first of `fresh` and of `pages`).
    head: (usize, usize),
}

impl Volume {
    /// What identifies each segment of the live namespace: the current checkpoint's,
    /// unknown where the namespace changed since.
    pub fn live_segment_ids(&self) -> SegmentIds {
        let dirty = self.ns.segment_dirty();
        let ranges = self.ns.segment_ranges();
        let mut ids = self.segment_pages.ids();
        ids.0.resize(ranges.len(), None);
        for (k, id) in ids.0.iter_mut().enumerate() {
            let same_range = id.as_ref().is_some_and(|(r, _)| *r == ranges[k]);
            if dirty.contains(k as u32) || !same_range {
                *id = None;
            }
        }
        ids
    }

    /// Plans the blob of the next checkpoint with `head` (its bitmap and snapshot
    /// sections): the head and every changed segment encoded and cut (on every core), the
    /// other segments named by the pages they already have.
    pub(super) fn plan_blob(&mut self, head: &CheckpointImage) -> BlobPlan {
        let dirty = self.ns.take_segment_dirty();
        if dirty.all {
            self.segment_pages.clear();
        }
        let ranges = self.ns.segment_ranges();
        let kept: Vec<Option<&[CutPage]>> = ranges
            .iter()
            .enumerate()
            .map(|(k, &range)| {
                if dirty.contains(k as u32) {
                    None
                } else {
                    self.segment_pages.reusable(k, range, &self.ckpt_pages)
                }
            })
            .collect();
        let ns = &self.ns;
        let todo: Vec<(u32, u32)> = ranges
            .iter()
            .zip(&kept)
            .filter(|(_, kept)| kept.is_none())
            .map(|(range, _)| *range)
            .collect();
        let encode =
            |&(first, end): &(u32, u32)| encode_segment(first, end, &ns.segment_image(first, end));
        // A few segments are encoded on this thread: waking the pool costs more.
        let encoded: Vec<Vec<u8>> = if todo.len() <= SERIAL_SEGMENTS {
            todo.iter().map(encode).collect()
        } else {
            todo.par_iter().map(encode).collect()
        };
        let mut fresh = encode_segment(0, 0, head);
        let head_len = fresh.len();
        let head_bounds = head_sections(head, head_len);
        let before = self.segment_pages.head.as_ref();
        let mut fresh_ranges: Vec<Range<usize>> = Vec::with_capacity(ranges.len() + 1);
        fresh_ranges.push(0..fresh.len());
        for bytes in &encoded {
            fresh_ranges.push(fresh.len()..fresh.len() + bytes.len());
            fresh.extend_from_slice(bytes);
        }
        drop(encoded);
        let keys = self.keys.as_deref();
        let cut = |r: Range<usize>| match r.start {
            0 => cut_fixed_in(&fresh, &head_bounds, keys, before),
            _ => cut_pages_in(&fresh, r, keys),
        };
        let mut cuts: Vec<Vec<CutPage>> = if fresh_ranges.len() <= SERIAL_SEGMENTS {
            fresh_ranges.into_iter().map(cut).collect::<Vec<_>>()
        } else {
            fresh_ranges.into_par_iter().map(cut).collect::<Vec<_>>()
        }
        .into_iter()
        .rev()
        .collect();
        let mut pages = cuts.pop().unwrap_or_default();
        let head_pages = pages.len();
        let mut rebuilt = Vec::new();
        for (k, (kept, &range)) in kept.iter().zip(&ranges).enumerate() {
            match kept {
                Some(old) => {
                    #[cfg(debug_assertions)]
                    self.debug_check_kept(range, old);
                    pages.extend_from_slice(old);
                }
                None => {
                    let cut = cuts.pop().unwrap_or_default();
                    debug_assert!(!cut.is_empty());
                    rebuilt.push((k, range, pages.len()..pages.len() + cut.len()));
                    pages.extend(cut);
                }
            }
        }
        debug_assert!(cuts.is_empty());
        let len = pages.iter().map(|p| u64::from(p.len)).sum();
        BlobPlan {
            fresh,
            pages,
            len,
            rebuilt,
            segment_count: ranges.len(),
            head: (head_len, head_pages),
        }
    }

    /// After the checkpoint of `plan` is durable: its segments' pages are the ones the
    /// next checkpoint may name again.
    pub(super) fn keep_segment_pages(&mut self, plan: &BlobPlan) {
        self.counters.checkpoint_segments_encoded += plan.rebuilt.len() as u64;
        self.counters.checkpoint_segments_kept += (plan.segment_count - plan.rebuilt.len()) as u64;
        let cache = &mut self.segment_pages.segments;
        cache.resize(plan.segment_count, None);
        cache.truncate(plan.segment_count);
        for (k, range, at) in &plan.rebuilt {
            let pages: Vec<CutPage> = plan.pages[at.clone()]
                .iter()
                .map(|p| CutPage { kept: true, ..*p })
                .collect();
            // Not held where a copy took a page as single-block pieces.
            let held = held_by(&pages, &self.ckpt_pages);
            cache[*k] = Some(CachedSegment {
                range: *range,
                pages,
                held,
            });
        }
        let (head_len, head_pages) = plan.head;
        self.segment_pages.head = (head_len <= HEAD_CACHE_BYTES).then(|| {
            (
                plan.fresh[..head_len].to_vec(),
                plan.pages[..head_pages].to_vec(),
            )
        });
    }

    /// A kept segment's pages are those its encoding would cut now (debug builds: a
    /// change that did not mark its segment would show here).
    #[cfg(debug_assertions)]
    fn debug_check_kept(&self, range: (u32, u32), old: &[CutPage]) {
        let bytes = encode_segment(range.0, range.1, &self.ns.segment_image(range.0, range.1));
        let now = cut_pages_in(&bytes, 0..bytes.len(), self.keys.as_deref());
        let ids = |p: &[CutPage]| p.iter().map(|c| (c.len, c.hash)).collect::<Vec<_>>();
        assert_eq!(ids(&now), ids(old), "segment {range:?} changed unmarked");
    }
}

/// Where the encoded head segment (`len` bytes) of `head` is cut into parts of fixed
/// pages: its start, the snapshot table, the union, its end. The part before the snapshot
/// table is the segment's header, the blob's header (the head holds no namespace) and
/// the bitmap.
fn head_sections(head: &CheckpointImage, len: usize) -> [usize; 4] {
    use gpufs_format::checkpoint::CheckpointHeader;
    use gpufs_format::segments::SegmentHeader;
    use gpufs_format::snapshot::SnapshotRecord;
    let snapshots = size_of::<SegmentHeader>() + size_of::<CheckpointHeader>() + head.bitmap.len();
    let union = snapshots + head.snapshots.len() * size_of::<SnapshotRecord>();
    debug_assert_eq!(union + head.snapshot_union.len(), len);
    // Whatever the sizes say, the parts cover the segment exactly.
    let snapshots = snapshots.min(len);
    [0, snapshots, union.clamp(snapshots, len), len]
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpufs_format::snapshot::SnapshotRecord;

    /// The parts [`head_sections`] names are where the encoding puts the bitmap, the
    /// snapshot table and the union.
    #[test]
    fn head_sections_fall_where_the_sections_are_encoded() {
        let mut snapshots = vec![bytemuck::Zeroable::zeroed(); 3];
        for (i, s) in snapshots.iter_mut().enumerate() {
            let s: &mut SnapshotRecord = s;
            s.id = 0x5151_0000 + i as u64;
            s.set_name(format!("s{i}").as_bytes());
        }
        let head = CheckpointImage {
            bitmap: vec![0xB1; 5000],
            snapshots,
            snapshot_union: vec![0xC3; 5000],
            next_snapshot: 4,
            ..CheckpointImage::default()
        };
        let bytes = encode_segment(0, 0, &head);
        let [start, table, union, end] = head_sections(&head, bytes.len());
        assert_eq!((start, end), (0, bytes.len()));
        assert!(bytes[table - 5000..table].iter().all(|b| *b == 0xB1));
        assert_eq!(bytes[table..table + 8], 0x5151_0000u64.to_le_bytes());
        assert_eq!(union - table, 3 * size_of::<SnapshotRecord>());
        assert!(bytes[union..].iter().all(|b| *b == 0xC3));
    }
}
