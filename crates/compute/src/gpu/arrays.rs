//! Arrays larger than one storage binding: each is split into up to [`SLOTS`] chunks of
//! a power-of-two number of 32-bit words, bound side by side, and read in WGSL through a
//! generated accessor `NAME_at(word)` that picks the chunk by shift and mask. Kernels
//! never see the split.

use super::context::GpuContext;
use crate::error::{ComputeError, ComputeResult};

/// Chunks (storage bindings) per array.
pub const SLOTS: usize = 4;

/// The arrays a kernel binds in group 0, in binding order.
pub struct ArraySlots<'a> {
    names: Vec<&'a str>,
}

impl<'a> ArraySlots<'a> {
    pub fn new(names: &[&'a str]) -> Self {
        ArraySlots {
            names: names.to_vec(),
        }
    }
    /// Bindings group 0 has.
    pub fn bindings(&self) -> u32 {
        (self.names.len() * SLOTS) as u32
    }
}

/// WGSL declarations every kernel starts with: constants, the linear invocation index,
/// and for each array its chunk bindings, `NAME_at(word)` and `NAME_byte(byte)`.
pub fn prelude(slots: &ArraySlots<'_>, chunk_shift: u32) -> String {
    let mut s = format!(
        "const WG: u32 = {wg}u;\n\
         const CHUNK_SHIFT: u32 = {chunk_shift}u;\n\
         const CHUNK_MASK: u32 = {mask}u;\n\
         fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {{\n\
         \x20   return (wid.y * nwg.x + wid.x) * WG + li;\n\
         }}\n\
         fn group_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {{\n\
         \x20   return wid.y * nwg.x + wid.x;\n\
         }}\n",
        wg = super::context::WORKGROUP,
        mask = (1u64 << chunk_shift) - 1,
    );
    for (a, name) in slots.names.iter().enumerate() {
        for c in 0..SLOTS {
            s.push_str(&format!(
                "@group(0) @binding({}) var<storage, read> {name}_c{c}: array<u32>;\n",
                a * SLOTS + c
            ));
        }
        s.push_str(&format!("fn {name}_at(i: u32) -> u32 {{\n    let o = i & CHUNK_MASK;\n    switch (i >> CHUNK_SHIFT) {{\n"));
        for c in 0..SLOTS {
            if c + 1 == SLOTS {
                s.push_str(&format!("        default: {{ return {name}_c{c}[o]; }}\n"));
            } else {
                s.push_str(&format!(
                    "        case {c}u: {{ return {name}_c{c}[o]; }}\n"
                ));
            }
        }
        s.push_str("    }\n}\n");
        s.push_str(&format!(
            "fn {name}_byte(b: u32) -> u32 {{\n    return ({name}_at(b >> 2u) >> ((b & 3u) * 8u)) & 0xffu;\n}}\n"
        ));
    }
    if slots.names.contains(&"dirents") {
        // The fields of one 32-byte DirentRecord (8 words) that the per-entry kernels read.
        s.push_str(
            "struct Dirent {\n    parent: u32,\n    ino: u32,\n    name_len: u32,\n    kind: u32,\n    name_off: u32,\n}\n\
             fn dirent_of(id: u32) -> Dirent {\n    let w = id * 8u;\n    let packed = dirents_at(w + 3u);\n\
             \x20   return Dirent(dirents_at(w), dirents_at(w + 1u), packed & 0xffu, (packed >> 8u) & 0xffu, dirents_at(w + 4u));\n}\n",
        );
    }
    s
}

/// One array on the device, split into chunks of `ctx.chunk_words()` words.
#[derive(Debug)]
pub struct ChunkedArray {
    chunks: Vec<wgpu::Buffer>,
    /// Words of meaningful data.
    len_words: u64,
    /// Words the chunks can hold.
    capacity_words: u64,
}

impl ChunkedArray {
    /// Room for `capacity_words` words, zeroed.
    pub fn with_capacity(
        ctx: &GpuContext,
        label: &str,
        capacity_words: u64,
    ) -> ComputeResult<ChunkedArray> {
        let per = ctx.chunk_words();
        let capacity_words = capacity_words.max(4);
        let n = capacity_words.div_ceil(per);
        if n > SLOTS as u64 {
            return Err(ComputeError::TooLarge(format!(
                "{label}: {} MiB exceeds {SLOTS} bindings of {} MiB",
                (capacity_words * 4) >> 20,
                (per * 4) >> 20
            )));
        }
        let mut chunks = Vec::with_capacity(n as usize);
        for c in 0..n {
            let words = (capacity_words - c * per).min(per);
            chunks.push(ctx.zeroed(label, words * 4));
        }
        Ok(ChunkedArray {
            chunks,
            len_words: 0,
            capacity_words,
        })
    }

