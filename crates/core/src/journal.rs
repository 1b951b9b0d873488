//! The journal ring: group commit of metadata ops, and replay after a crash.
//!
//! Format v2 keeps a second copy of the ring (`journal_copy_start`, in the data area far
//! from the first): every block is written to both, and replay reads a block from the
//! copy when the first one is damaged, so no single bad block loses a transaction.
//!
//! On an encrypted image (v6) each block's payload is sealed (`crate::crypt::seal`):
//! the tag (16 bytes), the plaintext's length (u32), then the ciphertext; the tag binds
//! the block's sequence number and generation, so a block neither opens elsewhere in
//! the ring nor in another generation. A block that does not open is a damaged block.

use std::sync::Arc;

use gpufs_format::journal::JOURNAL_PAYLOAD;
use gpufs_format::{JournalBlockHeader, JournalOp, Superblock, BLOCK_SIZE};

use crate::crypt::seal::sealed_len;
use crate::crypt::{Domain, SealKeys};
use crate::device::Device;
use crate::error::{FsError, FsResult};

/// Bytes a sealed payload spends besides the ciphertext: the tag and the length.
const SEAL_OVERHEAD: usize = 16 + 4;

/// What a sealed journal block's tag binds besides its plaintext.
fn journal_context(seq: u64, gen: u64, plain_len: usize) -> [u8; 20] {
    let mut c = [0u8; 20];
    c[..8].copy_from_slice(&seq.to_le_bytes());
    c[8..16].copy_from_slice(&gen.to_le_bytes());
    c[16..].copy_from_slice(&(plain_len as u32).to_le_bytes());
    c
}

/// The payload of journal block `seq` of generation `gen` holding `plain`, sealed.
fn seal_payload(keys: &SealKeys, seq: u64, gen: u64, plain: &[u8]) -> Vec<u8> {
    let mut ct = plain.to_vec();
    let tag = keys.seal(
        Domain::Journal,
        &journal_context(seq, gen, plain.len()),
        &mut ct,
    );
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + ct.len());
    out.extend_from_slice(&tag[..16]);
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    out.extend_from_slice(&ct);
    out
}

/// The plaintext of a sealed payload, or `None` when it does not open.
fn open_payload(keys: &SealKeys, seq: u64, gen: u64, payload: &[u8]) -> Option<Vec<u8>> {
    let tag = payload.get(..16)?;
    let mut len = [0u8; 4];
    len.copy_from_slice(payload.get(16..20)?);
    let plain_len = u32::from_le_bytes(len) as usize;
    let mut buf = payload.get(20..)?.to_vec();
    let context = journal_context(seq, gen, plain_len);
    keys.open(Domain::Journal, &context, &mut buf, plain_len, tag)
        .ok()?;
    Some(buf)
}

/// Where the journal writes next, and what is waiting to be written.
#[derive(Debug)]
pub struct Journal {
    start: u64,
    /// First block of the ring's second copy, if the image has one.
    copy_start: Option<u64>,
    blocks: u64,
    /// Ring index and sequence number of the next block to write.
    next_index: u64,
    next_seq: u64,
    /// Generation of the superblock this journal follows.
    gen: u64,
    /// Blocks written since the last checkpoint.
    used: u64,
    /// Encoded ops not yet committed.
    pending: Vec<u8>,
    pending_ops: u64,
    /// An encrypted image's keys: every payload is sealed.
    keys: Option<Arc<SealKeys>>,
}

/// What replay found.
pub struct Replay {
    pub transactions: Vec<Vec<JournalOp>>,
    /// Ring index and sequence number after the last whole transaction.
    pub end_index: u64,
    pub end_seq: u64,
    /// Blocks used by whole transactions.
    pub used: u64,
    /// True when any block of this journal generation was found (even a torn one).
    pub saw_blocks: bool,
    /// Blocks of the first copy that were damaged and read from the second.
    pub repaired: Vec<u64>,
}

impl Journal {
    /// A journal positioned after replay.
    pub fn new(sb: &Superblock, replay: &Replay) -> Self {
        Journal {
            start: sb.journal_start,
            copy_start: (sb.journal_copy_start != 0).then_some(sb.journal_copy_start),
            blocks: sb.journal_blocks,
            next_index: replay.end_index,
            next_seq: replay.end_seq,
            gen: sb.generation,
            used: replay.used,
            pending: Vec::new(),
            pending_ops: 0,
            keys: None,
        }
    }

    /// From now on every payload is sealed under `keys`.
    pub fn set_keys(&mut self, keys: Option<Arc<SealKeys>>) {
        self.keys = keys;
    }

    /// Plaintext bytes of ops one block carries.
    fn block_capacity(&self) -> usize {
        match self.keys {
            Some(_) => JOURNAL_PAYLOAD - SEAL_OVERHEAD,
            None => JOURNAL_PAYLOAD,
        }
    }

    /// From now on every block is also written to the copy at `start`.
    pub fn set_copy(&mut self, start: u64) {
        self.copy_start = Some(start);
    }

    /// Writes `run` at ring index `index` of each copy.
    fn write_run(&self, dev: &dyn Device, index: u64, run: &[u8]) -> FsResult<()> {
        dev.write_at(run, (self.start + index) * BLOCK_SIZE as u64)?;
        if let Some(copy) = self.copy_start {
            dev.write_at(run, (copy + index) * BLOCK_SIZE as u64)?;
        }
        Ok(())
    }

