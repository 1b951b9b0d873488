//! `stats`: what the compute layer ran where and for how long, and the namespace's
//! size in memory, all in the header.

use std::io::Write;

use gpufs_compute::Compute;
use gpufs_core::{RecordCounters, Totals};
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
                "records": records(&c.records),
                "dedup": dedup(server, &c.dedup),
                "counters": format!("{c:?}")}),
    )
}

/// How the records written since mount were stored: by algorithm, with their logical and
/// physical bytes and the ratio, and on which backend they were prepared.
fn records(r: &RecordCounters) -> Value {
    let one = |t: &Totals| {
        let ratio = if t.physical_bytes == 0 {
            Value::Null
        } else {
            json!(t.logical_bytes as f64 / t.physical_bytes as f64)
        };
        json!({"records": t.records, "logical_bytes": t.logical_bytes,
               "physical_bytes": t.physical_bytes, "ratio": ratio})
    };
    json!({"lz4": one(&r.lz4), "zstd": one(&r.zstd), "raw": one(&r.raw),
           "holes": one(&r.holes),
           "raw_because_sample_incompressible": r.skipped_by_sample,
           "raw_because_saving_too_small": r.not_worth,
           "backend": {"cpu": r.cpu_records, "gpu": r.gpu_records}})
}

/// What inline dedup did since mount, and the size of its table.
fn dedup(server: &Server, d: &gpufs_core::DedupCounters) -> Value {
    let (entries, bytes) = server.fs.dedup_table();
    let ratio = if d.lookups == 0 {
        Value::Null
    } else {
        json!(d.hits as f64 / d.lookups as f64)
    };
    json!({"lookups": d.lookups, "hits": d.hits, "hit_ratio": ratio,
           "bytes_saved": d.bytes_saved, "table_entries": entries, "table_bytes": bytes,
           "table_bytes_per_entry": if entries == 0 { Value::Null }
                                    else { json!(bytes as f64 / entries as f64) }})
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
