//! What ran where and how long it took, per kernel and backend, for `gpufs stats`.

use std::collections::BTreeMap;
use std::time::Duration;

use parking_lot::Mutex;

use crate::choice::Backend;

/// Totals of one (kernel, backend) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelTotals {
    pub calls: u64,
    pub items: u64,
    pub nanos: u64,
}

/// Counters shared by every caller of one compute context.
#[derive(Debug, Default)]
pub struct Stats {
    totals: Mutex<BTreeMap<(&'static str, Backend), KernelTotals>>,
}

impl Stats {
    /// Records one call of `kernel` on `backend` over `items` inputs.
    pub fn record(&self, kernel: &'static str, backend: Backend, items: u64, took: Duration) {
        let mut t = self.totals.lock();
        let e = t.entry((kernel, backend)).or_default();
        e.calls += 1;
        e.items += items;
        e.nanos = e
            .nanos
            .saturating_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Every (kernel, backend, totals) recorded so far, sorted by kernel then backend.
    pub fn snapshot(&self) -> Vec<(&'static str, Backend, KernelTotals)> {
        self.totals
            .lock()
            .iter()
            .map(|(&(k, b), &t)| (k, b, t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_per_kernel_and_backend() {
        let s = Stats::default();
        s.record("name_match", Backend::Cpu, 10, Duration::from_micros(5));
        s.record("name_match", Backend::Cpu, 20, Duration::from_micros(5));
        s.record("name_match", Backend::Gpu, 7, Duration::from_micros(1));
        let snap = s.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(
            snap[0],
            (
                "name_match",
                Backend::Cpu,
                KernelTotals {
                    calls: 2,
                    items: 30,
                    nanos: 10_000
                }
            )
        );
        assert_eq!(snap[1].2.items, 7);
    }
}
