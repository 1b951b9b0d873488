//! Encryption at rest (format version 6): the volume key and its key slots
//! ([`keys`], [`area`]), and the sealing every record, checkpoint page and journal block
//! of an encrypted image goes through ([`seal`]).

pub mod area;
pub mod keys;
pub mod seal;

pub use area::{add_key, list_keys, remove_key, unlock, SlotInfo};
pub use keys::{KdfParams, Passphrase, VolumeKey, DEFAULT_KDF_TIME, DEFAULT_MEMORY_KIB};
pub use seal::{Domain, OpenError, SealKeys};
