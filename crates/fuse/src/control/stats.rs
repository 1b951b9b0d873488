//! `stats`: what the compute layer ran where and for how long, and the namespace's
//! size in memory, all in the header.

use std::io::Write;

use gpufs_compute::Compute;
use serde_json::{json, Value};

use super::request::header;
use super::Server;

pub(super) fn answer(
    server: &Server,
    compute: &Compute,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let kernels: Vec<Value> = compute
        .stats
        .snapshot()
        .into_iter()
        .map(|(k, b, t)| {
            json!({"kernel": k, "backend": b.to_string(), "calls": t.calls, "items": t.items,
                   "seconds": t.nanos as f64 / 1e9})
        })
        .collect();
    let (adapter, software) = adapter(compute);
    let c = server.fs.counters();
    header(
        out,
        &json!({"ok": true, "count": 0,
                "compute": {"choice": compute.choice().to_string(),
                            "adapter": adapter,
                            "software": software,
                            "kernels": kernels},
                "namespace_bytes": server.fs.namespace_bytes(),
                "counters": format!("{c:?}")}),
    )
}

/// The GPU adapter's name and whether it is a software one, if kernels may run on one.
#[cfg(feature = "gpu")]
fn adapter(compute: &Compute) -> (Option<String>, Option<bool>) {
    let gpu = compute.gpu();
    (gpu.map(|g| g.info.name.clone()), gpu.map(|g| g.software))
}

#[cfg(not(feature = "gpu"))]
fn adapter(_compute: &Compute) -> (Option<String>, Option<bool>) {
    (None, None)
}
