//! POSIX ACLs: access and default ACLs kept as the extended attributes
//! `system.posix_acl_access` and `system.posix_acl_default`, in the kernel's xattr form
//! (a little-endian `u32` version 2, then `tag u16, perm u16, id u32` per entry). The
//! kernel enforces them (FUSE_POSIX_ACL); this module keeps them and the mode bits in
//! step, as Linux filesystems do: setting an access ACL sets the mode's permission bits
//! (and an ACL the mode says all of is not stored), chmod rewrites the ACL's owner,
//! mask (or group) and other entries, and a node created in a directory with a default
//! ACL inherits it, masked by the mode asked for, instead of the umask.

use crate::error::{FsError, FsResult};

pub const ACCESS: &[u8] = b"system.posix_acl_access";
pub const DEFAULT: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
/// The id the kernel writes into entries without one.
const UNDEFINED_ID: u32 = u32::MAX;

/// Extended attributes (name, value) a new node is created with.
pub type NewXattrs = Vec<(&'static [u8], Vec<u8>)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// A parsed ACL: entries in the kernel's order (by tag, then id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    entries: Vec<Entry>,
}

impl Acl {
    /// Parses and validates the xattr form: every tag known, permissions 0..=7, one
    /// owner, owning-group and other entry, a mask when named users or groups are there,
    /// no named id twice. An empty ACL (the header alone) is `None`.
    pub fn decode(bytes: &[u8]) -> FsResult<Option<Acl>> {
        let bad = FsError::Invalid("malformed POSIX ACL");
        if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(8) {
            return Err(bad);
        }
        let word = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        if word(0) != VERSION {
            return Err(FsError::Invalid("POSIX ACL version is not 2"));
        }
        let mut entries: Vec<Entry> = bytes[4..]
            .chunks_exact(8)
            .map(|c| Entry {
                tag: u16::from_le_bytes([c[0], c[1]]),
                perm: u16::from_le_bytes([c[2], c[3]]),
                id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        for e in &mut entries {
            if e.perm > 7 || ![USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER].contains(&e.tag) {
                return Err(bad);
            }
            if !matches!(e.tag, USER | GROUP) {
                e.id = UNDEFINED_ID;
            }
        }
        entries.sort_by_key(|e| (e.tag, e.id));
        let count = |tag| entries.iter().filter(|e| e.tag == tag).count();
        let named = count(USER) + count(GROUP);
        let unique = entries
            .windows(2)
            .all(|w| (w[0].tag, w[0].id) != (w[1].tag, w[1].id));
        if count(USER_OBJ) != 1
            || count(GROUP_OBJ) != 1
            || count(OTHER) != 1
            || count(MASK) > 1
            || (named > 0 && count(MASK) == 0)
            || !unique
        {
            return Err(bad);
        }
        Ok(Some(Acl { entries }))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = VERSION.to_le_bytes().to_vec();
        for e in &self.entries {
            out.extend_from_slice(&e.tag.to_le_bytes());
            out.extend_from_slice(&e.perm.to_le_bytes());
            out.extend_from_slice(&e.id.to_le_bytes());
        }
        out
    }

    fn perm_of(&self, tag: u16) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.tag == tag)
            .map(|e| u32::from(e.perm))
    }

    /// The permission bits (0o777) the ACL gives the mode: owner, mask (else owning
    /// group), other; and whether the mode says everything (no named entry, no mask),
    /// so that the ACL need not be stored.
    pub fn mode_bits(&self) -> (u32, bool) {
        let owner = self.perm_of(USER_OBJ).unwrap_or(0);
        let group = self
            .perm_of(MASK)
            .or_else(|| self.perm_of(GROUP_OBJ))
            .unwrap_or(0);
        let other = self.perm_of(OTHER).unwrap_or(0);
        let equivalent = self.entries.len() == 3;
        ((owner << 6) | (group << 3) | other, equivalent)
    }

    /// chmod: the owner, mask (else owning group) and other entries take the new
    /// permission bits of `mode`.
    pub fn chmod(&mut self, mode: u32) {
        self.each_base_entry(mode, |perm, bits| *perm = bits);
    }

    /// Calls `f(perm, bits)` for the owner, mask (else owning group) and other entries,
    /// with the bits of `mode` that stand for each.
    fn each_base_entry(&mut self, mode: u32, mut f: impl FnMut(&mut u16, u16)) {
        let has_mask = self.perm_of(MASK).is_some();
        for e in &mut self.entries {
            let bits = match e.tag {
                USER_OBJ => (mode >> 6) & 7,
                MASK => (mode >> 3) & 7,
                GROUP_OBJ if !has_mask => (mode >> 3) & 7,
                OTHER => mode & 7,
                _ => continue,
            };
            // Three bits.
            f(&mut e.perm, bits as u16);
        }
    }

    /// A new node's access ACL from its directory's default ACL (`self`) and the mode
    /// it was created with: each of owner, mask (else owning group) and other keeps only
    /// what the mode allows, and the mode keeps only what they allow. Returns the new
    /// permission bits.
    pub fn create_masked(&mut self, mode: u32) -> u32 {
        self.each_base_entry(mode, |perm, allowed| *perm &= allowed);
        self.mode_bits().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut out = VERSION.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&perm.to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        }
        out
    }

    #[test]
    fn parse_mode_chmod_and_inheritance_follow_linux() {
        let named = acl(&[
            (USER_OBJ, 7, 0),
            (USER, 5, 1000),
            (GROUP_OBJ, 5, 0),
            (MASK, 7, 0),
            (OTHER, 0, 0),
        ]);
        let mut a = Acl::decode(&named).unwrap().unwrap();
        assert_eq!(a.mode_bits(), (0o770, false));
        a.chmod(0o750);
        assert_eq!(a.mode_bits(), (0o750, false));
        assert_eq!(
            a.perm_of(GROUP_OBJ),
            Some(5),
            "the owning group keeps its entry"
        );
        // Inheritance: the mode asked for masks the default ACL.
        let mut d = Acl::decode(&named).unwrap().unwrap();
        assert_eq!(d.create_masked(0o640), 0o640);
        assert_eq!(
            d.perm_of(USER),
            Some(5),
            "named entries stay, limited by the mask"
        );
        let plain = acl(&[(USER_OBJ, 6, 0), (GROUP_OBJ, 4, 0), (OTHER, 4, 0)]);
        assert_eq!(
            Acl::decode(&plain).unwrap().unwrap().mode_bits(),
            (0o644, true)
        );
        assert_eq!(Acl::decode(&acl(&[])).unwrap(), None);
        let round = Acl::decode(&named).unwrap().unwrap();
        assert_eq!(Acl::decode(&round.encode()).unwrap().unwrap(), round);
    }

    #[test]
    fn malformed_acls_are_refused() {
        for bad in [
            acl(&[(USER_OBJ, 7, 0), (OTHER, 0, 0)]),
            acl(&[
                (USER_OBJ, 7, 0),
                (USER, 5, 1),
                (GROUP_OBJ, 5, 0),
                (OTHER, 0, 0),
            ]),
            acl(&[(USER_OBJ, 9, 0), (GROUP_OBJ, 5, 0), (OTHER, 0, 0)]),
            acl(&[(0x40, 7, 0), (GROUP_OBJ, 5, 0), (OTHER, 0, 0)]),
            vec![1, 0, 0, 0],
            vec![2, 0, 0, 0, 1],
        ] {
            assert!(Acl::decode(&bad).is_err(), "{bad:?}");
        }
    }
}
