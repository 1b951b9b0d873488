// dir_sort_num: the size or mtime key of every position of the id list (see
// dir_sort.wgsl). The key is the inode's size (u64) or mtime_ns with the sign bit flipped
// (so i64 order is u64 order), both words inverted when descending; an id past the dirent
// table or an inode past the inode table has the key of size 0 / mtime 0. Also writes
// the identity permutation the radix passes start from.

struct Params {
    count: u32,   // positions
    mtime: u32,   // 0: size, 1: mtime
    desc: u32,    // 1: descending
    dirents: u32, // dirent records
    inodes: u32,  // inode records
    ids: u32,     // word offsets in `work` from here on
    kw_hi: u32,
    kw_lo: u32,
    vals: u32,
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
    for (var i = linear_index(wid, nwg, li); i < params.count; i = i + grid_stride(nwg)) {
        let id = work[params.ids + i];
        var hi = 0u;
        var lo = 0u;
        if (id < params.dirents) {
            let ino = dirents_at(id * 8u + 1u);
            if (ino < params.inodes) {
                // Words 4-5: size; 8-9: mtime_ns.
                let w = ino * 16u + 4u + params.mtime * 4u;
                lo = inodes_at(w);
                hi = inodes_at(w + 1u);
            }
        }
        if (params.mtime == 1u) {
            hi = hi ^ 0x80000000u;
        }
        if (params.desc == 1u) {
            hi = ~hi;
            lo = ~lo;
        }
        work[params.kw_hi + i] = hi;
        work[params.kw_lo + i] = lo;
        work[params.vals + i] = i;
    }
}
