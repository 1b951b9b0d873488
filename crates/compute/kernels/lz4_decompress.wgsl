// lz4_decompress: one workgroup per record decodes an LZ4 block into exactly the
// expected number of bytes, accepting what lz4_flex's safe decoder accepts, with the
// same error class.
//
// Invocation 0 parses the token stream (headers only) into a chunk of entries in
// workgroup memory: at most K entries and CH output bytes, a sequence longer than the
// room left being cut across chunks. Each sequence is checked like lz4_flex does, in
// the same order. Then every invocation fills up to five output words of the chunk, no
// two invocations the same word: a byte in a literal run comes from the input; a byte x
// in a match with offset off starting at ms comes from ms - off + (x - ms) % off,
// followed back through the chunk's entries until it lands in a literal or before the
// chunk (bytes of earlier chunks, final after the barrier). Each step goes to an
// earlier entry, so a byte takes at most K steps (nearly always one to three).
// A dispatch adds at most params.round_bytes per record and keeps the decoder state in
// `state`; the host dispatches until the largest record is done.
// On any error the record's output is zeroed and status says why:
//   status[rec] = (code, bytes decoded), code 0 ok, 1 malformed, 2 too long,
//   3 too short, 4 unfinished (too few dispatches; never on a correct host).
// Every load and store is checked against the record's own input or output range.
// CPU twin: src/kernels/lz4/cpu.rs (lz4_flex::block::decompress_into).

struct Params {
    // Records of this dispatch: first..first + count of the part.
    count: u32,
    // Output bytes each record may add in this dispatch (see main).
    round_bytes: u32,
    first: u32,
    pad: u32,
}

@group(1) @binding(0) var<uniform> params: Params;
@group(1) @binding(1) var<storage, read> data: array<u32>;
@group(1) @binding(2) var<storage, read> rmeta: array<vec2<u32>>;
@group(1) @binding(3) var<storage, read> out_meta: array<vec2<u32>>;
@group(1) @binding(4) var<storage, read_write> out: array<u32>;
@group(1) @binding(5) var<storage, read_write> status: array<vec2<u32>>;
// Decoder state of each record between dispatches, STATE words each.
@group(1) @binding(6) var<storage, read_write> state: array<u32>;

const K: u32 = 256u;
const STATE: u32 = 12u;
// Output bytes of a chunk: 16 per invocation.
const CH: u32 = 4096u;
const MORE: u32 = 0u;
const DONE: u32 = 1u;
const FAILED: u32 = 2u;
const MALFORMED: u32 = 1u;
const TOO_LONG: u32 = 2u;
const TOO_SHORT: u32 = 3u;

// Sequence k of the chunk: output start of its literals, literal count, input start of
// its literals, match offset (0: none). Its match runs to the next sequence's start.
var<workgroup> s_out: array<u32, K>;
var<workgroup> s_lit: array<u32, K>;
var<workgroup> s_src: array<u32, K>;
var<workgroup> s_off: array<u32, K>;
var<workgroup> s_ms: array<u32, K>;
var<workgroup> w_n: u32;
var<workgroup> w_a: u32;
var<workgroup> w_b: u32;
var<workgroup> w_flag: u32;

// Record under decode: input byte start and length, output byte start and length.
var<private> in_base: u32;
var<private> in_len: u32;
var<private> o_base: u32;
var<private> o_len: u32;

