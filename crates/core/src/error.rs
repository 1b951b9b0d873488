//! Typed errors of the core, each mapped to the errno the FUSE edge returns.

use gpufs_format::FormatError;

pub type FsResult<T> = Result<T, FsError>;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("file name too long")]
    NameTooLong,
    #[error("no space left on device")]
    NoSpace,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("operation not permitted")]
    NotPermitted,
    #[error("permission denied")]
    Access,
    #[error("no such attribute")]
    NoData,
    #[error("result does not fit the buffer")]
    Range,
    #[error("operation not supported")]
    NotSupported,
    #[error("too many links")]
    TooManyLinks,
    #[error("file too large")]
    FileTooBig,
    #[error("read-only filesystem")]
    ReadOnly,
    /// A search pattern, query or property the user must fix (bad regex, empty
    /// pattern, unknown property, ...).
    #[error("{0}")]
    BadQuery(String),
    /// The compute layer failed (GPU error with the GPU forced, ...).
    #[error("compute: {0}")]
    Compute(String),
    #[error("no data or hole past the offset")]
    NoSuchOffset,
    #[error("argument list too long")]
    TooBig,
    /// The device does not hold a usable gpufs image (wrong format, damaged superblocks,
    /// truncated). The message says what was found.
    #[error("{0}")]
    BadImage(String),
    /// On-disk bytes that fail their checksum or an invariant. Reads return EIO.
    #[error("corrupted filesystem: {0}")]
    Corrupt(String),
    /// Another machine's marker says the image is mounted there.
    #[error("{0}")]
    InUse(String),
    /// Files are open where an operation needs none (a rollback).
    #[error("device or resource busy: {0}")]
    Busy(String),
    /// An encrypted image without its key, with a key no slot opens, or a key operation
    /// that cannot be done (the last slot, no free slot). Says nothing of the key.
    #[error("{0}")]
    Key(String),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("device I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl FsError {
    pub fn corrupt(detail: impl Into<String>) -> Self {
        FsError::Corrupt(detail.into())
    }

    /// The errno a system call should fail with.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Busy(_) => libc::EBUSY,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::NoSpace => libc::ENOSPC,
            FsError::Invalid(_) => libc::EINVAL,
            FsError::NotPermitted => libc::EPERM,
            FsError::Access => libc::EACCES,
            FsError::NoData => libc::ENODATA,
            FsError::Range => libc::ERANGE,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::TooManyLinks => libc::EMLINK,
            FsError::FileTooBig => libc::EFBIG,
            FsError::ReadOnly => libc::EROFS,
            FsError::BadQuery(_) => libc::EINVAL,
            FsError::Compute(_) => libc::EIO,
            FsError::NoSuchOffset => libc::ENXIO,
            FsError::TooBig => libc::E2BIG,
            FsError::BadImage(_) => libc::EINVAL,
            FsError::InUse(_) => libc::EBUSY,
            FsError::Key(_) => libc::EACCES,
            FsError::Corrupt(_) | FsError::Format(_) => libc::EIO,
            FsError::Io(e) => match e.raw_os_error() {
                Some(libc::ENOSPC) => libc::ENOSPC,
                _ => libc::EIO,
            },
        }
    }
}
