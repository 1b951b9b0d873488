// name_match: for every live directory entry, does its name match the program?
// One invocation per dirent; a match sets bit (id & 31) of hits[id >> 5].
// CPU twin: src/kernels/name_match.rs. Modes:
//   0 substring: prog[0..plen] = needle bytes (ASCII-lowercased when FOLD)
//   1 glob: prog[0..plen] = tokens (see GLOB_* below); classes are 8-word bitsets at
//     prog[class_base + 8 * k]
//   2 dfa: prog[class_base..+256] byte -> class, prog[trans_base + s * stride + c] next
//     state (c = stride - 1 is end of input), prog[flags_base + s] bit 0 match, bit 1 dead

struct Params {
    count: u32,       // dirents
    mode: u32,
    fold: u32,        // 1: ASCII case-insensitive
    plen: u32,        // needle bytes or glob tokens
    class_base: u32,
    trans_base: u32,
    flags_base: u32,
    stride: u32,
    start: u32,
    kinds: u32,       // bit k set: FileKind k wanted
    _pad0: u32,
    _pad1: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<storage, read> prog: array<u32>;
@group(1) @binding(2) var<storage, read_write> hits: array<atomic<u32>>;

const GLOB_LITERAL: u32 = 0u;
const GLOB_ANY: u32 = 1u;
const GLOB_STAR: u32 = 2u;
const GLOB_CLASS: u32 = 3u;
const NONE: u32 = 0xffffffffu;

fn fold(b: u32) -> u32 {
    if (params.fold == 1u && b >= 65u && b <= 90u) {
        return b + 32u;
    }
    return b;
}

fn substring(off: u32, len: u32) -> bool {
    let m = params.plen;
    if (m > len) {
        return false;
    }
    for (var s = 0u; s + m <= len; s = s + 1u) {
        var k = 0u;
        loop {
            if (k == m) {
                break;
            }
            if (fold(names_byte(off + s + k)) != prog[k]) {
                break;
            }
            k = k + 1u;
        }
        if (k == m) {
            return true;
        }
    }
    return false;
}

fn token_matches(tok: u32, b: u32) -> bool {
    let kind = tok >> 24u;
    if (kind == GLOB_ANY) {
        return true;
    }
    if (kind == GLOB_LITERAL) {
        return fold(b) == (tok & 0xffu);
    }
    // GLOB_CLASS: bit b of the class bitset (closed under case when folding).
    let base = params.class_base + (tok & 0xffffffu) * 8u;
    return ((prog[base + (b >> 5u)] >> (b & 31u)) & 1u) == 1u;
}

fn glob(off: u32, len: u32) -> bool {
    let plen = params.plen;
    var p = 0u;
    var n = 0u;
    var star_p = NONE;
    var star_n = 0u;
    loop {
        if (n >= len) {
            break;
        }
        if (p < plen) {
            let tok = prog[p];
            if ((tok >> 24u) == GLOB_STAR) {
                star_p = p;
                star_n = n;
                p = p + 1u;
                continue;
            }
            if (token_matches(tok, names_byte(off + n))) {
                p = p + 1u;
                n = n + 1u;
                continue;
            }
        }
        if (star_p != NONE) {
            p = star_p + 1u;
            star_n = star_n + 1u;
            n = star_n;
            continue;
        }
        return false;
    }
    loop {
        if (p >= plen || (prog[p] >> 24u) != GLOB_STAR) {
            break;
        }
        p = p + 1u;
    }
    return p == plen;
}

fn dfa(off: u32, len: u32) -> bool {
    var s = params.start;
    let stride = params.stride;
    for (var n = 0u; n < len; n = n + 1u) {
        let c = prog[params.class_base + names_byte(off + n)];
        s = prog[params.trans_base + s * stride + c];
        let f = prog[params.flags_base + s];
        if ((f & 1u) != 0u) {
            return true;
        }
        if ((f & 2u) != 0u) {
            return false;
        }
    }
    s = prog[params.trans_base + s * stride + stride - 1u];
    return (prog[params.flags_base + s] & 1u) != 0u;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let id = linear_index(wid, nwg, li);
    if (id >= params.count) {
        return;
    }
    let e = dirent_of(id);
    if (e.ino == 0u || ((params.kinds >> e.kind) & 1u) == 0u) {
        return;
    }
    let off = e.name_off;
    let len = e.name_len;
    var hit = false;
    switch (params.mode) {
        case 0u: { hit = substring(off, len); }
        case 1u: { hit = glob(off, len); }
        default: { hit = dfa(off, len); }
    }
    if (hit) {
        atomicOr(&hits[id >> 5u], 1u << (id & 31u));
    }
}
