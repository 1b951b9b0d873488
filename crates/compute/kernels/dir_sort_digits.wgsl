// dir_sort_digits: radix pass step 2 of 3 (see dir_sort.wgsl). Turns the tile counts
// hist[digit * tiles + tile] into offsets, in place:
//   global = 1 (few tiles): one workgroup, invocation d walks row d; the offsets are
//     final (digit base + the digit's values in earlier tiles), no barrier per tile.
//   global = 0: a workgroup per digit scans its row 256 tiles at a time; the offsets are
//     within the digit, totals[digit] the digit's total (dir_sort_scatter adds the bases).
// Parameters: dir_sort_radix_params.wgsl.

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    if (params.global == 1u) {
        if (group_index(wid, nwg) == 0u) {
            let row = params.hist + li * params.tiles;
            var total = 0u;
            for (var t = 0u; t < params.tiles; t = t + 1u) {
                total = total + work[row + t];
            }
            var at = scan_incl(li, total) - total;
            for (var t = 0u; t < params.tiles; t = t + 1u) {
                let v = work[row + t];
                work[row + t] = at;
                at = at + v;
            }
        }
        return;
    }
    for (var d = group_index(wid, nwg); d < 256u; d = d + group_count(nwg)) {
        let row = params.hist + d * params.tiles;
        var running = 0u;
        for (var c = 0u; c < params.tiles; c = c + WG) {
            let t = c + li;
            var v = 0u;
            if (t < params.tiles) {
                v = work[row + t];
            }
            let incl = scan_incl(li, v);
            if (t < params.tiles) {
                work[row + t] = running + incl - v;
            }
            running = running + scan_total();
        }
        if (li == 0u) {
            work[params.totals + d] = running;
        }
    }
}
