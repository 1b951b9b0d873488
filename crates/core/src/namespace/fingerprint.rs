//! A namespace's fingerprint: the BLAKE3 of everything a replication stream reproduces
//! — every live inode's number and attributes, symlink targets, extended attributes and
//! directory entries with their cookies — and of nothing a receiver chooses for itself
//! (where records lie, how they are compressed, what fallocate reserved) or a read
//! changes (access times). Two namespaces with one fingerprint hold the same tree, so an
//! incremental stream names its base by it. Inodes without a link (unlinked while
//! open: a mount frees them) are left out.

use gpufs_format::InodeRecord;

use super::Namespace;

/// Bytes hashed at once (the hasher is fastest on long inputs).
const CHUNK: usize = 64 * 1024;

/// Feeds `blake3` in long pieces.
struct Feed {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

impl Feed {
    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= CHUNK {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
    }

    fn put_len(&mut self, bytes: &[u8]) {
        self.put(&(bytes.len() as u32).to_le_bytes());
        self.put(bytes);
    }
}

/// The fields of `rec` a fingerprint covers.
fn inode_fields(rec: &InodeRecord) -> [u8; 56] {
    let mut out = [0u8; 56];
    let words: [u64; 7] = [
        u64::from(rec.mode) | u64::from(rec.uid) << 32,
        u64::from(rec.gid) | u64::from(rec.nlink) << 32,
        rec.size,
        rec.mtime_ns as u64,
        rec.ctime_ns as u64,
        u64::from(rec.rdev) | u64::from(rec.generation) << 32,
        u64::from(rec.flags),
    ];
    for (o, w) in out.chunks_exact_mut(8).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

impl Namespace {
    /// The fingerprint of this namespace (see the module).
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut f = Feed {
            hasher: blake3::Hasher::new(),
            buf: Vec::with_capacity(2 * CHUNK),
        };
        f.put(b"gpufs namespace fingerprint v1");
        let mut dirs = Vec::new();
        // An inode with no link (unlinked while open) is not part of the tree.
        for (ino, rec) in self.live_inode_iter().filter(|(_, r)| r.nlink > 0) {
            f.put(&ino.to_le_bytes());
            f.put(&inode_fields(rec));
            if let Some(target) = self.symlink(ino) {
                f.put_len(target);
            }
            let mut xattrs: Vec<&(Vec<u8>, Vec<u8>)> = self.xattrs(ino).iter().collect();
            xattrs.sort();
            f.put(&(xattrs.len() as u32).to_le_bytes());
            for (name, value) in xattrs {
                f.put_len(name);
                f.put_len(value);
            }
            if self.dir(ino).is_some() {
                dirs.push(ino);
            }
        }
        for dir in dirs {
            for (cookie, id) in self.entries_after(dir, 0) {
                let d = self.dirent(id);
                f.put(&dir.to_le_bytes());
                f.put(&cookie.to_le_bytes());
                f.put(&d.ino.to_le_bytes());
                f.put(&[d.kind]);
                f.put_len(self.name_bytes(d));
            }
        }
        f.hasher.update(&f.buf);
        *f.hasher.finalize().as_bytes()
    }
}
