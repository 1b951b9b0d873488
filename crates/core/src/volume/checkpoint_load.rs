//! Reading checkpoints: a copy's root, its page index and the page table in its pages
//! (version 8), its page table (versions 5 to 7) or blob (older), the blob back from its
//! pages, a damaged page read from the other copy.

use gpufs_format::checkpoint::{CheckpointImage, CheckpointRoot};
use gpufs_format::pages::{
    decode_page_index, decode_page_table, PageEntry, PAGE_INDEX_VERSION, PAGE_TABLE_MAC,
};
use gpufs_format::{checksum, Superblock, BLOCK_SIZE};

use super::pages::{read_pages, PageSet};
use super::segments::SegmentPages;
use crate::crypt::{Domain, SealKeys};
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::namespace::Namespace;
use crate::units::BlockNo;

/// First format version whose checkpoint roots point at a page table.
const PAGED_VERSION: u32 = 5;

/// A loaded checkpoint: namespace, data bitmap, the block runs of every copy whose root
/// is intact (absolute, roots included, each once), what was found damaged, and the pages
/// each intact copy holds (by copy: 0 the superblock's first root, 1 its second).
pub struct LoadedCheckpoint {
    pub ns: Namespace,
    pub bitmap: Vec<u8>,
    pub runs: Vec<(u64, u64)>,
    /// One line per damaged copy (its root block and why).
    pub damaged: Vec<String>,
    pub(crate) pages: [PageSet; 2],
    /// The image's snapshot sections (the namespace took the rest).
    pub(crate) snapshots: CheckpointImage,
    /// The pages of each namespace segment (none for a blob older than version 7).
    pub(crate) segment_pages: SegmentPages,
}

/// One copy's root, read and verified, with what it points at.
struct CopyIndex {
    root: u64,
    /// Runs of what the root points at: the page index (version 8), the page table
    /// (5 to 7) or the blob (older), absolute.
    table_runs: Vec<(u64, u64)>,
    content: CopyContent,
}

enum CopyContent {
    /// Version 5: the blob's length and its pages; version 8: also the pages holding
    /// the page table.
    Paged {
        blob_len: u64,
        pages: Vec<PageEntry>,
        table_pages: Vec<PageEntry>,
    },
    /// Older: the blob itself, verified.
    Whole(Vec<u8>),
}

impl CopyIndex {
    /// Every run the copy takes, its root included (absolute).
    fn runs(&self) -> Vec<(u64, u64)> {
        let mut runs = self.table_runs.clone();
        runs.push((self.root, 1));
        if let CopyContent::Paged {
            pages, table_pages, ..
        } = &self.content
        {
            runs.extend(
                pages
                    .iter()
                    .chain(table_pages)
                    .map(|p| (p.block, p.blocks())),
            );
        }
        runs
    }

    /// Every page the copy holds: the blob's and the page table's.
    fn pages(&self) -> PageSet {
        match &self.content {
            CopyContent::Paged {
                pages, table_pages, ..
            } => {
                let mut set = PageSet::of(pages);
                for p in table_pages {
                    set.insert(*p);
                }
                set
            }
            CopyContent::Whole(_) => PageSet::default(),
        }
    }

    /// The copy's image; damaged pages read from `others`. Also the blocks of the pages
    /// that were damaged.
    fn image(
        &self,
        dev: &dyn Device,
        others: &[&PageSet],
        keys: Option<&SealKeys>,
    ) -> FsResult<(CheckpointImage, Vec<u64>)> {
        self.image_and_segments(dev, others, keys)
            .map(|(img, healed, _)| (img, healed))
    }

    /// [`CopyIndex::image`], with the pages of each of its namespace segments.
    fn image_and_segments(
        &self,
        dev: &dyn Device,
        others: &[&PageSet],
        keys: Option<&SealKeys>,
    ) -> FsResult<(CheckpointImage, Vec<u64>, SegmentPages)> {
        let (blob, healed, segments) = match &self.content {
            CopyContent::Paged {
                blob_len, pages, ..
            } => {
                let (blob, healed) = read_pages(dev, pages, *blob_len, others, keys)?;
                let segments = SegmentPages::of_loaded(&blob, pages);
                (blob, healed, segments)
            }
            CopyContent::Whole(blob) => (blob.clone(), Vec::new(), SegmentPages::default()),
        };
        Ok((CheckpointImage::decode(&blob)?, healed, segments))
    }
}