    /// Queues one op for the next commit.
    pub fn push(&mut self, op: &JournalOp) {
        op.encode(&mut self.pending);
        self.pending_ops += 1;
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Blocks the pending ops will take.
    pub fn pending_blocks(&self) -> u64 {
        (self.pending.len().div_ceil(self.block_capacity())).max(1) as u64
    }

    /// Blocks written since the last checkpoint.
    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn capacity(&self) -> u64 {
        self.blocks
    }

    /// True when the pending ops fit in the ring without overwriting blocks that the
    /// last checkpoint does not cover.
    pub fn fits_pending(&self) -> bool {
        self.used + self.pending_blocks() <= self.blocks
    }

    /// Writes the pending ops as one transaction (no flush: the caller orders flushes).
    /// Returns the number of ops written.
    pub fn write_pending(&mut self, dev: &dyn Device) -> FsResult<u64> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        if !self.fits_pending() {
            return Err(FsError::corrupt(
                "journal transaction larger than the free ring",
            ));
        }
        let chunks: Vec<&[u8]> = self.pending.chunks(self.block_capacity()).collect();
        let mut run: Vec<u8> = Vec::with_capacity(chunks.len() * BLOCK_SIZE);
        let mut run_start = self.next_index;
        for (i, chunk) in chunks.iter().enumerate() {
            let sealed;
            let payload = match &self.keys {
                Some(keys) => {
                    sealed = seal_payload(keys, self.next_seq, self.gen, chunk);
                    debug_assert!(sealed.len() <= JOURNAL_PAYLOAD);
                    debug_assert_eq!(sealed.len(), SEAL_OVERHEAD + sealed_len(chunk.len()));
                    &sealed[..]
                }
                None => chunk,
            };
            let block = JournalBlockHeader::encode_block(
                self.next_seq,
                self.gen,
                payload,
                i + 1 == chunks.len(),
            );
            run.extend_from_slice(&block);
            self.next_seq += 1;
            self.next_index += 1;
            if self.next_index == self.blocks {
                self.write_run(dev, run_start, &run)?;
                run.clear();
                self.next_index = 0;
                run_start = 0;
            }
        }
        if !run.is_empty() {
            self.write_run(dev, run_start, &run)?;
        }
        self.used += chunks.len() as u64;
        self.pending.clear();
        Ok(std::mem::take(&mut self.pending_ops))
    }

    /// After a checkpoint under generation `gen`: the ring is empty from here on.
    pub fn restart(&mut self, gen: u64) {
        self.gen = gen;
        self.used = 0;
    }

    /// Ring position the next checkpoint's superblock records.
    pub fn position(&self) -> (u64, u64) {
        (self.next_index, self.next_seq)
    }
}

/// Reads whole transactions from the superblock's journal head until the first block
/// that is missing, torn, stale, of another generation or (encrypted) does not open.
pub fn replay(dev: &dyn Device, sb: &Superblock, keys: Option<&SealKeys>) -> FsResult<Replay> {
    let mut out = Replay {
        transactions: Vec::new(),
        end_index: sb.journal_head,
        end_seq: sb.journal_seq,
        used: 0,
        saw_blocks: false,
        repaired: Vec::new(),
    };
    let mut index = sb.journal_head;
    let mut seq = sb.journal_seq;
    let mut stream: Vec<u8> = Vec::new();
    let mut tx_blocks = 0u64;
    let mut block = vec![0u8; BLOCK_SIZE];
    let copies: Vec<u64> = [sb.journal_start, sb.journal_copy_start]
        .into_iter()
        .filter(|s| *s != 0)
        .collect();
    for _ in 0..sb.journal_blocks {
        // The first copy that holds the expected block; a damaged or stale block in one
        // copy is read from the other.
        let mut found = None;
        let mut forged = false;
        for (i, start) in copies.iter().enumerate() {
            dev.read_at(&mut block, (start + index) * BLOCK_SIZE as u64)?;
            let Ok((hdr, payload)) = JournalBlockHeader::decode_block(&block) else {
                continue;
            };
            if hdr.seq != seq || hdr.checkpoint_gen != sb.generation {
                continue;
            }
            let plain = match keys {
                Some(k) => match open_payload(k, seq, sb.generation, payload) {
                    Some(p) => p,
                    None => {
                        // Its checksum held: not a torn write, but bytes changed by
                        // someone without the key.
                        tracing::warn!(seq, "journal block fails authentication");
                        forged = true;
                        continue;
                    }
                },
                None => payload.to_vec(),
            };
            if i > 0 {
                out.repaired.push(sb.journal_start + index);
            }
            found = Some((hdr, plain));
            break;
        }
        let Some((hdr, payload)) = found else {
            if forged {
                return Err(FsError::corrupt(format!(
                    "journal block {seq} fails authentication in every copy: the image was \
                     changed by someone without the key"
                )));
            }
            break;
        };
        out.saw_blocks = true;
        stream.extend_from_slice(&payload);
        tx_blocks += 1;
        seq += 1;
        index = (index + 1) % sb.journal_blocks;
        if hdr.flags & JournalBlockHeader::FLAG_COMMIT != 0 {
            let ops = JournalOp::decode_all(&stream).map_err(|e| {
                FsError::corrupt(format!(
                    "journal transaction ending at seq {}: {e}",
                    seq - 1
                ))
            })?;
            out.transactions.push(ops);
            out.used += tx_blocks;
            out.end_index = index;
            out.end_seq = seq;
            stream.clear();
            tx_blocks = 0;
        }
    }
    Ok(out)
}

impl Journal {
    /// Drops ops a checkpoint already made durable.
    pub fn discard_pending(&mut self) {
        self.pending.clear();
        self.pending_ops = 0;
    }
}
