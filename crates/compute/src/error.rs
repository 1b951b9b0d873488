//! Typed errors of the compute layer.

/// What can go wrong running a kernel.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// No Vulkan, Metal or DX12 adapter, or the device could not be created.
    #[error("no GPU available: {0}")]
    NoGpu(String),
    /// The GPU was asked for, but this build has no GPU backend (the `gpu` feature).
    #[error("built without GPU support: use --compute cpu or auto")]
    NoGpuSupport,
    /// The GPU backend was asked for but this compute context runs on the CPU only.
    #[error("the GPU backend is not enabled (GPUFS_COMPUTE=cpu or no adapter)")]
    GpuDisabled,
    /// The input does not fit what the GPU can bind; the CPU twin can still run it.
    #[error("too large for the GPU: {0}")]
    TooLarge(String),
    /// A bad pattern or query argument, said in words a user can act on.
    #[error("{0}")]
    BadQuery(String),
    /// An input a kernel refuses (a record too short for its cipher, mismatched
    /// argument lengths), said in words a user can act on.
    #[error("{0}")]
    BadInput(String),
    /// wgpu reported a validation or out-of-memory error, or a readback failed.
    #[error("GPU error: {0}")]
    Device(String),
    /// An unknown value for `--compute` / `GPUFS_COMPUTE`.
    #[error("unknown compute backend {0:?}: use cpu, gpu or auto")]
    UnknownChoice(String),
}

pub type ComputeResult<T> = Result<T, ComputeError>;
