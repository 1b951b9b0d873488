//! The GPU contexts the kernel tests compare the CPU twins with.

use std::sync::OnceLock;

pub use gpufs_compute::gpu::{GpuContext, GpuOptions};

fn skip_gpu() -> bool {
    std::env::var("GPUFS_GPU_TESTS").is_ok_and(|v| v == "skip")
}

fn open(opts: GpuOptions) -> Option<GpuContext> {
    if skip_gpu() {
        return None;
    }
    match GpuContext::open(&opts) {
        Ok(ctx) => Some(ctx),
        Err(e) => panic!(
            "GPU tests need a Vulkan/Metal/DX12 adapter (lavapipe will do: apt-get install \
             mesa-vulkan-drivers), or GPUFS_GPU_TESTS=skip: {e}"
        ),
    }
}

/// The GPU as the device reports it.
pub fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        open(GpuOptions {
            allow_software: true,
            ..Default::default()
        })
    })
    .as_ref()
}

/// The GPU with 128 KiB bindings and at most 4 workgroups per dimension, so small inputs
/// already take the chunked-array and 2-D grid paths.
pub fn tight_gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        open(GpuOptions {
            allow_software: true,
            chunk_bytes: Some(128 << 10),
            max_groups_per_dim: Some(4),
        })
    })
    .as_ref()
}

/// Both contexts that exist, the plain one first.
pub fn gpus() -> Vec<&'static GpuContext> {
    [gpu(), tight_gpu()].into_iter().flatten().collect()
}
