//! Sealing: how every record, checkpoint page and journal block of an encrypted image is
//! encrypted and authenticated, in the manner of SIV (RFC 5297's construction with
//! AES-256-XTS as the cipher): the tag is a keyed BLAKE3 of a domain, a context and the
//! plaintext; the plaintext is encrypted with AES-256-XTS in 4 KiB data units whose tweaks
//! start at the tag's first 8 bytes. Opening decrypts, recomputes the tag and compares.
//!
//! Why this construction: a tweak derived from the content is never reused for
//! different content at the same place (the same bytes give the same ciphertext, wherever
//! they lie, which is also what lets deduplication and a checkpoint's unchanged pages
//! work); no nonce has to be stored or kept unique across crashes; and the tag, kept in
//! the pointer that names the bytes (a record pointer, a page table entry), makes the
//! metadata above authenticate what it points at, as OpenZFS keeps MACs in block
//! pointers. The XTS kernel is the one the compute layer runs on the GPU too.

use gpufs_compute::kernels::xts::{Direction, XtsCipher, XtsKey};
use zeroize::{Zeroize, Zeroizing};

use super::keys::VolumeKey;

/// What a sealed buffer is: part of the tag's input, so that bytes sealed as one kind
/// never open as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Domain {
    Record = 1,
    Page = 2,
    Journal = 3,
    PageTable = 4,
}

/// A sealed buffer that does not open: damaged or forged bytes, or another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed: the bytes were changed, or belong to another key")]
pub struct OpenError;

/// The shortest sealed buffer: one AES block, the shortest XTS data unit.
pub const MIN_SEALED: usize = 16;

/// The keys of an open encrypted volume: AES-256-XTS for the bytes, a BLAKE3 key for the
/// tags. Derived from the volume key; cleared when dropped.
pub struct SealKeys {
    xts: XtsCipher,
    mac: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for SealKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKeys { .. }")
    }
}

impl SealKeys {
    /// The keys `volume_key` stands for (BLAKE3 key derivation, one context each).
    pub fn new(volume_key: &VolumeKey) -> SealKeys {
        let vk = volume_key.bytes();
        let mut key = XtsKey {
            data: blake3::derive_key("gpufs 2026-12-07 AES-256-XTS data key", vk),
            tweak: blake3::derive_key("gpufs 2026-12-07 AES-256-XTS tweak key", vk),
        };
        let xts = XtsCipher::new(&key);
        key.data.zeroize();
        key.tweak.zeroize();
        SealKeys {
            xts,
            mac: Zeroizing::new(blake3::derive_key("gpufs 2026-12-07 BLAKE3 tag key", vk)),
        }
    }

    /// The tag of `plain` sealed as `domain` with `context`.
    pub fn tag(&self, domain: Domain, context: &[u8], plain: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.mac);
        h.update(&[domain as u8]);
        h.update(&(context.len() as u32).to_le_bytes());
        h.update(context);
        h.update(plain);
        *h.finalize().as_bytes()
    }

    /// Seals `buf` in place: returns its tag; `buf` becomes the ciphertext, zero-padded
    /// to [`MIN_SEALED`] bytes first when shorter (an empty buffer stays empty).
    pub fn seal(&self, domain: Domain, context: &[u8], buf: &mut Vec<u8>) -> [u8; 32] {
        let tag = self.tag(domain, context, buf);
        if !buf.is_empty() && buf.len() < MIN_SEALED {
            buf.resize(MIN_SEALED, 0);
        }
        let crypt = self.xts.crypt(buf, tweak_of(&tag), Direction::Encrypt);
        debug_assert!(
            crypt.is_ok(),
            "a sealed buffer is empty or at least 16 bytes"
        );
        tag
    }

    /// Opens `buf` (the ciphertext [`SealKeys::seal`] made, `plain_len` bytes of
    /// plaintext) in place against `tag` (all or the first bytes of the sealed tag).
    /// On failure `buf` holds garbage that nobody may use.
    pub fn open(
        &self,
        domain: Domain,
        context: &[u8],
        buf: &mut Vec<u8>,
        plain_len: usize,
        tag: &[u8],
    ) -> Result<(), OpenError> {
        if buf.len() != sealed_len(plain_len) || tag.len() < 8 || tag.len() > 32 {
            return Err(OpenError);
        }
        let mut tweak = [0u8; 8];
        tweak.copy_from_slice(&tag[..8]);
        self.xts
            .crypt(buf, u64::from_le_bytes(tweak), Direction::Decrypt)
            .map_err(|_| OpenError)?;
        buf.truncate(plain_len);
        let computed = self.tag(domain, context, buf);
        // Every byte compared, whatever the first difference.
        let diff = computed
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            buf.zeroize();
            return Err(OpenError);
        }
        Ok(())
    }
}

/// Bytes a plaintext of `plain_len` bytes takes sealed.
pub fn sealed_len(plain_len: usize) -> usize {
    if plain_len == 0 {
        0
    } else {
        plain_len.max(MIN_SEALED)
    }
}

/// The first XTS tweak of a buffer sealed with `tag`.
fn tweak_of(tag: &[u8; 32]) -> u64 {
    let mut t = [0u8; 8];
    t.copy_from_slice(&tag[..8]);
    u64::from_le_bytes(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(b: u8) -> SealKeys {
        SealKeys::new(&VolumeKey::from_bytes([b; 32]))
    }

    #[test]
    fn sealed_bytes_open_only_unchanged_with_their_key_domain_and_context() {
        let k = keys(1);
        for len in [1usize, 15, 16, 17, 4096, 5000, 65536] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 7) as u8 + b'a').collect();
            let mut buf = plain.clone();
            let tag = k.seal(Domain::Record, b"ctx", &mut buf);
            assert_eq!(buf.len(), sealed_len(len));
            assert_ne!(buf[..len.min(16)], plain[..len.min(16)]);
            let mut ok = buf.clone();
            k.open(Domain::Record, b"ctx", &mut ok, len, &tag[..24])
                .unwrap();
            assert_eq!(ok, plain);
            // The same bytes seal the same way (deterministic: dedup and unchanged pages).
            let mut again = plain.clone();
            assert_eq!(k.seal(Domain::Record, b"ctx", &mut again), tag);
            assert_eq!(again, buf);
            for (domain, ctx, key) in [
                (Domain::Page, &b"ctx"[..], 1u8),
                (Domain::Record, &b"ctX"[..], 1),
                (Domain::Record, &b"ctx"[..], 2),
            ] {
                let mut b = buf.clone();
                assert_eq!(
                    keys(key).open(domain, ctx, &mut b, len, &tag),
                    Err(OpenError)
                );
            }
            for at in [0, buf.len() / 2, buf.len() - 1] {
                let mut b = buf.clone();
                b[at] ^= 1;
                assert_eq!(
                    k.open(Domain::Record, b"ctx", &mut b, len, &tag),
                    Err(OpenError)
                );
            }
            let mut bad_tag = tag;
            bad_tag[20] ^= 1;
            let mut b = buf.clone();
            assert_eq!(
                k.open(Domain::Record, b"ctx", &mut b, len, &bad_tag),
                Err(OpenError)
            );
        }
    }

    #[test]
    fn the_keys_are_never_printed() {
        assert_eq!(format!("{:?}", keys(3)), "SealKeys { .. }");
    }
}
