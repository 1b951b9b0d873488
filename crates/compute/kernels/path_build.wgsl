// path_build: full paths of a set of entries, by walking parent chains.
// Phase "lengths" (params.phase == 0): lens[i] = bytes of the path of entry ids[i]
//   ("/" + names joined by "/"), or 0 when the chain does not reach the root within
//   MAX_DEPTH steps or meets a missing or dead entry.
// Phase "write" (params.phase == 1): writes each path at out byte offsets[i] (relative to
//   the batch), packing bytes into zeroed words with atomicOr, from the last byte back.
// CPU twin: src/kernels/path_build.rs.

struct Params {
    count: u32,
    phase: u32,
    dirent_count: u32,
    dir_entry_count: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<storage, read> ids: array<u32>;
@group(1) @binding(2) var<storage, read_write> lens: array<u32>;
@group(1) @binding(3) var<storage, read> offsets: array<u32>;
@group(1) @binding(4) var<storage, read_write> out: array<atomic<u32>>;

const ROOT: u32 = 1u;
const NO_ENTRY: u32 = 0xffffffffu;
const MAX_DEPTH: u32 = 4096u;

fn entry_of_dir(ino: u32) -> u32 {
    if (ino >= params.dir_entry_count) {
        return NO_ENTRY;
    }
    let e = dir_entry_at(ino);
    if (e >= params.dirent_count) {
        return NO_ENTRY;
    }
    return e;
}

// Path length of entry e, 0 when unreachable.
fn path_len(first: u32) -> u32 {
    var e = first;
    var total = 0u;
    for (var depth = 0u; depth < MAX_DEPTH; depth = depth + 1u) {
        if (e >= params.dirent_count) {
            return 0u;
        }
        let w = e * 8u;
        if (dirents_at(w + 1u) == 0u) {
            return 0u;
        }
        total = total + (dirents_at(w + 3u) & 0xffu) + 1u;
        let parent = dirents_at(w);
        if (parent == ROOT) {
            return total;
        }
        e = entry_of_dir(parent);
    }
    return 0u;
}

fn put_byte(pos: u32, b: u32) {
    atomicOr(&out[pos >> 2u], b << ((pos & 3u) * 8u));
}

fn write_path(first: u32, start: u32, len: u32) {
    var pos = start + len;
    var e = first;
    for (var depth = 0u; depth < MAX_DEPTH; depth = depth + 1u) {
        let w = e * 8u;
        let n = dirents_at(w + 3u) & 0xffu;
        let off = dirents_at(w + 4u);
        pos = pos - n;
        for (var k = 0u; k < n; k = k + 1u) {
            put_byte(pos + k, names_byte(off + k));
        }
        pos = pos - 1u;
        put_byte(pos, 47u); // '/'
        let parent = dirents_at(w);
        if (parent == ROOT || pos <= start) {
            return;
        }
        e = entry_of_dir(parent);
    }
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
    if (params.phase == 0u) {
        lens[i] = path_len(ids[i]);
    } else {
        let len = lens[i];
        if (len != 0u) {
            write_path(ids[i], offsets[i], len);
        }
    }
}
