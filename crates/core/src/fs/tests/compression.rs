//! The compression stage seen through the POSIX API: what is stored compressed, raw or
//! not at all, properties and their inheritance, and that it all reads back after a
//! remount.

use gpufs_format::Compression;

use super::*;

/// Text-like bytes: compressible, never all zero.
pub(super) fn text(seed: u64, len: usize) -> Vec<u8> {
    let words: [&[u8]; 8] = [
        b"record ",
        b"gpufs ",
        b"pipeline\n",
        b"the ",
        b"of ",
        b"a ",
        b"block ",
        b"zstd ",
    ];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % 8) as usize]);
    }
    out.truncate(len);
    out
}

pub(super) fn fresh_with(compression: Compression) -> (Arc<FaultDevice>, Filesystem) {
    let dev = Arc::new(FaultDevice::new(vec![0u8; 64 << 20]));
    let d: Arc<dyn Device> = dev.clone();
    let opts = MkfsOptions {
        compression,
        ..MkfsOptions::default()
    };
    mkfs(d.clone(), &opts).unwrap();
    (dev, Filesystem::mount(d, OpenOptions::default()).unwrap())
}

#[test]
fn text_is_stored_compressed_random_raw_and_zeros_not_at_all() {
    for how in [Compression::Lz4, Compression::Zstd { level: 3 }] {
        let (dev, fs) = fresh_with(how);
        let before = used(&fs);
        let t = text(1, 4 << 20);
        let r = random(2, 1 << 20);
        let z = vec![0u8; 2 << 20];
        let ft = fs.create(ROOT, b"text", 0o644, Caller::ROOT).unwrap().ino;
        let fr = fs.create(ROOT, b"random", 0o644, Caller::ROOT).unwrap().ino;
        let fz = fs.create(ROOT, b"zeros", 0o644, Caller::ROOT).unwrap().ino;
        for (ino, d) in [(ft, &t), (fr, &r), (fz, &z)] {
            for (i, chunk) in d.chunks(128 << 10).enumerate() {
                fs.write(ino, (i * (128 << 10)) as u64, chunk).unwrap();
            }
        }
        fs.sync().unwrap();
        // st_blocks (512-byte units) counts what is stored.
        let text_blocks = fs.getattr(ft).unwrap().blocks * 512;
        assert!(
            text_blocks * 2 < t.len() as u64,
            "{how}: text takes {text_blocks}"
        );
        let random_blocks = fs.getattr(fr).unwrap().blocks * 512;
        assert_eq!(random_blocks, r.len() as u64, "{how}");
        assert_eq!(fs.getattr(fz).unwrap().blocks, 0, "{how}");
        assert_eq!(fs.getattr(fz).unwrap().size, z.len() as u64);
        assert_err!(fs.lseek(fz, 0, 3), FsError::NoSuchOffset);
        // df counts physical blocks: the text and zeros cost little.
        let grown = (used(&fs) - before) * BLOCK_SIZE as u64;
        assert!(
            grown < r.len() as u64 + t.len() as u64 / 2,
            "{how}: {grown}"
        );
        let c = fs.counters().records;
        let compressed = if how == Compression::Lz4 {
            c.lz4
        } else {
            c.zstd
        };
        assert_eq!(compressed.records, 64, "{how}: {c:?}");
        assert_eq!(compressed.logical_bytes, t.len() as u64);
        assert_eq!(c.holes.records, 32);
        assert_eq!(c.skipped_by_sample, 16, "{how}: {c:?}");
        assert_eq!(c.raw.records, 16);
        // All of it reads back, after a remount too.
        let (_d, fs) = close_and_remount(&dev, fs);
        for (name, d) in [(&b"text"[..], &t), (b"random", &r), (b"zeros", &z)] {
            let ino = fs.lookup(ROOT, name).unwrap().ino;
            same(read_all(&fs, ino), d);
        }
    }
}

#[test]
fn partial_overwrites_of_compressed_records_keep_every_byte() {
    let (_dev, fs) = fresh_with(Compression::Lz4);
    let ino = fs.create(ROOT, b"f", 0o644, Caller::ROOT).unwrap().ino;
    let mut model = text(3, (3 * R) as usize + 100);
    fs.write(ino, 0, &model).unwrap();
    for (off, len, seed) in [(10u64, 5usize, 4u64), (R - 3, 9, 5), (2 * R + 7, 40_000, 6)] {
        let d = random(seed, len);
        fs.write(ino, off, &d).unwrap();
        let end = off as usize + len;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&d);
    }
    // Zeroing a whole compressed record makes it a hole.
    let zeros = vec![0u8; R as usize];
    fs.write(ino, R, &zeros).unwrap();
    model[R as usize..2 * R as usize].fill(0);
    assert_eq!(fs.lseek(ino, R, 4).unwrap(), R);
    same(read_all(&fs, ino), &model);
}

