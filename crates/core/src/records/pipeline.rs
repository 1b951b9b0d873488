//! The one write path and the one read path of data records.
//!
//! A write runs the stages of a pipeline ([`super::stage`]) over the record's logical
//! bytes in two steps: [`prepare`] (zero detection, compression, checksum: bytes only,
//! any thread, [`prepare_batch`] on every core) and [`place`] (allocation and the device
//! write, under the volume), and returns the pointer to what it stored, flags included,
//! or that the record is a hole. A read refuses a
//! pointer whose flags this build does not know, or whose stored length differs from
//! its logical length without a stage that allows it, reads the stored bytes, verifies
//! their CRC32C, and undoes the flagged stages, last applied first.

use std::sync::Arc;

use gpufs_compute::kernels::blake3::{self, Blake3Mode};
use gpufs_compute::Compute;
use gpufs_format::{checksum, RecordPtr, BLOCK_SIZE};
use rayon::prelude::*;

use super::batch;
use super::cache::RecordCache;
use super::stage::{self, known_flags, Stage, WriteIo, WritePolicy, ALL_STAGES};
use crate::crypt::SealKeys;
use crate::error::{FsError, FsResult};
use crate::units::BlockNo;

/// Where records are read from: the data area of a device.
pub trait BlockSource {
    /// Fails unless blocks `block .. block+count` lie inside the data area.
    fn check_run(&self, block: BlockNo, count: u64) -> FsResult<()>;
    /// Reads `buf.len()` bytes from `block` on.
    fn read_blocks(&self, block: BlockNo, buf: &mut [u8]) -> FsResult<()>;
    /// The keys encrypted records open with (`None`: the volume is not encrypted).
    fn keys(&self) -> Option<&SealKeys>;
}

/// Where records are written to: free space of the data area.
pub trait BlockSink {
    /// Generation new records are born in.
    fn birth_gen(&self) -> u64;
    /// `count` contiguous free blocks.
    fn allocate(&mut self, count: u64) -> FsResult<BlockNo>;
    /// `count` contiguous free blocks as far from `from` as free space allows (a second
    /// copy).
    fn allocate_far(&mut self, count: u64, from: BlockNo) -> FsResult<BlockNo>;
    /// Gives back blocks that a write failed to fill (nothing refers to them).
    fn release(&mut self, block: BlockNo, count: u64);
    /// Writes `bytes` (whole blocks) at `block`.
    fn write_blocks(&mut self, block: BlockNo, bytes: &[u8]) -> FsResult<()>;
}

/// Why a stored record cannot be read back.
#[derive(Debug)]
pub enum RecordError {
    /// The pointer carries flags of stages this build does not implement.
    UnknownFlags(u32),
    /// The stored length differs from the logical length, and no flag explains it.
    Length { logical: u32, phys: u32 },
    /// The pointer's blocks do not lie inside the data area.
    OutsideArea(FsError),
    /// The device failed to read them.
    Unreadable(FsError),
    /// The stored bytes fail their checksum.
    Checksum { stored: u32, computed: u32 },
    /// The stored bytes pass their checksum but do not decode (a damaged record
    /// written with a matching checksum, or a codec fault).
    Decode(String),
    /// An encrypted record whose bytes do not match its tag: changed on the device, or
    /// sealed under another key. Never returned as data.
    Forged,
    /// An encrypted record read without the volume's keys.
    NoKey,
}

impl RecordError {
    /// The error a read of the record at `block` returns.
    pub fn into_fs_error(self, block: u64) -> FsError {
        match self {
            RecordError::UnknownFlags(flags) => FsError::corrupt(format!(
                "record at block {block} has flags {flags:#x} this build cannot read"
            )),
            RecordError::Length { logical, phys } => FsError::corrupt(format!(
                "record at block {block} stores {phys} bytes for {logical} without a flag \
                 that allows it"
            )),
            RecordError::OutsideArea(e) | RecordError::Unreadable(e) => e,
            RecordError::Checksum { stored, computed } => {
                tracing::error!(block, stored, computed, "record checksum mismatch");
                FsError::corrupt(format!("record at block {block} fails its checksum"))
            }
            RecordError::Decode(why) => {
                tracing::error!(block, "record does not decode: {why}");
                FsError::corrupt(format!("record at block {block} does not decode: {why}"))
            }
            RecordError::Forged => {
                tracing::error!(block, "encrypted record fails authentication");
                FsError::corrupt(format!(
                    "encrypted record at block {block} fails authentication"
                ))
            }
            RecordError::NoKey => FsError::Key(format!(
                "record at block {block} is encrypted and the volume has no key"
            )),
        }
    }
}

