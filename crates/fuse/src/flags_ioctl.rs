//! The inode-flag ioctls: FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (`lsattr`, `chattr +i`,
//! `+a`; a 4-byte argument) and FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR (struct fsxattr,
//! 28 bytes; the kernel reads the old flags this way before it sets new ones). Anything
//! else: ENOTTY, as a filesystem without the ioctl answers.

use fuser::Errno;
use gpufs_core::fs::{FS_APPEND_FL, FS_IMMUTABLE_FL};
use gpufs_core::{Caller, Filesystem};

use crate::reply;

const GETFLAGS: [u32; 2] = [0x8008_6601, 0x8004_6601];
const SETFLAGS: [u32; 2] = [0x4008_6602, 0x4004_6602];
const FSGETXATTR: u32 = 0x801c_581f;
const FSSETXATTR: u32 = 0x401c_5820;
const XFLAG_IMMUTABLE: u32 = 0x8;
const XFLAG_APPEND: u32 = 0x10;

fn to_xflags(f: u32) -> u32 {
    (if f & FS_IMMUTABLE_FL != 0 {
        XFLAG_IMMUTABLE
    } else {
        0
    }) | (if f & FS_APPEND_FL != 0 {
        XFLAG_APPEND
    } else {
        0
    })
}

fn from_xflags(x: u32) -> u32 {
    (if x & XFLAG_IMMUTABLE != 0 {
        FS_IMMUTABLE_FL
    } else {
        0
    }) | (if x & XFLAG_APPEND != 0 {
        FS_APPEND_FL
    } else {
        0
    })
}

fn arg_u32(in_data: &[u8]) -> Result<u32, Errno> {
    let arg = in_data.get(..4).ok_or(Errno::EINVAL)?;
    Ok(u32::from_le_bytes([arg[0], arg[1], arg[2], arg[3]]))
}

/// The bytes to answer ioctl `cmd` on `ino` with, or its errno.
pub fn answer(
    fs: &Filesystem,
    caller: Caller,
    ino: u64,
    cmd: u32,
    in_data: &[u8],
    out_size: u32,
) -> Result<Vec<u8>, Errno> {
    let errno = |e| reply::errno(&e);
    if cmd == FSGETXATTR {
        let flags = fs.attr_flags(ino).map_err(errno)?;
        let mut fsx = vec![0u8; 28];
        fsx[..4].copy_from_slice(&to_xflags(flags).to_le_bytes());
        fsx.truncate((out_size as usize).min(28));
        Ok(fsx)
    } else if cmd == FSSETXATTR {
        let xflags = arg_u32(in_data)?;
        if xflags & !(XFLAG_IMMUTABLE | XFLAG_APPEND) != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        fs.set_attr_flags(ino, from_xflags(xflags), caller)
            .map_err(errno)?;
        Ok(Vec::new())
    } else if GETFLAGS.contains(&cmd) {
        let flags = fs.attr_flags(ino).map_err(errno)?;
        Ok(flags.to_le_bytes()[..(out_size as usize).min(4)].to_vec())
    } else if SETFLAGS.contains(&cmd) {
        fs.set_attr_flags(ino, arg_u32(in_data)?, caller)
            .map_err(errno)?;
        Ok(Vec::new())
    } else {
        Err(Errno::ENOTTY)
    }
}
