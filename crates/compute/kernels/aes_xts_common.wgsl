// aes_xts_common: shared by aes_xts.wgsl and aes_xts_tweak.wgsl (prepended to both).
// AES-256 with T-tables on little-endian u32 columns: state column c is block bytes
// 4c..4c+3, row r at bits 8r. The round table of one direction (encryption:
// (2s, s, s, 3s) of the S-box; decryption: (14s, 9s, 13s, 11s) of the inverse S-box) is
// copied from `tables` into workgroup memory with its three rotations, with the S-box
// for the last round. Round keys (encryption schedule, or the equivalent inverse
// cipher's) come in params.rk. Host side: src/kernels/xts/tables.rs.

// The uniform of one round of dispatches (src/kernels/rounds.rs: base, end, two extra
// words), then the round keys.
struct Params {
    // First sector of this dispatch (its invocation or workgroup 0): a part's sectors
    // may take several dispatches.
    first: u32,
    // End (exclusive) of the sectors of this dispatch, numbered within the part.
    end: u32,
    // Word offset of the direction's tables in `tables`.
    table_base: u32,
    pad: u32,
    rk: array<vec4<u32>, 15>,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<storage, read> tables: array<u32>;
// Per sector: byte start in the part's data (a multiple of 16), length, sector number
// low and high words.
@group(1) @binding(2) var<storage, read> sectors: array<vec4<u32>>;

var<workgroup> T0: array<u32, 256>;
var<workgroup> T1: array<u32, 256>;
var<workgroup> T2: array<u32, 256>;
var<workgroup> T3: array<u32, 256>;
var<workgroup> SB: array<u32, 256>;

// Every invocation of a 256-wide workgroup calls this with its local index, then the
// workgroup waits at a barrier.
fn load_tables(base: u32, li: u32) {
    let t = tables[base + li];
    T0[li] = t;
    T1[li] = (t << 8u) | (t >> 24u);
    T2[li] = (t << 16u) | (t >> 16u);
    T3[li] = (t << 24u) | (t >> 8u);
    SB[li] = tables[base + 256u + li];
}

// Last-round byte gather: row r of the result from row r of column word r's argument.
fn sub4(a: u32, b: u32, c: u32, d: u32) -> u32 {
    return SB[a & 0xffu] | (SB[(b >> 8u) & 0xffu] << 8u) | (SB[(c >> 16u) & 0xffu] << 16u)
        | (SB[d >> 24u] << 24u);
}

// One column of a round: row r (bits 8r) from column word r's argument, through the
// T-table rotated by r.
fn column(a: u32, b: u32, c: u32, d: u32) -> u32 {
    return T0[a & 0xffu] ^ T1[(b >> 8u) & 0xffu] ^ T2[(c >> 16u) & 0xffu] ^ T3[d >> 24u];
}

// One block through the 14 rounds, with the tables of its direction loaded: encryption
// takes row r of column c from column c + r, decryption (the equivalent inverse cipher,
// its key schedule in params.rk) from column c - r. `decrypt` is a constant at every
// call, so the selects fold away.
fn aes_block(block: vec4<u32>, decrypt: bool) -> vec4<u32> {
    var s = block ^ params.rk[0];
    for (var r = 1u; r < 14u; r = r + 1u) {
        let b = select(s.yzwx, s.wxyz, decrypt);
        let c = s.zwxy;
        let d = select(s.wxyz, s.yzwx, decrypt);
        s = vec4<u32>(
            column(s.x, b.x, c.x, d.x),
            column(s.y, b.y, c.y, d.y),
            column(s.z, b.z, c.z, d.z),
            column(s.w, b.w, c.w, d.w),
        ) ^ params.rk[r];
    }
    // The last round: S-box bytes, no column mixing.
    let b = select(s.yzwx, s.wxyz, decrypt);
    let c = s.zwxy;
    let d = select(s.wxyz, s.yzwx, decrypt);
    return vec4<u32>(
        sub4(s.x, b.x, c.x, d.x),
        sub4(s.y, b.y, c.y, d.y),
        sub4(s.z, b.z, c.z, d.z),
        sub4(s.w, b.w, c.w, d.w),
    ) ^ params.rk[14];
}

// h * x^128 folded back: x^128 = x^7 + x^2 + x + 1 (h < 2^32, product < 2^39).
fn fold_high(v: vec4<u32>, h: u32) -> vec4<u32> {
    let lo = h ^ (h << 1u) ^ (h << 2u) ^ (h << 7u);
    let hi = (h >> 31u) ^ (h >> 30u) ^ (h >> 25u);
    return v ^ vec4<u32>(lo, hi, 0u, 0u);
}

// t * alpha^k in GF(2^128), t the little-endian 128-bit number of the tweak bytes (as
// IEEE 1619's multiplication by alpha, k times): whole words first, then the rest.
fn mul_alpha_pow(t: vec4<u32>, k: u32) -> vec4<u32> {
    var v = t;
    var n = k;
    while (n >= 32u) {
        v = fold_high(vec4<u32>(0u, v.x, v.y, v.z), v.w);
        n = n - 32u;
    }
    if (n > 0u) {
        let c = 32u - n;
        v = fold_high(
            vec4<u32>(v.x << n, (v.y << n) | (v.x >> c), (v.z << n) | (v.y >> c), (v.w << n) | (v.z >> c)),
            v.w >> c,
        );
    }
    return v;
}
