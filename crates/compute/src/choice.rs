//! Which backend runs kernels: `--compute cpu|gpu|auto` or `GPUFS_COMPUTE`.

use std::fmt;
use std::str::FromStr;

use crate::error::ComputeError;

/// Environment variable that picks the backend when no flag does.
pub const ENV_VAR: &str = "GPUFS_COMPUTE";

/// The user's choice of backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    /// Always the CPU twins.
    Cpu,
    /// Always the GPU; an error when there is none.
    Gpu,
    /// The GPU on a hardware adapter above calibrated batch sizes, else the CPU.
    #[default]
    Auto,
}

impl Choice {
    /// The choice `GPUFS_COMPUTE` names, `Auto` when unset; an error for other values.
    pub fn from_env() -> Result<Choice, ComputeError> {
        match std::env::var(ENV_VAR) {
            Ok(v) if !v.is_empty() => v.parse(),
            _ => Ok(Choice::Auto),
        }
    }
}

impl FromStr for Choice {
    type Err = ComputeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Choice::Cpu),
            "gpu" => Ok(Choice::Gpu),
            "auto" => Ok(Choice::Auto),
            _ => Err(ComputeError::UnknownChoice(s.to_string())),
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Choice::Cpu => "cpu",
            Choice::Gpu => "gpu",
            Choice::Auto => "auto",
        })
    }
}

/// Where one kernel call ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    Cpu,
    Gpu,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_choices() {
        assert_eq!("cpu".parse::<Choice>().ok(), Some(Choice::Cpu));
        assert_eq!(" GPU ".parse::<Choice>().ok(), Some(Choice::Gpu));
        assert_eq!("auto".parse::<Choice>().ok(), Some(Choice::Auto));
        assert!(matches!(
            "cuda".parse::<Choice>(),
            Err(ComputeError::UnknownChoice(_))
        ));
    }
}
