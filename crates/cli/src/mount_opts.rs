//! Mount options as `mount -o` and /etc/fstab give them (`gpufs mount -o`, and
//! `mount.fuse.gpufs`, which mount(8) runs for `-t fuse.gpufs`).

use gpufs_core::AtimeMode;

/// What the options ask for; `None` leaves a setting to the command line or default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    pub read_only: Option<bool>,
    pub allow_other: bool,
    pub atime: Option<AtimeMode>,
    pub cache_size: Option<String>,
    pub commit_interval: Option<u64>,
    pub kernel_writeback: bool,
    /// Kernel flags passed through: nodev, nosuid, noexec.
    pub no_dev: bool,
    pub no_suid: bool,
    pub no_exec: bool,
    /// Open an image another machine's in-use marker names (that machine is down).
    pub force: bool,
    /// The key file of an encrypted image (`key_file=FILE`).
    pub key_file: Option<String>,
}

/// Options mount(8) and fstab use for themselves, which a helper accepts and ignores.
fn is_userspace_only(opt: &str) -> bool {
    matches!(
        opt,
        "defaults"
            | "auto"
            | "noauto"
            | "nofail"
            | "_netdev"
            | "user"
            | "nouser"
            | "users"
            | "owner"
            | "group"
            | "loop"
            | "dev"
            | "suid"
            | "exec"
            | "async"
            | "silent"
            | "loud"
    ) || opt.starts_with("x-")
        || opt.starts_with("comment=")
}

const KNOWN: &str = "ro, rw, noatime, relatime, strictatime, allow_other, cache_size=SIZE, \
                     commit=SECONDS, kernel_writeback, nodev, nosuid, noexec, force, key_file=FILE";

impl MountOptions {
    /// Parses comma-separated option lists, later ones winning.
    pub fn parse<'a>(lists: impl IntoIterator<Item = &'a str>) -> Result<MountOptions, String> {
        let mut o = MountOptions::default();
        for opt in lists
            .into_iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (opt, None),
            };
            match (name, value) {
                ("ro", None) => o.read_only = Some(true),
                ("rw", None) => o.read_only = Some(false),
                ("noatime", None) => o.atime = Some(AtimeMode::NoAtime),
                ("relatime", None) => o.atime = Some(AtimeMode::Relatime),
                ("strictatime", None) => o.atime = Some(AtimeMode::StrictAtime),
                ("allow_other", None) => o.allow_other = true,
                ("kernel_writeback", None) => o.kernel_writeback = true,
                ("nodev", None) => o.no_dev = true,
                ("nosuid", None) => o.no_suid = true,
                ("noexec", None) => o.no_exec = true,
                ("force", None) => o.force = true,
                ("cache_size", Some(v)) if !v.is_empty() => o.cache_size = Some(v.to_string()),
                ("key_file", Some(v)) if !v.is_empty() => o.key_file = Some(v.to_string()),
                ("commit", Some(v)) => {
                    let secs = v.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                        format!("mount option commit={v}: not a number of seconds")
                    })?;
                    o.commit_interval = Some(secs);
                }
                _ if is_userspace_only(opt) => {}
                _ => {
                    return Err(format!(
                        "unknown mount option {opt:?} (gpufs knows: {KNOWN})"
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// The arguments of `gpufs mount` for a mount helper's `SOURCE MOUNTPOINT [-sfnv]
/// [-o OPTIONS] [-t TYPE] [-N NS]` (how mount(8) runs `mount.fuse.gpufs`).
pub fn helper_args(args: &[String]) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    let mut opts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => opts.push(it.next().ok_or("-o needs options")?.clone()),
            "-t" | "-N" => {
                it.next();
            }
            s if s.starts_with("-o") => opts.push(s[2..].to_string()),
            // Sloppy, fake, no mtab, verbose: nothing to do for a FUSE mount.
            "-s" | "-f" | "-n" | "-v" => {}
            s if s.starts_with('-') => return Err(format!("unknown argument {s}")),
            _ => paths.push(a.clone()),
        }
    }
    let [source, target] = &paths[..] else {
        return Err("usage: mount.fuse.gpufs IMAGE MOUNTPOINT [-o OPTIONS]".into());
    };
    let mut out = vec!["mount".to_string(), source.clone(), target.clone()];
    for o in opts {
        out.push("-o".into());
        out.push(o);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_unknown_ones_are_refused() {
        let o = MountOptions::parse(["rw,noatime,allow_other", "cache_size=1G,commit=3,nodev"])
            .unwrap();
        assert_eq!(o.read_only, Some(false));
        assert_eq!(o.atime, Some(AtimeMode::NoAtime));
        assert!(o.allow_other && o.no_dev && !o.no_exec);
        assert_eq!(o.cache_size.as_deref(), Some("1G"));
        assert_eq!(o.commit_interval, Some(3));
        let o =
            MountOptions::parse(["defaults,ro,strictatime,x-systemd.automount,nofail"]).unwrap();
        assert_eq!(
            (o.read_only, o.atime),
            (Some(true), Some(AtimeMode::StrictAtime))
        );
        for bad in ["bogus", "ro=1", "commit=0", "commit=x", "cache_size="] {
            let e = MountOptions::parse([bad]).unwrap_err();
            assert!(e.contains("mount option"), "{bad}: {e}");
        }
    }

    #[test]
    fn helper_arguments_become_a_gpufs_mount() {
        let args: Vec<String> = ["/img", "/mnt", "-n", "-o", "rw,noatime", "-t", "fuse.gpufs"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            helper_args(&args).unwrap(),
            ["mount", "/img", "/mnt", "-o", "rw,noatime"]
        );
        assert!(helper_args(&args[..1]).is_err());
        assert!(helper_args(&["/i".into(), "/m".into(), "-z".into()]).is_err());
    }
}