fn in_byte(p: u32) -> u32 {
    if (p >= in_len) {
        return 0u;
    }
    let b = in_base + p;
    return (data[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

fn out_byte(q: u32) -> u32 {
    if (q >= o_len) {
        return 0u;
    }
    let b = o_base + q;
    return (out[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// Output word w of the record (record-relative word index; o_base is 16-aligned).
fn out_word(w: u32) -> u32 {
    if (w >= (o_len + 3u) / 4u) {
        return 0u;
    }
    return out[(o_base >> 2u) + w];
}

fn store_word(w: u32, v: u32) {
    if (w < (o_len + 3u) / 4u) {
        out[(o_base >> 2u) + w] = v;
    }
}

// Parser state, used by invocation 0 only.
var<private> in_pos: u32;
var<private> out_pos: u32;
var<private> code: u32;

// Reads an LZ4 length extension (bytes added while 255); false when the input ends.
// The first byte is read outside the loop: software drivers (lavapipe) cap the loop
// iterations of an invocation, so the common paths avoid loops.
var<private> ext_value: u32;
fn read_ext() -> bool {
    if (in_pos >= in_len) {
        return false;
    }
    ext_value = in_byte(in_pos);
    in_pos = in_pos + 1u;
    if (ext_value != 255u) {
        return true;
    }
    loop {
        if (in_pos >= in_len) {
            return false;
        }
        let b = in_byte(in_pos);
        in_pos = in_pos + 1u;
        ext_value = ext_value + b;
        if (b != 255u) {
            return true;
        }
    }
    return true;
}

// Chunk being parsed: entries so far, MORE / DONE / FAILED, and where it must end.
var<private> p_n: u32;
var<private> p_flag: u32;
var<private> p_end: u32;
// The sequence being cut into entries: literals left and their input start, match
// bytes left, its offset and the output position where its match starts; whether it
// is the block's last (literals only). emit_pos: output position of the next entry.
var<private> pend_lit: u32;
var<private> pend_src: u32;
var<private> pend_match: u32;
var<private> pend_off: u32;
var<private> pend_ms: u32;
var<private> pend_last: bool;
var<private> emit_pos: u32;

fn fail(why: u32) -> bool {
    code = why;
    p_flag = FAILED;
    return false;
}

// Parses the next sequence into pend_*, with lz4_flex's checks in its order; false on
// an error. out_pos is the output length once the sequences parsed so far are written.
fn parse_sequence() -> bool {
    if (in_pos >= in_len) {
        return fail(MALFORMED);
    }
    let token = in_byte(in_pos);
    in_pos = in_pos + 1u;
    var lit = token >> 4u;
    if (lit == 15u) {
        if (!read_ext()) {
            return fail(MALFORMED);
        }
        lit = lit + ext_value;
    }
    if (lit > in_len - in_pos) {
        return fail(MALFORMED);
    }
    if (lit > o_len - out_pos) {
        return fail(TOO_LONG);
    }
    pend_lit = lit;
    pend_src = in_pos;
    pend_match = 0u;
    pend_off = 0u;
    in_pos = in_pos + lit;
    out_pos = out_pos + lit;
    pend_ms = out_pos;
    if (in_pos >= in_len) {
        pend_last = true;
        return true;
    }
    if (in_len - in_pos < 2u) {
        return fail(MALFORMED);
    }
    let off = in_byte(in_pos) | (in_byte(in_pos + 1u) << 8u);
    in_pos = in_pos + 2u;
    if (off == 0u) {
        return fail(MALFORMED);
    }
    var ml = 4u + (token & 15u);
    if ((token & 15u) == 15u) {
        if (!read_ext()) {
            return fail(MALFORMED);
        }
        ml = ml + ext_value;
    }
    if (ml > o_len - out_pos) {
        return fail(TOO_LONG);
    }
    if (off > out_pos) {
        return fail(MALFORMED);
    }
    pend_match = ml;
    pend_off = off;
    out_pos = out_pos + ml;
    return true;
}

// Adds one entry to the chunk: as much of the pending sequence as fits (parsing the
// next one when none is pending). False when the chunk is full or the block ends or
// fails.
fn emit_one() -> bool {
    if (p_n == K || emit_pos >= p_end) {
        return false;
    }
    if (pend_lit == 0u && pend_match == 0u) {
        if (pend_last) {
            p_flag = DONE;
            return false;
        }
        if (!parse_sequence()) {
            return false;
        }
    }
    let room = p_end - emit_pos;
    let l = min(pend_lit, room);
    var m = 0u;
    if (l == pend_lit) {
        m = min(pend_match, room - l);
    }
    let n = p_n;
    s_out[n] = emit_pos;
    s_lit[n] = l;
    s_src[n] = pend_src;
    s_off[n] = select(0u, pend_off, m > 0u);
    s_ms[n] = pend_ms;
    p_n = n + 1u;
    pend_lit = pend_lit - l;
    pend_src = pend_src + l;
    pend_match = pend_match - m;
    emit_pos = emit_pos + l + m;
    return true;
}

// Fills the chunk from emit_pos: at most K entries and CH output bytes (four entries
// per loop turn); sets w_n, w_a, w_b, w_flag.
fn parse_chunk() {
    let a = emit_pos;
    p_n = 0u;
    p_flag = MORE;
    p_end = a + CH;
    loop {
        if (!emit_one() || !emit_one() || !emit_one() || !emit_one()) {
            break;
        }
    }
    if (p_flag == MORE && pend_last && pend_lit == 0u) {
        p_flag = DONE;
    }
    if (p_flag == DONE && out_pos != o_len) {
        code = TOO_SHORT;
        p_flag = FAILED;
    }
    w_n = p_n;
    w_a = a;
    w_b = emit_pos;
    w_flag = p_flag;
}

// One step of the search for the last sequence starting at or before p.
fn lift(lo: u32, step: u32, n: u32, p: u32) -> u32 {
    let m = lo + step;
    if (m < n && s_out[m] <= p) {
        return m;
    }
    return lo;
}

// One step back from output byte p (a <= p < end of the chunk's n sequences):
// (1, byte) when found (before the chunk, or in a literal run), else (0, the earlier
// position the byte is a copy of).
fn back(p: u32, a: u32, n: u32) -> vec2<u32> {
    if (p < a) {
        return vec2<u32>(1u, out_byte(p));
    }
    // Last sequence starting at or before p (s_out[0] = a <= p), unrolled.
    var lo = 0u;
    lo = lift(lo, 128u, n, p);
    lo = lift(lo, 64u, n, p);
    lo = lift(lo, 32u, n, p);
    lo = lift(lo, 16u, n, p);
    lo = lift(lo, 8u, n, p);
    lo = lift(lo, 4u, n, p);
    lo = lift(lo, 2u, n, p);
    lo = lift(lo, 1u, n, p);
    let rel = p - s_out[lo];
    let lit = s_lit[lo];
    if (rel < lit) {
        return vec2<u32>(1u, in_byte(s_src[lo] + rel));
    }
    // A match byte x copies x - off; from the match start ms that is
    // ms - off + (x - ms) % off, before ms (and before this entry).
    let off = s_off[lo];
    let ms = s_ms[lo];
    let x = p;
    if (off == 0u || off > ms || x < ms) {
        return vec2<u32>(1u, 0u);
    }
    return vec2<u32>(0u, ms - off + (x - ms) % off);
}

// Byte q of the output, a <= q < end of the chunk's n sequences. Each step goes to an
// earlier sequence, so at most n + 1 steps; the first three are outside the loop.
fn resolve(q: u32, a: u32, n: u32) -> u32 {
    var r = back(q, a, n);
    if (r.x == 1u) {
        return r.y;
    }
    r = back(r.y, a, n);
    if (r.x == 1u) {
        return r.y;
    }
    r = back(r.y, a, n);
    if (r.x == 0u) {
        for (var step = 0u; step <= n && r.x == 0u; step = step + 1u) {
            r = back(r.y, a, n);
        }
    }
    return select(0u, r.y, r.x == 1u);
}

// Word v with its byte j replaced by output byte first + j when that is in [a, b).
fn merge(v: u32, first: u32, j: u32, a: u32, b: u32, n: u32) -> u32 {
    let q = first + j;
    if (q < a || q >= b) {
        return v;
    }
    let sh = j * 8u;
    return (v & ~(0xffu << sh)) | (resolve(q, a, n) << sh);
}

// Fills the output words that hold bytes [a, b) of the chunk: at most CH / 4 + 1
// words, so five per invocation, without a loop.
fn copy_chunk(li: u32) {
    let a = w_a;
    let b = w_b;
    let n = w_n;
    let w1 = (b + 3u) / 4u;
    let w = a / 4u + li;
    fill_word(w, w1, a, b, n);
    fill_word(w + WG, w1, a, b, n);
    fill_word(w + 2u * WG, w1, a, b, n);
    fill_word(w + 3u * WG, w1, a, b, n);
    fill_word(w + 4u * WG, w1, a, b, n);
}

// Writes output word w: its bytes in [a, b) resolved, the others kept.
fn fill_word(w: u32, w1: u32, a: u32, b: u32, n: u32) {
    if (w >= w1) {
        return;
    }
    let first = w * 4u;
    var v = 0u;
    if (first < a || first + 4u > b) {
        v = out_word(w);
    }
    v = merge(v, first, 0u, a, b, n);
    v = merge(v, first, 1u, a, b, n);
    v = merge(v, first, 2u, a, b, n);
    v = merge(v, first, 3u, a, b, n);
    store_word(w, v);
}

fn load_state(rec: u32) {
    let o = rec * STATE;
    in_pos = state[o];
    out_pos = state[o + 1u];
    code = state[o + 2u];
    emit_pos = state[o + 3u];
    pend_lit = state[o + 4u];
    pend_src = state[o + 5u];
    pend_match = state[o + 6u];
    pend_off = state[o + 7u];
    pend_ms = state[o + 8u];
    pend_last = state[o + 9u] != 0u;
}

fn save_state(rec: u32, finished: bool) {
    let o = rec * STATE;
    state[o] = in_pos;
    state[o + 1u] = out_pos;
    state[o + 2u] = code;
    state[o + 3u] = emit_pos;
    state[o + 4u] = pend_lit;
    state[o + 5u] = pend_src;
    state[o + 6u] = pend_match;
    state[o + 7u] = pend_off;
    state[o + 8u] = pend_ms;
    state[o + 9u] = select(0u, 1u, pend_last);
    state[o + 10u] = select(0u, 1u, finished);
}

// One dispatch adds at most params.round_bytes (plus one chunk) of output to each
// record and keeps the decoder state in `state`; the host dispatches until the largest
// record is done. Software drivers (lavapipe) cap the loop iterations of a workgroup,
// and one dispatch per 64 KiB keeps each well under the cap.
@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let g = group_index(wid, nwg);
    if (g >= params.count) {
        return;
    }
    let rec = params.first + g;
    in_base = rmeta[rec].x;
    in_len = rmeta[rec].y;
    o_base = out_meta[rec].x;
    o_len = out_meta[rec].y;
    if (li == 0u) {
        load_state(rec);
        w_flag = select(MORE, DONE, state[rec * STATE + 10u] != 0u);
    }
    if (workgroupUniformLoad(&w_flag) != MORE) {
        return;
    }
    let stop = emit_pos + params.round_bytes;
    loop {
        if (li == 0u) {
            if (emit_pos >= stop) {
                w_flag = DONE + FAILED;
            } else {
                parse_chunk();
            }
        }
        let flag = workgroupUniformLoad(&w_flag);
        if (flag == FAILED || flag == DONE + FAILED) {
            break;
        }
        copy_chunk(li);
        storageBarrier();
        workgroupBarrier();
        if (flag == DONE) {
            break;
        }
    }
    let last = workgroupUniformLoad(&w_flag);
    if (last == FAILED) {
        // Zero the whole record, four words per turn.
        let words = (o_len + 3u) / 4u;
        for (var w = li; w < words; w = w + 4u * WG) {
            store_word(w, 0u);
            store_word(w + WG, 0u);
            store_word(w + 2u * WG, 0u);
            store_word(w + 3u * WG, 0u);
        }
    }
    if (li == 0u) {
        let finished = last != DONE + FAILED;
        save_state(rec, finished);
        // Code 4 (unfinished) only shows if the host stopped dispatching too early.
        status[rec] = vec2<u32>(select(4u, code, finished), out_pos);
    }
}
