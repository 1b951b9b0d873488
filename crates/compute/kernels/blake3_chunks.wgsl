// blake3_chunks: the chaining value of every 1 KiB chunk of every record, one invocation
// per chunk (kernels/blake3_compress.wgsl is prepended). CPU twin: src/kernels/blake3.rs.
// Chunk j of a record compresses its 64-byte blocks (the last one short, an empty
// record's only chunk one empty block) from the key words, counter j, CHUNK_START on the
// first block and CHUNK_END on the last. A record of one chunk is finished here: its last
// block also carries ROOT and its output goes straight to `out`; the others leave their
// chaining value in `cv` at the chunk's slot for kernels/blake3.wgsl.

struct Params {
    base: u32,   // first chunk slot of this dispatch
    end: u32,    // one past the last chunk slot of this dispatch
    level: u32,  // unused here
    flags: u32,  // KEYED_HASH (16) or 0, on every compression
}

struct Key {
    words: array<vec4<u32>, 2>,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<uniform> key: Key;
@group(1) @binding(2) var<storage, read> data: array<u32>;
@group(1) @binding(3) var<storage, read> recs: array<vec2<u32>>;
@group(1) @binding(4) var<storage, read> chunk_rec: array<u32>;
@group(1) @binding(5) var<storage, read> first_chunk: array<u32>;
@group(1) @binding(6) var<storage, read_write> cv: array<vec4<u32>>;
@group(1) @binding(7) var<storage, read_write> out: array<vec4<u32>>;

// Word k of the block at byte `at` of a chunk of `chunk_len` bytes starting at word
// `wbase`, bytes past the chunk zero.
fn word(wbase: u32, at: u32, k: u32, chunk_len: u32) -> u32 {
    let b = at + k * 4u;
    if (b >= chunk_len) {
        return 0u;
    }
    let w = data[wbase + (b >> 2u)];
    let left = chunk_len - b;
    if (left < 4u) {
        return w & ((1u << (left * 8u)) - 1u);
    }
    return w;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let c = params.base + linear_index(wid, nwg, li);
    if (c >= params.end) {
        return;
    }
    let rec = chunk_rec[c];
    let j = c - first_chunk[rec];
    let r = recs[rec];
    let n = chunk_count(r.y);
    let off = j * 1024u;
    let chunk_len = min(1024u, r.y - off);
    let blocks = max(1u, (chunk_len + 63u) / 64u);
    let wbase = (r.x + off) >> 2u;
    var h = key.words;
    for (var i = 0u; i < blocks; i = i + 1u) {
        let at = i * 64u;
        let m = array<u32, 16>(
            word(wbase, at, 0u, chunk_len), word(wbase, at, 1u, chunk_len),
            word(wbase, at, 2u, chunk_len), word(wbase, at, 3u, chunk_len),
            word(wbase, at, 4u, chunk_len), word(wbase, at, 5u, chunk_len),
            word(wbase, at, 6u, chunk_len), word(wbase, at, 7u, chunk_len),
            word(wbase, at, 8u, chunk_len), word(wbase, at, 9u, chunk_len),
            word(wbase, at, 10u, chunk_len), word(wbase, at, 11u, chunk_len),
            word(wbase, at, 12u, chunk_len), word(wbase, at, 13u, chunk_len),
            word(wbase, at, 14u, chunk_len), word(wbase, at, 15u, chunk_len),
        );
        var flags = params.flags;
        if (i == 0u) {
            flags = flags | CHUNK_START;
        }
        if (i + 1u == blocks) {
            flags = flags | CHUNK_END;
            if (n == 1u) {
                flags = flags | ROOT;
            }
        }
        h = compress(h[0], h[1], m, j, min(64u, chunk_len - at), flags);
    }
    if (n == 1u) {
        out[rec * 2u] = h[0];
        out[rec * 2u + 1u] = h[1];
    } else {
        cv[c * 2u] = h[0];
        cv[c * 2u + 1u] = h[1];
    }
}
