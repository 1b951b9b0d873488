// crc32c_common: prepended to crc32c_blocks.wgsl and crc32c.wgsl, after the constants
// the host writes (POLY, SLICE_BYTES, BLOCK_BYTES and the fold multipliers; see
// src/kernels/crc32c/gpu.rs).

// The uniform of one round of dispatches (src/gpu/rounds.rs).
struct Params {
    base: u32,   // first index (record or workgroup number) of this dispatch
    end: u32,    // one past the last index of this dispatch
    _pad0: u32,
    _pad1: u32,
}

@group(1) @binding(0) var<uniform> params: Params;

// a * b mod P in the reflected representation (bit 31 is x^0).
fn gf_mul(a: u32, b_in: u32) -> u32 {
    var b = b_in;
    var p = 0u;
    for (var i = 0u; i < 32u; i = i + 1u) {
        p = p ^ select(0u, b, ((a >> (31u - i)) & 1u) != 0u);
        b = (b >> 1u) ^ (POLY & (0u - (b & 1u)));
    }
    return p;
}
