//! The supplementary groups of a calling process, for access(2). FUSE requests carry only
//! the uid and primary gid; on Linux the rest is read from /proc.

/// Supplementary group ids of `pid`, empty when they cannot be read.
#[cfg(target_os = "linux")]
pub fn supplementary_groups(pid: u32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(not(target_os = "linux"))]
pub fn supplementary_groups(_pid: u32) -> Vec<u32> {
    Vec::new()
}
