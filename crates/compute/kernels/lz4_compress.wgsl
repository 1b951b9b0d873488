// lz4_compress: LZ4 block compression of records, cut into SEG-byte segments that one
// invocation each compresses with a private hash table, matching only inside the
// segment. The blocks follow the LZ4 end rules: every match starts at least 12 bytes
// before the record's end and ends at least 5 bytes before it.
//
// In the block only the last sequence may lack a match, so a segment's trailing
// literals (bytes after its last match, or all its bytes when it has none) are carried
// into the first sequence of the next segment that has a match, or into the record's
// final literal-only sequence.
// Phase 0 (per segment): run the match finder, record (has a match, literals before
//   the first match, trailing literals, bytes of all sequences but the first one's
//   token + literal length + literals) in info[2s].
// Phase 1 (per record): walk the record's segments: carry-in literals, output offset
//   and where its trailing literals go (inside the next sequence that takes them) of
//   each segment in info[2s+1]; block length in rec_out (0 when the block would not be
//   shorter than the record).
// Phase 2 (per segment, shrunk records only): run the same match finder again and
//   write the segment's sequences at its offset (the first one's header counts the
//   carried literals, which the segments holding them write), then its trailing
//   literals where phase 1 said; the last segment writes the final literal sequence.
//   So no invocation writes more than about one segment of bytes. Words at the edges
//   of a run of bytes are shared with other invocations and written with atomicOr into
//   the zeroed output; inner words with atomicStore. Every store is checked against
//   the record's block length.
// CPU twin: src/kernels/lz4/cpu.rs (lz4_flex, whose blocks differ but decode the same).

