// dir_sort_scan_params: the parameters of one exclusive prefix sum of two u32 lanes,
// shared by its three kernels (dir_sort_scan_reduce, dir_sort_scan_blocks,
// dir_sort_scan_apply; see dir_sort.wgsl), which the host runs with the same uniform.

struct Params {
    count: u32,
    blocks: u32,
    sub: u32,
    in0: u32,  // word offsets in `work` from here on
    in1: u32,
    out0: u32, // count + 1 words: the exclusive sums, then the total
    out1: u32,
    sums: u32, // 2 * blocks words
}
