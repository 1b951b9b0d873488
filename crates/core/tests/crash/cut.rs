//! One cut point: set up the image, run the workload until the power goes, then recover
//! and check what the cut left.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gpufs_core::device::{Device, FaultDevice, PowerCut};
use gpufs_core::{Caller, Filesystem, FsError};

use crate::check::{fsck_image, tree_diff, trees_equal, walk};
use crate::devices::{format_and_mount, mount_image, CrashDevice, LogDevice};
use crate::model::{Blob, CNode, Model, Tree};
use crate::rng::{random_bytes, Rng};
use crate::workload::{run_op, shortened, workload, Op};
use crate::{BALLAST, DEVICE_BYTES, HEADROOM, JOURNAL_BLOCKS, ROOT};

/// Runs `ops` to the end on a device that never fails, following the model to skip ops
/// that no longer apply; ENOSPC is an allowed result. `after` runs after each op.
fn run_all(fs: &Filesystem, ops: &[Op], what: &str, mut after: impl FnMut()) -> Result<(), String> {
    let mut m = Model::default();
    for op in ops {
        if !m.valid(op) {
            continue;
        }
        match run_op(fs, op) {
            Ok(None) => m.apply(op),
            Ok(Some(n)) => m.apply(&shortened(op, n)),
            Err(FsError::NoSpace) => {}
            Err(e) => return Err(format!("{what}: {op:?} failed: {e}")),
        }
        after();
    }
    Ok(())
}

/// Ballast length. Two thirds of the workloads get the data area less their peak of
/// live bytes, [`HEADROOM`] and a margin. The others run short of space: a run without
/// ballast measures the workload's peak of used blocks, and the ballast leaves free only
/// that much, from 56 blocks less to 264 blocks more.
pub(crate) fn ballast_len(seed: u64, ops: &[Op]) -> Result<u64, String> {
    let data_area = DEVICE_BYTES as u64 - (2 + JOURNAL_BLOCKS) * 4096;
    if !seed.is_multiple_of(3) {
        let mut m = Model::default();
        let mut peak = 0u64;
        for op in ops {
            m.apply(op);
            peak = peak.max(m.contents.values().map(|c| c.data.len() as u64).sum());
        }
        return Ok(data_area.saturating_sub(peak + HEADROOM + (1 << 20)));
    }
    let dev = Arc::new(FaultDevice::new(vec![0u8; DEVICE_BYTES]));
    let fs = format_and_mount(dev);
    let free0 = fs.statfs().bfree;
    let mut peak = 0u64;
    run_all(&fs, ops, "measuring run", || {
        peak = peak.max(free0.saturating_sub(fs.statfs().bfree));
    })?;
    let slack = Rng::new(seed ^ 0x51AC).below(321);
    // The ballast's own records take room in every checkpoint: about 1/800 of its size
    // (and the checkpoint's reserve a few blocks more with it: each segment of a v7
    // checkpoint ends in its own page).
    let blocks = (free0 + 56).saturating_sub(peak + slack);
    Ok(blocks * 4096 * 799 / 800)
}

/// Formats, mounts, writes the ballast file and syncs.
pub(crate) fn setup(d: Arc<dyn Device>, ballast: &[u8]) -> Result<Filesystem, String> {
    let fs = format_and_mount(d);
    let ino = fs
        .create(ROOT, BALLAST.as_bytes(), 0o644, Caller::ROOT)
        .map_err(|e| format!("create ballast: {e}"))?
        .ino;
    for (i, chunk) in ballast.chunks(1 << 20).enumerate() {
        let n = fs
            .write(ino, (i as u64) << 20, chunk)
            .map_err(|e| format!("write ballast: {e}"))?;
        if n as usize != chunk.len() {
            return Err(format!(
                "the ballast does not fit: short write at chunk {i}"
            ));
        }
    }
    fs.release(ino).map_err(|e| e.to_string())?;
    fs.sync().map_err(|e| format!("sync ballast: {e}"))?;
    Ok(fs)
}

#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) died: bool,
    pub(crate) matched_op: usize,
    pub(crate) ops_run: usize,
    pub(crate) mid_op_commits: u64,
    pub(crate) enospc: u64,
    pub(crate) skipped: u64,
    pub(crate) replayed: bool,
}

/// What a dry run of the workload wrote: how many writes, which of them went to the
/// superblocks or the journal (checkpoints write their blob and root just before the
/// superblocks), and how many flushes.
struct DryRun {
    writes: u64,
    meta: Vec<u64>,
    flushes: u64,
}

/// The states a cut may leave: one snapshot of the model after each op, the index of
/// the last one made durable by an fsync, and the state of an op cut short by the
/// device dying (it may have become durable in full).
struct States {
    snaps: Vec<Tree>,
    last_sync: usize,
    extra: Option<Tree>,
}

impl States {
    /// The states a recovered image may hold, with their snapshot index.
    fn candidates(&self) -> impl Iterator<Item = (usize, &Tree)> {
        self.snaps
            .iter()
            .enumerate()
            .skip(self.last_sync)
            .chain(self.extra.iter().map(|t| (usize::MAX, t)))
    }

