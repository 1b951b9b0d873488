// dir_sort_back: name rounds, last step (see dir_sort.wgsl). The compacted entries,
// sorted, go back to the slots they were taken from, in order: order[slot[j]] =
// cp[sorted[j]] (the sort keeps every segment inside its own range of j).

struct Params {
    count: u32,  // compacted entries
    slot: u32,   // word offsets in `work` from here on
    cp: u32,
    sorted: u32,
    order: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    for (var j = linear_index(wid, nwg, li); j < params.count; j = j + grid_stride(nwg)) {
        work[params.order + work[params.slot + j]] = work[params.cp + work[params.sorted + j]];
    }
}
