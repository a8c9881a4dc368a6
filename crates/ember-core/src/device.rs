//! `--device auto|cpu|cuda[:N]|metal`: parsing and opening the device.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use crate::{EmberError, Result};

/// A device as the user names it on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA device 0 when the binary has CUDA and a GPU answers, else Metal likewise, else CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
    Metal,
}

impl FromStr for DeviceChoice {
    type Err = EmberError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            EmberError::bad_input(format!(
                "unknown device `{s}`: expected auto, cpu, cuda, cuda:N or metal"
            ))
        };
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            "metal" => Ok(Self::Metal),
            _ => {
                let ordinal = s.strip_prefix("cuda:").ok_or_else(bad)?;
                ordinal.parse().map(Self::Cuda).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Metal => write!(f, "metal"),
        }
    }
}

impl DeviceChoice {
    /// The device of one rank of a data-parallel run: `auto` and `cuda[:N]` become the GPU
    /// of the rank's `LOCAL_RANK` (each process has its own GPU, as under torchrun); CPU and
    /// Metal stay.
    pub fn for_local_rank(self, local_rank: usize) -> Self {
        match self {
            Self::Cuda(_) => Self::Cuda(local_rank),
            Self::Auto if candle_core::utils::cuda_is_available() => Self::Cuda(local_rank),
            other => other,
        }
    }

    /// Opens the device. An explicit accelerator the binary was built without, or that does
    /// not answer, is bad input (exit 2) with a message saying which build to use.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto => {
                if candle_core::utils::cuda_is_available() {
                    if let Ok(dev) = Device::new_cuda(0) {
                        return Ok(dev);
                    }
                }
                if candle_core::utils::metal_is_available() {
                    if let Ok(dev) = Device::new_metal(0) {
                        return Ok(dev);
                    }
                }
                Ok(Device::Cpu)
            }
            Self::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(EmberError::bad_input(
                        "--device cuda: this binary was built without CUDA (rebuild with --features cuda)",
                    ));
                }
                Device::new_cuda(n)
                    .map_err(|e| EmberError::bad_input(format!("--device cuda:{n}: {e}")))
            }
            Self::Metal => {
                if !candle_core::utils::metal_is_available() {
                    return Err(EmberError::bad_input(
                        "--device metal: this binary was built without Metal (rebuild with --features metal)",
                    ));
                }
                Device::new_metal(0)
                    .map_err(|e| EmberError::bad_input(format!("--device metal: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_spelling() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "cuda".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert_eq!(
            "metal".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Metal
        );
        for s in ["auto", "cpu", "cuda:0", "metal"] {
            assert_eq!(s.parse::<DeviceChoice>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rejects_unknown_devices_as_bad_input() {
        for s in ["gpu", "cuda:", "cuda:x", "CPU", ""] {
            let err = s.parse::<DeviceChoice>().unwrap_err();
            assert_eq!(err.exit_code(), 2, "{s}");
            assert!(err.to_string().contains("unknown device"), "{err}");
        }
    }

    #[test]
    fn cpu_and_auto_open_without_an_accelerator() {
        assert!(DeviceChoice::Cpu.open().unwrap().is_cpu());
        DeviceChoice::Auto.open().unwrap();
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_bad_input() {
        let err = DeviceChoice::Cuda(0).open().unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
}