    /// An array holding `bytes` (padded with zeros to whole words), with `headroom`
    /// extra words of capacity for later growth.
    pub fn from_bytes(
        ctx: &GpuContext,
        label: &str,
        bytes: &[u8],
        headroom: u64,
    ) -> ComputeResult<ChunkedArray> {
        let words = (bytes.len() as u64).div_ceil(4);
        let mut a = ChunkedArray::with_capacity(ctx, label, words + headroom)?;
        a.write_bytes(ctx, 0, bytes)?;
        Ok(a)
    }

    pub fn len_words(&self) -> u64 {
        self.len_words
    }

    pub fn capacity_words(&self) -> u64 {
        self.capacity_words
    }

    /// Writes `bytes` at byte offset `at` (a multiple of 4), splitting across chunks;
    /// a trailing partial word is padded with zeros.
    pub fn write_bytes(&mut self, ctx: &GpuContext, at: u64, bytes: &[u8]) -> ComputeResult<()> {
        if !at.is_multiple_of(4) {
            return Err(ComputeError::Device(format!(
                "unaligned array write at {at}"
            )));
        }
        let end_words = (at + bytes.len() as u64).div_ceil(4);
        if end_words > self.capacity_words {
            return Err(ComputeError::TooLarge(format!(
                "write to word {end_words} past capacity {}",
                self.capacity_words
            )));
        }
        let per = ctx.chunk_words() * 4;
        let mut done = 0usize;
        while done < bytes.len() {
            let pos = at + done as u64;
            let chunk = (pos / per) as usize;
            let off = pos % per;
            let take = ((per - off) as usize).min(bytes.len() - done);
            let part = &bytes[done..done + take];
            let Some(buffer) = self.chunks.get(chunk) else {
                return Err(ComputeError::TooLarge("chunk index".into()));
            };
            if part.len().is_multiple_of(4) {
                ctx.queue.write_buffer(buffer, off, part);
            } else {
                let mut padded = part.to_vec();
                padded.resize(part.len().next_multiple_of(4), 0);
                ctx.queue.write_buffer(buffer, off, &padded);
            }
            done += take;
        }
        self.len_words = self.len_words.max(end_words);
        Ok(())
    }

    /// Sets the meaningful length (after a shrink of the source array).
    pub fn set_len_words(&mut self, words: u64) {
        self.len_words = words.min(self.capacity_words);
    }

    /// The buffers to bind, [`SLOTS`] of them, `ctx.empty` standing in for absent chunks.
    pub fn bindings<'b>(&'b self, ctx: &'b GpuContext) -> [&'b wgpu::Buffer; SLOTS] {
        std::array::from_fn(|i| self.chunks.get(i).unwrap_or(&ctx.empty))
    }
}

/// Group 0 of `kernel` over `arrays`, in the order the kernel declared them.
pub fn arrays_group(
    ctx: &GpuContext,
    kernel: &super::context::Kernel,
    arrays: &[&ChunkedArray],
) -> ComputeResult<wgpu::BindGroup> {
    let Some(layout) = kernel.arrays.as_ref() else {
        return Ok(ctx.no_arrays_group(kernel));
    };
    let mut entries = Vec::with_capacity(arrays.len() * SLOTS);
    for (a, array) in arrays.iter().enumerate() {
        for (c, b) in array.bindings(ctx).into_iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: (a * SLOTS + c) as u32,
                resource: b.as_entire_binding(),
            });
        }
    }
    Ok(ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout,
        entries: &entries,
    }))
}
