//! The GPU side of the directory sort: an exact stable LSD radix sort of positions over
//! the dir_sort*.wgsl kernels, whose algorithm is described at the top of
//! kernels/dir_sort.wgsl. Every array of one sort lives in one `work` buffer.

use super::{SortKey, NAME};
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{arrays_group, ChunkedArray, GpuContext, Slot, WORKGROUP};
use crate::mirror::NamespaceMirror;

/// The GPU kernels over the mirror: the same ids in the same order as [`super::cpu`].
pub fn gpu(
    ctx: &GpuContext,
    mirror: &NamespaceMirror,
    ids: &[u32],
    key: SortKey,
    descending: bool,
) -> ComputeResult<Vec<u32>> {
    if ids.len() < 2 {
        return Ok(ids.to_vec());
    }
    let n = u32::try_from(ids.len())
        .map_err(|_| ComputeError::TooLarge(format!("{} entries to sort", ids.len())))?;
    let sorter = Sorter::new(ctx, mirror, n, key == SortKey::Name)?;
    ctx.queue.write_buffer(
        &sorter.work,
        word(sorter.lay.ids),
        bytemuck::cast_slice(ids),
    );
    let result = match key {
        SortKey::Name => sorter.names(descending),
        SortKey::Size | SortKey::Mtime => sorter.numbers(key == SortKey::Mtime, descending),
    }
    .and_then(|enc| sorter.read_order(enc));
    sorter.release();
    result?
        .iter()
        .map(|&p| {
            ids.get(p as usize)
                .copied()
                .ok_or_else(|| ComputeError::Device(format!("{NAME}: position {p} out of range")))
        })
        .collect()
}

/// One dir_sort entry point: its compile name, source (grid helpers prepended), the
/// namespace arrays it reads, and whether it binds the flags buffer as binding 2.
struct Spec {
    name: &'static str,
    src: &'static str,
    arrays: &'static [&'static str],
    flags: bool,
}

/// The [`Spec`] of kernel `$name` (kernels/`$name`.wgsl), with the grid prelude (the
/// shared bindings and grid helpers) and, after each `+`, a helper file prepended.
macro_rules! spec {
    ($name:literal $(+ $lib:literal)*, $arrays:expr, $flags:expr) => {
        Spec {
            name: $name,
            src: concat!(
                include_str!("../../../kernels/dir_sort_grid.wgsl"),
                $(include_str!(concat!("../../../kernels/", $lib, ".wgsl")),)*
                include_str!(concat!("../../../kernels/", $name, ".wgsl")),
            ),
            arrays: $arrays,
            flags: $flags,
        }
    };
}

const NAMES: Spec = spec!("dir_sort", &["dirents", "names"], false);
const NUMBERS: Spec = spec!("dir_sort_num", &["dirents", "inodes"], false);
const HIST: Spec = spec!("dir_sort_hist" + "dir_sort_radix_params", &[], false);
const DIGITS: Spec = spec!(
    "dir_sort_digits" + "dir_sort_radix_params" + "dir_sort_scan",
    &[],
    false
);
const SCATTER: Spec = spec!(
    "dir_sort_scatter" + "dir_sort_radix_params" + "dir_sort_scan",
    &[],
    false
);
const SCAN_REDUCE: Spec = spec!(
    "dir_sort_scan_reduce" + "dir_sort_scan_params" + "dir_sort_scan",
    &[],
    false
);
const SCAN_BLOCKS: Spec = spec!(
    "dir_sort_scan_blocks" + "dir_sort_scan_params" + "dir_sort_scan",
    &[],
    false
);
const SCAN_APPLY: Spec = spec!(
    "dir_sort_scan_apply" + "dir_sort_scan_params" + "dir_sort_scan",
    &[],
    false
);
const MARK: Spec = spec!("dir_sort_mark", &[], false);
const STARTS: Spec = spec!("dir_sort_starts", &[], false);
const ACTIVE: Spec = spec!("dir_sort_active", &[], true);
const BACK: Spec = spec!("dir_sort_back", &[], false);

