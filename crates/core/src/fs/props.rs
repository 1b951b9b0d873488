//! Properties of a directory or file (`gpufs property`): settings new records and new
//! inodes below it follow. A new inode takes its parent's properties when it is created
//! (as btrfs properties are inherited); an inode without its own value follows the
//! filesystem's default, set at mkfs.

use gpufs_format::{Compression, PropertyError};

use super::{now, Caller, Filesystem};
use crate::error::{FsError, FsResult};
use crate::units::Ino;

/// Every property name `gpufs property` knows.
pub const PROPERTY_NAMES: &[&str] = &["compression"];

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
    /// Only the owner or root may.
    pub fn set_property(&self, ino: u64, name: &str, value: &str, caller: Caller) -> FsResult<()> {
        let name = known(name)?;
        debug_assert_eq!(name, "compression");
        let setting = match value {
            "default" | "inherit" => None,
            v => Some(Compression::parse(v).map_err(bad)?),
        };
        let mut g = self.lock();
        g.writable()?;
        let ino = Ino::from_kernel(ino)?;
        let rec = g.inode(ino)?;
        if caller.uid != 0 && caller.uid != rec.uid {
            return Err(FsError::NotPermitted);
        }
        let rec = gpufs_format::InodeRecord {
            ctime_ns: now(),
            ..rec.with_compression(setting)
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
        let own = rec
            .compression()
            .map_err(|e| FsError::corrupt(e.to_string()))?;
        let value = own.unwrap_or_else(|| g.vol.default_compression());
        Ok(vec![PropertyValue {
            name: "compression",
            value: value.to_string(),
            source: if own.is_some() { "local" } else { "default" },
        }])
    }
}
