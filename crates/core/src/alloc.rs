//! Free-space allocator: one bit per block of the allocatable area.
//!
//! Copy-on-write needs one rule here: a block freed by a change must not be handed out
//! again until that change is durable, or a crash could bring back metadata pointing at
//! overwritten bytes. Frees therefore go to a pending list ([`Allocator::defer_free`])
//! that [`Allocator::release_pending`] returns to the free pool after each commit.

use crate::error::{FsError, FsResult};

#[derive(Clone, Debug)]
pub struct Allocator {
    words: Vec<u64>,
    blocks: u64,
    used: u64,
    cursor: u64,
    pending: Vec<(u64, u64)>,
    pending_blocks: u64,
}

impl Allocator {
    /// An allocator over `blocks` blocks, all free.
    pub fn new(blocks: u64) -> Self {
        Allocator {
            words: vec![0; blocks.div_ceil(64) as usize],
            blocks,
            used: 0,
            cursor: 0,
            pending: Vec::new(),
            pending_blocks: 0,
        }
    }

    /// Rebuilds from a stored bitmap (bit i = block i in use).
    pub fn from_bitmap(blocks: u64, bitmap: &[u8]) -> FsResult<Self> {
        if bitmap.len() as u64 != blocks.div_ceil(8) {
            return Err(FsError::corrupt(format!(
                "allocation bitmap is {} bytes, expected {}",
                bitmap.len(),
                blocks.div_ceil(8)
            )));
        }
        let mut a = Allocator::new(blocks);
        for (i, chunk) in bitmap.chunks(8).enumerate() {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            a.words[i] = u64::from_le_bytes(w);
        }
        let tail = blocks % 64;
        if tail != 0 {
            let last = a.words.len() - 1;
            let valid = (1u64 << tail) - 1;
            if a.words[last] & !valid != 0 {
                return Err(FsError::corrupt(
                    "allocation bitmap marks blocks past the end",
                ));
            }
        }
        a.used = a.words.iter().map(|w| u64::from(w.count_ones())).sum();
        Ok(a)
    }

    /// The bitmap as bytes, pending frees still counted as used.
    pub fn to_bitmap(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.truncate(self.blocks.div_ceil(8) as usize);
        out
    }

    pub fn total(&self) -> u64 {
        self.blocks
    }
    /// Blocks in use, including those waiting in the pending-free list.
    pub fn used(&self) -> u64 {
        self.used
    }
    /// Blocks that can be allocated now.
    pub fn free(&self) -> u64 {
        self.blocks - self.used
    }
    /// Blocks that will be free after the next commit.
    pub fn pending_blocks(&self) -> u64 {
        self.pending_blocks
    }

    pub fn is_used(&self, block: u64) -> bool {
        block < self.blocks && self.words[(block / 64) as usize] & (1 << (block % 64)) != 0
    }

    /// Allocates `n` contiguous blocks, next-fit from the last allocation so that
    /// sequential writes land sequentially. `None` when no run of `n` is free.
    pub fn alloc(&mut self, n: u64) -> Option<u64> {
        if n == 0 || n > self.free() {
            return None;
        }
        let start = self.cursor.min(self.blocks);
        let found = self
            .find_run(start, self.blocks, n)
            .or_else(|| self.find_run(0, start, n))?;
        debug_assert!(found + n <= self.blocks);
        self.set_range(found, n, true);
        self.used += n;
        self.cursor = found + n;
        Some(found)
    }

    /// Where the next-fit search of [`Allocator::alloc`] starts.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Moves where the next-fit search starts (a second copy of metadata far from the
    /// first).
    pub fn set_cursor(&mut self, at: u64) {
        self.cursor = at.min(self.blocks);
    }

    /// The block half the area away from `block`.
    pub fn far_from(&self, block: u64) -> u64 {
        if self.blocks == 0 {
            return 0;
        }
        (block % self.blocks + self.blocks / 2) % self.blocks
    }

    /// How many disjoint runs of `n` free blocks there are, counting up to `want`.
    pub fn runs_of(&self, n: u64, want: u64) -> u64 {
        if n == 0 {
            return want;
        }
        let mut found = 0;
        let mut pos = 0;
        while found < want && pos < self.blocks {
            let Some(s) = self.next_free(pos) else {
                break;
            };
            if s >= self.blocks {
                break;
            }
            let e = self.next_used(s, self.blocks);
            found += (e - s) / n;
            pos = e;
        }
        found.min(want)
    }