/// Radix passes over at most this many tiles scan the tile counts on one workgroup.
const SERIAL_TILES: u32 = 64;

/// Most name rounds: 32 of 8 bytes cover 255-byte names, one more orders by length.
const MAX_ROUNDS: usize = 40;

/// Byte offset of word `w`.
fn word(w: u32) -> u64 {
    u64::from(w) * 4
}

/// Little-endian words of read-back bytes.
fn words_of(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The 8 digits of a two-word key (hi:lo), least significant first.
fn key_digits(hi: u32, lo: u32) -> Vec<(u32, u32)> {
    [lo, hi]
        .iter()
        .flat_map(|&k| (0..4).map(move |b| (k, 8 * b)))
        .collect()
}

/// Bytes a segment rank below `segments` needs.
fn rank_bytes(segments: u32) -> u32 {
    if segments <= 1 {
        0
    } else {
        (32 - (segments - 1).leading_zeros()).div_ceil(8)
    }
}

/// Word offsets of the arrays in the work buffer; `n` words each unless said otherwise.
/// `pw_*`, `nlen` are by position in the id list, `order` .. `rankx` by slot of the
/// sorted order, `kw_*`, `slot`, `cp`, `va`, `vb` by compacted entry.
#[derive(Debug, Default)]
struct Layout {
    ids: u32,
    order: u32,
    kw_hi: u32,
    kw_lo: u32,
    va: u32,
    hist: u32,   // 256 * ceil(n / 256): the most tiles a pass has
    totals: u32, // 256
    // Name sorts only:
    nlen: u32,
    pw_hi: u32,
    pw_lo: u32,
    head: u32,
    longs: u32,
    segx: u32,   // n + 1 (exclusive sums, then the total)
    longx: u32,  // n + 1
    starts: u32, // n + 1
    act: u32,
    acth: u32,
    actx: u32,  // n + 1
    rankx: u32, // n + 1
    kw_rank: u32,
    slot: u32,
    cp: u32,
    vb: u32,
    sums: u32, // 2 * ceil(n / 256): block sums of a scan
    words: u64,
}

impl Layout {
    fn new(n: u32, names: bool, max_binding: u64) -> ComputeResult<Layout> {
        let n = u64::from(n);
        let tiles = n.div_ceil(u64::from(WORKGROUP));
        let mut next = 0u64;
        // `words` words (none when unused), cache-line aligned. The casts are exact once
        // the whole layout is known to fit one binding (checked below).
        let mut take = |words: u64, used: bool| {
            let at = next;
            if used {
                next += words.next_multiple_of(64);
            }
            at as u32
        };
        let mut lay = Layout {
            ids: take(n, true),
            order: take(n, true),
            kw_hi: take(n, true),
            kw_lo: take(n, true),
            va: take(n, true),
            hist: take(256 * tiles, true),
            totals: take(256, true),
            nlen: take(n, names),
            pw_hi: take(n, names),
            pw_lo: take(n, names),
            head: take(n, names),
            longs: take(n, names),
            segx: take(n + 1, names),
            longx: take(n + 1, names),
            starts: take(n + 1, names),
            act: take(n, names),
            acth: take(n, names),
            actx: take(n + 1, names),
            rankx: take(n + 1, names),
            kw_rank: take(n, names),
            slot: take(n, names),
            cp: take(n, names),
            vb: take(n, names),
            sums: take(2 * tiles, names),
            words: 0,
        };
        lay.words = next;
        if lay.words * 4 > max_binding {
            return Err(ComputeError::TooLarge(format!(
                "sorting {n} entries needs {} MiB of work space, one binding holds {} MiB",
                (lay.words * 4) >> 20,
                max_binding >> 20
            )));
        }
        Ok(lay)
    }
}

/// One GPU sort: the work buffer, a small flags/read-back buffer, and the passes.
struct Sorter<'a> {
    ctx: &'a GpuContext,
    mirror: &'a NamespaceMirror,
    lay: Layout,
    n: u32,
    work: wgpu::Buffer,
    /// The work buffer came from the pool (it goes back there).
    pooled: bool,
    /// Word 0: active slots, 1: active segments, 2: length round wanted.
    flags: wgpu::Buffer,
}

