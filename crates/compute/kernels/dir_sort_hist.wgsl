// dir_sort_hist: radix pass step 1 of 3 (see dir_sort.wgsl). Each workgroup counts the
// 8-bit digits of its tiles: hist[digit * tiles + tile] = values of the tile whose key
// word, shifted right by `shift`, ends in that digit. Values are indices into the key
// array.
// Parameters: dir_sort_radix_params.wgsl.

var<workgroup> counts: array<atomic<u32>, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tile_size = params.sub * WG;
    for (var t = group_index(wid, nwg); t < params.tiles; t = t + group_count(nwg)) {
        atomicStore(&counts[li], 0u);
        workgroupBarrier();
        for (var s = 0u; s < params.sub; s = s + 1u) {
            let i = t * tile_size + s * WG + li;
            if (i < params.count) {
                let v = work[params.vals + i];
                let d = (work[params.keys + v] >> params.shift) & 255u;
                atomicAdd(&counts[d], 1u);
            }
        }
        workgroupBarrier();
        work[params.hist + li * params.tiles + t] = atomicLoad(&counts[li]);
        workgroupBarrier();
    }
}
