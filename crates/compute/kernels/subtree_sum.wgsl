// subtree_sum: for every directory, the totals of its subtree (what `du` computes).
// CPU twin and semantics: src/kernels/subtree_sum.rs. One source, four pipelines; the
// host prepends `const PHASE: u32 = k;` and `const MAX_DEPTH: u32 = ...;`.
//   0 claim  (per dirent): claim[ino] = max(claim[ino], ~key); key = id for a directory
//            entry, id | 1<<31 for any other, so the lowest key wins and directory
//            entries beat the rest. claim 0: no live entry names the inode.
//   1 depth  (per inode): bounded walk to the root. depth[ino] = depth + 1 for a
//            reachable directory, else 0; hist[depth] += 1 below the root.
//   2 leaves (per inode): a reachable directory adds itself to its own totals and is
//            placed in `order` (hist now holds each depth's first slot); a counted
//            non-directory adds itself into its parent's totals.
//   3 level  (per directory of one depth, order[start..start+count]): adds its complete
//            totals into its parent's. Run for depth = max..1.
// acc[ino * 6 ..]: bytes lo, bytes hi, allocated lo, allocated hi, files, dirs.

struct Params {
    dirents: u32,     // entries
    inodes: u32,      // inode table length
    allocs: u32,      // entries of the allocated array (u64 each)
    start: u32,       // phase 3: first slot of this depth in `order`
    count: u32,       // phase 3: directories at this depth
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<storage, read_write> claim: array<atomic<u32>>;
@group(1) @binding(2) var<storage, read_write> depth: array<u32>;
@group(1) @binding(3) var<storage, read_write> hist: array<atomic<u32>>;
@group(1) @binding(4) var<storage, read_write> order: array<u32>;
@group(1) @binding(5) var<storage, read_write> acc: array<atomic<u32>>;

const ROOT: u32 = 1u;
const DIR_KIND: u32 = 2u;
const FILE_BIT: u32 = 0x80000000u;

// The entry naming directory `ino`, or FILE_BIT when `ino` is not a directory (claim 0:
// unnamed; claim below FILE_BIT: named by a non-directory entry).
fn naming_entry(ino: u32) -> u32 {
    let c = atomicLoad(&claim[ino]);
    if (c < FILE_BIT) {
        return FILE_BIT;
    }
    return ~c;
}

fn parent_of(e: u32) -> u32 {
    return dirents_at(e * 8u);
}

// 64-bit add as two words: the low add's overflow carries into the high word.
fn add64(i: u32, lo: u32, hi: u32) {
    let old = atomicAdd(&acc[i], lo);
    let carry = select(0u, 1u, old + lo < old);
    let h = hi + carry;
    if (h != 0u) {
        atomicAdd(&acc[i + 1u], h);
    }
}

// Adds one inode's own size and allocated bytes, and the counts, into `dst`'s totals.
fn add_inode(dst: u32, ino: u32, files: u32, dirs: u32) {
    let b = dst * 6u;
    add64(b, inodes_at(ino * 16u + 4u), inodes_at(ino * 16u + 5u));
    if (ino < params.allocs) {
        add64(b + 2u, allocated_at(ino * 2u), allocated_at(ino * 2u + 1u));
    }
    if (files != 0u) {
        atomicAdd(&acc[b + 4u], files);
    }
    if (dirs != 0u) {
        atomicAdd(&acc[b + 5u], dirs);
    }
}

fn claim_phase(e: u32) {
    if (e >= params.dirents) {
        return;
    }
    let ino = dirents_at(e * 8u + 1u);
    if (ino == 0u || ino >= params.inodes || ino == ROOT) {
        return;
    }
    let kind = (dirents_at(e * 8u + 3u) >> 8u) & 0xffu;
    var key = e | FILE_BIT;
    if (kind == DIR_KIND) {
        key = e;
    }
    atomicMax(&claim[ino], ~key);
}

fn depth_phase(ino: u32) {
    if (ino >= params.inodes) {
        return;
    }
    var cur = ino;
    var steps = 0u;
    var reached = false;
    loop {
        if (cur == ROOT) {
            reached = true;
            break;
        }
        if (steps == MAX_DEPTH) {
            break;
        }
        let e = naming_entry(cur);
        if (e == FILE_BIT) {
            break;
        }
        let p = parent_of(e);
        if (p >= params.inodes) {
            break;
        }
        cur = p;
        steps = steps + 1u;
    }
    if (reached) {
        depth[ino] = steps + 1u;
        if (steps != 0u) {
            atomicAdd(&hist[steps], 1u);
        }
    } else {
        depth[ino] = 0u;
    }
}

fn leaves_phase(ino: u32) {
    if (ino >= params.inodes) {
        return;
    }
    let d = depth[ino];
    if (d != 0u) {
        add_inode(ino, ino, 0u, 1u);
        if (d >= 2u) {
            let slot = atomicAdd(&hist[d - 1u], 1u);
            order[slot] = ino;
        }
        return;
    }
    let c = atomicLoad(&claim[ino]);
    if (c == 0u || c >= FILE_BIT) {
        // Unnamed, or an unreachable directory.
        return;
    }
    let e = ~c & ~FILE_BIT;
    let p = parent_of(e);
    if (p < params.inodes && depth[p] != 0u) {
        add_inode(p, ino, 1u, 0u);
    }
}

fn level_phase(i: u32) {
    if (i >= params.count) {
        return;
    }
    let ino = order[params.start + i];
    let p = parent_of(naming_entry(ino));
    let s = ino * 6u;
    let t = p * 6u;
    add64(t, atomicLoad(&acc[s]), atomicLoad(&acc[s + 1u]));
    add64(t + 2u, atomicLoad(&acc[s + 2u]), atomicLoad(&acc[s + 3u]));
    atomicAdd(&acc[t + 4u], atomicLoad(&acc[s + 4u]));
    atomicAdd(&acc[t + 5u], atomicLoad(&acc[s + 5u]));
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let id = linear_index(wid, nwg, li);
    switch (PHASE) {
        case 0u: { claim_phase(id); }
        case 1u: { depth_phase(id); }
        case 2u: { leaves_phase(id); }
        default: { level_phase(id); }
    }
}
