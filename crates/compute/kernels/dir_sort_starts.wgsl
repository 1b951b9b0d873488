// dir_sort_starts: name rounds, prep step 2 (see dir_sort.wgsl). With segx the exclusive
// prefix sum of head, slot i lies in segment segx[i] + head[i] - 1; starts[s] = the first
// slot of segment s, and starts[segments] = count.

struct Params {
    count: u32,
    head: u32, // word offsets in `work` from here on
    segx: u32,
    starts: u32,
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    for (var i = linear_index(wid, nwg, li); i < params.count; i = i + grid_stride(nwg)) {
        let h = work[params.head + i];
        let s = work[params.segx + i] + h - 1u;
        if (h == 1u) {
            work[params.starts + s] = i;
        }
        if (i + 1u == params.count) {
            work[params.starts + s + 1u] = params.count;
        }
    }
}