/// What a write did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored; nothing refers to it until the caller records the pointer.
    Stored(RecordPtr),
    /// Nothing stored: the record is all zeros and reads back from a hole.
    Hole,
}

/// Runs the transforming stages of `stages` over one record's logical bytes (never
/// empty): what [`place`] then stores.
pub fn prepare<'a>(stages: &[Stage], policy: &WritePolicy, data: &'a [u8]) -> WriteIo<'a> {
    debug_assert!(stage::is_valid_pipeline(stages), "{stages:?}");
    debug_assert!(!data.is_empty(), "an empty record is never stored");
    debug_assert!(u32::try_from(data.len()).is_ok());
    debug_assert!((1..=2).contains(&policy.copies));
    let mut io = WriteIo::new(data, policy.clone());
    for &s in stages.iter().filter(|s| !s.places()) {
        s.transform(&mut io);
        if io.hole {
            break;
        }
    }
    io
}

/// Records at least this long in all are prepared on every core.
const PARALLEL_BYTES: usize = 128 << 10;

/// [`prepare`] of each record: as batch kernels on the GPU when `compute`'s dispatch
/// policy sends a batch this large there ([`super::batch`]), else on every core when
/// there is enough to share.
pub fn prepare_batch<'a>(
    stages: &[Stage],
    policy: &WritePolicy,
    records: &[&'a [u8]],
    compute: Option<&Compute>,
) -> Vec<WriteIo<'a>> {
    let bytes: usize = records.iter().map(|r| r.len()).sum();
    if let Some(c) = compute.filter(|c| batch::wants_device(c, policy, bytes as u64)) {
        return batch::prepare_on(c, stages, policy, records);
    }
    if records.len() > 1 && bytes >= PARALLEL_BYTES {
        records
            .par_iter()
            .map(|r| prepare(stages, policy, r))
            .collect()
    } else {
        records.iter().map(|r| prepare(stages, policy, r)).collect()
    }
}

/// Runs the placing stages of `stages` on a prepared record. On failure, whatever they
/// had allocated is given back.
pub fn place(
    stages: &[Stage],
    sink: &mut impl BlockSink,
    mut io: WriteIo<'_>,
) -> FsResult<Outcome> {
    if io.hole {
        return Ok(Outcome::Hole);
    }
    io.ptr.birth_gen = sink.birth_gen();
    for &s in stages.iter().filter(|s| s.places()) {
        if let Err(e) = s.place(&mut io, sink) {
            for &(block, count) in &io.allocated {
                sink.release(block, count);
            }
            return Err(e);
        }
    }
    // A stage that transforms the bytes sets its flag in `io.ptr` as it runs; the
    // sealing stage sets the stored plaintext's length (the ciphertext may be longer).
    let ptr = RecordPtr {
        phys_len: if io.ptr.flags & RecordPtr::FLAG_ENCRYPTED != 0 {
            io.ptr.phys_len
        } else {
            io.stored.len() as u32
        },
        ..io.ptr
    };
    debug_assert_eq!(ptr.stored_len() as usize, io.stored.len());
    debug_assert!(ptr.phys_len == ptr.logical_len || stages.iter().any(|s| s.changes_length()));
    debug_assert!(ptr.phys_len <= ptr.logical_len);
    debug_assert!(io.allocated.iter().all(|a| a.1 == ptr.block_count().max(1)));
    debug_assert_eq!(io.allocated.len(), ptr.runs().count());
    Ok(Outcome::Stored(ptr))
}

/// [`prepare`] and [`place`] of one record.
#[cfg(test)]
pub fn write(
    stages: &[Stage],
    sink: &mut impl BlockSink,
    policy: WritePolicy,
    data: &[u8],
) -> FsResult<Outcome> {
    place(stages, sink, prepare(stages, &policy, data))
}

/// What a read found besides the bytes: the copies of the record that failed while
/// another was good, and that good copy's stored bytes, to rewrite them with.
#[derive(Debug, Default)]
pub struct Healing {
    /// `(first block, blocks)` of each bad copy.
    pub bad: Vec<(BlockNo, u64)>,
    /// The stored bytes of the good copy (empty when nothing is bad).
    pub stored: Vec<u8>,
}

