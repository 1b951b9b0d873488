//! Snapshots (format version 5): a snapshot keeps a checkpoint (both copies: roots, page
//! tables, pages) and the data blocks its allocation bitmap marks. The table of snapshots
//! lives in the live checkpoint's blob.

use bytemuck::{Pod, Zeroable};

/// Longest snapshot name, in bytes.
pub const SNAPSHOT_NAME_MAX: usize = 255;

/// One snapshot.
///
/// ```text
/// off size field
///   0    8 id                 never reused within a filesystem (1, 2, ...)
///   8    8 generation         generation of the checkpoint it keeps
///  16    8 created_ns         ns since the epoch
///  24   16 roots              absolute blocks of that checkpoint's two roots
///  40    8 referenced_blocks  data blocks its bitmap marks
///  48    8 inodes             live inodes in it
///  56    4 name_len           1..=255
///  60    4 reserved           0
///  64  256 name               name_len bytes, the rest zero
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SnapshotRecord {
    pub id: u64,
    pub generation: u64,
    pub created_ns: u64,
    pub roots: [u64; 2],
    pub referenced_blocks: u64,
    pub inodes: u64,
    pub name_len: u32,
    pub reserved: u32,
    pub name: [u8; 256],
}
const _: () = assert!(std::mem::size_of::<SnapshotRecord>() == 320);

impl SnapshotRecord {
    /// The stored name (empty if its length is out of range: a decoder refuses those).
    pub fn name(&self) -> &[u8] {
        self.name.get(..self.name_len as usize).unwrap_or(&[])
    }

    /// Sets the name; false (and nothing set) when it is not a valid snapshot name.
    pub fn set_name(&mut self, name: &[u8]) -> bool {
        if !valid_snapshot_name(name) {
            return false;
        }
        self.name = [0; 256];
        self.name[..name.len()].copy_from_slice(name);
        self.name_len = name.len() as u32;
        true
    }
}

/// A snapshot name is 1..=255 bytes of printable ASCII or UTF-8 without `/`, NUL or
/// control characters, and neither `.` nor `..` (it is a directory name under
/// `.gpufs/snapshots/`).
pub fn valid_snapshot_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= SNAPSHOT_NAME_MAX
        && name != b"."
        && name != b".."
        && std::str::from_utf8(name).is_ok_and(|s| !s.chars().any(|c| c == '/' || c.is_control()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let mut r = SnapshotRecord::zeroed();
        assert!(r.set_name(b"daily-2026-12-07"));
        assert_eq!(r.name(), b"daily-2026-12-07");
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"a/b",
            b"a\0b",
            b"tab\there",
            &[0xff, 0xfe],
        ] {
            assert!(!valid_snapshot_name(bad), "{bad:?}");
        }
        assert!(valid_snapshot_name("été".as_bytes()));
        assert!(valid_snapshot_name(&[b'x'; 255]));
        assert!(!valid_snapshot_name(&[b'x'; 256]));
    }
}
