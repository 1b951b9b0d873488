// blake3: one level of the BLAKE3 tree of every record, one invocation per chunk slot
// (kernels/blake3_compress.wgsl is prepended). CPU twin: src/kernels/blake3.rs.
// A record of n chunks has ceil(n / 2^level) nodes at `level`, kept in `src` at its first
// chunk slot onward. Node j of the next level is the parent of nodes 2j and 2j+1, or node
// 2j carried up unchanged when it is the last of an odd count; this pairwise reduction
// builds BLAKE3's left-complete tree. The merge of a record's last two nodes is its root:
// flagged ROOT and written to `out`.

struct Params {
    base: u32,   // first chunk slot of this dispatch
    end: u32,    // one past the last chunk slot of this dispatch
    level: u32,  // level of the nodes in `src` (0: chunk chaining values)
    flags: u32,  // KEYED_HASH (16) or 0, on every compression
}

struct Key {
    words: array<vec4<u32>, 2>,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<uniform> key: Key;
@group(1) @binding(2) var<storage, read> recs: array<vec2<u32>>;
@group(1) @binding(3) var<storage, read> chunk_rec: array<u32>;
@group(1) @binding(4) var<storage, read> first_chunk: array<u32>;
@group(1) @binding(5) var<storage, read> src: array<vec4<u32>>;
@group(1) @binding(6) var<storage, read_write> dst: array<vec4<u32>>;
@group(1) @binding(7) var<storage, read_write> out: array<vec4<u32>>;

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
    let f = first_chunk[rec];
    let j = c - f;
    let n = chunk_count(recs[rec].y);
    let nodes = (n + (1u << params.level) - 1u) >> params.level;
    if (nodes < 2u || j >= (nodes + 1u) / 2u) {
        return;
    }
    let l = (f + 2u * j) * 2u;
    let left0 = src[l];
    let left1 = src[l + 1u];
    if (2u * j + 1u == nodes) {
        dst[(f + j) * 2u] = left0;
        dst[(f + j) * 2u + 1u] = left1;
        return;
    }
    let right0 = src[l + 2u];
    let right1 = src[l + 3u];
    let m = array<u32, 16>(
        left0.x, left0.y, left0.z, left0.w, left1.x, left1.y, left1.z, left1.w,
        right0.x, right0.y, right0.z, right0.w, right1.x, right1.y, right1.z, right1.w,
    );
    var flags = params.flags | PARENT;
    if (nodes == 2u) {
        flags = flags | ROOT;
    }
    let h = compress(key.words[0], key.words[1], m, 0u, 64u, flags);
    if (nodes == 2u) {
        out[rec * 2u] = h[0];
        out[rec * 2u + 1u] = h[1];
    } else {
        dst[(f + j) * 2u] = h[0];
        dst[(f + j) * 2u + 1u] = h[1];
    }
}