/// The logical bytes of the record `ptr` points at, from `cache` when kept there, else
/// read through [`load`] and kept; with the copies to heal, if any.
pub fn read_cached(
    cache: &mut RecordCache,
    src: &impl BlockSource,
    ptr: &RecordPtr,
) -> FsResult<(Arc<Vec<u8>>, Healing)> {
    let block = BlockNo::new(ptr.block);
    if let Some(hit) = cache.get(block, ptr.logical_len) {
        return Ok((hit, Healing::default()));
    }
    let mut buf = Vec::new();
    let healing = load(src, ptr, &mut buf).map_err(|e| e.into_fs_error(ptr.block))?;
    let data = Arc::new(buf);
    cache.insert(block, data.clone());
    Ok((data, healing))
}

/// The read path: the logical bytes of the record `ptr` points at into `buf`, verified;
/// a copy that fails is passed over for the next one, and named in the result.
pub fn load(
    src: &impl BlockSource,
    ptr: &RecordPtr,
    buf: &mut Vec<u8>,
) -> Result<Healing, RecordError> {
    load_checking(src, ptr, buf, false)
}

/// [`load`], reading and verifying every copy even when the first is good (fsck,
/// scrub): every bad copy is named.
pub fn load_every_copy(
    src: &impl BlockSource,
    ptr: &RecordPtr,
    buf: &mut Vec<u8>,
) -> Result<Healing, RecordError> {
    load_checking(src, ptr, buf, true)
}

fn load_checking(
    src: &impl BlockSource,
    ptr: &RecordPtr,
    buf: &mut Vec<u8>,
    every_copy: bool,
) -> Result<Healing, RecordError> {
    let undo: Vec<Stage> = stages_to_undo(ptr)?.collect();
    let count = ptr.block_count();
    let mut first_err = None;
    let mut bad = Vec::new();
    let mut good = false;
    for (block, _) in ptr.runs() {
        let block = BlockNo::new(block);
        // The first good copy is read into `buf`; later ones only checked.
        let mut spare = Vec::new();
        let into = if good { &mut spare } else { &mut *buf };
        match read_copy(src, ptr, block, count, into) {
            Ok(()) if !good => {
                good = true;
                if !every_copy {
                    break;
                }
            }
            Ok(()) => {}
            Err(e) => {
                bad.push((block, count));
                first_err.get_or_insert(e);
            }
        }
    }
    if !good {
        return Err(first_err.unwrap_or(RecordError::Length {
            logical: ptr.logical_len,
            phys: ptr.phys_len,
        }));
    }
    let stored = if bad.is_empty() {
        Vec::new()
    } else {
        buf.clone()
    };
    for s in undo.iter().rev() {
        s.undo(ptr, buf, src.keys())?;
    }
    debug_assert_eq!(buf.len(), ptr.logical_len as usize);
    // Scrub and fsck also check the strong checksum a deduplicated record carries: its
    // BLAKE3, which sharing relies on (an encrypted record's tag was checked opening it).
    if every_copy
        && ptr.flags & RecordPtr::FLAG_HASH_VALID != 0
        && ptr.flags & RecordPtr::FLAG_ENCRYPTED == 0
    {
        let hash = blake3::hash_one(buf, &Blake3Mode::Hash);
        if !ptr.hash_matches(&hash) {
            return Err(RecordError::Decode(
                "its bytes do not match the BLAKE3 hash it carries".into(),
            ));
        }
    }
    Ok(Healing { bad, stored })
}

/// Reads the copy at `block` into `buf` (its stored bytes) and verifies its checksum.
fn read_copy(
    src: &impl BlockSource,
    ptr: &RecordPtr,
    block: BlockNo,
    count: u64,
    buf: &mut Vec<u8>,
) -> Result<(), RecordError> {
    src.check_run(block, count)
        .map_err(RecordError::OutsideArea)?;
    let whole = count as usize * BLOCK_SIZE;
    if buf.capacity() < whole {
        // Zeroed memory from the allocator is cheaper than zeroing it here.
        *buf = vec![0u8; whole];
    } else {
        buf.clear();
        buf.resize(whole, 0);
    }
    src.read_blocks(block, buf)
        .map_err(RecordError::Unreadable)?;
    buf.truncate(ptr.stored_len() as usize);
    let computed = checksum(buf);
    if computed != ptr.checksum {
        return Err(RecordError::Checksum {
            stored: ptr.checksum,
            computed,
        });
    }
    Ok(())
}

