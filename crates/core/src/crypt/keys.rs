//! The volume key and the passphrases that open it: each key slot holds the volume key
//! sealed with AES-256-GCM under a key Argon2id derives from one passphrase (the
//! parameters and salt recorded in the slot, as LUKS2 does). Key material lives in
//! [`Zeroizing`] buffers, cleared when dropped, and never reaches a `Debug` output.

use std::time::{Duration, Instant};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use argon2::{Algorithm, Argon2, Params, Version};
use gpufs_format::keyslot::{KeySlot, KDF_ARGON2ID, VOLUME_KEY_BYTES};
use zeroize::Zeroizing;

use crate::error::{FsError, FsResult};

/// The random key everything of an encrypted volume is sealed under.
pub struct VolumeKey(Zeroizing<[u8; VOLUME_KEY_BYTES]>);

impl VolumeKey {
    /// A new key from the operating system's random source.
    pub fn random() -> FsResult<VolumeKey> {
        let mut k = Zeroizing::new([0u8; VOLUME_KEY_BYTES]);
        random_bytes(k.as_mut())?;
        Ok(VolumeKey(k))
    }

    pub fn from_bytes(bytes: [u8; VOLUME_KEY_BYTES]) -> VolumeKey {
        VolumeKey(Zeroizing::new(bytes))
    }

    pub fn bytes(&self) -> &[u8; VOLUME_KEY_BYTES] {
        &self.0
    }
}

impl std::fmt::Debug for VolumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VolumeKey { .. }")
    }
}

/// A passphrase or raw key as the user gave it (the bytes of a key file, or what was
/// typed).
#[derive(Clone)]
pub struct Passphrase(Zeroizing<Vec<u8>>);

