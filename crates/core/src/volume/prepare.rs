//! Preparing dirty records off the volume lock. The transforming stages (zero
//! detection, hashing, compression, checksums) need only a record's bytes, so while
//! writes keep arriving a preparer thread takes whole dirty records out of the lock's
//! way ([`Volume::take_prepare_work`]), runs the stages on every core
//! ([`PrepareWork::run`]) and hands the results back ([`Volume::keep_prepared`]): a
//! record still holding exactly the bytes it was prepared from keeps them, and its flush
//! only allocates and writes. Nothing here touches the device or the namespace: a
//! prepared record is the same bytes its flush would have produced, so durability and
//! the crash behaviour are those of the write-back cache.

use std::sync::Arc;

use gpufs_compute::LazyCompute;

use super::area::batch_device;
use super::Volume;
use crate::records::{self, PreparedRecord, WritePolicy, WRITE};
use crate::units::{Ino, RecordIndex};

/// Raw dirty bytes that make a round of the preparer worth waking for.
pub const PREPARE_ROUND_BYTES: usize = 4 << 20;
/// Bytes one round takes at most (the lock is not held while they are prepared).
const PREPARE_MAX_BYTES: usize = 16 << 20;

/// Whole dirty records taken for preparing, with the policy of their file.
pub struct PrepareWork {
    items: Vec<(Ino, RecordIndex, Arc<Vec<u8>>, WritePolicy)>,
    compute: Option<Arc<LazyCompute>>,
}

/// What a round of the preparer made: each record with the bytes it was made from.
pub struct PreparedWork {
    items: Vec<(Ino, RecordIndex, Arc<Vec<u8>>, PreparedRecord)>,
}

impl PrepareWork {
    /// Records taken.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Runs the transforming stages over every record taken, a batch per policy (on
    /// the GPU when the dispatch policy sends such a batch there, else on every core).
    pub fn run(self) -> PreparedWork {
        let mut items = Vec::with_capacity(self.items.len());
        let mut rest = self.items;
        while let Some((_, _, _, policy)) = rest.first() {
            let policy = policy.clone();
            let (group, others): (Vec<_>, Vec<_>) = rest.into_iter().partition(|it| it.3 == policy);
            rest = others;
            let bytes: Vec<&[u8]> = group.iter().map(|it| it.2.as_slice()).collect();
            let device = batch_device(self.compute.as_deref(), &bytes);
            let prepared: Vec<PreparedRecord> =
                records::prepare_batch(WRITE, &policy, &bytes, device)
                    .into_iter()
                    .map(|io| io.detach())
                    .collect();
            drop(bytes);
            for ((ino, index, data, _), p) in group.into_iter().zip(prepared) {
                items.push((ino, index, data, p));
            }
        }
        PreparedWork { items }
    }
}

impl Volume {
    /// Are there enough dirty bytes not yet prepared for a round of the preparer?
    pub fn wants_preparing(&self) -> bool {
        self.write_cache_bytes > 0 && self.dirty.raw_bytes() >= PREPARE_ROUND_BYTES
    }

    /// Takes up to a round's worth of whole dirty records not yet prepared (`None`
    /// when there are none): they stay in the cache, readable and writable; a write to
    /// one of them makes its preparing void.
    pub fn take_prepare_work(&mut self) -> Option<PrepareWork> {
        let record_len = self.geometry().record_size() as usize;
        let taken = self.dirty.take_raw(record_len, PREPARE_MAX_BYTES);
        if taken.is_empty() {
            return None;
        }
        let items = taken
            .into_iter()
            .map(|((ino, index), data)| (ino, index, data, self.policy_of(ino)))
            .collect();
        Some(PrepareWork {
            items,
            compute: self.compute.clone(),
        })
    }

    /// Keeps what a round prepared for the records that still hold the bytes it was
    /// prepared from; returns how many.
    pub fn keep_prepared(&mut self, work: PreparedWork) -> usize {
        let mut kept = 0;
        for (ino, index, data, p) in work.items {
            // A policy changed meanwhile (a property set) voids it.
            let p = (*p.policy() == self.policy_of(ino)).then_some(p);
            kept += usize::from(self.dirty.keep_prepared((ino, index), &data, p));
        }
        kept
    }
}
