//! Recognizes the signatures of gpufs and of other common filesystems and containers at
//! the start of a device, so `mkfs` never silently overwrites one and `mount` can say
//! what it found instead of "bad magic".

use crate::superblock::SUPERBLOCK_MAGIC;

/// How many leading bytes [`detect`] looks at.
pub const PROBE_BYTES: usize = 65_600 + 8;

/// Names the filesystem or container whose signature `head` (the first bytes of a device)
/// carries, or `None`. `head` may be shorter than [`PROBE_BYTES`]; missing bytes never
/// match.
pub fn detect(head: &[u8]) -> Option<&'static str> {
    let at = |off: usize, magic: &[u8]| head.get(off..off + magic.len()) == Some(magic);
    if at(0, &SUPERBLOCK_MAGIC) || at(4096, &SUPERBLOCK_MAGIC) {
        return Some("gpufs");
    }
    const CHECKS: &[(usize, &[u8], &str)] = &[
        (1080, &[0x53, 0xEF], "ext2/ext3/ext4"),
        (0, b"XFSB", "xfs"),
        (65_600, b"_BHRfS_M", "btrfs"),
        (0, b"LUKS\xba\xbe", "LUKS"),
        (4086, b"SWAPSPACE2", "Linux swap"),
        (4086, b"SWAP-SPACE", "Linux swap"),
        (0, b"hsqs", "squashfs"),
        (32_769, b"CD001", "ISO 9660"),
        (3, b"NTFS    ", "NTFS"),
        (3, b"EXFAT   ", "exFAT"),
        (82, b"FAT32   ", "FAT32"),
        (54, b"FAT16   ", "FAT16"),
        (54, b"FAT12   ", "FAT12"),
        (1024, b"H+", "HFS+"),
        (32, b"NXSB", "APFS"),
        (0, b"QFI\xfb", "qcow2 image"),
        (512, b"EFI PART", "GPT partition table"),
    ];
    for (off, magic, name) in CHECKS {
        if at(*off, magic) {
            // The ext magic is two bytes: also require a plausible block-size log.
            if *name == "ext2/ext3/ext4" && head.get(1048).is_some_and(|v| *v > 6) {
                continue;
            }
            return Some(name);
        }
    }
    if head.get(510..512) == Some(&[0x55, 0xAA]) {
        return Some("MBR/boot sector");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_known_signatures_and_ignores_zeroes() {
        let mut head = vec![0u8; PROBE_BYTES];
        assert_eq!(detect(&head), None);
        head[1080] = 0x53;
        head[1081] = 0xEF;
        assert_eq!(detect(&head), Some("ext2/ext3/ext4"));
        let mut head = vec![0u8; PROBE_BYTES];
        head[65_600..65_608].copy_from_slice(b"_BHRfS_M");
        assert_eq!(detect(&head), Some("btrfs"));
        let mut head = vec![0u8; 8192];
        head[..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        assert_eq!(detect(&head), Some("gpufs"));
        assert_eq!(detect(&[]), None);
    }
}
