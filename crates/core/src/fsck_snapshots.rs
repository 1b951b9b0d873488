//! fsck of snapshots, against a full walk: each snapshot's checkpoint reads whole and
//! its names are unique; every record its files point at lies in its bitmap; the stored
//! union is the union of the snapshots' bitmaps; a block is held for snapshots exactly
//! when the union marks it and no live record uses it.

use std::collections::HashSet;

use crate::fsck::FsckReport;
use crate::volume::{bit, Volume};

/// Checks the snapshots of `vol` against its records and theirs.
pub(crate) fn check(vol: &Volume, report: &mut FsckReport) {
    let table = vol.snapshot_records();
    let stored = vol.snapshot_union();
    let p = &mut report.problems;
    if table.is_empty() {
        if !stored.is_empty() || !vol.held_bits().is_empty() {
            p.push("no snapshot exists, yet blocks are kept for snapshots".into());
        }
        return;
    }
    let ds = vol.superblock().data_start;
    let total = vol.data_blocks();
    let mut union = vec![0u8; stored.len()];
    let mut names = HashSet::new();
    for rec in table {
        let name = String::from_utf8_lossy(rec.name()).into_owned();
        if !names.insert(name.clone()) {
            p.push(format!("two snapshots are named {name:?}"));
        }
        let img = match vol.snapshot_image(rec) {
            Ok(img) => img,
            Err(e) => {
                p.push(format!("snapshot {name:?} cannot be read: {e}"));
                continue;
            }
        };
        report.stats.snapshots += 1;
        if img.bitmap.len() != union.len() {
            p.push(format!(
                "snapshot {name:?}: its bitmap has the wrong length"
            ));
            continue;
        }
        let marked: u64 = img.bitmap.iter().map(|b| u64::from(b.count_ones())).sum();
        if marked != rec.referenced_blocks {
            p.push(format!(
                "snapshot {name:?}: {marked} blocks in its bitmap, {} recorded",
                rec.referenced_blocks
            ));
        }
        let outside = img
            .extents
            .iter()
            .flat_map(|e| e.ptr.runs())
            .filter(|&(b, n)| {
                (b..b + n).any(|x| x < ds || x - ds >= total || !bit(&img.bitmap, x - ds))
            })
            .count();
        if outside > 0 {
            p.push(format!(
                "snapshot {name:?}: {outside} records lie outside its bitmap"
            ));
        }
        for (u, b) in union.iter_mut().zip(&img.bitmap) {
            *u |= b;
        }
    }
    if union != stored {
        p.push("the stored union of the snapshots' bitmaps is not their union".into());
    }
    // The blocks the live filesystem's records use, from a walk of them.
    let mut head = vec![0u8; stored.len()];
    for (_, _, ptr) in vol.namespace().all_extents() {
        for (b, n) in ptr.runs() {
            for x in (b..b + n).filter(|x| *x >= ds && x - ds < total) {
                head[((x - ds) / 8) as usize] |= 1 << ((x - ds) % 8);
            }
        }
    }
    let held = vol.held_bits();
    let wrong = (0..total)
        .filter(|&b| bit(held, b) != (bit(stored, b) && !bit(&head, b)))
        .count();
    if wrong > 0 {
        p.push(format!(
            "{wrong} blocks are held for snapshots wrongly (held: the union marks them and \
             no live record uses them)"
        ));
    }
}
