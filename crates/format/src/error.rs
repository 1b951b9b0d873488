//! Errors from decoding on-disk bytes.

/// Why a run of on-disk bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// Not a gpufs structure at all (wrong magic).
    #[error("bad magic in {what}: not a gpufs {what}")]
    BadMagic { what: &'static str },
    /// A gpufs structure of a version this build cannot read.
    #[error(
        "unsupported gpufs format version {found} (this build reads versions 1 to {supported})"
    )]
    UnsupportedVersion { found: u32, supported: u32 },
    /// A replication stream of a version this build cannot read.
    #[error("unsupported send stream version {found} (this build reads version {supported})")]
    UnsupportedStream { found: u32, supported: u32 },
    /// The stored checksum does not match the bytes.
    #[error("checksum mismatch in {what}: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        what: &'static str,
        stored: u32,
        computed: u32,
    },
    /// Lengths, counts or offsets that do not fit the bytes or the format's limits.
    #[error("corrupted {what}: {detail}")]
    Corrupted { what: &'static str, detail: String },
}

impl FormatError {
    pub(crate) fn corrupted(what: &'static str, detail: impl Into<String>) -> Self {
        FormatError::Corrupted {
            what,
            detail: detail.into(),
        }
    }
}