/// The transforming stages whose flags `ptr` carries, in pipeline order; an error for
/// a flag no stage of this build owns, or a length change no flagged stage explains.
fn stages_to_undo(ptr: &RecordPtr) -> Result<impl DoubleEndedIterator<Item = Stage>, RecordError> {
    let unknown = ptr.flags & !known_flags();
    if unknown != 0 {
        return Err(RecordError::UnknownFlags(ptr.flags));
    }
    let flags = ptr.flags;
    let flagged = ALL_STAGES
        .iter()
        .copied()
        .filter(move |s| flags & s.flags() != 0);
    if ptr.phys_len != ptr.logical_len && !flagged.clone().any(|s| s.changes_length()) {
        return Err(RecordError::Length {
            logical: ptr.logical_len,
            phys: ptr.phys_len,
        });
    }
    Ok(flagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::stage::WRITE;
    use gpufs_format::Compression;

    fn with(compression: Compression) -> WritePolicy {
        WritePolicy {
            compression,
            copies: 1,
            dedup: false,
            keys: None,
        }
    }

    /// A data area of 64 blocks in memory, first-fit, that can be told to fail writes.
    struct MemArea {
        bytes: Vec<u8>,
        used: Vec<bool>,
        fail_writes: bool,
        keys: Option<Arc<SealKeys>>,
    }

    const AREA_START: u64 = 10;

    impl MemArea {
        fn new() -> Self {
            MemArea {
                bytes: vec![0xEE; 64 * BLOCK_SIZE],
                used: vec![false; 64],
                fail_writes: false,
                keys: None,
            }
        }

        fn at(block: BlockNo) -> usize {
            (block.get() - AREA_START) as usize * BLOCK_SIZE
        }
    }

    impl BlockSource for MemArea {
        fn check_run(&self, block: BlockNo, count: u64) -> FsResult<()> {
            let rel = block.get().checked_sub(AREA_START);
            match rel {
                Some(r) if r + count <= 64 => Ok(()),
                _ => Err(FsError::corrupt("outside")),
            }
        }

        fn keys(&self) -> Option<&SealKeys> {
            self.keys.as_deref()
        }

        fn read_blocks(&self, block: BlockNo, buf: &mut [u8]) -> FsResult<()> {
            let at = Self::at(block);
            buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
            Ok(())
        }
    }

    impl BlockSink for MemArea {
        fn birth_gen(&self) -> u64 {
            7
        }

        fn allocate_far(&mut self, count: u64, _from: BlockNo) -> FsResult<BlockNo> {
            self.allocate(count)
        }

        fn allocate(&mut self, count: u64) -> FsResult<BlockNo> {
            let n = count as usize;
            let start = (0..=64 - n)
                .find(|s| self.used[*s..*s + n].iter().all(|u| !u))
                .ok_or(FsError::NoSpace)?;
            self.used[start..start + n].fill(true);
            Ok(BlockNo::new(AREA_START + start as u64))
        }

        fn release(&mut self, block: BlockNo, count: u64) {
            let s = (block.get() - AREA_START) as usize;
            self.used[s..s + count as usize].fill(false);
        }

        fn write_blocks(&mut self, block: BlockNo, bytes: &[u8]) -> FsResult<()> {
            if self.fail_writes {
                return Err(FsError::Io(std::io::Error::other("cut")));
            }
            assert_eq!(bytes.len() % BLOCK_SIZE, 0);
            let at = Self::at(block);
            self.bytes[at..at + bytes.len()].copy_from_slice(bytes);
            Ok(())
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    /// Writes `d` uncompressed; it must be stored.
    fn raw(area: &mut MemArea, d: &[u8]) -> FsResult<RecordPtr> {
        match write(WRITE, area, WritePolicy::RAW, d)? {
            Outcome::Stored(p) => Ok(p),
            Outcome::Hole => panic!("{} bytes became a hole", d.len()),
        }
    }

    #[test]
    fn uncompressed_records_are_the_bytes_as_they_are_zero_padded() {
        let mut area = MemArea::new();
        for len in [1usize, 100, 4095, 4096, 4097, 65536] {
            let d = data(len);
            let ptr = raw(&mut area, &d).unwrap();
            assert_eq!(ptr.logical_len as usize, len);
            assert_eq!(ptr.phys_len as usize, len);
            assert_eq!(ptr.flags, 0);
            assert_eq!(ptr.hash, [0; 32]);
            assert_eq!(ptr.birth_gen, 7);
            assert_eq!(ptr.checksum, crc32c::crc32c(&d));
            let at = MemArea::at(BlockNo::new(ptr.block));
            let whole = len.div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
            assert_eq!(&area.bytes[at..at + len], &d[..]);
            assert!(area.bytes[at + len..at + whole].iter().all(|b| *b == 0));
            let mut buf = Vec::new();
            load(&area, &ptr, &mut buf).unwrap();
            assert_eq!(buf, d);
        }
    }

    #[test]
    fn a_failed_write_gives_its_blocks_back() {
        let mut area = MemArea::new();
        area.fail_writes = true;
        assert!(raw(&mut area, &data(5000)).is_err());
        assert!(area.used.iter().all(|u| !u));
        area.fail_writes = false;
        let ptr = raw(&mut area, &data(64 * BLOCK_SIZE)).unwrap();
        assert_eq!(ptr.block, AREA_START);
        assert!(matches!(raw(&mut area, &data(1)), Err(FsError::NoSpace)));
    }

    #[test]
    fn reads_refuse_unknown_flags_lengths_and_bad_checksums() {
        let mut area = MemArea::new();
        let ptr = raw(&mut area, &data(9000)).unwrap();
        let mut buf = Vec::new();
        // FLAG_ENCRYPTED is known now: without the volume's keys it is an error of its own.
        let sealed = RecordPtr {
            flags: RecordPtr::FLAG_ENCRYPTED,
            ..ptr
        };
        assert!(matches!(
            load(&area, &sealed, &mut buf),
            Err(RecordError::NoKey)
        ));
        for flag in [1 << 5, 1 << 9] {
            let p = RecordPtr { flags: flag, ..ptr };
            let e = load(&area, &p, &mut buf).unwrap_err();
            assert!(matches!(e, RecordError::UnknownFlags(f) if f == flag));
            let msg = e.into_fs_error(p.block).to_string();
            assert!(msg.contains("cannot read"), "{msg}");
        }
        let short = RecordPtr {
            phys_len: 8000,
            ..ptr
        };
        assert!(matches!(
            load(&area, &short, &mut buf),
            Err(RecordError::Length { .. })
        ));
        let flipped = RecordPtr {
            checksum: ptr.checksum ^ 1,
            ..ptr
        };
        assert!(matches!(
            load(&area, &flipped, &mut buf),
            Err(RecordError::Checksum { .. })
        ));
        let outside = RecordPtr { block: 1, ..ptr };
        assert!(matches!(
            load(&area, &outside, &mut buf),
            Err(RecordError::OutsideArea(_))
        ));
    }

    #[test]
    fn cached_reads_serve_verified_bytes_until_invalidated() {
        let mut area = MemArea::new();
        let d = data(3000);
        let ptr = raw(&mut area, &d).unwrap();
        let mut cache = RecordCache::new(1 << 20);
        assert_eq!(*read_cached(&mut cache, &area, &ptr).unwrap().0, d);
        // Served from the cache: the device's bytes are not read again.
        let at = MemArea::at(BlockNo::new(ptr.block));
        area.bytes[at] ^= 0xFF;
        assert_eq!(*read_cached(&mut cache, &area, &ptr).unwrap().0, d);
        cache.invalidate(BlockNo::new(ptr.block));
        let e = read_cached(&mut cache, &area, &ptr).unwrap_err();
        assert!(e.to_string().contains("fails its checksum"), "{e}");
    }

    #[test]
    fn zero_records_become_holes_and_take_no_blocks() {
        let mut area = MemArea::new();
        for len in [1usize, 4096, 65536] {
            let out = write(WRITE, &mut area, with(Compression::Lz4), &vec![0u8; len]).unwrap();
            assert_eq!(out, Outcome::Hole);
        }
        assert!(area.used.iter().all(|u| !u));
        let mut one = vec![0u8; 65536];
        one[65535] = 1;
        assert!(matches!(
            write(WRITE, &mut area, WritePolicy::RAW, &one).unwrap(),
            Outcome::Stored(_)
        ));
    }

    #[test]
    fn scrub_checks_the_blake3_a_deduplicated_record_carries() {
        let d = data(65536);
        let mut area = MemArea::new();
        let policy = WritePolicy {
            dedup: true,
            ..with(Compression::Lz4)
        };
        let Outcome::Stored(ptr) = write(WRITE, &mut area, policy.clone(), &d).unwrap() else {
            panic!("hole")
        };
        assert!(ptr.flags & RecordPtr::FLAG_HASH_VALID != 0);
        let mut buf = Vec::new();
        load_every_copy(&area, &ptr, &mut buf).unwrap();
        assert_eq!(buf, d);
        // A pointer whose hash does not match its bytes (the checksum does): a read
        // returns the bytes, scrub and fsck call the record damaged.
        let mut wrong = ptr;
        wrong.hash[5] ^= 1;
        load(&area, &wrong, &mut buf).unwrap();
        assert!(matches!(
            load_every_copy(&area, &wrong, &mut buf),
            Err(RecordError::Decode(_))
        ));
    }

    #[test]
    fn compressed_records_round_trip_and_their_damage_is_an_error() {
        let d = data(65536);
        for (how, flag) in [
            (Compression::Lz4, RecordPtr::FLAG_LZ4),
            (Compression::Zstd { level: 3 }, RecordPtr::FLAG_ZSTD),
        ] {
            let mut area = MemArea::new();
            let Outcome::Stored(ptr) = write(WRITE, &mut area, with(how), &d).unwrap() else {
                panic!("hole")
            };
            assert_eq!(ptr.flags, flag);
            assert_eq!(ptr.logical_len, 65536);
            assert!(ptr.phys_len <= 65536 / 8, "{how}: {}", ptr.phys_len);
            assert_eq!(
                area.used.iter().filter(|u| **u).count() as u64,
                ptr.block_count()
            );
            let mut buf = Vec::new();
            load(&area, &ptr, &mut buf).unwrap();
            assert_eq!(buf, d);
            // The stored bytes are checksummed as stored: a flip fails the checksum.
            let at = MemArea::at(BlockNo::new(ptr.block));
            area.bytes[at + 3] ^= 0x10;
            assert!(matches!(
                load(&area, &ptr, &mut buf),
                Err(RecordError::Checksum { .. })
            ));
            // Damage under a matching checksum fails to decode: EIO, not bytes.
            let n = ptr.phys_len as usize;
            area.bytes[at..at + n].fill(0xFF);
            let forged = RecordPtr {
                checksum: crc32c::crc32c(&area.bytes[at..at + n]),
                ..ptr
            };
            let e = load(&area, &forged, &mut buf).unwrap_err();
            assert!(matches!(e, RecordError::Decode(_)), "{e:?}");
            let msg = e.into_fs_error(ptr.block).to_string();
            assert!(msg.contains("does not decode"), "{msg}");
        }
    }

    #[test]
    fn a_batch_is_prepared_on_every_core_and_placed_in_order() {
        let recs: Vec<Vec<u8>> = (0..8)
            .map(|i| {
                if i % 3 == 0 {
                    vec![0; 65536]
                } else {
                    data(65536 - i)
                }
            })
            .collect();
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let prepared = prepare_batch(WRITE, &with(Compression::Lz4), &refs, None);
        let mut area = MemArea::new();
        for (io, rec) in prepared.into_iter().zip(&recs) {
            match place(WRITE, &mut area, io).unwrap() {
                Outcome::Hole => assert!(rec.iter().all(|b| *b == 0)),
                Outcome::Stored(ptr) => {
                    let mut buf = Vec::new();
                    load(&area, &ptr, &mut buf).unwrap();
                    assert_eq!(&buf, rec);
                }
            }
        }
    }

    #[test]
    fn a_record_with_two_copies_reads_from_the_good_one_and_names_the_bad() {
        let mut area = MemArea::new();
        let d = data(20_000);
        let policy = WritePolicy {
            compression: Compression::None,
            copies: 2,
            dedup: false,
            keys: None,
        };
        let Outcome::Stored(ptr) = write(WRITE, &mut area, policy.clone(), &d).unwrap() else {
            panic!("hole")
        };
        let copy = ptr.copy_block().unwrap();
        assert_ne!(copy, ptr.block);
        assert_eq!(area.used.iter().filter(|u| **u).count(), 10);
        let mut buf = Vec::new();
        let h = load(&area, &ptr, &mut buf).unwrap();
        assert!(h.bad.is_empty() && h.stored.is_empty());
        assert_eq!(buf, d);
        // The first copy damaged: the second answers, and the first is named.
        let at = MemArea::at(BlockNo::new(ptr.block));
        area.bytes[at + 100] ^= 1;
        let h = load(&area, &ptr, &mut buf).unwrap();
        assert_eq!(buf, d);
        assert_eq!(h.bad, vec![(BlockNo::new(ptr.block), 5)]);
        assert_eq!(h.stored, d);
        // Both damaged: a checksum error, never bytes.
        let at2 = MemArea::at(BlockNo::new(copy));
        area.bytes[at2 + 5] ^= 1;
        assert!(matches!(
            load(&area, &ptr, &mut buf),
            Err(RecordError::Checksum { .. })
        ));
        // A failed write of a two-copy record gives both runs back.
        let mut area = MemArea::new();
        area.fail_writes = true;
        assert!(write(WRITE, &mut area, policy, &d).is_err());
        assert!(area.used.iter().all(|u| !u));
    }

    #[test]
    fn encrypted_records_round_trip_and_a_forged_byte_is_never_data() {
        use crate::crypt::VolumeKey;
        let keys = Arc::new(SealKeys::new(&VolumeKey::from_bytes([4; 32])));
        let mut area = MemArea::new();
        area.keys = Some(keys.clone());
        let marker = b"MARKER-in-a-record ".repeat(700);
        for (compression, copies, dedup, data) in [
            (Compression::None, 1, false, marker.clone()),
            (Compression::Lz4, 1, true, marker.clone()),
            (Compression::Zstd { level: 3 }, 2, true, marker.clone()),
            (Compression::None, 1, false, b"tiny".to_vec()),
        ] {
            let policy = WritePolicy {
                compression,
                copies,
                dedup,
                keys: Some(keys.clone()),
            };
            let Outcome::Stored(ptr) = write(WRITE, &mut area, policy, &data).unwrap() else {
                panic!("a hole")
            };
            assert_ne!(ptr.flags & RecordPtr::FLAG_ENCRYPTED, 0);
            assert_eq!(ptr.flags & RecordPtr::FLAG_HASH_VALID != 0, dedup);
            assert_eq!(ptr.stored_len(), ptr.phys_len.max(16));
            let at = MemArea::at(BlockNo::new(ptr.block));
            let stored = &area.bytes[at..at + ptr.stored_len() as usize];
            assert!(
                !stored.windows(6).any(|w| w == b"MARKER"),
                "plaintext stored"
            );
            let mut buf = Vec::new();
            load(&area, &ptr, &mut buf).unwrap();
            assert_eq!(buf, data);
            // Sealing is deterministic: the same bytes give the same tag (the dedup key).
            let again = prepare(
                WRITE,
                &WritePolicy {
                    compression,
                    copies,
                    dedup,
                    keys: Some(keys.clone()),
                },
                &data,
            );
            assert_eq!(again.ptr.hash[..24], ptr.hash[..24]);

            // A changed byte whose CRC32C was made to match is refused, not returned.
            let mut forged = ptr;
            area.bytes[at] ^= 1;
            forged.checksum = checksum(&area.bytes[at..at + ptr.stored_len() as usize]);
            let mut copy_bad = area.bytes.clone();
            if let Some(copy) = ptr.copy_block() {
                let c = MemArea::at(BlockNo::new(copy));
                copy_bad[c] ^= 1;
            }
            let saved = std::mem::replace(&mut area.bytes, copy_bad);
            assert!(matches!(
                load(&area, &forged, &mut buf),
                Err(RecordError::Forged)
            ));
            area.bytes = saved;
            area.bytes[at] ^= 1;

            // Without the keys the bytes stay sealed.
            let keyless = MemArea {
                keys: None,
                bytes: area.bytes.clone(),
                used: area.used.clone(),
                fail_writes: false,
            };
            assert!(matches!(
                load(&keyless, &ptr, &mut buf),
                Err(RecordError::NoKey)
            ));
        }
    }
}