/// The root blocks of the checkpoint copies `sb` points at, by copy (0 where a version 1
/// image has none).
fn copy_roots(sb: &Superblock) -> [u64; 2] {
    [sb.checkpoint_root, sb.checkpoint_root_copy]
}

/// Reads, verifies and decodes the checkpoint `sb` points at: its first copy (a damaged
/// page read from the second), or the second when the first is damaged beyond that.
/// Fails, naming every copy's root block and what is wrong with it, only when no copy
/// is whole.
pub fn load_checkpoint(
    dev: &dyn Device,
    sb: &Superblock,
    keys: Option<&SealKeys>,
) -> FsResult<LoadedCheckpoint> {
    let mut damaged = Vec::new();
    let mut indexes: [Option<CopyIndex>; 2] = [None, None];
    for (copy, root) in copy_roots(sb).into_iter().enumerate() {
        if root == 0 {
            continue;
        }
        match read_index(dev, sb, root, keys) {
            Ok(ix) => indexes[copy] = Some(ix),
            Err(e) => damaged.push(format!("checkpoint copy at block {root}: {e}")),
        }
    }
    let mut pages = [
        indexes[0]
            .as_ref()
            .map(CopyIndex::pages)
            .unwrap_or_default(),
        indexes[1]
            .as_ref()
            .map(CopyIndex::pages)
            .unwrap_or_default(),
    ];
    let mut loaded = None;
    for copy in 0..2 {
        let Some(ix) = &indexes[copy] else {
            continue;
        };
        let others: Vec<&PageSet> = (0..2).filter(|c| *c != copy).map(|c| &pages[c]).collect();
        let result =
            ix.image_and_segments(dev, &others, keys)
                .and_then(|(mut img, healed, segments)| {
                    let snaps = CheckpointImage {
                        snapshots: std::mem::take(&mut img.snapshots),
                        snapshot_union: std::mem::take(&mut img.snapshot_union),
                        next_snapshot: img.next_snapshot,
                        ..CheckpointImage::default()
                    };
                    Namespace::from_image(img).map(|nb| (nb, healed, snaps, segments))
                });
        match result {
            Ok(((mut ns, bitmap), healed, snaps, segments)) => {
                // The namespace is what the checkpoint's segments hold.
                if !segments.is_empty() {
                    ns.take_segment_dirty();
                }
                if !healed.is_empty() {
                    damaged.push(format!(
                        "checkpoint copy at block {}: pages at blocks {healed:?} are damaged",
                        ix.root
                    ));
                    pages[copy] = PageSet::default();
                }
                loaded = Some((ns, bitmap, snaps, segments));
                break;
            }
            Err(e) => {
                damaged.push(format!("checkpoint copy at block {}: {e}", ix.root));
                pages[copy] = PageSet::default();
            }
        }
    }
    let Some((ns, bitmap, snapshots, segment_pages)) = loaded else {
        return Err(FsError::BadImage(format!(
            "cannot mount: every copy of the checkpoint is damaged ({}); run gpufs fsck",
            damaged.join("; ")
        )));
    };
    // Blocks a copy's intact root names stay reserved, damaged or not.
    let mut runs: Vec<(u64, u64)> = indexes.iter().flatten().flat_map(CopyIndex::runs).collect();
    runs.sort_unstable();
    runs.dedup();
    Ok(LoadedCheckpoint {
        ns,
        bitmap,
        runs,
        damaged,
        pages,
        snapshots,
        segment_pages,
    })
}