    /// True when [`Allocator::alloc`] would find a run of `n` free blocks.
    pub fn has_run(&self, n: u64) -> bool {
        let start = self.cursor.min(self.blocks);
        n <= self.free()
            && (self.find_run(start, self.blocks, n).is_some()
                || self.find_run(0, start, n).is_some())
    }

    /// Finds `n` free blocks in as few runs as possible (largest first fit), for
    /// checkpoints. Returns the runs, or `None` when fewer than `n` are free.
    pub fn alloc_scattered(&mut self, n: u64, max_runs: usize) -> Option<Vec<(u64, u64)>> {
        if n > self.free() {
            return None;
        }
        if let Some(b) = self.alloc(n) {
            return Some(vec![(b, n)]);
        }
        let mut runs = Vec::new();
        let mut left = n;
        let mut pos = 0;
        while left > 0 && pos < self.blocks {
            let Some(s) = self.next_free(pos) else { break };
            let mut e = s;
            while e < self.blocks && e - s < left && !self.is_used(e) {
                e += 1;
            }
            runs.push((s, e - s));
            left -= e - s;
            pos = e;
            if runs.len() > max_runs {
                return None;
            }
        }
        if left > 0 {
            return None;
        }
        for &(s, l) in &runs {
            self.set_range(s, l, true);
            self.used += l;
        }
        Some(runs)
    }

    /// Marks a run used (replay and load). Fails if any block is already used.
    pub fn claim(&mut self, start: u64, n: u64) -> FsResult<()> {
        self.check_range(start, n)?;
        if (start..start + n).any(|b| self.is_used(b)) {
            return Err(FsError::corrupt(format!(
                "blocks {start}..{} referenced twice",
                start + n
            )));
        }
        self.set_range(start, n, true);
        self.used += n;
        Ok(())
    }

    /// Frees a run now (replay, or space never made durable).
    pub fn free_now(&mut self, start: u64, n: u64) -> FsResult<()> {
        self.check_range(start, n)?;
        if (start..start + n).any(|b| !self.is_used(b)) {
            return Err(FsError::corrupt(format!(
                "blocks {start}..{} freed twice",
                start + n
            )));
        }
        self.set_range(start, n, false);
        debug_assert!(self.used >= n);
        self.used -= n;
        Ok(())
    }

    /// Queues a run to be freed once the change that freed it is durable.
    pub fn defer_free(&mut self, start: u64, n: u64) {
        if n > 0 {
            self.pending.push((start, n));
            self.pending_blocks += n;
        }
    }

    /// Returns every pending run to the free pool (call after a durable commit).
    pub fn release_pending(&mut self) -> FsResult<()> {
        for (s, n) in std::mem::take(&mut self.pending) {
            self.free_now(s, n)?;
        }
        self.pending_blocks = 0;
        self.debug_check();
        Ok(())
    }

    /// Checks the counts against the bitmap (debug builds; a full pass over the words).
    pub fn debug_check(&self) {
        debug_assert_eq!(
            self.used,
            self.words
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum::<u64>(),
            "allocator count differs from its bitmap"
        );
        debug_assert!(self.used <= self.blocks);
        debug_assert!(self.pending_blocks <= self.used);
        debug_assert_eq!(
            self.pending_blocks,
            self.pending.iter().map(|p| p.1).sum::<u64>()
        );
    }

    fn check_range(&self, start: u64, n: u64) -> FsResult<()> {
        if start.checked_add(n).is_none_or(|e| e > self.blocks) {
            return Err(FsError::corrupt(format!(
                "block run {start}+{n} outside the data area ({} blocks)",
                self.blocks
            )));
        }
        Ok(())
    }

    fn set_range(&mut self, start: u64, n: u64, used: bool) {
        let mut b = start;
        let end = start + n;
        while b < end {
            let w = (b / 64) as usize;
            let bit = b % 64;
            let span = (64 - bit).min(end - b);
            let mask = if span == 64 {
                u64::MAX
            } else {
                ((1u64 << span) - 1) << bit
            };
            if used {
                self.words[w] |= mask;
            } else {
                self.words[w] &= !mask;
            }
            b += span;
        }
    }

