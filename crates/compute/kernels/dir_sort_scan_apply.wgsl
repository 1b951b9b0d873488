// dir_sort_scan_apply: exclusive prefix sum of two lanes, step 3 of 3 (see
// dir_sort.wgsl): each block scans its positions from its block offset; the position
// holding the last input also writes the totals to out0[count] and out1[count].
// Parameters: dir_sort_scan_params.wgsl.

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    for (var b = group_index(wid, nwg); b < params.blocks; b = b + group_count(nwg)) {
        var running = vec2<u32>(work[params.sums + 2u * b], work[params.sums + 2u * b + 1u]);
        for (var s = 0u; s < params.sub; s = s + 1u) {
            let first = (b * params.sub + s) * WG;
            if (first >= params.count) {
                break;
            }
            let i = first + li;
            var v = vec2<u32>(0u, 0u);
            if (i < params.count) {
                v = vec2<u32>(work[params.in0 + i], work[params.in1 + i]);
            }
            let incl = scan2_incl(li, v);
            if (i < params.count) {
                let ex = running + incl - v;
                work[params.out0 + i] = ex.x;
                work[params.out1 + i] = ex.y;
                if (i + 1u == params.count) {
                    work[params.out0 + params.count] = ex.x + v.x;
                    work[params.out1 + params.count] = ex.y + v.y;
                }
            }
            running = running + scan2_total();
        }
    }
}