/// The checkpoint image of the first whole copy `sb` points at, read as it is (fsck).
pub fn read_checkpoint(
    dev: &dyn Device,
    sb: &Superblock,
    keys: Option<&SealKeys>,
) -> FsResult<CheckpointImage> {
    let mut last = FsError::corrupt("no checkpoint");
    for root in copy_roots(sb).into_iter().filter(|r| *r != 0) {
        match read_index(dev, sb, root, keys).and_then(|ix| ix.image(dev, &[], keys)) {
            Ok((img, _)) => return Ok(img),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Each copy of the checkpoint `sb` points at, read and verified whole: its root block
/// and what is wrong with it, if anything (fsck, scrub).
pub fn verify_checkpoint_copies(
    dev: &dyn Device,
    sb: &Superblock,
    keys: Option<&SealKeys>,
) -> Vec<(u64, Option<String>)> {
    copy_roots(sb)
        .into_iter()
        .filter(|r| *r != 0)
        .map(|root| {
            let problem = read_index(dev, sb, root, keys)
                .and_then(|ix| ix.image(dev, &[], keys))
                .err()
                .map(|e| e.to_string());
            (root, problem)
        })
        .collect()
}

/// The verified root at `root_block` of a checkpoint of `sb`'s generation, and what it
/// points at: the page table (checked against the data area) or an older blob.
fn read_index(
    dev: &dyn Device,
    sb: &Superblock,
    root_block: u64,
    keys: Option<&SealKeys>,
) -> FsResult<CopyIndex> {
    read_index_of(dev, sb, root_block, sb.generation, keys)
}

/// The MAC an encrypted image's page table of checkpoint `generation` carries (over
/// the table with its MAC field zero).
pub(super) fn page_table_mac(keys: &SealKeys, generation: u64, table: &[u8]) -> [u8; 8] {
    let mut zeroed = table.to_vec();
    if let Some(f) = zeroed.get_mut(PAGE_TABLE_MAC) {
        f.fill(0);
    }
    let tag = keys.tag(Domain::PageTable, &generation.to_le_bytes(), &zeroed);
    let mut mac = [0u8; 8];
    mac.copy_from_slice(&tag[..8]);
    mac
}

/// [`read_index`] of a checkpoint of `generation` (a snapshot's).
fn read_index_of(
    dev: &dyn Device,
    sb: &Superblock,
    root_block: u64,
    generation: u64,
    keys: Option<&SealKeys>,
) -> FsResult<CopyIndex> {
    let mut block = vec![0u8; BLOCK_SIZE];
    dev.read_at(&mut block, BlockNo::new(root_block).byte_offset())?;
    let (root, runs) = CheckpointRoot::decode(&block)
        .map_err(|e| FsError::corrupt(format!("checkpoint root: {e}")))?;
    if root.generation != generation {
        return Err(FsError::corrupt(format!(
            "checkpoint generation {} is not the expected {generation}",
            root.generation
        )));
    }
    let inside = |s: u64, n: u64| s >= sb.data_start && s.saturating_add(n) <= sb.total_blocks;
    if !runs.iter().all(|&(s, n)| inside(s, n)) {
        return Err(FsError::corrupt("checkpoint extent outside the data area"));
    }
    let len =
        usize::try_from(root.blob_len).map_err(|_| FsError::corrupt("checkpoint too long"))?;
    let mut bytes = Vec::with_capacity(len);
    for &(s, n) in &runs {
        let want = (n as usize * BLOCK_SIZE).min(len - bytes.len());
        let at = bytes.len();
        bytes.resize(at + want, 0);
        dev.read_at(&mut bytes[at..], BlockNo::new(s).byte_offset())?;
    }
    if bytes.len() != len {
        return Err(FsError::corrupt("checkpoint shorter than its length"));
    }
    let computed = checksum(&bytes);
    if computed != root.blob_checksum {
        let first = runs.first().map_or(0, |r| r.0);
        return Err(FsError::corrupt(format!(
            "checkpoint checksum mismatch in blocks from {first}: stored {:#010x}, computed \
             {computed:#010x}",
            root.blob_checksum
        )));
    }
    if let Some(k) = keys {
        // Only a page table this volume's key made for this generation is read: an
        // encrypted image has no older, unauthenticated kind of checkpoint.
        let mac = page_table_mac(k, generation, &bytes);
        if root.version < PAGED_VERSION || bytes.get(PAGE_TABLE_MAC) != Some(&mac[..]) {
            return Err(FsError::corrupt(
                "checkpoint page table fails authentication",
            ));
        }
    }
    let content = if root.version >= PAGED_VERSION {
        let page_inside = |pages: &[PageEntry]| {
            if pages.iter().all(|p| inside(p.block, p.blocks())) {
                Ok(())
            } else {
                Err(FsError::corrupt("checkpoint page outside the data area"))
            }
        };
        let (table, table_pages) = if root.version >= PAGE_INDEX_VERSION {
            // The root points at a page index; the table lies in the pages it names
            // (authenticated by their tags, which the index's MAC covers).
            let (table_len, table_pages) = decode_page_index(&bytes)?;
            page_inside(&table_pages)?;
            let (table, _) = read_pages(dev, &table_pages, table_len, &[], keys)
                .map_err(|e| FsError::corrupt(format!("checkpoint page table: {e}")))?;
            (table, table_pages)
        } else {
            (bytes, Vec::new())
        };
        let (blob_len, pages) = decode_page_table(&table)?;
        page_inside(&pages)?;
        CopyContent::Paged {
            blob_len,
            pages,
            table_pages,
        }
    } else {
        CopyContent::Whole(bytes)
    };
    Ok(CopyIndex {
        root: root_block,
        table_runs: runs,
        content,
    })
}

/// A kept checkpoint (a snapshot's: `generation` and its two roots): every run it takes
/// (absolute, roots included, each once) and what its pages hold, read from either copy.
pub(crate) struct KeptCheckpoint {
    pub runs: Vec<(u64, u64)>,
    indexes: Vec<CopyIndex>,
    /// One line for each copy that cannot be read (its root block and why).
    pub unreadable: Vec<String>,
}

impl KeptCheckpoint {
    /// Reads the roots and page tables of both copies; fails only when neither is whole.
    pub fn open(
        dev: &dyn Device,
        sb: &Superblock,
        roots: [u64; 2],
        generation: u64,
        keys: Option<&SealKeys>,
    ) -> FsResult<Self> {
        let mut indexes = Vec::new();
        let mut unreadable = Vec::new();
        let mut last = FsError::corrupt("no checkpoint copy");
        for root in roots.into_iter().filter(|r| *r != 0) {
            match read_index_of(dev, sb, root, generation, keys) {
                Ok(ix) => indexes.push(ix),
                Err(e) => {
                    unreadable.push(format!("checkpoint copy at block {root}: {e}"));
                    last = e;
                }
            }
        }
        if indexes.is_empty() {
            return Err(last);
        }
        let mut runs: Vec<(u64, u64)> = indexes.iter().flat_map(CopyIndex::runs).collect();
        runs.sort_unstable();
        runs.dedup();
        Ok(KeptCheckpoint {
            runs,
            indexes,
            unreadable,
        })
    }

    /// Verifies every page of both copies, rewriting a damaged page from the other copy
    /// (scrub): pages read, what is left damaged, pages repaired.
    pub fn scrub(&self, dev: &dyn Device, keys: Option<&SealKeys>) -> (u64, Vec<String>, u64) {
        let lists: Vec<Vec<PageEntry>> = self
            .indexes
            .iter()
            .filter_map(|ix| match &ix.content {
                CopyContent::Paged {
                    pages, table_pages, ..
                } => Some([pages.as_slice(), table_pages.as_slice()].concat()),
                CopyContent::Whole(_) => None,
            })
            .collect();
        let copies: Vec<&[PageEntry]> = lists.iter().map(Vec::as_slice).collect();
        super::pages::scrub_pages(dev, &copies, keys)
    }

    /// The checkpoint's image: the first copy, a damaged page read from the other.
    pub fn image(&self, dev: &dyn Device, keys: Option<&SealKeys>) -> FsResult<CheckpointImage> {
        self.image_and_segments(dev, keys).map(|(img, _)| img)
    }

    /// [`KeptCheckpoint::image`], with the pages of each of its namespace segments.
    pub fn image_and_segments(
        &self,
        dev: &dyn Device,
        keys: Option<&SealKeys>,
    ) -> FsResult<(CheckpointImage, SegmentPages)> {
        let sets: Vec<PageSet> = self.indexes.iter().map(CopyIndex::pages).collect();
        let mut last = FsError::corrupt("no checkpoint copy");
        for (i, ix) in self.indexes.iter().enumerate() {
            let others: Vec<&PageSet> = (0..sets.len())
                .filter(|j| *j != i)
                .map(|j| &sets[j])
                .collect();
            match ix.image_and_segments(dev, &others, keys) {
                Ok((img, _, segments)) => return Ok((img, segments)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}
