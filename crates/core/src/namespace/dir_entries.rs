//! One directory's entries in cookie order, as dense arrays (cookies ascending, the
//! entry id at each, and each entry's head: its kind and first name bytes, see
//! [`entry_head`]): readdir finds its place by a binary search, and a full-path search
//! reads a directory's ids and heads as contiguous slices instead of walking tree nodes,
//! deciding most entries without their records.
//! A removal leaves a hole ([`NO_ENTRY`]) that is squeezed out once holes outnumber
//! the live entries, so removing one entry costs a search, not a shift.

#[cfg(doc)]
use gpufs_compute::view::entry_head;
use gpufs_compute::view::{EntryList, NO_ENTRY};

/// Holes kept before a squeeze is considered at all (a small directory never shifts).
const MIN_HOLES: usize = 32;

#[derive(Clone, Debug, Default)]
pub struct DirEntries {
    /// Ascending.
    cookies: Vec<u64>,
    /// The entry at each cookie, or [`NO_ENTRY`] where it was removed.
    ids: Vec<u32>,
    /// The head of the entry at each cookie (stale where it was removed).
    heads: Vec<u64>,
    live: usize,
}

impl DirEntries {
    /// Live entries.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Where `cookie` is or would go.
    fn position(&self, cookie: u64) -> Result<usize, usize> {
        self.cookies.binary_search(&cookie)
    }

    /// Is a live entry at `cookie`?
    pub fn contains(&self, cookie: u64) -> bool {
        self.position(cookie)
            .is_ok_and(|at| self.ids.get(at).is_some_and(|&id| id != NO_ENTRY))
    }

    /// Puts entry `id` with head `head` at `cookie` (the caller has checked it is
    /// free). New cookies ascend, so this is almost always an append; a cookie given
    /// back (an exchange puts entries back at their old cookies) fills its hole.
    pub fn insert(&mut self, cookie: u64, id: u32, head: u64) {
        if self.cookies.last().is_none_or(|&last| last < cookie) {
            self.cookies.push(cookie);
            self.ids.push(id);
            self.heads.push(head);
        } else {
            match self.position(cookie) {
                Ok(at) => {
                    let was = std::mem::replace(&mut self.ids[at], id);
                    self.heads[at] = head;
                    if was != NO_ENTRY {
                        // Replaced, not added: the count stays.
                        return;
                    }
                }
                Err(at) => {
                    self.cookies.insert(at, cookie);
                    self.ids.insert(at, id);
                    self.heads.insert(at, head);
                }
            }
        }
        self.live += 1;
    }

    /// Removes the entry at `cookie`; its id, if one was there.
    pub fn remove(&mut self, cookie: u64) -> Option<u32> {
        let at = self.position(cookie).ok()?;
        let id = std::mem::replace(&mut self.ids[at], NO_ENTRY);
        if id == NO_ENTRY {
            return None;
        }
        self.live -= 1;
        let holes = self.ids.len() - self.live;
        if holes >= MIN_HOLES && holes > self.live {
            self.squeeze();
        }
        Some(id)
    }

    /// Drops every hole.
    fn squeeze(&mut self) {
        let mut keep = 0;
        for at in 0..self.ids.len() {
            if self.ids[at] != NO_ENTRY {
                self.ids[keep] = self.ids[at];
                self.cookies[keep] = self.cookies[at];
                self.heads[keep] = self.heads[at];
                keep += 1;
            }
        }
        self.ids.truncate(keep);
        self.cookies.truncate(keep);
        self.heads.truncate(keep);
    }

    /// Entries with a cookie above `after`, in cookie order.
    pub fn after(&self, after: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        let from = self.cookies.partition_point(|&c| c <= after);
        self.cookies[from..]
            .iter()
            .zip(&self.ids[from..])
            .filter(|(_, &id)| id != NO_ENTRY)
            .map(|(&c, &id)| (c, id))
    }

    /// Every entry id and head in cookie order, with [`NO_ENTRY`] where one was
    /// removed.
    pub fn list(&self) -> EntryList<'_> {
        EntryList {
            ids: &self.ids,
            heads: &self.heads,
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.cookies.capacity() * 8 + self.ids.capacity() * 4 + self.heads.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Against a BTreeMap: inserts at fresh cookies (mostly ascending, some given
        /// back), removals, and reads after any cookie.
        #[test]
        fn behaves_as_an_ordered_map(ops in proptest::collection::vec((0u8..5, 0u64..400, any::<u32>()), 0..600)) {
            let mut model: BTreeMap<u64, u32> = BTreeMap::new();
            let mut list = DirEntries::default();
            let mut next = 3u64;
            for (op, c, id) in ops {
                let id = id % 1_000_000;
                match op {
                    0 | 1 => {
                        list.insert(next, id, u64::from(id) * 3);
                        model.insert(next, id);
                        next += 1 + c % 3;
                    }
                    2 | 4 => {
                        // Mostly a live entry (so holes pile up and get squeezed),
                        // sometimes any cookie.
                        let live: Vec<u64> = model.keys().copied().collect();
                        let at = if c % 4 != 0 && !live.is_empty() {
                            live[(c as usize / 4) % live.len()]
                        } else {
                            c % next.max(1)
                        };
                        prop_assert_eq!(list.remove(at), model.remove(&at));
                    }
                    _ => {
                        // A cookie given back: only where it is free.
                        let at = 3 + c % (next - 3).max(1);
                        if at < next && !model.contains_key(&at) {
                            list.insert(at, id, u64::from(id) * 3);
                            model.insert(at, id);
                        }
                    }
                }
                prop_assert_eq!(list.len(), model.len());
                let after = c % (next + 2);
                let got: Vec<_> = list.after(after).collect();
                let want: Vec<_> = model.range(after + 1..).map(|(&c, &i)| (c, i)).collect();
                prop_assert_eq!(got, want);
                prop_assert_eq!(list.contains(after), model.contains_key(&after));
                let listed = list.list();
                prop_assert_eq!(listed.ids.len(), listed.heads.len());
                let pairs: Vec<(u32, u64)> = listed.ids.iter().copied().zip(listed.heads.iter().copied()).filter(|&(i, _)| i != NO_ENTRY).collect();
                prop_assert_eq!(pairs, model.values().map(|&i| (i, u64::from(i) * 3)).collect::<Vec<_>>());
            }
        }
    }
}