#[test]
fn properties_are_set_inherited_and_refused_when_wrong() {
    let (_dev, fs) = fresh_with(Compression::Lz4);
    let before = fs.create(ROOT, b"before", 0o644, Caller::ROOT).unwrap().ino;
    let dir = fs.mkdir(ROOT, b"z", 0o755, Caller::ROOT).unwrap().ino;
    let props = fs.properties(dir, None).unwrap();
    assert_eq!(props.len(), 3);
    assert_eq!((props[2].name, props[2].value.as_str()), ("dedup", "off"));
    assert_eq!((props[1].name, props[1].value.as_str()), ("copies", "1"));
    assert_eq!(
        (props[0].value.as_str(), props[0].source),
        ("lz4", "default")
    );
    fs.set_property(dir, "compression", "zstd:7", Caller::ROOT)
        .unwrap();
    let p = &fs.properties(dir, Some("compression")).unwrap()[0];
    assert_eq!((p.value.as_str(), p.source), ("zstd:7", "local"));
    // Created below it: inherited, all the way down.
    let sub = fs.mkdir(dir, b"sub", 0o755, Caller::ROOT).unwrap().ino;
    let f = fs.create(sub, b"f", 0o644, Caller::ROOT).unwrap().ino;
    assert_eq!(fs.properties(f, None).unwrap()[0].value, "zstd:7");
    assert_eq!(fs.properties(before, None).unwrap()[0].value, "lz4");
    // Records reach the pipeline (and its counters) at the latest when committed.
    fs.write(f, 0, &text(9, 256 << 10)).unwrap();
    fs.sync().unwrap();
    let c = fs.counters().records;
    assert_eq!((c.zstd.records, c.lz4.records), (4, 0), "{c:?}");
    fs.write(before, 0, &text(9, 256 << 10)).unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.counters().records.lz4.records, 4);
    // Back to the default; none stores raw.
    fs.set_property(sub, "compression", "default", Caller::ROOT)
        .unwrap();
    assert_eq!(fs.properties(sub, None).unwrap()[0].source, "default");
    fs.set_property(f, "compression", "none", Caller::ROOT)
        .unwrap();
    fs.write(f, 0, &text(10, 256 << 10)).unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.counters().records.raw.records, 4);
    // Wrong names, values and callers.
    assert_err!(
        fs.set_property(dir, "compresion", "lz4", Caller::ROOT),
        FsError::BadQuery(_)
    );
    assert_err!(
        fs.set_property(dir, "compression", "gzip", Caller::ROOT),
        FsError::BadQuery(_)
    );
    assert_err!(
        fs.set_property(dir, "compression", "zstd:99", Caller::ROOT),
        FsError::BadQuery(_)
    );
    assert_err!(fs.properties(dir, Some("copies ")), FsError::BadQuery(_));
    assert_err!(
        fs.set_property(dir, "compression", "lz4", USER),
        FsError::NotPermitted
    );
}

#[test]
fn a_filesystem_made_without_compression_stores_everything_raw() {
    let (_dev, fs) = fresh_with(Compression::None);
    let ino = fs.create(ROOT, b"t", 0o644, Caller::ROOT).unwrap().ino;
    let t = text(11, 1 << 20);
    fs.write(ino, 0, &t).unwrap();
    fs.sync().unwrap();
    assert_eq!(fs.getattr(ino).unwrap().blocks * 512, t.len() as u64);
    let c = fs.counters().records;
    assert_eq!((c.raw.records, c.lz4.records, c.zstd.records), (16, 0, 0));
    assert_eq!(fs.properties(ino, None).unwrap()[0].value, "none");
    same(read_all(&fs, ino), &t);
}

/// With the compute layer forced onto the GPU (lavapipe in CI), a batch of records goes
/// there: LZ4 blocks and checksums from the device, stored, counted per backend, and
/// read back exactly by the CPU's read path, after a remount too.
#[cfg(feature = "gpu")]
#[test]
fn large_batches_are_compressed_on_the_gpu_and_read_back() {
    use gpufs_compute::{Choice, LazyCompute};

    let (dev, fs) = fresh_with(Compression::Lz4);
    fs.set_compute(Arc::new(LazyCompute::new(Choice::Gpu)));
    let t = text(5, 1 << 20);
    let r = random(6, 128 << 10);
    let mut both = t.clone();
    both.extend_from_slice(&r);
    let ino = fs.create(ROOT, b"mixed", 0o644, Caller::ROOT).unwrap().ino;
    fs.write(ino, 0, &both).unwrap();
    fs.sync().unwrap();
    let c = fs.counters().records;
    assert_eq!(c.lz4.records, 16, "{c:?}");
    assert_eq!(c.skipped_by_sample, 2, "{c:?}");
    assert_eq!(c.gpu_records, 18, "{c:?}");
    assert_eq!(c.cpu_records, 0, "{c:?}");
    assert!(c.lz4.physical_bytes * 2 < c.lz4.logical_bytes, "{c:?}");
    same(read_all(&fs, ino), &both);
    let (_d, fs) = close_and_remount(&dev, fs);
    let ino = fs.lookup(ROOT, b"mixed").unwrap().ino;
    same(read_all(&fs, ino), &both);
}

/// With dedup on and the compute layer on the GPU, the hash stage runs as a BLAKE3 batch
/// there, and a second copy of the data finds the first by those hashes.
#[cfg(feature = "gpu")]
#[test]
fn dedup_hashes_computed_on_the_gpu_find_equal_records() {
    use gpufs_compute::{Choice, LazyCompute};

    let (_dev, fs) = fresh_with(Compression::Lz4);
    fs.set_compute(Arc::new(LazyCompute::new(Choice::Gpu)));
    let dir = fs.mkdir(ROOT, b"d", 0o755, Caller::ROOT).unwrap().ino;
    fs.set_property(dir, "dedup", "on", Caller::ROOT).unwrap();
    let t = text(9, 1 << 20);
    for name in [&b"one"[..], b"two"] {
        let ino = fs.create(dir, name, 0o644, Caller::ROOT).unwrap().ino;
        fs.write(ino, 0, &t).unwrap();
        fs.sync().unwrap();
        same(read_all(&fs, ino), &t);
    }
    let c = fs.counters();
    assert_eq!(c.dedup.hits, 16, "{:?}", c.dedup);
    // Shared records are not placed: only the first copy counts as written.
    assert_eq!(c.records.gpu_records, 16, "{:?}", c.records);
}
