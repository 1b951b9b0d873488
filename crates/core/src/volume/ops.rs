//! What the file system layer may ask of the namespace: queries through a shared
//! reference, and each kind of change as an operation that applies one journal op (so
//! the namespace, the allocator, the journal and the record cache stay in step).

use gpufs_compute::view::NamespaceDirty;
use gpufs_format::{DirentRecord, FileKind, InodeRecord, JournalOp, RecordPtr};

use super::Volume;
use crate::error::{FsError, FsResult};
use crate::namespace::Namespace;
use crate::units::{Ino, RecordIndex};

/// Queries.
impl Volume {
    /// The namespace, for lookups, listings and the search kernels' views.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The live inode `ino`.
    pub fn inode(&self, ino: Ino) -> Option<&InodeRecord> {
        self.ns.inode(ino.get())
    }

    /// The entry `name` in directory `parent`.
    pub fn entry(&self, parent: Ino, name: &[u8]) -> Option<&DirentRecord> {
        let id = self.ns.lookup(parent.get(), name)?;
        Some(self.ns.dirent(id))
    }

    /// The records of `ino`, sorted by index.
    pub fn records(&self, ino: Ino) -> &[(u64, RecordPtr)] {
        self.ns.extents(ino.get())
    }

    /// The pointer of record `index` of `ino`, if stored.
    pub fn record(&self, ino: Ino, index: RecordIndex) -> Option<&RecordPtr> {
        self.ns.extent(ino.get(), index.get())
    }

    /// The ranges of the namespace's arrays changed since the last call, for a search
    /// to bring the compute layer's copy up to date; with `paths`, every directory's
    /// path is made ready too.
    pub fn take_search_changes(&mut self, paths: bool) -> NamespaceDirty {
        let dirty = self.ns.take_dirty();
        if paths {
            self.ns.prepare_dir_tree();
        }
        dirty
    }
}

/// Changes.
impl Volume {
    /// A free inode number to create into (an `put_inode` makes it live).
    pub fn free_ino(&mut self) -> FsResult<Ino> {
        self.ns
            .next_free_ino()
            .map(Ino::new)
            .ok_or(FsError::NoSpace)
    }

    /// Writes the attributes of `ino` (making the slot live when it was free).
    pub fn put_inode(&mut self, ino: Ino, rec: InodeRecord) -> FsResult<()> {
        debug_assert!(rec.is_live(), "inode {ino} put with mode 0");
        self.apply(JournalOp::InodePut {
            ino: ino.get(),
            rec,
        })
    }

    /// Frees `ino` with its records, extended attributes and symlink target.
    pub fn free_inode(&mut self, ino: Ino) -> FsResult<()> {
        self.discard_dirty(ino, RecordIndex::new(0), RecordIndex::END);
        self.apply(JournalOp::InodeFree { ino: ino.get() })
    }

    /// Adds entry `name` for `ino` to directory `parent`, after every entry there.
    pub fn add_entry(
        &mut self,
        parent: Ino,
        name: &[u8],
        ino: Ino,
        kind: FileKind,
    ) -> FsResult<()> {
        let cookie = self.ns.next_cookie(parent.get());
        self.put_entry(parent, name, ino, kind, cookie)
    }

    /// Adds entry `name` for `ino` to `parent` at readdir position `cookie` (an
    /// exchange keeps each name's position).
    pub fn put_entry(
        &mut self,
        parent: Ino,
        name: &[u8],
        ino: Ino,
        kind: FileKind,
        cookie: u64,
    ) -> FsResult<()> {
        debug_assert!(self.ns.lookup(parent.get(), name).is_none());
        self.apply(JournalOp::DirentPut {
            parent: parent.get(),
            ino: ino.get(),
            kind: kind as u8,
            cookie,
            name: name.to_vec(),
        })
    }

    /// Removes entry `name` from `parent` (the inode it named is left as it is).
    pub fn remove_entry(&mut self, parent: Ino, name: &[u8]) -> FsResult<()> {
        self.apply(JournalOp::DirentDel {
            parent: parent.get(),
            name: name.to_vec(),
        })
    }

    /// Sets the target of symlink `ino`.
    pub fn set_symlink(&mut self, ino: Ino, target: &[u8]) -> FsResult<()> {
        self.apply(JournalOp::SymlinkPut {
            ino: ino.get(),
            target: target.to_vec(),
        })
    }

    /// Sets (creates or replaces) extended attribute `name` of `ino`.
    pub fn set_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8]) -> FsResult<()> {
        self.apply(JournalOp::XattrPut {
            ino: ino.get(),
            name: name.to_vec(),
            value: value.to_vec(),
        })
    }

    /// Removes extended attribute `name` of `ino`.
    pub fn remove_xattr(&mut self, ino: Ino, name: &[u8]) -> FsResult<()> {
        self.apply(JournalOp::XattrDel {
            ino: ino.get(),
            name: name.to_vec(),
        })
    }
}
