//! Opening an image: pick the superblock, load the checkpoint, replay the journal,
//! reclaim orphans.

use std::sync::Arc;

use gpufs_format::signature;
use gpufs_format::superblock::{InUse, SUPERBLOCK_SLOTS};
use gpufs_format::{FormatError, Superblock, BLOCK_SIZE, FORMAT_VERSION};

use super::checkpoint_load::load_checkpoint;
use super::snapshots::{runs_of_bits, Snapshots};
use super::Volume;
use crate::alloc::Allocator;
use crate::crypt::SealKeys;
use crate::device::Device;
use crate::error::{FsError, FsResult};
use crate::journal::{replay, Journal};
use crate::units::Ino;

#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    pub read_only: bool,
    /// Bound of the write-back record cache in bytes (`gpufs mount --cache-size`); 0
    /// writes every record through the pipeline at once.
    pub write_cache_bytes: usize,
    /// When a read moves a file's access time (`-o noatime|relatime|strictatime`).
    pub atime: AtimeMode,
    /// Who opens the image (machine id, pid, mount point): a read-write open marks the
    /// superblock with it until a clean close, and any open with a holder refuses an
    /// image another machine's marker says is in use. `None` (a library user without
    /// an identity) neither checks nor marks.
    pub holder: Option<InUse>,
    /// Open even when another machine's marker says the image is in use (`-o force`:
    /// for a machine known to be down).
    pub force: bool,
}

/// When reads update access times, as the mount options of Linux filesystems say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AtimeMode {
    /// Never.
    NoAtime,
    /// When the access time is not newer than the modification or change time, or is
    /// a day old (the default).
    #[default]
    Relatime,
    /// At every read.
    StrictAtime,
}

impl OpenOptions {
    /// The write-back cache's bound when none is given.
    pub const DEFAULT_WRITE_CACHE_BYTES: usize = 256 << 20;
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            read_only: false,
            write_cache_bytes: Self::DEFAULT_WRITE_CACHE_BYTES,
            atime: AtimeMode::Relatime,
            holder: None,
            force: false,
        }
    }
}

/// Reads both superblock slots and picks the valid one with the highest generation.
/// Returns it and notes for the user when a slot is damaged.
pub fn pick_superblock(dev: &dyn Device) -> FsResult<(Superblock, Vec<String>)> {
    let len = dev.len()?;
    if len < 2 * BLOCK_SIZE as u64 {
        return Err(FsError::BadImage(format!(
            "not a gpufs image: only {len} bytes long"
        )));
    }
    let mut decoded = Vec::new();
    for slot in SUPERBLOCK_SLOTS {
        let mut b = vec![0u8; BLOCK_SIZE];
        dev.read_at(&mut b, slot * BLOCK_SIZE as u64)?;
        decoded.push((b.iter().all(|x| *x == 0), Superblock::decode(&b)));
    }
    let best = decoded
        .iter()
        .enumerate()
        .filter_map(|(i, (_, r))| r.as_ref().ok().map(|sb| (i, *sb)))
        .max_by_key(|(_, sb)| sb.generation);
    let Some((slot, sb)) = best.or_else(|| far_superblock(dev, len).map(|sb| (2, sb))) else {
        return Err(no_superblock(dev, len, &decoded));
    };
    let mut notes = Vec::new();
    if slot == 2 {
        notes.push(format!(
            "both superblock slots at the start are damaged; using the copy in the image's \
             last block (generation {})",
            sb.generation
        ));
        return Ok((sb, notes));
    }
    for (i, (zero, r)) in decoded.iter().enumerate() {
        if let Err(e) = r {
            if !*zero || i != slot {
                notes.push(format!(
                    "superblock slot {i} is damaged ({e}); using slot {slot} (generation {})",
                    sb.generation
                ));
            }
        }
    }
    if sb.far_slot != 0 && sb.far_slot < len / BLOCK_SIZE as u64 {
        let mut b = vec![0u8; BLOCK_SIZE];
        dev.read_at(&mut b, sb.far_slot * BLOCK_SIZE as u64)?;
        match Superblock::decode(&b) {
            Ok(far) if far.generation == sb.generation => {}
            Ok(far) => notes.push(format!(
                "the far superblock slot (block {}) holds generation {}, not {}",
                sb.far_slot, far.generation, sb.generation
            )),
            Err(e) => notes.push(format!(
                "the far superblock slot (block {}) is damaged ({e})",
                sb.far_slot
            )),
        }
    }
    let need = sb.total_blocks.saturating_mul(BLOCK_SIZE as u64);
    if len < need {
        return Err(FsError::BadImage(format!(
            "gpufs image is truncated: its superblock says {need} bytes, the device has {len}"
        )));
    }
    Ok((sb, notes))
}

