// dir_sort_scan_blocks: exclusive prefix sum of two lanes, step 2 of 3 (see
// dir_sort.wgsl): one workgroup turns the block sums into exclusive block offsets.
// Parameters: dir_sort_scan_params.wgsl.

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // Only the first workgroup works (a uniform condition: barriers stay legal).
    if (group_index(wid, nwg) == 0u) {
        var running = vec2<u32>(0u, 0u);
        for (var c = 0u; c < params.blocks; c = c + WG) {
            let b = c + li;
            var v = vec2<u32>(0u, 0u);
            if (b < params.blocks) {
                v = vec2<u32>(work[params.sums + 2u * b], work[params.sums + 2u * b + 1u]);
            }
            let incl = scan2_incl(li, v);
            if (b < params.blocks) {
                let ex = running + incl - v;
                work[params.sums + 2u * b] = ex.x;
                work[params.sums + 2u * b + 1u] = ex.y;
            }
            running = running + scan2_total();
        }
    }
}
