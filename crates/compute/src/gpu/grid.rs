//! Dispatch grids: at most 65,535 workgroups per dimension, so large batches use 2-D.

use super::context::MAX_GROUPS_PER_DIM;

/// Workgroups (x, y) covering `items` invocations of `workgroup` each, or `None` when even
/// a full 2-D grid cannot. Kernels recover the linear index as
/// `(group.y * groups.x + group.x) * WORKGROUP + local_index` and skip indices >= items.
pub fn groups_for(items: u64, workgroup: u32, max_per_dim: u32) -> Option<(u32, u32)> {
    let groups = items.div_ceil(u64::from(workgroup));
    let max = u64::from(max_per_dim.min(MAX_GROUPS_PER_DIM));
    if groups <= max {
        return Some((groups as u32, 1));
    }
    let y = groups.div_ceil(max);
    if y > max {
        return None;
    }
    let x = groups.div_ceil(y);
    Some((x as u32, y as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_cover_and_stay_in_limits() {
        for items in [
            0u64,
            1,
            255,
            256,
            257,
            65_535 * 256,
            65_535 * 256 + 1,
            10_000_000,
            1 << 32,
        ] {
            let (x, y) = groups_for(items, 256, MAX_GROUPS_PER_DIM).unwrap_or((0, 0));
            assert!(x <= MAX_GROUPS_PER_DIM && y <= MAX_GROUPS_PER_DIM);
            assert!(u64::from(x) * u64::from(y) * 256 >= items, "{items}");
        }
        assert_eq!(
            groups_for(65_535 * 256 + 1, 256, MAX_GROUPS_PER_DIM).map(|g| g.1),
            Some(2)
        );
        assert_eq!(groups_for(1000, 256, 2), Some((2, 2)));
    }
}
