// aes_xts_tweak: first pass of AES-XTS. One invocation per sector (data unit):
// tweaks[i] = E_Key2(sector number of sector i as 16 little-endian bytes).
// Needs aes_xts_common.wgsl before it. CPU twin: src/kernels/xts/mod.rs.

@group(1) @binding(3) var<storage, read_write> tweaks: array<vec4<u32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    load_tables(params.table_base, li);
    workgroupBarrier();
    let i = params.first + linear_index(wid, nwg, li);
    if (i >= params.end) {
        return;
    }
    let s = sectors[i];
    tweaks[i] = aes_block(vec4<u32>(s.z, s.w, 0u, 0u), false);
}