impl<'a> Sorter<'a> {
    fn new(
        ctx: &'a GpuContext,
        mirror: &'a NamespaceMirror,
        n: u32,
        names: bool,
    ) -> ComputeResult<Sorter<'a>> {
        let lay = Layout::new(n, names, ctx.max_binding)?;
        let bytes = lay.words * 4;
        // The pool rounds up to a power of two, which must still fit one binding.
        let pooled = bytes.next_power_of_two() <= ctx.max_binding;
        let work = if pooled {
            ctx.pool.take(&ctx.device, bytes)
        } else {
            ctx.zeroed("dir_sort work", bytes)
        };
        let flags = ctx.pool.take(&ctx.device, 64);
        Ok(Sorter {
            ctx,
            mirror,
            lay,
            n,
            work,
            pooled,
            flags,
        })
    }

    /// Gives the buffers back to the pool.
    fn release(self) {
        if self.pooled {
            self.ctx.pool.give(self.work);
        }
        self.ctx.pool.give(self.flags);
    }

    /// Records one kernel over `items` invocations with `params` as its uniform (zero
    /// padded to whole 16 bytes, which covers every kernel's trailing padding fields).
    fn run(
        &self,
        enc: &mut wgpu::CommandEncoder,
        spec: &Spec,
        params: &[u32],
        items: u64,
    ) -> ComputeResult<()> {
        let slots: &[Slot] = if spec.flags {
            &[Slot::Uniform, Slot::ReadWrite, Slot::ReadWrite]
        } else {
            &[Slot::Uniform, Slot::ReadWrite]
        };
        let kernel = self.ctx.kernel(spec.name, spec.src, spec.arrays, slots)?;
        let arrays: Vec<&ChunkedArray> = spec
            .arrays
            .iter()
            .map(|a| match *a {
                "names" => &self.mirror.names,
                "inodes" => &self.mirror.inodes,
                _ => &self.mirror.dirents,
            })
            .collect();
        let g0 = arrays_group(self.ctx, &kernel, &arrays)?;
        let uniform = self.ctx.uniform(bytemuck::cast_slice(params));
        let g1 = if spec.flags {
            self.ctx
                .own_group(&kernel, &[&uniform, &self.work, &self.flags])
        } else {
            self.ctx.own_group(&kernel, &[&uniform, &self.work])
        };
        self.ctx.dispatch(enc, &kernel, [&g0, &g1], items)
    }

    /// Most workgroups one dispatch can have.
    fn max_groups(&self) -> u64 {
        let per_dim = u64::from(self.ctx.max_groups_per_dim);
        per_dim * per_dim
    }

    /// Invocations for an element loop over `count` (every kernel strides the grid, so a
    /// capped grid still covers all).
    fn elems(&self, count: u32) -> u64 {
        u64::from(count).min(self.max_groups() * u64::from(WORKGROUP))
    }

    /// Invocations for `groups` workgroups of a tile loop (capped likewise).
    fn groups(&self, groups: u32) -> u64 {
        u64::from(groups).min(self.max_groups()) * u64::from(WORKGROUP)
    }

    /// Stable LSD radix sort of the `m` values at `vals` (indices into the key arrays) by
    /// `digits` (key array, shift), least significant first, ping-ponging with `alt`;
    /// returns where the sorted values are.
    fn radix(
        &self,
        enc: &mut wgpu::CommandEncoder,
        m: u32,
        mut vals: u32,
        mut alt: u32,
        digits: &[(u32, u32)],
    ) -> ComputeResult<u32> {
        // Up to 64 tiles of 1-4 sub-blocks, then tiles of 4 (about a thousand at 1M).
        let sub = m.div_ceil(SERIAL_TILES * WORKGROUP).clamp(1, 4);
        let tiles = m.div_ceil(sub * WORKGROUP);
        // Few tiles: one workgroup scans all digits' rows at once.
        let global = tiles <= SERIAL_TILES;
        let (l, g) = (&self.lay, u32::from(global));
        for &(keys, shift) in digits {
            let p = [m, tiles, sub, shift, vals, keys, l.hist, l.totals, alt, g];
            self.run(enc, &HIST, &p, self.groups(tiles))?;
            let digit_groups = if global { 1 } else { 256 };
            self.run(enc, &DIGITS, &p, self.groups(digit_groups))?;
            self.run(enc, &SCATTER, &p, self.groups(tiles))?;
            std::mem::swap(&mut vals, &mut alt);
        }
        Ok(vals)
    }

    /// Exclusive prefix sums of two lanes of `count` words into `count + 1` words each
    /// (the last one the total).
    fn scan2(
        &self,
        enc: &mut wgpu::CommandEncoder,
        count: u32,
        inputs: [u32; 2],
        outputs: [u32; 2],
    ) -> ComputeResult<()> {
        // Blocks of 1-8 sub-blocks: up to 64 blocks, then about 500 at 1M.
        let sub = count.div_ceil(SERIAL_TILES * WORKGROUP).clamp(1, 8);
        let blocks = count.div_ceil(sub * WORKGROUP);
        let ([in0, in1], [out0, out1]) = (inputs, outputs);
        let p = [count, blocks, sub, in0, in1, out0, out1, self.lay.sums];
        self.run(enc, &SCAN_REDUCE, &p, self.groups(blocks))?;
        self.run(enc, &SCAN_BLOCKS, &p, self.groups(1))?;
        self.run(enc, &SCAN_APPLY, &p, self.groups(blocks))
    }

    /// Size or mtime: keys, then 8 radix passes into `order`. Returns the recorded work.
    fn numbers(&self, mtime: bool, desc: bool) -> ComputeResult<wgpu::CommandEncoder> {
        let (n, l) = (self.n, &self.lay);
        let mut enc = self.ctx.encoder();
        let (t, d) = (u32::from(mtime), u32::from(desc));
        let (dirents, inodes) = (self.mirror.dirent_count, self.mirror.inode_count);
        let p = [n, t, d, dirents, inodes, l.ids, l.kw_hi, l.kw_lo, l.order];
        self.run(&mut enc, &NUMBERS, &p, self.elems(n))?;
        let sorted = self.radix(&mut enc, n, l.order, l.va, &key_digits(l.kw_hi, l.kw_lo))?;
        self.expect_order(sorted)?;
        Ok(enc)
    }

    /// Names: round 0 over all positions, then rounds over the segments of equal
    /// prefixes until none is left (see kernels/dir_sort.wgsl). Returns the recorded work.
    fn names(&self, desc: bool) -> ComputeResult<wgpu::CommandEncoder> {
        let (n, l) = (self.n, &self.lay);
        let name_bytes =
            u32::try_from(self.mirror.names.len_words().saturating_mul(4)).unwrap_or(u32::MAX);
        let (d, dirents) = (u32::from(desc), self.mirror.dirent_count);
        let params = |mode: u32, level: u32, vals: u32| {
            [
                n, mode, d, dirents, name_bytes, level, l.ids, l.nlen, l.pw_hi, l.pw_lo, l.order,
                l.actx, l.rankx, l.kw_hi, l.kw_lo, l.kw_rank, l.slot, l.cp, vals,
            ]
        };
        let words = key_digits(l.kw_hi, l.kw_lo);
        let mut enc = self.ctx.encoder();
        enc.clear_buffer(&self.work, word(l.head), Some(word(n)));
        self.run(&mut enc, &NAMES, &params(0, 0, l.order), self.elems(n))?;
        let sorted = self.radix(&mut enc, n, l.order, l.va, &words)?;
        self.expect_order(sorted)?;
        let mut level = 8;
        let (mut m, mut segments, mut mixed) = self.prep(enc, level, false)?;
        let mut by_length = false;
        for _ in 0..MAX_ROUNDS {
            if m == 0 {
                if !mixed || by_length {
                    return Ok(self.ctx.encoder());
                }
                // Names equal up to zero padding but of different lengths (a zero byte in
                // a corrupt name): one round by length.
                by_length = true;
                (m, segments, _) = self.prep(self.ctx.encoder(), level, true)?;
                if m == 0 {
                    return Ok(self.ctx.encoder());
                }
            }
            let mut enc = self.ctx.encoder();
            let mode = if by_length { 2 } else { 1 };
            self.run(&mut enc, &NAMES, &params(mode, level, l.va), self.elems(n))?;
            let mut digits = if by_length {
                vec![(l.kw_hi, 0)]
            } else {
                words.clone()
            };
            digits.extend((0..rank_bytes(segments)).map(|b| (l.kw_rank, 8 * b)));
            let sorted = self.radix(&mut enc, m, l.va, l.vb, &digits)?;
            let p = [m, l.slot, l.cp, sorted, l.order];
            self.run(&mut enc, &BACK, &p, self.elems(m))?;
            if by_length {
                return Ok(enc);
            }
            level += 8;
            (m, segments, mixed) = self.prep(enc, level, false)?;
        }
        Err(ComputeError::Device(format!(
            "{NAME}: name rounds did not converge"
        )))
    }

    /// Submits `enc` after finding the segments of equal prefixes at `level` and those
    /// that take part in the next round (`by_length`: every segment of two or more, for
    /// the length round, on the segments found last). Returns (active slots, active
    /// segments, a length round is wanted).
    fn prep(
        &self,
        mut enc: wgpu::CommandEncoder,
        level: u32,
        by_length: bool,
    ) -> ComputeResult<(u32, u32, bool)> {
        let (n, l) = (self.n, &self.lay);
        enc.clear_buffer(&self.flags, 0, None);
        if !by_length {
            let p = [n, level, l.order, l.head, l.pw_hi, l.pw_lo, l.longs, l.nlen];
            self.run(&mut enc, &MARK, &p, self.elems(n))?;
            self.scan2(&mut enc, n, [l.head, l.longs], [l.segx, l.longx])?;
            let p = [n, l.head, l.segx, l.starts];
            self.run(&mut enc, &STARTS, &p, self.elems(n))?;
        }
        let b = u32::from(by_length);
        let p = [
            n, b, l.head, l.segx, l.starts, l.longx, l.act, l.acth, l.order, l.nlen,
        ];
        self.run(&mut enc, &ACTIVE, &p, self.elems(n))?;
        self.scan2(&mut enc, n, [l.act, l.acth], [l.actx, l.rankx])?;
        enc.copy_buffer_to_buffer(&self.work, word(l.actx + n), &self.flags, 0, 4);
        enc.copy_buffer_to_buffer(&self.work, word(l.rankx + n), &self.flags, 4, 4);
        let w = words_of(&self.ctx.finish_and_read(enc, &self.flags, 12)?);
        match w[..] {
            [m, segments, mixed] => Ok((m, segments, mixed != 0)),
            _ => Err(ComputeError::Device(format!("{NAME}: short read-back"))),
        }
    }

    /// The radix passes of a full sort are even, so they end where they began.
    fn expect_order(&self, sorted: u32) -> ComputeResult<()> {
        if sorted == self.lay.order {
            Ok(())
        } else {
            Err(ComputeError::Device(format!("{NAME}: odd pass count")))
        }
    }

    /// Submits `enc` and reads the sorted positions back.
    fn read_order(&self, mut enc: wgpu::CommandEncoder) -> ComputeResult<Vec<u32>> {
        let bytes = word(self.n);
        let out = self.ctx.pool.take(&self.ctx.device, bytes);
        enc.copy_buffer_to_buffer(&self.work, word(self.lay.order), &out, 0, bytes);
        let read = self.ctx.finish_and_read(enc, &out, bytes);
        self.ctx.pool.give(out);
        Ok(words_of(&read?))
    }
}
