//! Scrub of the volume's metadata: both superblock slots, both checkpoint copies, and the
//! live part of both journal rings, read and verified; anything damaged is written anew
//! by a checkpoint (both copies, both slots, a fresh journal generation).

use gpufs_format::superblock::SUPERBLOCK_SLOTS;
use gpufs_format::{JournalBlockHeader, Superblock, BLOCK_SIZE};

use super::checkpoint_load::{verify_checkpoint_copies, KeptCheckpoint};
use super::Volume;
use crate::error::FsResult;

/// What the metadata scrub found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataScrub {
    /// Metadata blocks (or checkpoint copies) read and verified.
    pub checked: u64,
    /// What was damaged, one line each.
    pub damaged: Vec<String>,
    /// The damage was rewritten from the good copies.
    pub repaired: bool,
    /// Pages of snapshots' checkpoints written again from their other copy.
    pub snapshot_pages_repaired: u64,
    /// Damage no copy could repair (a snapshot's page damaged in both copies).
    pub unrepaired: Vec<String>,
}

impl Volume {
    /// Verifies every copy of the metadata and rewrites the damaged ones.
    pub fn scrub_metadata(&mut self) -> FsResult<MetadataScrub> {
        let mut out = MetadataScrub::default();
        let dev = self.dev.clone();
        let mut block = vec![0u8; BLOCK_SIZE];
        let far = self.far_on_disk.then_some(self.sb.far_slot);
        for slot in SUPERBLOCK_SLOTS.into_iter().chain(far) {
            out.checked += 1;
            dev.read_at(&mut block, slot * BLOCK_SIZE as u64)?;
            match Superblock::decode(&block) {
                Ok(sb) if sb.generation == self.sb.generation => {}
                Ok(sb) => out.damaged.push(format!(
                    "superblock slot {slot} holds generation {}, not {}",
                    sb.generation, self.sb.generation
                )),
                Err(e) => out.damaged.push(format!("superblock slot {slot}: {e}")),
            }
        }
        for (root, problem) in
            verify_checkpoint_copies(dev.as_ref(), &self.sb, self.keys.as_deref())
        {
            out.checked += 1;
            if let Some(p) = problem {
                out.damaged
                    .push(format!("checkpoint copy at block {root}: {p}"));
            }
        }
        self.scrub_journal(&mut out, &mut block)?;
        self.scrub_snapshot_checkpoints(&mut out);
        if !out.damaged.is_empty() && !self.read_only {
            // The damaged pages must be written anew, not named again.
            self.rewrite_every_checkpoint_page();
            self.checkpoint()?;
            out.repaired = true;
        }
        Ok(out)
    }

    /// Every page of every snapshot's checkpoint, both copies; a damaged page is written
    /// again from the other copy's (a snapshot's checkpoint never changes otherwise).
    fn scrub_snapshot_checkpoints(&self, out: &mut MetadataScrub) {
        for rec in self.snapshot_records() {
            let name = String::from_utf8_lossy(rec.name()).into_owned();
            match KeptCheckpoint::open(
                self.dev.as_ref(),
                &self.sb,
                rec.roots,
                rec.generation,
                self.keys.as_deref(),
            ) {
                Ok(kept) => {
                    let (checked, damaged, repaired) =
                        kept.scrub(self.dev.as_ref(), self.keys.as_deref());
                    out.checked += checked;
                    out.snapshot_pages_repaired += repaired;
                    if repaired > 0 {
                        out.damaged.push(format!(
                            "snapshot {name:?}: {repaired} checkpoint page(s) damaged, \
                             written again from the other copy"
                        ));
                    }
                    out.unrepaired.extend(
                        damaged
                            .into_iter()
                            .map(|d| format!("snapshot {name:?}: {d}")),
                    );
                    // A copy whose root, index or table cannot be read: the snapshot
                    // is read from the other, with no second copy left.
                    out.unrepaired.extend(
                        kept.unreadable
                            .iter()
                            .map(|d| format!("snapshot {name:?}: {d} (read from its other copy)")),
                    );
                }
                Err(e) => out.unrepaired.push(format!("snapshot {name:?}: {e}")),
            }
        }
    }

    /// The committed blocks of the current journal generation, in each ring.
    fn scrub_journal(&self, out: &mut MetadataScrub, block: &mut [u8]) -> FsResult<()> {
        let sb = &self.sb;
        let rings: Vec<u64> = [sb.journal_start, sb.journal_copy_start]
            .into_iter()
            .filter(|s| *s != 0)
            .collect();
        let (end_index, _) = self.journal.position();
        let used = (end_index + sb.journal_blocks - sb.journal_head) % sb.journal_blocks;
        for i in 0..used {
            let index = (sb.journal_head + i) % sb.journal_blocks;
            let seq = sb.journal_seq + i;
            for start in &rings {
                out.checked += 1;
                self.dev
                    .read_at(block, (start + index) * BLOCK_SIZE as u64)?;
                let fine = JournalBlockHeader::decode_block(block)
                    .is_ok_and(|(h, _)| h.seq == seq && h.checkpoint_gen == sb.generation);
                if !fine {
                    out.damaged.push(format!(
                        "journal block {} (ring index {index})",
                        start + index
                    ));
                }
            }
        }
        Ok(())
    }
}
