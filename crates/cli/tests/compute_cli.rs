//! `gpufs compute`: forcing the GPU where there is none is a clear error; `auto` falls
//! back to the CPU and still succeeds. "No adapter" is made by pointing the Vulkan
//! loader at a driver list that does not exist.

use std::process::Command;

fn gpufs(args: &[&str], no_driver: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpufs"));
    cmd.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd.env_remove("GPUFS_COMPUTE");
    if no_driver {
        cmd.env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .env("VK_DRIVER_FILES", "/nonexistent/icd.json");
    }
    cmd.output().expect("gpufs runs")
}

#[test]
fn forced_gpu_without_an_adapter_is_a_clear_error() {
    let out = gpufs(&["compute", "--compute", "gpu"], true);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no GPU available"), "{err}");
    assert!(err.contains("forced"), "{err}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gpufs"));
    let out = cmd
        .args(["compute"])
        .env("GPUFS_COMPUTE", "gpu")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .output()
        .expect("gpufs runs");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn auto_without_an_adapter_falls_back_to_the_cpu() {
    let out = gpufs(&["compute", "--json"], true);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["choice"], "auto");
    assert!(v["adapter"].is_null());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().filter(|l| l.contains("using the CPU")).count(),
        1,
        "{err}"
    );
}

#[test]
fn unknown_backends_are_refused() {
    let out = gpufs(&["compute", "--compute", "cuda"], false);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use cpu, gpu or auto"));
}