/// The superblock copy in the last block of the device, when it is one that names that
/// block as its far slot (read only when both slots at the start fail).
fn far_superblock(dev: &dyn Device, len: u64) -> Option<Superblock> {
    let last = (len / BLOCK_SIZE as u64).checked_sub(1)?;
    let mut b = vec![0u8; BLOCK_SIZE];
    dev.read_at(&mut b, last * BLOCK_SIZE as u64).ok()?;
    Superblock::decode(&b)
        .ok()
        .filter(|sb| sb.far_slot == last && sb.far_slot + 1 == sb.total_blocks)
}

fn no_superblock(
    dev: &dyn Device,
    len: u64,
    decoded: &[(bool, Result<Superblock, FormatError>)],
) -> FsError {
    for (_, r) in decoded {
        if let Err(e @ FormatError::UnsupportedVersion { .. }) = r {
            return FsError::BadImage(format!("cannot mount: {e}"));
        }
    }
    let mut head = vec![0u8; (signature::PROBE_BYTES as u64).min(len) as usize];
    if dev.read_at(&mut head, 0).is_err() {
        return FsError::BadImage("not a gpufs image: cannot read its first blocks".into());
    }
    match signature::detect(&head) {
        Some("gpufs") => {
            let why: Vec<String> = decoded
                .iter()
                .enumerate()
                .filter_map(|(i, (_, r))| r.as_ref().err().map(|e| format!("slot {i}: {e}")))
                .collect();
            FsError::BadImage(format!(
                "every gpufs superblock copy is damaged ({}); run gpufs fsck",
                why.join("; ")
            ))
        }
        Some(other) => FsError::BadImage(format!(
            "not a gpufs image: it holds another filesystem ({other})"
        )),
        None if head.iter().all(|b| *b == 0) => FsError::BadImage(
            "not a gpufs image: its first blocks are all zero (make one with gpufs mkfs)".into(),
        ),
        None => FsError::BadImage("not a gpufs image: no gpufs superblock found".into()),
    }
}

