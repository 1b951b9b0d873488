// dir_sort_grid: prepended to every dir_sort kernel (see dir_sort.wgsl): the two
// bindings they all have (each kernel declares its own `Params`) and the grid helpers.
// Every dir_sort kernel loops over its items or tiles with a stride of the whole grid,
// so it is correct for any grid the host dispatches (1-D, 2-D, or fewer groups than
// items when the device caps the workgroups per dimension).

@group(1) @binding(0) var<uniform> params: Params;  // the kernel's own
@group(1) @binding(1) var<storage, read_write> work: array<u32>;

// `group_index(wid, nwg)`, this workgroup's index in the (possibly 2-D) grid, comes
// from the prelude every kernel starts with.

// Workgroups in the grid.
fn group_count(nwg: vec3<u32>) -> u32 {
    return nwg.x * nwg.y;
}

// Invocations in the grid: the stride of an element loop that starts at linear_index.
fn grid_stride(nwg: vec3<u32>) -> u32 {
    return nwg.x * nwg.y * WG;
}
