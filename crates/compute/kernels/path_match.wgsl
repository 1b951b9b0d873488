// path_match: for every live directory entry, does its full path match? The CPU has
// already run every directory's path through the query's DFA; looks[parent] says what
// the entries of a directory need: 0 nothing matches, 1 everything matches, 2 names
// starting with the tail (prog[tail_base..+tail_len], ASCII case ignored when FOLD),
// s + 3: "/" + name run from premultiplied DFA state s. A match sets bit (id & 31) of
// hits[id >> 5]. CPU twin: PathMatcher::cpu in src/kernels/path_match.rs.
//   prog[0..256] byte -> class; prog[trans_base + s + c] next state (s premultiplied by
//   stride, c = stride - 1 is end of input); states from special_from on are match or
//   dead states, prog[match_base + s / stride] 1 for a match state.

struct Params {
    count: u32,        // dirents
    looks_len: u32,
    stride: u32,
    special_from: u32,
    trans_base: u32,
    match_base: u32,
    tail_base: u32,
    tail_len: u32,
    fold: u32,
    kinds: u32,        // bit k set: FileKind k wanted
    _pad0: u32,
    _pad1: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<storage, read> prog: array<u32>;
@group(1) @binding(2) var<storage, read> looks: array<u32>;
@group(1) @binding(3) var<storage, read_write> hits: array<atomic<u32>>;

fn lower(b: u32) -> u32 {
    if (params.fold == 1u && b >= 65u && b <= 90u) {
        return b + 32u;
    }
    return b;
}

fn is_match_state(s: u32) -> bool {
    return prog[params.match_base + s / params.stride] != 0u;
}

// "/" + the name from state `start`; a match or dead state ends the run.
fn run(start: u32, off: u32, len: u32) -> bool {
    var s = prog[params.trans_base + start + prog[47u]];
    if (s >= params.special_from) {
        return is_match_state(s);
    }
    for (var n = 0u; n < len; n = n + 1u) {
        s = prog[params.trans_base + s + prog[names_byte(off + n)]];
        if (s >= params.special_from) {
            return is_match_state(s);
        }
    }
    s = prog[params.trans_base + s + params.stride - 1u];
    return s >= params.special_from && is_match_state(s);
}

fn starts_with_tail(off: u32, len: u32) -> bool {
    if (params.tail_len > len) {
        return false;
    }
    for (var k = 0u; k < params.tail_len; k = k + 1u) {
        if (lower(names_byte(off + k)) != lower(prog[params.tail_base + k])) {
            return false;
        }
    }
    return true;
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
    if (e.ino == 0u || ((params.kinds >> e.kind) & 1u) == 0u || e.parent >= params.looks_len) {
        return;
    }
    let look = looks[e.parent];
    let off = e.name_off;
    let len = e.name_len;
    var hit = false;
    switch (look) {
        case 0u: { hit = false; }
        case 1u: { hit = true; }
        case 2u: { hit = starts_with_tail(off, len); }
        default: { hit = run(look - 3u, off, len); }
    }
    if (hit) {
        atomicOr(&hits[id >> 5u], 1u << (id & 31u));
    }
}
