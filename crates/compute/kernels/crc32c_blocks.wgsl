// crc32c_blocks: the CRC32C state of each 64 KiB block of each record, one workgroup per
// block. CPU twin and the algebra: src/kernels/crc32c.rs. The host prepends the GF(2)
// constants TREE_0..TREE_7 (x^(8 * SLICE_BYTES * 2^k) mod P, reflected).
//
// Invocation li of block b of record r owns the SLICE_BYTES bytes at
// b * BLOCK_BYTES + li * SLICE_BYTES of the record, bytes past the record's end read as
// zero. It runs the reflected CRC (slicing by 4, tables built in workgroup memory) over
// them from state 0, or from !0 for the record's first slice (the init). The workgroup
// then folds its 256 states pairwise: left * x^(8 * len(right)) ^ right. The result is the
// CRC state after the whole padded block.

@group(1) @binding(1) var<storage, read> data: array<u32>;
@group(1) @binding(2) var<storage, read> recs: array<vec2<u32>>;
@group(1) @binding(3) var<storage, read> blocks: array<vec2<u32>>;
@group(1) @binding(4) var<storage, read_write> block_state: array<u32>;

const SLICE_WORDS: u32 = 64u;

// Tables 0..3 of slicing by 4, table k at [256k, 256k + 256).
var<workgroup> table: array<u32, 1024>;
var<workgroup> acc: array<u32, 256>;

// One level of the in-workgroup fold: lanes at multiples of 2*stride absorb their
// right neighbour, whose span is `stride` slices.
fn fold_level(li: u32, stride: u32, shift: u32) {
    if ((li & (2u * stride - 1u)) == 0u) {
        // Slices past the record's end hold state 0: nothing to shift.
        let left = acc[li];
        if (left != 0u) {
            acc[li] = gf_mul(left, shift) ^ acc[li + stride];
        } else {
            acc[li] = acc[li + stride];
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    var t = li;
    for (var k = 0u; k < 8u; k = k + 1u) {
        t = (t >> 1u) ^ (POLY & (0u - (t & 1u)));
    }
    table[li] = t;
    workgroupBarrier();
    for (var k = 1u; k < 4u; k = k + 1u) {
        let prev = table[(k - 1u) * 256u + li];
        table[k * 256u + li] = (prev >> 8u) ^ table[prev & 0xffu];
        workgroupBarrier();
    }

    let g = params.base + group_index(wid, nwg);
    var crc = 0u;
    if (g < params.end) {
        let rb = blocks[g];
        let m = recs[rb.x];
        let off = rb.y * BLOCK_BYTES + li * SLICE_BYTES;
        if (off < m.y) {
            if (off == 0u) {
                crc = 0xffffffffu;
            }
            let w0 = (m.x + off) >> 2u;
            let avail = m.y - off;
            for (var j = 0u; j < SLICE_WORDS; j = j + 1u) {
                let b = j * 4u;
                var w = 0u;
                if (b < avail) {
                    w = data[w0 + j];
                    let left = avail - b;
                    if (left < 4u) {
                        w = w & ((1u << (left * 8u)) - 1u);
                    }
                }
                crc = crc ^ w;
                crc = table[768u + (crc & 0xffu)] ^ table[512u + ((crc >> 8u) & 0xffu)]
                    ^ table[256u + ((crc >> 16u) & 0xffu)] ^ table[crc >> 24u];
            }
        }
    }
    acc[li] = crc;
    workgroupBarrier();
    fold_level(li, 1u, TREE_0);
    fold_level(li, 2u, TREE_1);
    fold_level(li, 4u, TREE_2);
    fold_level(li, 8u, TREE_3);
    fold_level(li, 16u, TREE_4);
    fold_level(li, 32u, TREE_5);
    fold_level(li, 64u, TREE_6);
    fold_level(li, 128u, TREE_7);
    if (li == 0u && g < params.end) {
        block_state[g] = acc[0];
    }
}
