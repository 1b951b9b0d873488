// path_lookup: N paths -> inode numbers, by hashing (parent, name) with the format's
// name_hash (FNV-1a 64 folded to 32 bits, emulated here in u32 pairs) and probing the
// same flat open-addressing index the CPU lookup uses (src/index.rs).
// Components are separated by '/'; empty ones and "." are skipped, ".." goes to the
// parent (the root's parent is the root). Every component but the last must be a
// directory; symlinks are not followed. Not found: 0.
// CPU twin: src/kernels/path_lookup.rs.

struct Params {
    count: u32,
    dirent_count: u32,
    index_slots: u32,
    dir_entry_count: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<storage, read> paths: array<u32>;
@group(1) @binding(2) var<storage, read> spans: array<u32>; // (start, len) per path
@group(1) @binding(3) var<storage, read_write> found: array<u32>;

const ROOT: u32 = 1u;
const EMPTY: u32 = 0xffffffffu;
const TOMBSTONE: u32 = 0xfffffffeu;
const NO_ENTRY: u32 = 0xffffffffu;
const KIND_DIR: u32 = 2u;
const NAME_MAX: u32 = 255u;

fn path_byte(b: u32) -> u32 {
    return (paths[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// FNV-1a 64 step on (hi, lo): xor the byte, multiply by 0x100000001b3.
fn fnv_step(h: vec2<u32>, b: u32) -> vec2<u32> {
    let lo = h.y ^ b;
    let hi = h.x;
    let t1 = (lo & 0xffffu) * 0x1b3u;
    let t2 = (lo >> 16u) * 0x1b3u;
    let low = t1 + (t2 << 16u);
    let carry = select(0u, 1u, low < t1);
    let high = hi * 0x1b3u + (t2 >> 16u) + carry + (lo << 8u);
    return vec2<u32>(high, low);
}

fn name_hash(parent: u32, start: u32, len: u32) -> u32 {
    var h = vec2<u32>(0xcbf29ce4u, 0x84222325u);
    for (var k = 0u; k < 4u; k = k + 1u) {
        h = fnv_step(h, (parent >> (k * 8u)) & 0xffu);
    }
    for (var k = 0u; k < len; k = k + 1u) {
        h = fnv_step(h, path_byte(start + k));
    }
    return h.x ^ h.y;
}

fn fmix32(x: u32) -> u32 {
    var h = x;
    h = h ^ (h >> 16u);
    h = h * 0x85ebca6bu;
    h = h ^ (h >> 13u);
    h = h * 0xc2b2ae35u;
    h = h ^ (h >> 16u);
    return h;
}

fn same_name(e: u32, start: u32, len: u32) -> bool {
    let w = e * 8u;
    if ((dirents_at(w + 3u) & 0xffu) != len) {
        return false;
    }
    let off = dirents_at(w + 4u);
    for (var k = 0u; k < len; k = k + 1u) {
        if (names_byte(off + k) != path_byte(start + k)) {
            return false;
        }
    }
    return true;
}

// The live entry named (parent, name), or EMPTY.
fn lookup(parent: u32, start: u32, len: u32) -> u32 {
    if (params.index_slots == 0u) {
        return EMPTY;
    }
    let h = name_hash(parent, start, len);
    let mask = params.index_slots - 1u;
    var slot = fmix32(h) & mask;
    for (var probes = 0u; probes < params.index_slots; probes = probes + 1u) {
        let id = index_at(slot);
        if (id == EMPTY) {
            return EMPTY;
        }
        if (id != TOMBSTONE && id < params.dirent_count) {
            let w = id * 8u;
            if (dirents_at(w + 2u) == h && dirents_at(w) == parent && dirents_at(w + 1u) != 0u
                && same_name(id, start, len)) {
                return id;
            }
        }
        slot = (slot + 1u) & mask;
    }
    return EMPTY;
}

fn parent_of(dir: u32) -> u32 {
    if (dir == ROOT || dir >= params.dir_entry_count) {
        return ROOT;
    }
    let e = dir_entry_at(dir);
    if (e == NO_ENTRY || e >= params.dirent_count) {
        return ROOT;
    }
    return dirents_at(e * 8u);
}

fn resolve(start: u32, len: u32) -> u32 {
    var cur = ROOT;
    var is_dir = true;
    var pos = start;
    let end = start + len;
    loop {
        // Skip slashes.
        loop {
            if (pos >= end || path_byte(pos) != 47u) {
                break;
            }
            pos = pos + 1u;
        }
        if (pos >= end) {
            break;
        }
        var stop = pos;
        loop {
            if (stop >= end || path_byte(stop) == 47u) {
                break;
            }
            stop = stop + 1u;
        }
        let n = stop - pos;
        if (!is_dir) {
            return 0u;
        }
        if (n == 1u && path_byte(pos) == 46u) {
            // "."
        } else if (n == 2u && path_byte(pos) == 46u && path_byte(pos + 1u) == 46u) {
            cur = parent_of(cur);
        } else {
            if (n > NAME_MAX) {
                return 0u;
            }
            let e = lookup(cur, pos, n);
            if (e == EMPTY) {
                return 0u;
            }
            let w = e * 8u;
            cur = dirents_at(w + 1u);
            is_dir = ((dirents_at(w + 3u) >> 8u) & 0xffu) == KIND_DIR;
        }
        pos = stop;
    }
    return cur;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = linear_index(wid, nwg, li);
    if (i >= params.count) {
        return;
    }
    found[i] = resolve(spans[i * 2u], spans[i * 2u + 1u]);
}
