//! A hint to the processor to start loading a record the next steps will read: scans
//! that touch a few records at scattered places wait on memory more than they compute,
//! and a load started a few steps ahead overlaps those waits.
//!
//! The one module of this crate with `unsafe`: the x86-64 prefetch instruction is
//! exposed as an unsafe intrinsic because it takes a raw pointer, but it never faults,
//! reads nothing into the program and has no effect on what the program computes.

/// Starts loading the cache line holding `slice[i]` (nothing when `i` is out of
/// range, or on other processors).
#[inline(always)]
pub fn record<T>(slice: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(r) = slice.get(i) {
        #[allow(unsafe_code)]
        // SAFETY: prefetching is a hint without architectural effect; the pointer comes
        // from a live reference and SSE (which the instruction needs) is part of the
        // x86-64 baseline.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                (r as *const T).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slice, i);
}
