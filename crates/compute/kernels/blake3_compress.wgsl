// blake3_compress: the BLAKE3 compression function, shared by kernels/blake3_chunks.wgsl
// and kernels/blake3.wgsl (prepended to both). The 16-word state is four rows of
// vec4<u32>; a round mixes the columns, rotates rows 1..3 so the diagonals line up as
// columns, mixes again and rotates back. Every array index is a constant.

const IV_LO: vec4<u32> = vec4<u32>(0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au);

const CHUNK_START: u32 = 1u;
const CHUNK_END: u32 = 2u;
const PARENT: u32 = 4u;
const ROOT: u32 = 8u;

struct Rows {
    a: vec4<u32>,
    b: vec4<u32>,
    c: vec4<u32>,
    d: vec4<u32>,
}

fn rotr(x: vec4<u32>, n: u32) -> vec4<u32> {
    return (x >> vec4<u32>(n)) | (x << vec4<u32>(32u - n));
}

// The G function on four columns at once, with message words mx (first) and my.
fn mix(s: Rows, mx: vec4<u32>, my: vec4<u32>) -> Rows {
    var r = s;
    r.a = r.a + r.b + mx;
    r.d = rotr(r.d ^ r.a, 16u);
    r.c = r.c + r.d;
    r.b = rotr(r.b ^ r.c, 12u);
    r.a = r.a + r.b + my;
    r.d = rotr(r.d ^ r.a, 8u);
    r.c = r.c + r.d;
    r.b = rotr(r.b ^ r.c, 7u);
    return r;
}

// The first 8 output words (the chaining value, or the hash under ROOT) of compressing
// block `m_in` into chaining value (cv0, cv1).
fn compress(
    cv0: vec4<u32>,
    cv1: vec4<u32>,
    m_in: array<u32, 16>,
    counter: u32,
    block_len: u32,
    flags: u32,
) -> array<vec4<u32>, 2> {
    var s = Rows(cv0, cv1, IV_LO, vec4<u32>(counter, 0u, block_len, flags));
    var m = m_in;
    for (var r = 0u; r < 7u; r = r + 1u) {
        s = mix(s, vec4<u32>(m[0], m[2], m[4], m[6]), vec4<u32>(m[1], m[3], m[5], m[7]));
        s.b = s.b.yzwx;
        s.c = s.c.zwxy;
        s.d = s.d.wxyz;
        s = mix(s, vec4<u32>(m[8], m[10], m[12], m[14]), vec4<u32>(m[9], m[11], m[13], m[15]));
        s.b = s.b.wxyz;
        s.c = s.c.zwxy;
        s.d = s.d.yzwx;
        m = array<u32, 16>(
            m[2], m[6], m[3], m[10], m[7], m[0], m[4], m[13],
            m[1], m[11], m[12], m[5], m[9], m[14], m[15], m[8],
        );
    }
    return array<vec4<u32>, 2>(s.a ^ s.c, s.b ^ s.d);
}

// Chunks of record `len` bytes long (an empty record is one empty chunk).
fn chunk_count(len: u32) -> u32 {
    return max(1u, (len + 1023u) / 1024u);
}
