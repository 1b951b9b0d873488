//! `gpufs mkfs`: make a filesystem, refusing to overwrite one without `--force`.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gpufs_core::device::{Device, FileDevice};
use gpufs_core::{mkfs, MkfsOptions, NewKey};

use crate::exit::Failure;
use crate::key_input::{read_key, KdfArgs};
use gpufs_format::{signature, Compression};

use crate::size::parse_size;

#[derive(clap::Args, Debug)]
pub struct MkfsArgs {
    /// Image file (created sparse if missing) or block device.
    pub image: PathBuf,
    /// Size of the image, e.g. 20G (required for a new image file).
    #[arg(long)]
    pub size: Option<String>,
    /// Bytes per file record: a power of two from 4K to 1M.
    #[arg(long, default_value = "64K")]
    pub record_size: String,
    /// How records are compressed unless a directory's property says otherwise:
    /// lz4, zstd (level 3), zstd:LEVEL (1 to 19) or none.
    #[arg(long, default_value = "lz4", value_parser = parse_compression)]
    pub compression: Compression,
    /// Deduplicate records unless a directory's property says otherwise: a record whose
    /// bytes are stored already is shared instead of written (23 to 43 bytes of memory
    /// per unique record while mounted).
    #[arg(long)]
    pub dedup: bool,
    /// Encrypt and authenticate everything: file data, names, sizes, times, xattrs, the
    /// tree, snapshots and every metadata block (AES-256-XTS sealed with a keyed BLAKE3
    /// tag; the volume key wrapped in a key slot by Argon2id and AES-256-GCM).
    #[arg(long)]
    pub encrypt: bool,
    /// The first key of an encrypted image: a file holding a passphrase or raw key (`-`:
    /// standard input); left out, it is asked twice at the terminal.
    #[arg(long, value_name = "FILE", requires = "encrypt")]
    pub key_file: Option<PathBuf>,
    #[command(flatten)]
    pub kdf: KdfArgs,
    /// Overwrite an existing filesystem signature.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A `--compression` value.
fn parse_compression(v: &str) -> Result<Compression, String> {
    Compression::parse(v).map_err(|e| e.to_string())
}

/// Names the filesystem signature at the start of `path`, if any.
pub fn existing_signature(path: &Path) -> Result<Option<&'static str>, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut head = Vec::with_capacity(signature::PROBE_BYTES);
    f.by_ref()
        .take(signature::PROBE_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(signature::detect(&head))
}

fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut u);
    }
    if u == [0; 16] {
        let t = gpufs_core::time::now_ns().to_le_bytes();
        u[..8].copy_from_slice(&t);
        u[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

pub fn uuid_string(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Makes a filesystem at `image`; used by `mkfs` and for the default image.
pub fn make(
    image: &Path,
    size: Option<u64>,
    record_size: u32,
    compression: Compression,
    dedup: bool,
    force: bool,
    encrypt: Option<NewKey>,
) -> Result<gpufs_format::Superblock, String> {
    let shown = image.display();
    let meta = std::fs::metadata(image).ok();
    if let Some(m) = &meta {
        if let Some(found) = existing_signature(image)? {
            if !force {
                return Err(format!(
                    "{shown} already holds a {found} filesystem; add --force to overwrite it"
                ));
            }
            // Not even with --force over a filesystem another machine has mounted (this
            // machine's mounts hold the image's OS lock, which the open below refuses).
            if let Ok(dev) = FileDevice::open(image, false) {
                gpufs_core::refuse_if_held_elsewhere(&dev, crate::paths::holder("mkfs"))
                    .map_err(|e| format!("{shown}: {e}"))?;
            }
        }
        if !m.file_type().is_file() && size.is_some() {
            return Err(format!(
                "{shown} is a device: --size cannot change its size"
            ));
        }
    }
    let is_file = meta.as_ref().is_none_or(|m| m.file_type().is_file());
    let dev: Arc<dyn Device> = if is_file {
        let len = match (size, &meta) {
            (Some(s), _) => s,
            (None, Some(m)) => m.len(),
            (None, None) => {
                return Err(format!("{shown} does not exist: give --size to create it"));
            }
        };
        Arc::new(
            FileDevice::create_sparse(image, len)
                .map_err(|e| crate::paths::open_error(image, &e))?,
        )
    } else {
        Arc::new(FileDevice::open(image, true).map_err(|e| crate::paths::open_error(image, &e))?)
    };
    let owner = std::fs::metadata(image)
        .map(|m| (m.uid(), m.gid()))
        .unwrap_or((0, 0));
    let owner = if is_file { owner } else { (0, 0) };
    let opts = MkfsOptions {
        record_size,
        journal_blocks: None,
        uid: owner.0,
        gid: owner.1,
        uuid: random_uuid(),
        compression,
        dedup,
        encrypt,
    };
    mkfs(dev, &opts).map_err(|e| format!("{shown}: {e}"))
}

pub fn run(a: MkfsArgs) -> Result<(), Failure> {
    let size = a
        .size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(Failure::usage)?;
    let rs = parse_size(&a.record_size).map_err(Failure::usage)?;
    let rs = u32::try_from(rs).map_err(|_| Failure::usage("record size too large"))?;
    let image = crate::absolute(&a.image);
    let encrypt = match a.encrypt {
        true => Some(NewKey {
            passphrase: read_key(
                a.key_file.as_deref(),
                &format!("new key for {}", image.display()),
                true,
            )?,
            kdf: a.kdf.params()?,
        }),
        false => None,
    };
    let sb =
        make(&image, size, rs, a.compression, a.dedup, a.force, encrypt).map_err(Failure::error)?;
    let bytes = sb.total_blocks * gpufs_format::BLOCK_SIZE as u64;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "image": image.display().to_string(),
                "bytes": bytes,
                "record_size": sb.record_size,
                "journal_bytes": sb.journal_blocks * gpufs_format::BLOCK_SIZE as u64,
                "uuid": uuid_string(&sb.uuid),
                "format_version": sb.version,
                "compression": a.compression.to_string(),
                "dedup": a.dedup,
                "encrypted": sb.is_encrypted(),
            })
        );
    } else {
        println!(
            "made gpufs on {}: {:.1} GiB, record size {} KiB, journal {} MiB, compression {}, \
             dedup {}, encryption {}, uuid {}",
            image.display(),
            bytes as f64 / (1u64 << 30) as f64,
            sb.record_size / 1024,
            sb.journal_blocks * 4 / 1024,
            a.compression,
            if a.dedup { "on" } else { "off" },
            if sb.is_encrypted() {
                "aes-256-xts + blake3 tags"
            } else {
                "off"
            },
            uuid_string(&sb.uuid)
        );
    }
    Ok(())
}
