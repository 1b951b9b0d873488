//! Properties: per-directory (and per-file) settings stored in an inode's `flags` word and
//! inherited by what is created below, with the filesystem's defaults in the superblock.
//!
//! ```text
//! InodeRecord.flags (format v2; all zero in v1)
//! bits  0..8   compression algorithm: 0 = the filesystem default, 1 none, 2 lz4, 3 zstd
//! bits  8..16  zstd level (1..=19) when the algorithm is zstd, else 0
//! bits 16..18  copies of each data record: 0 = the filesystem default (1), 1 or 2
//! bits 18..20  dedup (v3): 0 = the filesystem default, 1 off, 2 on
//! bits 20..32  zero (reserved for encryption)
//!
//! Superblock.compression (format v2): the same low 16 bits; algorithm 0 means none (a
//! version 1 image, which stored nothing compressed). Superblock.flags bit 1 (v3): dedup
//! on by default.
//! ```

use std::fmt;

/// How new records are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Lz4,
    Zstd { level: u8 },
}

/// A property name or value that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("unknown property {0:?} (known: compression, copies, dedup)")]
    UnknownName(String),
    #[error("bad value {value:?} for {name}: {why}")]
    BadValue {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("stored property bits {0:#x} are not a known value")]
    BadBits(u32),
}

const ALGO_MASK: u32 = 0xff;
const LEVEL_SHIFT: u32 = 8;
const LEVEL_MASK: u32 = 0xff;
/// The bits of `InodeRecord.flags` the compression property owns.
pub const COMPRESSION_BITS: u32 = 0xffff;
/// The bits of `InodeRecord.flags` the copies property owns.
pub const COPIES_BITS: u32 = 0b11 << COPIES_SHIFT;
const COPIES_SHIFT: u32 = 16;
/// The bits of `InodeRecord.flags` the dedup property owns.
pub const DEDUP_BITS: u32 = 0b11 << DEDUP_SHIFT;
const DEDUP_SHIFT: u32 = 18;
/// `chattr +i` (v4): the inode may not be changed, removed, renamed or linked, nor may
/// entries be added to or removed from it (a directory). Not inherited.
pub const IMMUTABLE_FLAG: u32 = 1 << 20;
/// `chattr +a` (v4): data may only be appended; the inode may not be removed, renamed,
/// truncated or have its attributes set, nor entries removed from it (a directory).
/// Not inherited.
pub const APPEND_FLAG: u32 = 1 << 21;
/// Bits of `InodeRecord.flags` a new inode takes from its parent directory.
pub const INHERITED_FLAGS: u32 = COMPRESSION_BITS | COPIES_BITS | DEDUP_BITS;

/// Whether records written are deduplicated: `None` follows the filesystem's default.
pub fn decode_dedup(flags: u32) -> Result<Option<bool>, PropertyError> {
    match (flags & DEDUP_BITS) >> DEDUP_SHIFT {
        0 => Ok(None),
        1 => Ok(Some(false)),
        2 => Ok(Some(true)),
        _ => Err(PropertyError::BadBits(flags & DEDUP_BITS)),
    }
}

/// `flags` with the dedup property set (`None`: the default).
pub fn encode_dedup(flags: u32, dedup: Option<bool>) -> u32 {
    let bits = match dedup {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    (flags & !DEDUP_BITS) | (bits << DEDUP_SHIFT)
}

/// Parses a `dedup` value: on or off.
pub fn parse_dedup(value: &str) -> Result<bool, PropertyError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(PropertyError::BadValue {
            name: "dedup",
            value: value.to_string(),
            why: "dedup is on or off",
        }),
    }
}

/// How many copies of each data record are stored: 1 or 2.
pub fn decode_copies(flags: u32) -> Result<Option<u8>, PropertyError> {
    match (flags & COPIES_BITS) >> COPIES_SHIFT {
        0 => Ok(None),
        n @ (1 | 2) => Ok(Some(n as u8)),
        _ => Err(PropertyError::BadBits(flags & COPIES_BITS)),
    }
}

/// `flags` with the copies property set (`None`: the default).
pub fn encode_copies(flags: u32, copies: Option<u8>) -> u32 {
    (flags & !COPIES_BITS) | (u32::from(copies.unwrap_or(0).min(2)) << COPIES_SHIFT)
}