    fn next_free(&self, from: u64) -> Option<u64> {
        let mut b = from;
        while b < self.blocks {
            let w = self.words[(b / 64) as usize] | ((1u64 << (b % 64)) - 1);
            if w == u64::MAX {
                b = (b / 64 + 1) * 64;
                continue;
            }
            let found = (b / 64) * 64 + u64::from((!w).trailing_zeros());
            return (found < self.blocks).then_some(found);
        }
        None
    }

    fn next_used(&self, from: u64, limit: u64) -> u64 {
        let mut b = from;
        while b < limit {
            let w = self.words[(b / 64) as usize] & !((1u64 << (b % 64)) - 1);
            if w == 0 {
                b = (b / 64 + 1) * 64;
                continue;
            }
            return ((b / 64) * 64 + u64::from(w.trailing_zeros())).min(limit);
        }
        limit
    }

    fn find_run(&self, from: u64, to: u64, n: u64) -> Option<u64> {
        let mut pos = from;
        while pos < to {
            let s = self.next_free(pos)?;
            if s >= to || s + n > self.blocks {
                return None;
            }
            let e = self.next_used(s, s + n);
            if e - s >= n {
                return Some(s);
            }
            pos = e;
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn runs_of_counts_disjoint_free_runs() {
        let mut a = Allocator::new(200);
        assert_eq!(a.runs_of(16, 100), 12);
        a.alloc(10).unwrap(); // 0..10
        a.alloc(20).unwrap(); // 10..30
        a.free_now(0, 10).unwrap();
        // 0..10 (none of 16), 30..200 (170: 10 runs).
        assert_eq!(a.runs_of(16, 100), 10);
        assert_eq!(a.runs_of(16, 3), 3);
        assert_eq!(a.runs_of(5, 100), 2 + 34);
    }

    #[test]
    fn alloc_is_contiguous_and_next_fit() {
        let mut a = Allocator::new(200);
        assert_eq!(a.alloc(10), Some(0));
        assert_eq!(a.alloc(70), Some(10));
        assert_eq!(a.used(), 80);
        a.free_now(0, 10).unwrap();
        assert_eq!(a.alloc(5), Some(80));
        assert_eq!(a.alloc(120), None);
        assert_eq!(a.alloc(115), Some(85));
        assert_eq!(a.alloc(10), Some(0));
        assert_eq!(a.free(), 0);
        assert_eq!(a.alloc(1), None);
    }

    #[test]
    fn deferred_frees_wait_for_release() {
        let mut a = Allocator::new(4);
        let b = a.alloc(4).unwrap();
        a.defer_free(b, 4);
        assert_eq!(a.alloc(1), None);
        a.release_pending().unwrap();
        assert_eq!(a.alloc(4), Some(0));
    }

    #[test]
    fn double_claim_and_double_free_are_corruption() {
        let mut a = Allocator::new(64);
        a.claim(3, 2).unwrap();
        assert!(a.claim(4, 1).is_err());
        a.free_now(3, 2).unwrap();
        assert!(a.free_now(3, 1).is_err());
        assert!(a.claim(63, 2).is_err());
    }

    #[test]
    fn bitmap_round_trip_rejects_bits_past_the_end() {
        let mut a = Allocator::new(70);
        a.claim(65, 3).unwrap();
        let bm = a.to_bitmap();
        let b = Allocator::from_bitmap(70, &bm).unwrap();
        assert_eq!(b.used(), 3);
        assert!(b.is_used(66));
        let mut bad = bm.clone();
        bad[8] |= 0x80;
        assert!(Allocator::from_bitmap(70, &bad).is_err());
    }

    proptest! {
        #[test]
        fn never_hands_out_a_used_block(ops in proptest::collection::vec((1u64..20, any::<bool>()), 1..200)) {
            let mut a = Allocator::new(300);
            let mut model = vec![false; 300];
            let mut live: Vec<(u64, u64)> = Vec::new();
            for (n, free_one) in ops {
                if free_one && !live.is_empty() {
                    let (s, l) = live.swap_remove(0);
                    a.free_now(s, l).unwrap();
                    for b in s..s + l { model[b as usize] = false; }
                } else if let Some(s) = a.alloc(n) {
                    for b in s..s + n { prop_assert!(!model[b as usize]); model[b as usize] = true; }
                    live.push((s, n));
                } else {
                    // No run of n exists in the model either.
                    let run = model.split(|u| *u).map(|r| r.len() as u64).max().unwrap_or(0);
                    prop_assert!(run < n);
                }
                prop_assert_eq!(a.used(), model.iter().filter(|u| **u).count() as u64);
            }
        }
    }
}
