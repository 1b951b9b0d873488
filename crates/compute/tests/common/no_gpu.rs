//! Built without the `gpu` feature: there is no device to compare the CPU twins with, so
//! the GPU halves of the tests have nothing to run on.

/// No device: the type has no values.
pub enum GpuContext {}

pub fn gpu() -> Option<&'static GpuContext> {
    None
}

pub fn tight_gpu() -> Option<&'static GpuContext> {
    None
}

pub fn gpus() -> Vec<&'static GpuContext> {
    Vec::new()
}
