// dir_sort_radix_params: the parameters of one radix pass, shared by its three kernels
// (dir_sort_hist, dir_sort_digits, dir_sort_scatter; see dir_sort.wgsl), which the host
// runs with the same uniform.

struct Params {
    count: u32,  // values
    tiles: u32,  // tiles of sub * WG values
    sub: u32,
    shift: u32,  // digit = (key >> shift) & 255
    vals: u32,   // word offsets in `work` from here on: values read
    keys: u32,   // key words, indexed by value
    hist: u32,
    totals: u32, // per-digit totals (dir_sort_digits)
    out: u32,    // values written (dir_sort_scatter)
    global: u32, // 1: dir_sort_digits ran on one workgroup and hist holds final offsets
    _pad1: u32,
    _pad2: u32,
}