    /// How the recovered tree `got` differs from the states it should match.
    fn explain(&self, got: &Tree, ops: &[Op], out: &Outcome) -> String {
        let mut s = format!(
            "ran {} ops, last fsync after op {}, {} snapshots; device died: {}\n",
            out.ops_run,
            self.last_sync,
            self.snaps.len(),
            out.died
        );
        let _ = writeln!(s, "  diff against the last fsync'd state:");
        s += &tree_diff(got, &self.snaps[self.last_sync]);
        let _ = writeln!(s, "  diff against the last state:");
        s += &tree_diff(got, self.snaps.last().unwrap_or(&self.snaps[0]));
        let lo = out.ops_run.saturating_sub(12);
        for (i, op) in ops.iter().enumerate().take(out.ops_run + 1).skip(lo) {
            let _ = writeln!(s, "  op {}: {op:?}", i + 1);
        }
        s
    }
}

/// One cut point; `Err` describes what went wrong.
pub(crate) fn run_cut(seed: u64) -> Result<Outcome, String> {
    let ops = workload(seed);
    let mut rng = Rng::new(seed ^ 0xC0FF_EE00);
    let ballast = Blob::new(random_bytes(seed ^ 0x0BA1_1A57, ballast_len(seed, &ops)?));
    let dry = dry_run(&ballast, &ops)?;

    let dev = Arc::new(CrashDevice {
        inner: FaultDevice::new(vec![0u8; DEVICE_BYTES]),
        flushes: AtomicU64::new(0),
        flush_cut: AtomicU64::new(u64::MAX),
        seed,
        image: Mutex::new(None),
    });
    let fs = setup(dev.clone(), &ballast.data)?;
    arm_cut(&dev, &mut rng, &dry, seed);
    let mut out = Outcome::default();
    let states = run_until_cut(&fs, &dev, &ops, &ballast, &mut out)?;
    out.died = dev.dead();
    let flush_image = dev.image.lock().unwrap().take();
    let img = match (flush_image, dev.inner.cut_image()) {
        (Some(img), _) | (None, Some(img)) => img,
        (None, None) => dev
            .inner
            .power_cut(&mut PowerCut::new(seed.wrapping_add(0x1234_5678))),
    };
    drop(fs);
    drop(dev);

    // The cut image is consistent as it is (fsck replays the journal in memory).
    fsck_image(img.clone(), "of the cut image")?;

    // (b) It mounts, and holds one of the states at or after the last fsync.
    let (dev2, fs2) = mount_image(img)?;
    out.replayed = fs2.notes().iter().any(|n| n.contains("replayed"));
    let got = walk(&fs2).map_err(|e| format!("walk after recovery: {e}"))?;
    let Some((k, want)) = states
        .candidates()
        .find(|(_, t)| trees_equal(&got, t, false))
    else {
        return Err(format!(
            "recovered tree matches no state\n{}",
            states.explain(&got, &ops, &out)
        ));
    };
    if !trees_equal(&got, want, true) {
        return Err(format!(
            "recovered tree matches state {k} by checksum only\n{}",
            tree_diff(&got, want)
        ));
    }
    out.matched_op = k;

    // (c) A clean unmount and mount keep exactly that state.
    fs2.close()
        .map_err(|e| format!("close after recovery: {e}"))?;
    drop(fs2);
    let img2 = dev2.power_cut(&mut PowerCut::new(seed.wrapping_add(7)));
    drop(dev2);
    let (dev3, fs3) = remount_unchanged(img2, k, want)?;
    check_writes_after_recovery(&fs3, seed, want)?;
    drop(fs3);
    fsck_image(
        dev3.power_cut(&mut PowerCut::new(seed.wrapping_add(9))),
        "after writes on the recovered image",
    )?;
    Ok(out)
}

/// Runs the workload on a device that logs its writes.
fn dry_run(ballast: &Blob, ops: &[Op]) -> Result<DryRun, String> {
    let dev = Arc::new(LogDevice {
        inner: FaultDevice::new(vec![0u8; DEVICE_BYTES]),
        offsets: Mutex::new(Vec::new()),
        flushes: AtomicU64::new(0),
    });
    let fs = setup(dev.clone(), &ballast.data)?;
    let base = dev.offsets.lock().unwrap().len();
    let flush_base = dev.flushes.load(Ordering::Relaxed);
    run_all(&fs, ops, "dry run", || {})?;
    let offsets = dev.offsets.lock().unwrap();
    let meta_end = (2 + JOURNAL_BLOCKS) * 4096;
    let meta: Vec<u64> = (base..offsets.len())
        .filter(|i| offsets[*i] < meta_end)
        .map(|i| (i - base) as u64)
        .collect();
    Ok(DryRun {
        writes: (offsets.len() - base) as u64,
        meta,
        flushes: dev.flushes.load(Ordering::Relaxed) - flush_base,
    })
}

