//! Properties of a directory or file (`gpufs property`): settings new records and new
//! inodes below it follow: `compression` (none, lz4, zstd:N), `copies` (1 or 2 copies
//! of each data record, the second far from the first) and `dedup` (on: a record whose
//! bytes are stored already is shared, not written again). A new inode takes its parent's properties when it is created
//! (as btrfs properties are inherited); an inode without its own value follows the
//! filesystem's default, set at mkfs.

use gpufs_format::props::{
    decode_copies, decode_dedup, encode_copies, encode_dedup, parse_copies, parse_dedup,
};
use gpufs_format::{Compression, InodeRecord, PropertyError};

use super::{now, Caller, Filesystem};
use crate::error::{FsError, FsResult};
use crate::units::Ino;

/// Every property name `gpufs property` knows.
pub const PROPERTY_NAMES: &[&str] = &["compression", "copies", "dedup"];

/// One property of an inode, as `gpufs property get` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropertyValue {
    pub name: &'static str,
    /// The value in effect (`lz4`, `zstd:3`, ...).
    pub value: String,
    /// `local` when the inode holds its own value (set on it, or taken from its parent
    /// when it was created), `default` when it follows the filesystem's default.
    pub source: &'static str,
}

fn bad(e: PropertyError) -> FsError {
    FsError::BadQuery(e.to_string())
}

/// The property `name` parsed, or a message naming the known ones.
fn known(name: &str) -> FsResult<&'static str> {
    PROPERTY_NAMES
        .iter()
        .copied()
        .find(|n| *n == name)
        .ok_or_else(|| bad(PropertyError::UnknownName(name.to_string())))
}

impl Filesystem {
    /// Sets property `name` of `ino` to `value` (`default` drops the inode's own value).
    /// Only the owner or root may. Records already written keep how they were stored.
    pub fn set_property(&self, ino: u64, name: &str, value: &str, caller: Caller) -> FsResult<()> {
        let name = known(name)?;
        let reset = matches!(value, "default" | "inherit");
        // `default` drops the inode's own value; anything else is parsed.
        fn setting<T>(
            reset: bool,
            value: &str,
            parse: fn(&str) -> Result<T, PropertyError>,
        ) -> FsResult<Option<T>> {
            if reset {
                return Ok(None);
            }
            parse(value).map(Some).map_err(bad)
        }
        let apply: Box<dyn Fn(InodeRecord) -> InodeRecord> = match name {
            "compression" => {
                let c = setting(reset, value, Compression::parse)?;
                Box::new(move |r: InodeRecord| r.with_compression(c))
            }
            "dedup" => {
                let d = setting(reset, value, parse_dedup)?;
                Box::new(move |r| InodeRecord {
                    flags: encode_dedup(r.flags, d),
                    ..r
                })
            }
            _ => {
                let n = setting(reset, value, parse_copies)?;
                Box::new(move |r| InodeRecord {
                    flags: encode_copies(r.flags, n),
                    ..r
                })
            }
        };
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        if caller.uid != 0 && caller.uid != rec.uid {
            return Err(FsError::NotPermitted);
        }
        let rec = InodeRecord {
            ctime_ns: now(),
            ..apply(rec)
        };
        g.put(ino, rec)?;
        g.maybe_commit()
    }

    /// Every property of `ino`, or only `name`.
    pub fn properties(&self, ino: u64, name: Option<&str>) -> FsResult<Vec<PropertyValue>> {
        if let Some(n) = name {
            known(n)?;
        }
        let g = self.lock();
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        let corrupt = |e: PropertyError| FsError::corrupt(e.to_string());
        let source = |own: bool| if own { "local" } else { "default" };
        let own = rec.compression().map_err(corrupt)?;
        let compression = own.unwrap_or_else(|| g.vol.default_compression());
        let own_copies = decode_copies(rec.flags).map_err(corrupt)?;
        let own_dedup = decode_dedup(rec.flags).map_err(corrupt)?;
        let dedup = own_dedup.unwrap_or_else(|| g.vol.default_dedup());
        let all = [
            PropertyValue {
                name: "compression",
                value: compression.to_string(),
                source: source(own.is_some()),
            },
            PropertyValue {
                name: "copies",
                value: own_copies.unwrap_or(1).to_string(),
                source: source(own_copies.is_some()),
            },
            PropertyValue {
                name: "dedup",
                value: if dedup { "on" } else { "off" }.to_string(),
                source: source(own_dedup.is_some()),
            },
        ];
        Ok(all
            .into_iter()
            .filter(|p| name.is_none_or(|n| n == p.name))
            .collect())
    }
}
