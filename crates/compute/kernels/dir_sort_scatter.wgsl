// dir_sort_scatter: radix pass step 3 of 3 (see dir_sort.wgsl). Each workgroup moves the
// values of its tiles to out[digit base + tile offset + rank], where the rank of a value
// among the values of its digit before it in the tile is computed in order, 256 values at
// a time, from per-digit bit masks in workgroup memory: the pass is stable.
// Parameters: dir_sort_radix_params.wgsl.

// run[d]: where the next value of digit d goes.
var<workgroup> run: array<u32, 256>;
// bits[d * 8 + w]: bit b set when invocation 32 * w + b holds a value of digit d.
var<workgroup> bits: array<atomic<u32>, 2048>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // Digit bases: exclusive scan of the totals (invocation li = digit li), unless
    // dir_sort_digits already added them.
    var digit_base = 0u;
    if (params.global == 0u) {
        let total = work[params.totals + li];
        digit_base = scan_incl(li, total) - total;
    }
    let tile_size = params.sub * WG;
    let word = li >> 5u;
    let below = (1u << (li & 31u)) - 1u;
    for (var t = group_index(wid, nwg); t < params.tiles; t = t + group_count(nwg)) {
        workgroupBarrier();
        run[li] = digit_base + work[params.hist + li * params.tiles + t];
        workgroupBarrier();
        for (var s = 0u; s < params.sub; s = s + 1u) {
            let first = t * tile_size + s * WG;
            if (first >= params.count) {
                break;
            }
            let i = first + li;
            let valid = i < params.count;
            var v = 0u;
            var d = 0u;
            if (valid) {
                v = work[params.vals + i];
                d = (work[params.keys + v] >> params.shift) & 255u;
                atomicOr(&bits[d * 8u + word], 1u << (li & 31u));
            }
            workgroupBarrier();
            if (valid) {
                var rank = run[d];
                for (var k = 0u; k < word; k = k + 1u) {
                    rank = rank + countOneBits(atomicLoad(&bits[d * 8u + k]));
                }
                rank = rank + countOneBits(atomicLoad(&bits[d * 8u + word]) & below);
                work[params.out + rank] = v;
            }
            workgroupBarrier();
            // Invocation li owns digit li: advance its run and clear its mask.
            var seen = 0u;
            for (var k = 0u; k < 8u; k = k + 1u) {
                seen = seen + countOneBits(atomicLoad(&bits[li * 8u + k]));
                atomicStore(&bits[li * 8u + k], 0u);
            }
            run[li] = run[li] + seen;
            workgroupBarrier();
        }
    }
}