/// Arms the cut: a third of the cuts come during a flush, the rest just before a
/// write: half of those at a write index drawn uniformly, half near a journal or
/// superblock write.
fn arm_cut(dev: &CrashDevice, rng: &mut Rng, dry: &DryRun, seed: u64) {
    if rng.below(3) == 0 {
        let f = rng.below(dry.flushes + 1);
        dev.flush_cut
            .store(dev.flushes.load(Ordering::Relaxed) + f, Ordering::Relaxed);
    } else {
        let total = dry.writes;
        let w = match rng.pick(&dry.meta) {
            Some(m) if rng.below(2) == 0 => (m + 1).saturating_sub(rng.below(5)),
            _ => rng.below(total + total / 8 + 1),
        };
        dev.inner
            .arm_cut(dev.inner.writes() + w, PowerCut::new(seed));
    }
}

/// Runs `ops` until the device dies (or to the end), following each with the model.
fn run_until_cut(
    fs: &Filesystem,
    dev: &CrashDevice,
    ops: &[Op],
    ballast: &Blob,
    out: &mut Outcome,
) -> Result<States, String> {
    let mut model = Model {
        ballast: Some(ballast.clone()),
        ..Default::default()
    };
    let mut st = States {
        snaps: vec![model.canon()],
        last_sync: 0,
        extra: None,
    };
    let mut commits = fs.counters().commits + fs.counters().checkpoints;
    for op in ops {
        if !model.valid(op) {
            out.skipped += 1;
            continue;
        }
        let result = run_op(fs, op);
        let alive = !dev.dead();
        match result {
            Ok(None) => {
                model.apply(op);
                st.snaps.push(model.canon());
                if op.syncs() {
                    st.last_sync = st.snaps.len() - 1;
                }
            }
            Ok(Some(n)) if alive => {
                // Out of space part way: a short write, as write(2) makes.
                model.apply(&shortened(op, n));
                st.snaps.push(model.canon());
                out.enospc += 1;
            }
            Err(FsError::NoSpace) if alive => {
                st.snaps.push(model.canon());
                out.enospc += 1;
            }
            Err(e) if alive => {
                return Err(format!("{op:?} failed on a live device: {e}"));
            }
            Ok(Some(n)) => {
                // A short write: the device failed part way. The write may count in
                // full (its records may all have landed) or not at all.
                st.extra = Some(model.after(op));
                st.snaps.push(model.after(&shortened(op, n)));
                break;
            }
            Err(_) => {
                // The op may have become durable in full before the failure.
                st.extra = Some(model.after(op));
                break;
            }
        }
        out.ops_run += 1;
        let c = fs.counters().commits + fs.counters().checkpoints;
        if c != commits && !op.syncs() {
            out.mid_op_commits += 1;
        }
        commits = c;
    }
    Ok(st)
}

/// Checks and mounts `img`, which a clean close left: no notes, and state `k`
/// (`want`) exactly.
fn remount_unchanged(
    img: Vec<u8>,
    k: usize,
    want: &Tree,
) -> Result<(Arc<FaultDevice>, Filesystem), String> {
    fsck_image(img.clone(), "after recovery and close")?;
    let (dev, fs) = mount_image(img)?;
    if !fs.notes().is_empty() {
        return Err(format!("mount after a clean close: notes {:?}", fs.notes()));
    }
    let again = walk(&fs).map_err(|e| format!("walk after remount: {e}"))?;
    if !trees_equal(&again, want, true) {
        return Err(format!(
            "state {k} changed across close and remount\n{}",
            tree_diff(&again, want)
        ));
    }
    Ok((dev, fs))
}

/// The recovered allocator is sane: new data never lands on live blocks. (The device
/// may be nearly full: a short write or ENOSPC is fine, a wrong byte is not.)
fn check_writes_after_recovery(fs: &Filesystem, seed: u64, want: &Tree) -> Result<(), String> {
    let post = random_bytes(seed ^ 0xABCD, 300 << 10);
    let written = match fs.create(ROOT, b"post", 0o644, Caller::ROOT) {
        Ok(a) => {
            let n = match fs.write(a.ino, 0, &post) {
                Ok(n) => n as usize,
                Err(FsError::NoSpace) => 0,
                Err(e) => return Err(format!("write after recovery: {e}")),
            };
            fs.release(a.ino).map_err(|e| e.to_string())?;
            Some(n)
        }
        Err(FsError::NoSpace) => None,
        Err(e) => return Err(format!("create after recovery: {e}")),
    };
    fs.sync().map_err(|e| format!("sync after recovery: {e}"))?;
    let mut after = walk(fs).map_err(|e| format!("walk after new writes: {e}"))?;
    match (after.remove("post"), written) {
        (None, None) => {}
        (Some(CNode::File { data, .. }), Some(n)) if data[..] == post[..n] => {}
        _ => return Err("the file written after recovery reads back wrong".into()),
    }
    if !trees_equal(&after, want, true) {
        return Err(format!(
            "writing after recovery changed old files\n{}",
            tree_diff(&after, want)
        ));
    }
    Ok(())
}
