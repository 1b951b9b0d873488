// dir_sort: the entries of one directory (a list of dirent ids) ordered by name (byte
// order, a proper prefix first), size or mtime, ascending or descending; ties keep their
// input order in both directions. CPU twin: src/kernels/dir_sort.rs. This file holds the
// name-key kernel; the other passes are the dir_sort_*.wgsl files named below.
//
// Everything is an LSD radix sort of positions 0..n-1 (into the id list) by 8-bit
// digits, least significant first. Each pass is stable, so the whole sort is stable and
// equals the CPU's stable sort exactly. One pass over m values (dir_sort_hist,
// dir_sort_digits, dir_sort_scatter):
//   hist     the values are cut into tiles of `sub` x 256; each workgroup counts the
//            digits of its tile into hist[digit * tiles + tile].
//   digits   per digit, an exclusive scan of its row over the tiles (tile offsets inside
//            the digit), and the digit's total; with few tiles one workgroup does all
//            rows and adds the digit bases too.
//   scatter  each workgroup scans the 256 totals (digit bases, unless already added)
//            and walks its tile in order, 256 values at a time: every value sets its bit
//            in a per-digit 256-bit mask in workgroup memory, and its rank is the popcount
//            of the bits below its own in its digit's mask, so values of one digit keep
//            their order.
// All arrays live in one `work` buffer at word offsets the host passes in the uniform.
//
// Keys (two 32-bit words hi:lo, compared as one u64; descending = both words inverted,
// which reverses the key order and leaves ties in input order):
//   size   the inode's size; mtime: mtime_ns with its sign bit flipped (i64 -> u64 order).
//   name   names are byte strings of 1..=255 bytes; the key of a round is 8 name bytes
//          big-endian, zero-padded past the name's end (a zero sorts below every byte, so
//          a proper prefix sorts first). Rounds refine the groups of equal prefixes:
//     round 0    (this kernel, mode 0) sorts all n positions by bytes 0..8.
//     prep at level L (bytes 0..L are sorted):
//       mark     (dir_sort_mark) head[i] = 1 where position i starts a run of equal
//                prefixes (the last round's words differ from its neighbour's, or it
//                already started one); long[i] = its name is longer than L bytes.
//       scan     (dir_sort_scan_*) prefix sums of head and long: segment numbers.
//       starts   (dir_sort_starts) each segment's first position.
//       active   (dir_sort_active) a segment needs another round when it has 2 or more
//                entries and a name longer than L bytes; act / acth mark its members /
//                its head. Scanned again: compacted slots and dense segment ranks.
//     round r    (this kernel, mode 1) compacts the active positions, keyed by (segment
//                rank, name bytes L..L+8); a radix sort of those (8 passes for the bytes
//                and 0-4 for the rank) keeps every segment inside its own slots, so
//                dir_sort_back writes them back to the slots they came from.
//     The host reads the active count after each prep and stops at zero (at most 32
//     rounds: a name has at most 255 bytes). Ties then are equal names, kept in input
//     order. Names hold no zero byte; should a corrupt arena have one, names equal up to
//     zero padding but of different lengths can share a segment: `active` flags that and
//     one last round (mode 2) orders such segments by length (shorter first, or last
//     when descending).
//
// Name bytes are read within the name arena as the mirror holds it (whole words); a dirent
// id past the table or a name range past the arena reads as the empty name, an inode past
// the table as size 0 / mtime 0. The CPU twin does the same.

struct Params {
    count: u32,      // positions to visit (mode 0: ids; 1, 2: sorted positions n)
    mode: u32,       // 0 round 0; 1 compact for a round at `level`; 2 compact by length
    desc: u32,       // 1: descending (key words inverted)
    dirents: u32,    // dirent records
    name_bytes: u32, // bytes of the name arena on the device
    level: u32,      // name bytes already sorted (mode 1)
    ids: u32,        // word offsets in `work` from here on
    nlen: u32,
    pw_hi: u32,
    pw_lo: u32,
    order: u32,
    actx: u32,
    rankx: u32,
    kw_hi: u32,
    kw_lo: u32,
    kw_rank: u32,
    slot: u32,
    cp: u32,
    vals: u32,
    _pad0: u32,
}

// A name as the sort sees it: arena byte offset and length (0 when out of range).
struct NameRef {
    off: u32,
    len: u32,
}

fn name_ref(id: u32) -> NameRef {
    var r = NameRef(0u, 0u);
    if (id < params.dirents) {
        let w = id * 8u;
        let len = dirents_at(w + 3u) & 0xffu;
        let off = dirents_at(w + 4u);
        let off_hi = dirents_at(w + 5u);
        if (off_hi == 0u && off <= params.name_bytes && len <= params.name_bytes - off) {
            r = NameRef(off, len);
        }
    }
    return r;
}

// Name bytes b..b+4 big-endian, 0 past the end.
fn name_word(n: NameRef, b: u32) -> u32 {
    var w = 0u;
    for (var k = 0u; k < 4u; k = k + 1u) {
        var byte = 0u;
        if (b + k < n.len) {
            byte = names_byte(n.off + b + k);
        }
        w = (w << 8u) | byte;
    }
    return w;
}

fn flip(w: u32) -> u32 {
    if (params.desc == 1u) {
        return ~w;
    }
    return w;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    for (var i = linear_index(wid, nwg, li); i < params.count; i = i + grid_stride(nwg)) {
        if (params.mode == 0u) {
            // Round 0: position i, all of them, by bytes 0..8.
            let n = name_ref(work[params.ids + i]);
            let hi = flip(name_word(n, 0u));
            let lo = flip(name_word(n, 4u));
            work[params.nlen + i] = n.len;
            work[params.kw_hi + i] = hi;
            work[params.kw_lo + i] = lo;
            work[params.pw_hi + i] = hi;
            work[params.pw_lo + i] = lo;
            work[params.vals + i] = i;
            continue;
        }
        // Slot i of the sorted order: compact it when its segment is active.
        let j = work[params.actx + i];
        if (work[params.actx + i + 1u] == j) {
            continue;
        }
        let p = work[params.order + i];
        let head = work[params.rankx + i + 1u] - work[params.rankx + i];
        work[params.slot + j] = i;
        work[params.cp + j] = p;
        work[params.vals + j] = j;
        work[params.kw_rank + j] = work[params.rankx + i] + head - 1u;
        if (params.mode == 1u) {
            let n = name_ref(work[params.ids + p]);
            let hi = flip(name_word(n, params.level));
            let lo = flip(name_word(n, params.level + 4u));
            work[params.kw_hi + j] = hi;
            work[params.kw_lo + j] = lo;
            work[params.pw_hi + p] = hi;
            work[params.pw_lo + p] = lo;
        } else {
            let len = work[params.nlen + p];
            var k = len;
            if (params.desc == 1u) {
                k = 255u - len;
            }
            work[params.kw_hi + j] = k;
            work[params.kw_lo + j] = 0u;
        }
    }
}
