//! Deciding a listed entry from its head alone (its kind and first name bytes, kept in
//! its directory's list): what a tail compare or a DFA run over those bytes settles
//! needs neither the entry's record nor its name.

use super::{Look, PathMatcher, DEAD, MATCHED};
use crate::dir_tree::ascii_lower;
use crate::view::HEAD_BYTES;

impl PathMatcher {
    /// The tail as a head compare: the word of its first bytes (lowered when case is
    /// ignored), the mask of those bytes, and whether the compare decides alone (the
    /// whole tail fits in a head and holds no NUL, which a shorter name's padding
    /// could equal).
    pub(super) fn tail_key(&self) -> Option<(u64, u64, bool)> {
        let (tail, fold) = self.tail.as_ref()?;
        let k = tail.len().min(HEAD_BYTES);
        let mut b = [0u8; 8];
        b[..k].copy_from_slice(&tail[..k]);
        let word = u64::from_le_bytes(b);
        let word = if *fold { ascii_lower(word) } else { word };
        let mask = (1u64 << (8 * k)) - 1;
        Some((word, mask, tail.len() <= HEAD_BYTES && !tail.contains(&0)))
    }

    /// What an entry's head alone says of it under `look`: matches, does not, or
    /// `None` where its record and name must tell.
    pub(super) fn by_head(
        &self,
        look: Look,
        head: u64,
        tail_key: Option<(u64, u64, bool)>,
    ) -> Option<bool> {
        match look {
            Look::Nothing => Some(false),
            Look::All => Some(true),
            Look::Tail => {
                let (want, mask, exact) = tail_key?;
                let fold = self.tail.as_ref().is_some_and(|(_, f)| *f);
                let have = if fold { ascii_lower(head) } else { head };
                if (have ^ want) & mask != 0 {
                    Some(false)
                } else if exact {
                    Some(true)
                } else {
                    None
                }
            }
            Look::Run(s) => {
                // The head's bytes up to its first zero are the name's own.
                let bytes = head.to_le_bytes();
                let known = bytes[..HEAD_BYTES].iter().take_while(|&&b| b != 0).count();
                match self.run(s, &bytes[..known]) {
                    MATCHED => Some(true),
                    DEAD => Some(false),
                    // No rest of a name can finish a match from here.
                    st if !self.name_can_finish(st) => Some(false),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::name_match::NameQuery;
    use crate::view::entry_head;

    fn matcher(needle: &[u8], fold: bool) -> PathMatcher {
        let q = NameQuery::Substring {
            needle: needle.to_vec(),
            fold,
        };
        PathMatcher::new(&q).expect("a small DFA")
    }

    fn tail_says(needle: &[u8], fold: bool, name: &[u8]) -> Option<bool> {
        let m = matcher(needle, fold);
        m.by_head(Look::Tail, entry_head(name, 1), m.tail_key())
    }

    #[test]
    fn a_head_decides_a_short_tail_and_only_filters_a_long_one() {
        assert_eq!(tail_says(b"p/IMG", false, b"IMG_1.jpg"), Some(true));
        assert_eq!(tail_says(b"p/IMG", false, b"img_1.jpg"), Some(false));
        assert_eq!(tail_says(b"p/IMG", true, b"img_1.jpg"), Some(true));
        // A name shorter than the tail: its padding is zeros, the tail's byte is not.
        assert_eq!(tail_says(b"p/IMG", false, b"IM"), Some(false));
        // Seven bytes are all a head holds: a longer tail needs the name.
        assert_eq!(tail_says(b"p/IMG_2023", false, b"IMG_202x"), None);
        assert_eq!(tail_says(b"p/IMG_2023", false, b"IMG_20"), Some(false));
        assert_eq!(tail_says(b"p/IMG_2023", false, b"IMX_2023"), Some(false));
        // A NUL in the tail could equal a shorter name's padding.
        assert_eq!(tail_says(b"p/a\0", false, b"a"), None);
    }

    #[test]
    fn a_dfa_run_over_a_head_settles_what_the_rest_of_a_name_cannot_change() {
        let m = matcher(b"p/IMG", false);
        // Below a directory whose path ends in "p", run from its state.
        let tree_state = m.run(m.start, b"p");
        let look = Look::Run(tree_state);
        assert_eq!(m.by_head(look, entry_head(b"IMG_1", 1), None), Some(true));
        // The match needs the '/' before the name: no rest of this name can finish it.
        assert_eq!(m.by_head(look, entry_head(b"xIMG", 1), None), Some(false));
        // The head stops at its first zero: "IM" may go on with "G".
        assert_eq!(m.by_head(look, entry_head(b"IM", 1), None), None);
        // Below a directory ending elsewhere, only a name holding "p/IMG" could match,
        // and none can hold a '/'.
        let elsewhere = Look::Run(m.run(m.start, b"q"));
        assert!(!m.entries_can_match(m.run(m.start, b"q")));
        assert!(m.entries_can_match(tree_state));
        assert_eq!(
            m.by_head(elsewhere, entry_head(b"IMG_1", 1), None),
            Some(false)
        );
    }
}
