// aes_xts: second pass of AES-XTS (IEEE 1619). One workgroup per sector; invocation k
// handles 16-byte blocks k, k + 256, ...: out = E(in ^ T_k) ^ T_k with
// T_k = tweaks[sector] * alpha^k (D instead of E when DECRYPT). A sector whose length is
// not a multiple of 16 leaves its last full block and the partial tail to one invocation,
// which does the ciphertext stealing of IEEE 1619 §5.3.2 (two cipher calls).
// Needs `const DECRYPT: bool` and aes_xts_common.wgsl before it.
// CPU twin: src/kernels/xts/mod.rs (xts_mode).

@group(1) @binding(3) var<storage, read> tweaks: array<vec4<u32>>;
@group(1) @binding(4) var<storage, read> data: array<u32>;
@group(1) @binding(5) var<storage, read_write> out: array<u32>;

fn cipher(b: vec4<u32>) -> vec4<u32> {
    return aes_block(b, DECRYPT);
}

fn load_block(w: u32) -> vec4<u32> {
    return vec4<u32>(data[w], data[w + 1u], data[w + 2u], data[w + 3u]);
}

fn store_block(w: u32, v: vec4<u32>) {
    out[w] = v.x;
    out[w + 1u] = v.y;
    out[w + 2u] = v.z;
    out[w + 3u] = v.w;
}

// Mask of the bytes of word i (bytes 4i..4i+3) that lie below byte r.
fn byte_mask(r: u32, i: u32) -> u32 {
    let n = min(r - min(r, 4u * i), 4u);
    if (n >= 4u) {
        return 0xffffffffu;
    }
    return (1u << (8u * n)) - 1u;
}

// Word i of the partial tail starting at word w (0 past its r bytes).
fn tail_word(w: u32, i: u32, r: u32) -> u32 {
    if (4u * i < r) {
        return data[w + i];
    }
    return 0u;
}

// The last full block (at word wl) and the r-byte tail after it, with tweaks T_{m-1}
// (before) and T_m (after).
fn steal(wl: u32, r: u32, before: vec4<u32>) {
    let after = mul_alpha_pow(before, 1u);
    // Encryption: CC = E(P_{m-1} ^ T_{m-1}); decryption: PP = D(C_{m-1} ^ T_m).
    let a = select(before, after, DECRYPT);
    let b = select(after, before, DECRYPT);
    let x = cipher(load_block(wl) ^ a) ^ a;
    let wt = wl + 4u;
    let m = vec4<u32>(byte_mask(r, 0u), byte_mask(r, 1u), byte_mask(r, 2u), byte_mask(r, 3u));
    let tail = vec4<u32>(tail_word(wt, 0u, r), tail_word(wt, 1u, r), tail_word(wt, 2u, r), tail_word(wt, 3u, r));
    let y = (tail & m) | (x & ~m);
    store_block(wl, cipher(y ^ b) ^ b);
    let head = x & m;
    for (var i = 0u; i < 4u; i = i + 1u) {
        if (4u * i < r) {
            out[wt + i] = head[i];
        }
    }
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    load_tables(params.table_base, li);
    workgroupBarrier();
    let g = params.first + group_index(wid, nwg);
    if (g >= params.end) {
        return;
    }
    let sec = sectors[g];
    let w0 = sec.x >> 2u;
    let nb = sec.y >> 4u;
    let r = sec.y & 15u;
    let plain = select(nb, nb - 1u, r != 0u);
    let t = tweaks[g];
    var tk = mul_alpha_pow(t, li);
    for (var k = li; k < plain; k = k + WG) {
        let w = w0 + 4u * k;
        store_block(w, cipher(load_block(w) ^ tk) ^ tk);
        tk = mul_alpha_pow(tk, WG);
    }
    if (r != 0u && li == (nb - 1u) % WG) {
        steal(w0 + 4u * (nb - 1u), r, mul_alpha_pow(t, nb - 1u));
    }
}
