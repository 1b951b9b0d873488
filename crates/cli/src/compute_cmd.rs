//! `gpufs compute`: which backend runs kernels here, on what adapter, and from which
//! batch sizes `auto` uses the GPU; `--calibrate` measures those sizes again.

use gpufs_compute::{calibrate, Choice, Compute};

#[derive(clap::Args, Debug)]
pub struct ComputeArgs {
    /// Backend: cpu, gpu or auto [default: $GPUFS_COMPUTE, else auto].
    #[arg(long, value_name = "BACKEND")]
    pub compute: Option<String>,
    /// Measure the GPU/CPU crossover sizes again and cache them.
    #[arg(long)]
    pub calibrate: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The backend the user chose: the flag, else `GPUFS_COMPUTE`, else auto.
pub fn choice(flag: Option<&str>) -> Result<Choice, String> {
    match flag {
        Some(v) => v.parse().map_err(|e| format!("{e}")),
        None => Choice::from_env().map_err(|e| format!("{}: {e}", gpufs_compute::choice::ENV_VAR)),
    }
}

/// Opens the compute layer as `choice` asks; a forced GPU without one is an error.
pub fn open(choice: Choice) -> Result<Compute, String> {
    Compute::open(choice).map_err(|e| match choice {
        Choice::Gpu => format!(
            "{e}; the GPU backend was forced (--compute gpu or GPUFS_COMPUTE=gpu): install a \
             Vulkan driver (e.g. mesa-vulkan-drivers) or use --compute auto"
        ),
        _ => e.to_string(),
    })
}

pub fn run(a: ComputeArgs) -> Result<(), String> {
    let choice = choice(a.compute.as_deref())?;
    let compute = open(choice)?;
    if a.calibrate {
        if let Some(ctx) = compute.gpu() {
            let policy = calibrate::calibrate(ctx).map_err(|e| e.to_string())?;
            calibrate::store(&calibrate::cache_path(ctx), &policy);
            return report(&compute, Some(&policy), a.json);
        }
        return Err("no GPU to calibrate".into());
    }
    report(&compute, None, a.json)
}

fn report(
    compute: &Compute,
    fresh: Option<&gpufs_compute::Policy>,
    json: bool,
) -> Result<(), String> {
    let policy = fresh.unwrap_or(compute.policy());
    let mut thresholds: Vec<(&String, &u64)> = policy.gpu_from.iter().collect();
    thresholds.sort();
    let gpu = compute.gpu();
    if json {
        let v = serde_json::json!({
            "choice": compute.choice().to_string(),
            "adapter": gpu.map(|g| g.info.name.clone()),
            "backend": gpu.map(|g| format!("{:?}", g.info.backend)),
            "software": gpu.map(|g| g.software),
            "gpu_from": thresholds.iter().map(|(k, v)| ((*k).clone(), **v)).collect::<std::collections::BTreeMap<_, _>>(),
        });
        println!("{v}");
        return Ok(());
    }
    println!("choice: {}", compute.choice());
    match gpu {
        Some(g) => println!(
            "adapter: {} ({:?}{})",
            g.info.name,
            g.info.backend,
            if g.software {
                ", software: correctness only"
            } else {
                ""
            }
        ),
        None => println!("adapter: none, every kernel runs on the CPU"),
    }
    if gpu.is_some() {
        match compute.choice() {
            Choice::Gpu => println!("every kernel runs on the GPU"),
            _ if thresholds.is_empty() => println!("auto: no kernel measured faster on the GPU"),
            _ => {
                for (k, v) in thresholds {
                    println!("auto: {k} on the GPU from {v} items");
                }
            }
        }
    }
    Ok(())
}
