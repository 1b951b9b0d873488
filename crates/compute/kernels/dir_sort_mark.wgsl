// dir_sort_mark: name rounds, prep step 1 (see dir_sort.wgsl). With the positions sorted
// by their first `level` name bytes, head[i] = 1 where slot i starts a segment of equal
// prefixes: slot 0, a slot that already started one, or one whose last round's words
// (pw, by position) differ from the previous slot's. long[i] = 1 when the name at slot i
// is longer than `level` bytes.

struct Params {
    count: u32, // positions n
    level: u32, // name bytes sorted so far
    order: u32, // word offsets in `work` from here on: position at each slot
    head: u32,
    pw_hi: u32,
    pw_lo: u32,
    longs: u32,
    nlen: u32,
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    for (var i = linear_index(wid, nwg, li); i < params.count; i = i + grid_stride(nwg)) {
        let p = work[params.order + i];
        var h = work[params.head + i];
        if (i == 0u) {
            h = 1u;
        } else if (h == 0u) {
            let q = work[params.order + i - 1u];
            if (work[params.pw_hi + p] != work[params.pw_hi + q]
                || work[params.pw_lo + p] != work[params.pw_lo + q]) {
                h = 1u;
            }
        }
        work[params.head + i] = h;
        work[params.longs + i] = select(0u, 1u, work[params.nlen + p] > params.level);
    }
}