impl Volume {
    /// Opens the filesystem on `dev`, recovering from a crash if needed. `keys` are an
    /// encrypted image's keys ([`crate::crypt::unlock`]), required for an encrypted
    /// image and refused for another; nothing is written before they opened the
    /// checkpoint.
    pub fn open_with_keys(
        dev: Arc<dyn Device>,
        opts: OpenOptions,
        keys: Option<Arc<SealKeys>>,
    ) -> FsResult<Volume> {
        let (sb, mut notes) = pick_superblock(dev.as_ref())?;
        match (sb.is_encrypted(), &keys) {
            (true, None) => {
                return Err(FsError::Key(
                    "the image is encrypted: give its key (--key-file)".into(),
                ))
            }
            (false, Some(_)) => {
                return Err(FsError::Key(
                    "the image is not encrypted: it takes no key".into(),
                ))
            }
            _ => {}
        }
        let slot_damaged = !notes.is_empty();
        if let Some(note) = check_holder(&sb.in_use, &opts)? {
            notes.push(note);
        }
        let ckpt = load_checkpoint(dev.as_ref(), &sb, keys.as_deref())?;
        let mut alloc = Allocator::from_bitmap(sb.total_blocks - sb.data_start, &ckpt.bitmap)?;
        let mut ckpt_runs = Vec::new();
        for &(s, n) in &ckpt.runs {
            let rel = s - sb.data_start;
            alloc.claim(rel, n)?;
            ckpt_runs.push((rel, n));
        }
        let snaps = Snapshots::of_image(&ckpt.snapshots, &ckpt.bitmap);
        for (s, n) in runs_of_bits(&snaps.held, alloc.total()) {
            alloc.claim(s, n)?;
        }
        if sb.journal_copy_start != 0 {
            alloc.claim(sb.journal_copy_start - sb.data_start, sb.journal_blocks)?;
        }
        if sb.far_slot != 0 {
            alloc.claim(sb.far_slot - sb.data_start, 1)?;
        }
        for d in &ckpt.damaged {
            notes.push(format!("{d}; read the other copy"));
        }
        let rep = replay(dev.as_ref(), &sb, keys.as_deref())?;
        if !rep.repaired.is_empty() {
            notes.push(format!(
                "journal blocks {:?} are damaged; read them from the journal's second copy",
                rep.repaired
            ));
        }
        let copy_damaged = !ckpt.damaged.is_empty() || !rep.repaired.is_empty();
        let mut journal = Journal::new(&sb, &rep);
        journal.set_keys(keys.clone());
        let old_version = sb.version;
        // An older image this build reads is a valid image of this version: the first
        // superblock written (before the first journal transaction that may refer to a
        // record only this version writes) says so.
        let sb = if opts.read_only {
            sb
        } else {
            Superblock {
                version: FORMAT_VERSION,
                ..sb
            }
        };
        let mut vol = Volume::assemble(dev, sb, ckpt.ns, alloc, journal, opts.read_only);
        vol.keys = keys;
        vol.write_cache_bytes = if opts.read_only {
            0
        } else {
            opts.write_cache_bytes
        };
        vol.ckpt_pages = ckpt.pages;
        vol.segment_pages = ckpt.segment_pages;
        vol.segment_pages.note_held(&vol.ckpt_pages);
        vol.snaps = snaps;
        notes.extend(vol.load_snapshot_runs());
        for (s, n) in vol.snaps.runs_beside(&ckpt_runs) {
            vol.alloc.claim(s, n)?;
        }
        vol.ckpt_runs = ckpt_runs;
        for tx in &rep.transactions {
            for op in tx {
                vol.apply_replayed(op)?;
            }
        }
        vol.ns.rebuild_free_lists();
        vol.dedup = super::dedup::DedupTable::of(&vol.ns);
        vol.counters.replayed_transactions = rep.transactions.len() as u64;
        if !rep.transactions.is_empty() {
            notes.push(format!(
                "replayed {} journal transaction(s) after an unclean shutdown",
                rep.transactions.len()
            ));
        }
        if !vol.read_only {
            let orphans: Vec<Ino> = vol
                .ns
                .live_inode_iter()
                .filter(|(_, r)| r.nlink == 0)
                .map(|(i, _)| Ino::new(i))
                .collect();
            for &ino in &orphans {
                vol.free_inode(ino)?;
            }
            if !orphans.is_empty() {
                notes.push(format!("reclaimed {} orphaned inode(s)", orphans.len()));
            }
            // Unless the last session unmounted cleanly, a checkpoint now puts every
            // journal block of this generation behind a new one (and rewrites a damaged
            // superblock slot). It is needed even when replay found nothing at the head: a
            // crash can leave later blocks of a transaction whose first block never landed
            // (its second run, after the ring wrapped). This session would write the very
            // sequence numbers those blocks carry, and once its commits reach them, the
            // next replay would run on into them. A clean superblock guarantees no block
            // of its generation exists; the first commit marks it dirty before writing one.
            let clean = vol.clean_on_disk && !rep.saw_blocks && orphans.is_empty();
            vol.ensure_journal_copy()?;
            vol.ensure_far_slot()?;
            // A damaged copy of metadata is written anew, whole, by this checkpoint.
            if !clean || slot_damaged || copy_damaged {
                vol.checkpoint()?;
            }
        }
        if old_version != FORMAT_VERSION {
            notes.push(if vol.read_only {
                format!("format version {old_version} image, opened read-only as it is")
            } else {
                format!(
                    "format version {old_version} image: upgraded to version {FORMAT_VERSION} by \
                     its first write (older builds will no longer open it)"
                )
            });
        }
        if let (false, Some(holder)) = (vol.read_only, opts.holder) {
            vol.mark_in_use(holder)?;
        }
        vol.notes = notes;
        Ok(vol)
    }
}

/// Fails with [`FsError::InUse`] when the image on `dev` holds a gpufs filesystem that
/// another machine than `me`'s marks as mounted there (what `mkfs --force` must not
/// overwrite); an image without a readable superblock is nobody's.
pub fn refuse_if_held_elsewhere(dev: &dyn Device, me: InUse) -> FsResult<()> {
    let Ok((sb, _)) = pick_superblock(dev) else {
        return Ok(());
    };
    let opts = OpenOptions {
        holder: Some(me),
        ..OpenOptions::default()
    };
    check_holder(&sb.in_use, &opts).map(|_| ())
}

/// Refuses an image another machine's marker says is in use (unless `opts.force`);
/// a note when a marker is taken over: this machine's own was left by a mount that
/// ended without unmounting (the image's OS lock, held now, rules out a live one).
fn check_holder(marker: &InUse, opts: &OpenOptions) -> FsResult<Option<String>> {
    let Some(me) = opts.holder.filter(|_| marker.is_held()) else {
        return Ok(None);
    };
    let who = format!(
        "pid {} mounted at {} since {}",
        marker.pid,
        marker.mount_point(),
        crate::time::format_ns(marker.since_ns)
    );
    if marker.host == me.host {
        return Ok(Some(format!(
            "the last mount ({who}) ended without unmounting"
        )));
    }
    let host = marker
        .host
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    if opts.force {
        return Ok(Some(format!(
            "took the image over from machine {host} ({who}): -o force"
        )));
    }
    Err(FsError::InUse(format!(
        "in use by another machine ({host}, {who}); one writer per image: unmount it \
         there, or if that machine is down, mount with -o force"
    )))
}