/// Parses a `copies` value: 1 or 2.
pub fn parse_copies(value: &str) -> Result<u8, PropertyError> {
    match value {
        "1" => Ok(1),
        "2" => Ok(2),
        _ => Err(PropertyError::BadValue {
            name: "copies",
            value: value.to_string(),
            why: "copies is 1 or 2",
        }),
    }
}

impl Compression {
    /// zstd's level when none is given (as btrfs `compress=zstd`).
    pub const ZSTD_DEFAULT_LEVEL: u8 = 3;
    /// Highest zstd level accepted (the ultra levels above need large windows).
    pub const ZSTD_MAX_LEVEL: u8 = 19;
    /// What `mkfs` uses without `--compression`.
    pub const MKFS_DEFAULT: Compression = Compression::Lz4;

    /// The stored form (never 0: 0 means "inherit" in an inode).
    pub fn encode(self) -> u32 {
        match self {
            Compression::None => 1,
            Compression::Lz4 => 2,
            Compression::Zstd { level } => 3 | (u32::from(level) << LEVEL_SHIFT),
        }
    }

    /// The setting stored as `bits` (the low 16 bits of a flags word); `None` for 0,
    /// the filesystem default.
    pub fn decode(bits: u32) -> Result<Option<Compression>, PropertyError> {
        let bits = bits & COMPRESSION_BITS;
        let level = (bits >> LEVEL_SHIFT) & LEVEL_MASK;
        let c = match bits & ALGO_MASK {
            0 if level == 0 => return Ok(None),
            1 if level == 0 => Compression::None,
            2 if level == 0 => Compression::Lz4,
            3 if (1..=u32::from(Self::ZSTD_MAX_LEVEL)).contains(&level) => {
                Compression::Zstd { level: level as u8 }
            }
            _ => return Err(PropertyError::BadBits(bits)),
        };
        Ok(Some(c))
    }

    /// Parses `none`, `lz4`, `zstd` or `zstd:N` (N in 1..=19).
    pub fn parse(value: &str) -> Result<Compression, PropertyError> {
        let bad = |why| PropertyError::BadValue {
            name: "compression",
            value: value.to_string(),
            why,
        };
        match value {
            "none" | "off" => Ok(Compression::None),
            "lz4" | "on" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd {
                level: Self::ZSTD_DEFAULT_LEVEL,
            }),
            _ => {
                let level = value
                    .strip_prefix("zstd:")
                    .ok_or_else(|| bad("expected none, lz4, zstd or zstd:LEVEL"))?;
                let level: u8 = level
                    .parse()
                    .map_err(|_| bad("the zstd level is a number from 1 to 19"))?;
                if !(1..=Self::ZSTD_MAX_LEVEL).contains(&level) {
                    return Err(bad("the zstd level is a number from 1 to 19"));
                }
                Ok(Compression::Zstd { level })
            }
        }
    }

    /// The name of the algorithm alone (`zstd` for every level).
    pub fn algorithm(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd { .. } => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Zstd { level } => write!(f, "zstd:{level}"),
            other => f.write_str(other.algorithm()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_text_and_bits() {
        for text in ["none", "lz4", "zstd:1", "zstd:3", "zstd:19"] {
            let c = Compression::parse(text).unwrap();
            assert_eq!(c.to_string(), text);
            assert_eq!(Compression::decode(c.encode()).unwrap(), Some(c));
            assert_ne!(c.encode(), 0);
        }
        assert_eq!(
            Compression::parse("zstd").unwrap(),
            Compression::Zstd { level: 3 }
        );
        assert_eq!(Compression::decode(0).unwrap(), None);
    }

    #[test]
    fn copies_round_trip_and_bad_ones_are_refused() {
        for c in [None, Some(1), Some(2)] {
            let f = encode_copies(0x0203, c);
            assert_eq!(decode_copies(f).unwrap(), c);
            assert_eq!(f & COMPRESSION_BITS, 0x0203);
        }
        assert!(decode_copies(3 << 16).is_err());
        assert_eq!(parse_copies("2").unwrap(), 2);
        for v in ["0", "3", "", "two"] {
            assert!(parse_copies(v).is_err());
        }
    }

    #[test]
    fn bad_values_and_bits_are_refused() {
        for text in ["", "gzip", "zstd:0", "zstd:20", "zstd:x", "lz4:1", "ZSTD"] {
            assert!(Compression::parse(text).is_err(), "{text}");
        }
        for bits in [4, 0x100, 0x102, 3, 0x1403, 0xff] {
            assert!(Compression::decode(bits).is_err(), "{bits:#x}");
        }
    }
}