struct Params {
    // Items (segments or records) of this dispatch: first..first + count.
    count: u32,
    phase: u32,
    first: u32,
    pad: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<storage, read> data: array<u32>;
@group(1) @binding(2) var<storage, read> rmeta: array<vec2<u32>>;
@group(1) @binding(3) var<storage, read> segs: array<vec2<u32>>;
@group(1) @binding(4) var<storage, read> rec_seg: array<u32>;
@group(1) @binding(5) var<storage, read_write> info: array<vec4<u32>>;
@group(1) @binding(6) var<storage, read_write> rec_out: array<u32>;
@group(1) @binding(7) var<storage, read_write> out: array<atomic<u32>>;

const SEG: u32 = 4096u;
const HASH_BITS: u32 = 10u;
const MINMATCH: u32 = 4u;
const MFLIMIT: u32 = 12u;
const LAST_LITERALS: u32 = 5u;

// Record under work: byte start and length of its input (and of its output room).
var<private> base: u32;
var<private> len: u32;

// Input byte p of the record (0 past its end).
fn byte_at(p: u32) -> u32 {
    if (p >= len) {
        return 0u;
    }
    let b = base + p;
    return (data[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// Four input bytes from p, little-endian; the caller keeps p + 4 <= len, so both words
// read hold record bytes.
fn read4(p: u32) -> u32 {
    if (p + 4u > len) {
        return 0u;
    }
    let b = base + p;
    let sh = (b & 3u) * 8u;
    let lo = data[b >> 2u];
    if (sh == 0u) {
        return lo;
    }
    return (lo >> sh) | (data[(b >> 2u) + 1u] << (32u - sh));
}

fn hash4(v: u32) -> u32 {
    return (v * 2654435761u) >> (32u - HASH_BITS);
}

// Extra bytes an LZ4 length field of value n takes after its nibble.
fn ext_bytes(n: u32) -> u32 {
    if (n < 15u) {
        return 0u;
    }
    return (n - 15u) / 255u + 1u;
}

// Token + length extension + literal bytes of a sequence with `lit` literals.
fn head_bytes(lit: u32) -> u32 {
    return 1u + ext_bytes(lit) + lit;
}

// Output writer (phase 2): next byte position in the block, the word being filled and
// its bytes, the first word of the current run of bytes (shared with whoever writes the
// bytes before it), and the block length (no store at or past it).
var<private> w_pos: u32;
var<private> w_word: u32;
var<private> w_val: u32;
var<private> w_first: u32;
var<private> w_dirty: bool;
var<private> w_limit: u32;

// Stores the word being filled: with atomicOr when others may write bytes of it (first
// word of a run, or `edge`), else with atomicStore (all its bytes are ours).
fn flush(edge: bool) {
    if (!w_dirty || w_word * 4u >= w_limit) {
        return;
    }
    let wi = (base >> 2u) + w_word;
    if (edge || w_word == w_first) {
        atomicOr(&out[wi], w_val);
    } else {
        atomicStore(&out[wi], w_val);
    }
    w_dirty = false;
}

// Ends the current run of bytes and goes on at block byte `pos`.
fn seek(pos: u32) {
    flush(true);
    w_pos = pos;
    w_word = pos >> 2u;
    w_first = w_word;
    w_val = 0u;
    w_dirty = false;
}

fn put(b: u32) {
    if (w_pos >= w_limit) {
        return;
    }
    let w = w_pos >> 2u;
    if (w != w_word) {
        flush(false);
        w_word = w;
        w_val = 0u;
    }
    w_val = w_val | (b << ((w_pos & 3u) * 8u));
    w_dirty = true;
    w_pos = w_pos + 1u;
}

fn put_ext(n: u32) {
    if (n < 15u) {
        return;
    }
    var r = n - 15u;
    loop {
        if (r < 255u) {
            break;
        }
        put(255u);
        r = r - 255u;
    }
    put(r);
}

fn put_literals(src: u32, lit: u32) {
    for (var i = 0u; i < lit; i = i + 1u) {
        put(byte_at(src + i));
    }
}

// Token and literal length of a sequence of `lit` literals and match length `ml` + 4.
fn put_head(lit: u32, ml: u32) {
    put((min(lit, 15u) << 4u) | min(ml, 15u));
    put_ext(lit);
}

// Sizing results of one segment (phase 0).
var<private> has_match: u32;
var<private> lit0: u32;
var<private> rest: u32;

// Runs the match finder over segment [s0, s1). `writing`: emit the sequences, the first
// one with `carry` literals more before its own (bytes written by the segments they
// belong to); otherwise size them. Returns where the trailing literals start.
fn find_matches(s0: u32, s1: u32, carry: u32, writing: bool) -> u32 {
    var table: array<u32, 1024>;
    var p = s0;
    var anchor = s0;
    var misses = 0u;
    has_match = 0u;
    lit0 = 0u;
    rest = 0u;
    // Last byte a match may end before: inside the segment and 5 bytes before the end.
    var end_lim = s1;
    if (len >= LAST_LITERALS) {
        end_lim = min(s1, len - LAST_LITERALS);
    }
    loop {
        if (p + MINMATCH > s1 || p + MFLIMIT > len) {
            break;
        }
        let v = read4(p);
        let h = hash4(v);
        let c = s0 + table[h];
        table[h] = p - s0;
        if (c < p && read4(c) == v) {
            // p + 12 <= len and p + 4 <= s1, so the match may run at least 4 bytes.
            let lim = end_lim - p;
            var l = MINMATCH;
            loop {
                if (l + 4u > lim || read4(c + l) != read4(p + l)) {
                    break;
                }
                l = l + 4u;
            }
            loop {
                if (l >= lim || byte_at(c + l) != byte_at(p + l)) {
                    break;
                }
                l = l + 1u;
            }
            let lit = p - anchor;
            let off = p - c;
            let ml = l - MINMATCH;
            if (writing) {
                if (has_match == 0u) {
                    put_head(carry + lit, ml);
                    seek(w_pos + carry);
                } else {
                    put_head(lit, ml);
                }
                put_literals(anchor, lit);
                put(off & 0xffu);
                put(off >> 8u);
                put_ext(ml);
            } else if (has_match == 0u) {
                lit0 = lit;
                rest = rest + 2u + ext_bytes(ml);
            } else {
                rest = rest + head_bytes(lit) + 2u + ext_bytes(ml);
            }
            has_match = 1u;
            p = p + l;
            anchor = p;
            misses = 0u;
        } else {
            misses = misses + 1u;
            p = p + 1u + (misses >> 6u);
        }
    }
    return anchor;
}

// Segment k of record rec: byte range [s0, s1).
fn seg_range(k: u32) -> vec2<u32> {
    let s0 = k * SEG;
    return vec2<u32>(s0, min(s0 + SEG, len));
}

fn size_segment(s: u32) {
    let rec = segs[s].x;
    base = rmeta[rec].x;
    len = rmeta[rec].y;
    let r = seg_range(segs[s].y);
    let anchor = find_matches(r.x, r.y, 0u, false);
    info[2u * s] = vec4<u32>(has_match, lit0, r.y - anchor, rest);
}

fn plan_record(rec: u32) {
    len = rmeta[rec].y;
    let nseg = (len + SEG - 1u) / SEG;
    let first = rec_seg[rec];
    var carry = 0u;
    var off = 0u;
    // First segment whose trailing literals belong to the literal run being carried.
    var run_first = 0u;
    for (var k = 0u; k < nseg; k = k + 1u) {
        let s = first + k;
        let i = info[2u * s];
        info[2u * s + 1u] = vec4<u32>(carry, off, 0u, 0u);
        let r = seg_range(k);
        let last = k + 1u == nseg;
        if (i.x != 0u || last) {
            // This segment's first sequence (or the final literal run) takes the carried
            // literals: tell their segments where their bytes go.
            var lit = carry + i.y;
            if (i.x == 0u) {
                lit = carry + (r.y - r.x);
            }
            let dest = off + 1u + ext_bytes(lit);
            let run_in = r.x - carry;
            for (var j = run_first; j < k; j = j + 1u) {
                let tail = seg_range(j).y - info[2u * (first + j)].z;
                info[2u * (first + j) + 1u].z = dest + (tail - run_in);
            }
        }
        var size = 0u;
        if (i.x != 0u) {
            size = i.w + head_bytes(carry + i.y);
            carry = i.z;
            run_first = k;
        } else {
            carry = carry + (r.y - r.x);
        }
        if (last) {
            size = size + head_bytes(carry);
        }
        off = off + size;
    }
    rec_out[rec] = select(0u, off, off < len);
}

fn write_segment(s: u32) {
    let rec = segs[s].x;
    let k = segs[s].y;
    let block = rec_out[rec];
    if (block == 0u) {
        return;
    }
    base = rmeta[rec].x;
    len = rmeta[rec].y;
    let plan = info[2u * s + 1u];
    let carry = plan.x;
    let r = seg_range(k);
    w_limit = block;
    w_dirty = false;
    seek(plan.y);
    let anchor = find_matches(r.x, r.y, carry, true);
    if ((k + 1u) * SEG >= len) {
        if (has_match != 0u) {
            let lit = r.y - anchor;
            put_head(lit, 0u);
            put_literals(anchor, lit);
        } else {
            put_head(carry + (r.y - r.x), 0u);
            seek(w_pos + carry);
            put_literals(r.x, r.y - r.x);
        }
    } else if (anchor < r.y) {
        // Trailing literals, into the next sequence that takes them.
        seek(plan.z);
        put_literals(anchor, r.y - anchor);
    }
    flush(true);
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let g = linear_index(wid, nwg, li);
    if (g >= params.count) {
        return;
    }
    let i = params.first + g;
    if (params.phase == 0u) {
        size_segment(i);
    } else if (params.phase == 1u) {
        plan_record(i);
    } else {
        write_segment(i);
    }
}
