//! [`Compute`](super::Compute) built without the `gpu` feature: there is no GPU side,
//! `auto` means the CPU and asking for the GPU is an error.

use super::Policy;
use crate::choice::Choice;
use crate::error::{ComputeError, ComputeResult};
use crate::view::NamespaceDirty;

/// No device: the type has no values, so every GPU branch is unreachable.
#[derive(Debug)]
pub(crate) enum GpuSide {}

impl GpuSide {
    /// `Cpu` and `Auto` open no device; `Gpu` is [`ComputeError::NoGpuSupport`].
    pub(crate) fn open(choice: Choice) -> ComputeResult<(Option<GpuSide>, Policy)> {
        match choice {
            Choice::Gpu => Err(ComputeError::NoGpuSupport),
            Choice::Cpu | Choice::Auto => Ok((None, Policy::default())),
        }
    }

    pub(crate) fn note_changes(&self, _: &NamespaceDirty) {
        match *self {}
    }
}
