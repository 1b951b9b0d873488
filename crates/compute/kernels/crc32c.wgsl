// crc32c: the CRC32C of each record from its block states (kernels/crc32c_blocks.wgsl),
// one invocation per record. CPU twin and the algebra: src/kernels/crc32c.rs. The host
// prepends SHIFT_BLOCK (x^(8 * BLOCK_BYTES) mod P) and UNSHIFT_0..UNSHIFT_15
// (x^(-8 * 2^k) mod P), reflected.
//
// The states of a record's blocks fold left to right (state * x^(8 * BLOCK_BYTES) ^ next)
// into the state after the record padded with zeros to whole blocks; multiplying by
// x^(-8 * pad) undoes the padding, and the xorout gives the CRC. An empty record has no
// blocks and CRC 0.

@group(1) @binding(1) var<storage, read> recs: array<vec2<u32>>;
@group(1) @binding(2) var<storage, read> first_block: array<u32>;
@group(1) @binding(3) var<storage, read> block_state: array<u32>;
@group(1) @binding(4) var<storage, read_write> out: array<u32>;

fn unshift(x: u32, bit: u32, pad: u32, c: u32) -> u32 {
    if (((pad >> bit) & 1u) != 0u) {
        return gf_mul(x, c);
    }
    return x;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let r = params.base + linear_index(wid, nwg, li);
    if (r >= params.end) {
        return;
    }
    let len = recs[r].y;
    if (len == 0u) {
        out[r] = 0u;
        return;
    }
    let nb = (len + BLOCK_BYTES - 1u) / BLOCK_BYTES;
    let f = first_block[r];
    var x = block_state[f];
    for (var b = 1u; b < nb; b = b + 1u) {
        x = gf_mul(x, SHIFT_BLOCK) ^ block_state[f + b];
    }
    let pad = nb * BLOCK_BYTES - len;
    x = unshift(x, 0u, pad, UNSHIFT_0);
    x = unshift(x, 1u, pad, UNSHIFT_1);
    x = unshift(x, 2u, pad, UNSHIFT_2);
    x = unshift(x, 3u, pad, UNSHIFT_3);
    x = unshift(x, 4u, pad, UNSHIFT_4);
    x = unshift(x, 5u, pad, UNSHIFT_5);
    x = unshift(x, 6u, pad, UNSHIFT_6);
    x = unshift(x, 7u, pad, UNSHIFT_7);
    x = unshift(x, 8u, pad, UNSHIFT_8);
    x = unshift(x, 9u, pad, UNSHIFT_9);
    x = unshift(x, 10u, pad, UNSHIFT_10);
    x = unshift(x, 11u, pad, UNSHIFT_11);
    x = unshift(x, 12u, pad, UNSHIFT_12);
    x = unshift(x, 13u, pad, UNSHIFT_13);
    x = unshift(x, 14u, pad, UNSHIFT_14);
    x = unshift(x, 15u, pad, UNSHIFT_15);
    out[r] = x ^ 0xffffffffu;
}
