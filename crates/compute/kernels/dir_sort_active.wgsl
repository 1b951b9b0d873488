// dir_sort_active: name rounds, prep step 3 (see dir_sort.wgsl). act[i] = 1 when the
// segment of slot i takes part in the next round: it has two or more slots and (mode 0)
// a name longer than the sorted prefix (longx, the exclusive prefix sum of long, differs
// across the segment) or (mode 1, the length round) always. acth[i] = act[i] at segment
// heads. A slot in an idle segment whose name length differs from its neighbour's (only
// possible when a corrupt name holds a zero byte) sets flags[2], asking for the length
// round.

struct Params {
    count: u32,
    mode: u32, // 0: by name bytes; 1: by length
    head: u32, // word offsets in `work` from here on
    segx: u32,
    starts: u32,
    longx: u32,
    act: u32,
    acth: u32,
    order: u32,
    nlen: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(1) @binding(2) var<storage, read_write> flags: array<atomic<u32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    for (var i = linear_index(wid, nwg, li); i < params.count; i = i + grid_stride(nwg)) {
        let h = work[params.head + i];
        let s = work[params.segx + i] + h - 1u;
        let first = work[params.starts + s];
        let end = work[params.starts + s + 1u];
        var a = end - first >= 2u;
        if (params.mode == 0u) {
            a = a && work[params.longx + end] != work[params.longx + first];
        }
        work[params.act + i] = select(0u, 1u, a);
        work[params.acth + i] = select(0u, 1u, a && h == 1u);
        if (h == 0u && !a && params.mode == 0u) {
            let p = work[params.order + i];
            let q = work[params.order + i - 1u];
            if (work[params.nlen + p] != work[params.nlen + q]) {
                atomicOr(&flags[2], 1u);
            }
        }
    }
}
