// dir_sort_scan_reduce: exclusive prefix sum of two u32 lanes over `count` positions,
// step 1 of 3 (see dir_sort.wgsl): the sum of each block of sub * WG positions, both
// lanes, to sums[2 * block + lane].
// Parameters: dir_sort_scan_params.wgsl.

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    for (var b = group_index(wid, nwg); b < params.blocks; b = b + group_count(nwg)) {
        var acc = vec2<u32>(0u, 0u);
        for (var s = 0u; s < params.sub; s = s + 1u) {
            let i = (b * params.sub + s) * WG + li;
            if (i < params.count) {
                acc = acc + vec2<u32>(work[params.in0 + i], work[params.in1 + i]);
            }
        }
        _ = scan2_incl(li, acc);
        if (li == 0u) {
            let total = scan2_total();
            work[params.sums + 2u * b] = total.x;
            work[params.sums + 2u * b + 1u] = total.y;
        }
    }
}