impl Passphrase {
    pub fn new(bytes: Vec<u8>) -> Passphrase {
        Passphrase(Zeroizing::new(bytes))
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Argon2id parameters of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

/// Largest memory cost a slot may ask for (a hostile image must not make an unlock
/// allocate without bound): 4 GiB.
const MAX_MEMORY_KIB: u32 = 4 << 20;
/// Largest time cost a slot may ask for.
const MAX_ITERATIONS: u32 = 1 << 16;
/// Memory cost a calibration starts from: 256 MiB.
pub const DEFAULT_MEMORY_KIB: u32 = 256 << 10;
/// Time an unlock should take by default.
pub const DEFAULT_KDF_TIME: Duration = Duration::from_millis(500);

impl KdfParams {
    /// Fixed parameters (tests, or a user who gives them), checked.
    pub fn new(memory_kib: u32, iterations: u32) -> FsResult<KdfParams> {
        let p = KdfParams {
            memory_kib,
            iterations,
            lanes: 1,
        };
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> FsResult<()> {
        let fine = (8 * self.lanes..=MAX_MEMORY_KIB).contains(&self.memory_kib)
            && (1..=MAX_ITERATIONS).contains(&self.iterations)
            && (1..=16).contains(&self.lanes);
        if fine {
            Ok(())
        } else {
            Err(FsError::Key(format!(
                "unsupported Argon2id parameters: {} KiB, {} iterations, {} lanes",
                self.memory_kib, self.iterations, self.lanes
            )))
        }
    }

    /// Parameters that make one derivation take about `target` on this machine: the
    /// memory cost `memory_kib` (halved while one pass alone takes longer), then as many
    /// passes as fit, at least one.
    pub fn calibrate(target: Duration, memory_kib: u32) -> FsResult<KdfParams> {
        let mut p = KdfParams::new(memory_kib, 1)?;
        loop {
            let t = Instant::now();
            derive(b"calibration", &[0u8; 32], p)?;
            let one = t.elapsed().max(Duration::from_micros(100));
            if one > target && p.memory_kib >= 16 << 10 {
                p.memory_kib /= 2;
                continue;
            }
            let passes = (target.as_secs_f64() / one.as_secs_f64()).floor() as u32;
            p.iterations = passes.clamp(1, MAX_ITERATIONS);
            return Ok(p);
        }
    }
}

/// The key Argon2id derives from `pass` and `salt` under `p`.
fn derive(pass: &[u8], salt: &[u8; 32], p: KdfParams) -> FsResult<Zeroizing<[u8; 32]>> {
    p.check()?;
    let params = Params::new(p.memory_kib, p.iterations, p.lanes, Some(32))
        .map_err(|e| FsError::Key(format!("Argon2id parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pass, salt, out.as_mut())
        .map_err(|e| FsError::Key(format!("Argon2id: {e}")))?;
    Ok(out)
}

/// Bytes from the operating system's random source.
pub fn random_bytes(out: &mut [u8]) -> FsResult<()> {
    getrandom::getrandom(out).map_err(|e| FsError::Key(format!("no random bytes: {e}")))
}

/// A slot of the image `uuid` that `pass` opens to `key`.
pub fn make_slot(
    key: &VolumeKey,
    pass: &Passphrase,
    p: KdfParams,
    uuid: &[u8; 16],
    created_ns: i64,
) -> FsResult<KeySlot> {
    let mut slot = KeySlot {
        state: KeySlot::ACTIVE,
        kdf: KDF_ARGON2ID,
        memory_kib: p.memory_kib,
        iterations: p.iterations,
        lanes: p.lanes,
        reserved: 0,
        salt: [0; 32],
        nonce: [0; 12],
        reserved2: 0,
        wrapped: *key.bytes(),
        tag: [0; 16],
        created_ns,
    };
    random_bytes(&mut slot.salt)?;
    random_bytes(&mut slot.nonce)?;
    let wrapping = derive(pass.bytes(), &slot.salt, p)?;
    let gcm = Aes256Gcm::new(wrapping.as_ref().into());
    let ad = slot.associated_data(uuid);
    let tag = gcm
        .encrypt_in_place_detached(Nonce::from_slice(&slot.nonce), &ad, &mut slot.wrapped)
        .map_err(|_| FsError::Key("AES-256-GCM refused to wrap the key".into()))?;
    slot.tag.copy_from_slice(&tag);
    Ok(slot)
}

/// The volume key in `slot` when `pass` opens it (`None`: another passphrase).
pub fn open_slot(
    slot: &KeySlot,
    pass: &Passphrase,
    uuid: &[u8; 16],
) -> FsResult<Option<VolumeKey>> {
    if !slot.is_active() {
        return Ok(None);
    }
    let p = KdfParams {
        memory_kib: slot.memory_kib,
        iterations: slot.iterations,
        lanes: slot.lanes,
    };
    let wrapping = derive(pass.bytes(), &slot.salt, p)?;
    let gcm = Aes256Gcm::new(wrapping.as_ref().into());
    let mut key = Zeroizing::new(slot.wrapped);
    let ad = slot.associated_data(uuid);
    let opened = gcm.decrypt_in_place_detached(
        Nonce::from_slice(&slot.nonce),
        &ad,
        key.as_mut(),
        Tag::from_slice(&slot.tag),
    );
    Ok(opened.ok().map(|()| VolumeKey(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> KdfParams {
        KdfParams::new(64, 1).unwrap()
    }

    #[test]
    fn a_slot_opens_with_its_passphrase_only_and_on_its_image_only() {
        let key = VolumeKey::random().unwrap();
        let pass = Passphrase::new(b"correct horse".to_vec());
        let slot = make_slot(&key, &pass, quick(), &[1; 16], 5).unwrap();
        assert_ne!(slot.wrapped, *key.bytes());
        let back = open_slot(&slot, &pass, &[1; 16]).unwrap().unwrap();
        assert_eq!(back.bytes(), key.bytes());
        let wrong = Passphrase::new(b"correct horsE".to_vec());
        assert!(open_slot(&slot, &wrong, &[1; 16]).unwrap().is_none());
        assert!(open_slot(&slot, &pass, &[2; 16]).unwrap().is_none());
        let mut lowered = slot;
        lowered.iterations = 2;
        assert!(open_slot(&lowered, &pass, &[1; 16]).unwrap().is_none());
    }

    #[test]
    fn hostile_parameters_are_refused_before_any_work() {
        let key = VolumeKey::random().unwrap();
        let pass = Passphrase::new(b"x".to_vec());
        let mut slot = make_slot(&key, &pass, quick(), &[1; 16], 5).unwrap();
        slot.memory_kib = u32::MAX;
        assert!(matches!(
            open_slot(&slot, &pass, &[1; 16]),
            Err(FsError::Key(_))
        ));
        assert!(KdfParams::new(64, 0).is_err());
    }

    #[test]
    fn secrets_are_not_printed() {
        assert_eq!(
            format!("{:?}", Passphrase::new(b"hunter2".to_vec())),
            "Passphrase(..)"
        );
        assert_eq!(
            format!("{:?}", VolumeKey::from_bytes([7; 32])),
            "VolumeKey { .. }"
        );
    }
}
