//! The GPU side of full-path matching: the directories' states come from the CPU (one
//! pass over the directories), the entries' part runs as kernels/path_match.wgsl, one
//! invocation per entry of the mirror.

use super::{has_path, merge, PathMatcher, NAME};
use crate::dir_tree::DirTree;
use crate::error::{ComputeError, ComputeResult};
use crate::gpu::{GpuContext, Slot};
use crate::kernels::name_match::entry_hits;
use crate::mirror::NamespaceMirror;
use crate::view::NamespaceView;

const SOURCE: &str = include_str!("../../../kernels/path_match.wgsl");

impl PathMatcher {
    /// The GPU kernel over the mirror: the same ids as [`Self::cpu`]. The directories'
    /// states are computed here (one pass over the directories), the entries' part (one
    /// invocation per entry, over the mirror) on the GPU; a substring without '/' takes
    /// its names from the name-match kernel.
    pub fn gpu(
        &self,
        ctx: &GpuContext,
        mirror: &NamespaceMirror,
        view: &NamespaceView<'_>,
        kinds: u32,
    ) -> ComputeResult<Vec<u32>> {
        let tree = DirTree::of(view);
        let looks = self.look_codes(view, &tree, &self.slot_looks(&tree));
        let count = mirror.dirent_count;
        let looks_len = u32::try_from(looks.len())
            .map_err(|_| ComputeError::TooLarge(format!("{} directories", looks.len())))?;
        if looks.len() as u64 * 4 > ctx.max_binding {
            return Err(ComputeError::TooLarge(format!(
                "{} inode slots of directory states",
                looks.len()
            )));
        }
        let (prog, mut params) = self.encode(count, looks_len);
        params[9] = kinds;
        let kernel = ctx.kernel(
            NAME,
            SOURCE,
            &["dirents", "names"],
            &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite],
        )?;
        let uniform = ctx.uniform(bytemuck::cast_slice(&params));
        let prog_buf = ctx.upload("path program", bytemuck::cast_slice(&prog));
        let looks_buf = ctx.upload("directory looks", bytemuck::cast_slice(&looks));
        let in_dirs = entry_hits(
            ctx,
            mirror,
            &kernel,
            &[&uniform, &prog_buf, &looks_buf],
            count,
        )?;
        match &self.names {
            Some(names) => {
                let mut by_name = names.clone().with_kinds(kinds).gpu(ctx, mirror)?;
                by_name.retain(|&id| has_path(view, &tree, id));
                Ok(merge(&by_name, &in_dirs))
            }
            None => Ok(in_dirs),
        }
    }

    /// Program words (byte classes, transitions, match flags, the tail) and the kernel's
    /// parameters (see `Params` in the WGSL; the kinds left 0).
    fn encode(&self, count: u32, looks: u32) -> (Vec<u32>, [u32; 12]) {
        let mut prog: Vec<u32> = self.classes.to_vec();
        let trans_base = prog.len() as u32;
        prog.extend_from_slice(&self.trans);
        let match_base = prog.len() as u32;
        prog.extend(self.matching.iter().map(|&m| u32::from(m)));
        let tail_base = prog.len() as u32;
        let (tail, fold) = match &self.tail {
            Some((t, f)) => (t.as_slice(), *f),
            None => (&[][..], false),
        };
        prog.extend(tail.iter().map(|&b| u32::from(b)));
        prog.push(0);
        let params = [
            count,
            looks,
            self.stride,
            self.special_from,
            trans_base,
            match_base,
            tail_base,
            tail.len() as u32,
            u32::from(fold),
            0,
            0,
            0,
        ];
        (prog, params)
    }
}
