//! Which DFA states one more path component can still take to a match: an entry's path
//! is its directory's path, '/', and a name without '/'. A directory whose state can
//! reach a match by no such name needs none of its entries looked at, however alive the
//! state is for deeper paths (`*/photos/IMG_*` below a directory not ending in
//! `photos`), so a visit skips it instead of running the DFA over its every name.

use super::{PathMatcher, DEAD, MATCHED};

/// Largest table (states × classes) whose states are worked out; a larger one leaves
/// every state live (a visit then runs its names, as without this).
const MAX_CELLS: usize = 1 << 22;

impl PathMatcher {
    /// Per plain state (by index): can bytes other than '/', then the end of input,
    /// lead from it to a match? Worked backwards from the states with such a step,
    /// over the transitions of every class holding a byte other than '/'.
    pub(super) fn name_live_states(&self) -> Vec<bool> {
        let stride = self.stride as usize;
        let plain = self.special_from as usize / stride.max(1);
        if stride == 0 || plain.saturating_mul(stride) > MAX_CELLS {
            return vec![true; plain];
        }
        // The last column is the end of input; a class counts when a name byte has it.
        let mut name_class = vec![false; stride - 1];
        for (b, &c) in self.classes.iter().enumerate() {
            if b != usize::from(b'/') {
                if let Some(x) = name_class.get_mut(c as usize) {
                    *x = true;
                }
            }
        }
        let mut live = vec![false; plain];
        let mut from: Vec<Vec<u32>> = vec![Vec::new(); plain];
        let mut queue = Vec::new();
        for (k, (r, is_live)) in self.trans.chunks(stride).zip(live.iter_mut()).enumerate() {
            let mut here = self.settle(r[stride - 1]) == MATCHED;
            for (c, &to) in r[..stride - 1].iter().enumerate() {
                if !name_class[c] {
                    continue;
                }
                if to < self.special_from {
                    from[to as usize / stride].push(k as u32);
                } else if self.settle(to) == MATCHED {
                    here = true;
                }
            }
            if here {
                *is_live = true;
                queue.push(k);
            }
        }
        while let Some(k) = queue.pop() {
            for &p in &from[k] {
                if !live[p as usize] {
                    live[p as usize] = true;
                    queue.push(p as usize);
                }
            }
        }
        live
    }

    /// Can an entry of a directory whose path ends in plain state `s` match: does "/"
    /// lead to a match, or to a state from which some name can?
    pub(super) fn entries_can_match(&self, s: u32) -> bool {
        match self.run(s, &[]) {
            MATCHED => true,
            DEAD => false,
            after => self.name_can_finish(after),
        }
    }

    /// Can the rest of a name (bytes without '/') and its end take plain state `s` to a
    /// match?
    pub(super) fn name_can_finish(&self, s: u32) -> bool {
        self.name_live
            .get((s / self.stride.max(1)) as usize)
            .copied()
            .unwrap_or(true)
    }
}
