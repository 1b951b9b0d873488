//! The workload: ops, the seeded generator that makes them, and the runner that
//! performs them through the POSIX API.

use gpufs_core::fs::RenameMode;
use gpufs_core::{Caller, Filesystem, FsError};

use crate::model::{copied, join, name_of, parent_of, within, Model, Node};
use crate::rng::{write_bytes, Rng};
use crate::{MAX_DIRS, MAX_FILE, MAX_FILES, MAX_WRITE, OPS, ROOT};

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Create(String),
    Write {
        path: String,
        off: u64,
        len: u64,
        seed: u64,
    },
    Truncate {
        path: String,
        size: u64,
    },
    Rename {
        from: String,
        to: String,
    },
    Unlink(String),
    Mkdir(String),
    Rmdir(String),
    Link {
        from: String,
        to: String,
    },
    Symlink {
        path: String,
        target: Vec<u8>,
    },
    /// `copy_file_range` of `len` bytes (clamped to the source) from `from` at
    /// `src_off` to `to` at `dst_off`: records shared where they line up.
    Copy {
        from: String,
        to: String,
        src_off: u64,
        dst_off: u64,
        len: u64,
    },
    Fsync,
    /// A snapshot of everything so far (durable when it returns, as an fsync).
    SnapCreate(String),
    /// The snapshot deleted (durable when it returns).
    SnapDelete(String),
    /// The live filesystem made the snapshot again (durable when it returns).
    SnapRollback(String),
}

impl Op {
    /// Ops after which everything before them is durable.
    pub(crate) fn syncs(&self) -> bool {
        matches!(
            self,
            Op::Fsync | Op::SnapCreate(_) | Op::SnapDelete(_) | Op::SnapRollback(_)
        )
    }
}

impl Model {
    /// One random op that is valid in this state, or `None` to try again.
    pub(crate) fn random_op(&self, rng: &mut Rng) -> Option<Op> {
        let dirs = self.dirs();
        let files = self.files();
        let n_dirs = dirs.len() - 1;
        let files_full = self.nodes.len() - n_dirs >= MAX_FILES;
        let op = match rng.below(100) {
            0..=11 => Op::Create(self.new_path(rng, &dirs, "f", 8, files_full)?),
            12..=41 => self.random_write(rng, &files)?,
            42..=49 => self.random_truncate(rng, &files)?,
            50..=61 => self.random_rename(rng, &dirs)?,
            62..=69 => Op::Unlink(rng.pick(&self.non_dirs())?.clone()),
            70..=73 => Op::Mkdir(self.new_path(rng, &dirs, "d", 3, n_dirs >= MAX_DIRS)?),
            74..=75 => {
                let empty: Vec<String> = dirs[1..]
                    .iter()
                    .filter(|d| self.children(d).is_empty())
                    .cloned()
                    .collect();
                Op::Rmdir(rng.pick(&empty)?.clone())
            }
            76..=81 => {
                let from = rng.pick(&files)?.clone();
                let to = self.new_path(rng, &dirs, "f", 8, files_full)?;
                Op::Link { from, to }
            }
            82..=84 => {
                let path = self.new_path(rng, &dirs, "s", 3, files_full)?;
                let target = format!(
                    "../t{}/{}",
                    rng.below(1000),
                    "x".repeat(rng.below(60) as usize)
                );
                Op::Symlink {
                    path,
                    target: target.into_bytes(),
                }
            }
            85..=91 => self.random_copy(rng, &files)?,
            92..=96 => Op::Fsync,
            97 => Op::SnapCreate(format!("s{}", rng.below(3))),
            98 => Op::SnapDelete(rng.pick(&self.snapshot_names())?.clone()),
            _ => Op::SnapRollback(rng.pick(&self.snapshot_names())?.clone()),
        };
        Some(op)
    }

    /// A name `prefix` + one of `choices` numbers in a random directory, unless it
    /// exists or `full` says no more may be made.
    fn new_path(
        &self,
        rng: &mut Rng,
        dirs: &[String],
        prefix: &str,
        choices: u64,
        full: bool,
    ) -> Option<String> {
        let parent = rng.pick(dirs)?;
        let p = join(parent, &format!("{prefix}{}", rng.below(choices)));
        (!full && !self.nodes.contains_key(&p)).then_some(p)
    }

    /// A write to a random file: short or long, appending, inside or past the end.
    fn random_write(&self, rng: &mut Rng, files: &[String]) -> Option<Op> {
        let path = rng.pick(files)?.clone();
        let size = self.content(&path).len() as u64;
        let len = if rng.below(2) == 0 {
            1 + rng.below(8192)
        } else {
            1 + rng.below(MAX_WRITE)
        };
        let off = match rng.below(10) {
            0..=3 => size,
            4..=6 => rng.below(size + 1),
            _ => rng.below(512 << 10),
        };
        let len = len.min(MAX_FILE.saturating_sub(off));
        if len == 0 {
            return None;
        }
        Some(Op::Write {
            path,
            off,
            len,
            seed: rng.next(),
        })
    }

    /// A copy between two files, record-aligned most of the time (so records are
    /// shared), never overlapping itself.
    fn random_copy(&self, rng: &mut Rng, files: &[String]) -> Option<Op> {
        const R: u64 = 64 << 10;
        let from = rng.pick(files)?.clone();
        let to = rng.pick(files)?.clone();
        let size = self.content(&from).len() as u64;
        let (src_off, dst_off) = if rng.below(4) == 0 {
            (rng.below(size + 1), rng.below(256 << 10))
        } else {
            (rng.below(size / R + 1) * R, rng.below(4) * R)
        };
        let len = match rng.below(3) {
            0 => u64::MAX,
            _ => 1 + rng.below(MAX_WRITE),
        };
        let n = copied(size, src_off, len);
        if dst_off + n > MAX_FILE || self.copy_overlaps(&from, &to, src_off, dst_off, len) {
            return None;
        }
        Some(Op::Copy {
            from,
            to,
            src_off,
            dst_off,
            len,
        })
    }

    /// A truncation of a random file: shorter, longer, or to nothing.
    fn random_truncate(&self, rng: &mut Rng, files: &[String]) -> Option<Op> {
        let path = rng.pick(files)?.clone();
        let cur = self.content(&path).len() as u64;
        let size = match rng.below(10) {
            0..=4 => rng.below(cur + 1),
            5..=7 => (cur + rng.below(200 << 10)).min(MAX_FILE),
            _ => 0,
        };
        Some(Op::Truncate { path, size })
    }

    /// A rename of any node, onto an existing name half the time, that POSIX allows.
    fn random_rename(&self, rng: &mut Rng, dirs: &[String]) -> Option<Op> {
        let all: Vec<String> = self.nodes.keys().cloned().collect();
        let from = rng.pick(&all)?.clone();
        let src = &self.nodes[&from];
        let parent = rng.pick(dirs)?.clone();
        let to = if rng.below(2) == 0 {
            let existing = self.children(&parent);
            rng.pick(&existing)?.clone()
        } else {
            let prefix = match src {
                Node::Dir => "d",
                Node::File(_) => "f",
                Node::Symlink(_) => "s",
            };
            join(&parent, &format!("{prefix}{}", rng.below(8)))
        };
        if to == from {
            return None;
        }
        if *src == Node::Dir && within(&parent, &from) {
            return None;
        }
        match (src, self.nodes.get(&to)) {
            (_, None) => {}
            (Node::Dir, Some(Node::Dir)) if self.children(&to).is_empty() => {}
            (Node::Dir, _) | (_, Some(Node::Dir)) => return None,
            _ => {}
        }
        Some(Op::Rename { from, to })
    }
}

pub(crate) fn resolve(fs: &Filesystem, path: &str) -> Result<u64, FsError> {
    let mut ino = ROOT;
    if path.is_empty() {
        return Ok(ino);
    }
    for part in path.split('/') {
        ino = fs.lookup(ino, part.as_bytes())?.ino;
    }
    Ok(ino)
}

pub(crate) fn at(fs: &Filesystem, path: &str) -> Result<(u64, Vec<u8>), FsError> {
    Ok((
        resolve(fs, parent_of(path))?,
        name_of(path).as_bytes().to_vec(),
    ))
}

/// Runs one op. `Ok(Some(n))` is a short write of `n` bytes.
pub(crate) fn run_op(fs: &Filesystem, op: &Op) -> Result<Option<u64>, FsError> {
    let root = Caller::ROOT;
    match op {
        Op::Create(p) => {
            let (dir, name) = at(fs, p)?;
            let a = fs.create(dir, &name, 0o644, root)?;
            fs.release(a.ino)?;
        }
        Op::Write {
            path,
            off,
            len,
            seed,
        } => {
            let ino = resolve(fs, path)?;
            fs.open(ino, false)?;
            let written = fs.write(ino, *off, &write_bytes(*seed, *len));
            // Some writes are followed by a round of the preparer (as the daemon's
            // thread runs it), so that the records it prepared are placed at a commit
            // the cuts fall around.
            if written.is_ok() && seed % 3 == 0 {
                fs.prepare_dirty();
            }
            // Closed whatever the write did, as a program's close(2) does.
            fs.release(ino)?;
            let n = written?;
            if u64::from(n) != *len {
                return Ok(Some(u64::from(n)));
            }
        }
        Op::Truncate { path, size } => {
            let ino = resolve(fs, path)?;
            let cur = fs.getattr(ino)?.size;
            if *size > cur && size % 2 == 0 {
                // Half the extensions are fallocate: the same size and zeros, with the
                // space reserved (the file's later writes draw on it).
                fs.fallocate(ino, cur, size - cur, 0)?;
            } else {
                let set = gpufs_core::SetAttr {
                    size: Some(*size),
                    ..Default::default()
                };
                fs.setattr(ino, &set, root)?;
            }
        }
        Op::Rename { from, to } => {
            let (d1, n1) = at(fs, from)?;
            let (d2, n2) = at(fs, to)?;
            fs.rename(d1, &n1, d2, &n2, RenameMode::Replace)?;
        }
        Op::Unlink(p) => {
            let (dir, name) = at(fs, p)?;
            fs.unlink(dir, &name)?;
        }
        Op::Rmdir(p) => {
            let (dir, name) = at(fs, p)?;
            fs.rmdir(dir, &name)?;
        }
        Op::Mkdir(p) => {
            let (dir, name) = at(fs, p)?;
            fs.mkdir(dir, &name, 0o755, root)?;
        }
        Op::Link { from, to } => {
            let ino = resolve(fs, from)?;
            let (dir, name) = at(fs, to)?;
            fs.link(ino, dir, &name)?;
        }
        Op::Symlink { path, target } => {
            let (dir, name) = at(fs, path)?;
            fs.symlink(dir, &name, target, root)?;
        }
        Op::Copy {
            from,
            to,
            src_off,
            dst_off,
            len,
        } => {
            let (src, dst) = (resolve(fs, from)?, resolve(fs, to)?);
            let want = copied(fs.getattr(src)?.size, *src_off, *len);
            let done = fs.copy_file_range(src, *src_off, dst, *dst_off, *len)?;
            if done.bytes != want {
                return Ok(Some(done.bytes));
            }
        }
        Op::Fsync => fs.fsync(ROOT)?,
        Op::SnapCreate(name) => {
            fs.create_snapshot(name.as_bytes())?;
        }
        Op::SnapDelete(name) => fs.delete_snapshot(name.as_bytes())?,
        Op::SnapRollback(name) => fs.rollback_snapshot(name.as_bytes())?,
    }
    Ok(None)
}

/// The first `n` bytes of a write.
pub(crate) fn shortened(op: &Op, n: u64) -> Op {
    match op {
        Op::Write {
            path, off, seed, ..
        } => Op::Write {
            path: path.clone(),
            off: *off,
            len: n,
            seed: *seed,
        },
        Op::Copy {
            from,
            to,
            src_off,
            dst_off,
            ..
        } => Op::Copy {
            from: from.clone(),
            to: to.clone(),
            src_off: *src_off,
            dst_off: *dst_off,
            len: n,
        },
        other => other.clone(),
    }
}

pub(crate) fn workload(seed: u64) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut m = Model::default();
    let mut ops = Vec::with_capacity(OPS);
    while ops.len() < OPS {
        if let Some(op) = m.random_op(&mut rng) {
            m.apply(&op);
            ops.push(op);
        }
    }
    ops
}
