//! Channel-Bench-Macro (BCNetV2, arXiv 2203.13714): two macro networks with seven searchable
//! widths each, four choices per width (1/4 .. 4/4 of the layer's maximum), every one of the
//! 4^7 = 16384 architectures trained three times on CIFAR-10. This module holds the two
//! spaces (their layer layout, maxima and cost) and reads the benchmark's result files; the
//! data itself stays outside the project (no licence is granted for it).
//!
//! An architecture key is 7 digits over `1..=4`; digit `i` gives layer `i` the width
//! `digit * max_i / 4`.

use std::collections::HashMap;
use std::path::Path;

use ember_core::{EmberError, Result};
use serde::Deserialize;

use ember_models::cbm::{Config as ModelConfig, Layout};
use ember_models::cost::Cost;

/// The two macro networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Stem, four inverted-residual blocks (block 3 strided, without shortcut), a 1x1 conv,
    /// pooling and a linear classifier.
    MobileNet,
    /// Stem, five basic blocks (block 3 strided, without shortcut), pooling, linear.
    ResNet,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::MobileNet, Family::ResNet];

    pub fn name(self) -> &'static str {
        match self {
            Family::MobileNet => "MobileNet",
            Family::ResNet => "ResNet",
        }
    }

    pub fn layout(self) -> Layout {
        match self {
            Family::MobileNet => Layout::MobileNet,
            Family::ResNet => Layout::ResNet,
        }
    }

    /// The benchmark's maximum width of each searchable layer.
    pub fn maxima(self) -> [usize; 7] {
        let widths = ModelConfig::benchmark(self.layout()).widths;
        std::array::from_fn(|i| widths[i])
    }
}

impl std::str::FromStr for Family {
    type Err = EmberError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mobilenet" => Ok(Family::MobileNet),
            "resnet" => Ok(Family::ResNet),
            other => Err(EmberError::bad_input(format!(
                "unknown Channel-Bench-Macro family `{other}` (known: mobilenet, resnet)"
            ))),
        }
    }
}

/// One of the macro networks at some maxima and input: the benchmark's own (CIFAR-10,
/// 3x32x32, 10 classes) or a scaled-down copy (e.g. maxima / 8 on 1x28x28 Fashion-MNIST).
#[derive(Debug, Clone, PartialEq)]
pub struct MacroSpace {
    pub family: Family,
    pub maxima: [usize; 7],
    /// Width choices per layer: width = choice * max / bins, choice in `1..=bins`.
    pub bins: usize,
    pub in_chans: usize,
    pub side: usize,
    pub classes: usize,
}

impl MacroSpace {
    /// The benchmark's space.
    pub fn benchmark(family: Family) -> Self {
        Self {
            family,
            maxima: family.maxima(),
            bins: 4,
            in_chans: 3,
            side: 32,
            classes: 10,
        }
    }

    /// The benchmark's layout with every maximum divided by `divisor` (rounded up), on
    /// `in_chans x side x side` inputs.
    pub fn scaled(family: Family, divisor: usize, in_chans: usize, side: usize) -> Self {
        let widths = ModelConfig::scaled(family.layout(), divisor).widths;
        Self {
            maxima: std::array::from_fn(|i| widths[i]),
            in_chans,
            side,
            ..Self::benchmark(family)
        }
    }

    /// Channels of each searchable layer for a choice vector (choices in `1..=bins`).
    pub fn widths(&self, choices: &[usize]) -> Result<[usize; 7]> {
        if choices.len() != 7 || choices.iter().any(|&c| c == 0 || c > self.bins) {
            return Err(EmberError::bad_input(format!(
                "a {} width vector has 7 choices in 1..={}, got {choices:?}",
                self.family.name(),
                self.bins
            )));
        }
        let mut w = [0; 7];
        for (i, (&c, &m)) in choices.iter().zip(&self.maxima).enumerate() {
            w[i] = (c * m).div_ceil(self.bins);
        }
        Ok(w)
    }

    /// The model config of the widest network (what a supernet stores, before BCNetV2's
    /// enlargement).
    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            layout: self.family.layout(),
            widths: self.maxima.to_vec(),
            in_chans: self.in_chans,
            num_classes: self.classes,
        }
    }

    /// MACs and parameters of the network with these channels per searchable layer.
    pub fn cost(&self, w: &[usize; 7]) -> Cost {
        self.model().cost_with(w, self.side)
    }

    /// Cost of a choice vector.
    pub fn cost_of(&self, choices: &[usize]) -> Result<Cost> {
        Ok(self.cost(&self.widths(choices)?))
    }

    /// The cost of the widest network.
    pub fn max_cost(&self) -> Cost {
        self.cost(&self.maxima)
    }
}

/// A 7-digit key (`"4432214"`) as choices.
pub fn parse_key(key: &str) -> Result<Vec<usize>> {
    let digits: Option<Vec<usize>> = key
        .chars()
        .map(|c| c.to_digit(10).map(|d| d as usize))
        .collect();
    match digits {
        Some(d) if d.len() == 7 && d.iter().all(|&x| (1..=4).contains(&x)) => Ok(d),
        _ => Err(EmberError::bad_input(format!(
            "`{key}` is not a Channel-Bench-Macro key (7 digits, each 1-4)"
        ))),
    }
}

/// Choices as a key.
pub fn key_of(choices: &[usize]) -> String {
    choices.iter().map(|c| c.to_string()).collect()
}

/// One architecture's record in a result file.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// Test top-1 (%) of three trainings (the best epoch of each).
    pub acc: Vec<f64>,
    pub mean: f64,
    pub std: f64,
    pub params: u64,
    pub flops: u64,
}

/// A family's result file (`Results_MobileNet.json`, `Results_ResNet.json`).
#[derive(Debug, Clone)]
pub struct Benchmark {
    pub family: Family,
    pub records: HashMap<String, Record>,
}

impl Benchmark {
    /// Reads `Results_<Family>.json` from the benchmark's folder.
    pub fn load(dir: &Path, family: Family) -> Result<Self> {
        let path = dir.join(format!("Results_{}.json", family.name()));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| EmberError::bad_input(format!("{}: {e}", path.display())))?;
        let records: HashMap<String, Record> = serde_json::from_str(&text)
            .map_err(|e| EmberError::bad_input(format!("{}: {e}", path.display())))?;
        for key in records.keys() {
            parse_key(key)?;
        }
        Ok(Self { family, records })
    }

    pub fn get(&self, choices: &[usize]) -> Option<&Record> {
        self.records.get(&key_of(choices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_widest_networks_cost_what_the_benchmark_lists() {
        // Maxima from the benchmark's README (MobileNet 211,281,920; ResNet 1,436,226,560).
        let m = MacroSpace::benchmark(Family::MobileNet);
        assert_eq!(m.cost_of(&[4; 7]).unwrap().macs, 211_281_920);
        assert_eq!(m.cost_of(&[1; 7]).unwrap().macs, 14_285_312);
        let r = MacroSpace::benchmark(Family::ResNet);
        assert_eq!(r.max_cost().macs, 1_436_226_560);
        assert_eq!(r.cost_of(&[1; 7]).unwrap().macs, 90_096_896);
    }

    #[test]
    fn keys_and_choices_round_trip_and_bad_keys_are_refused() {
        assert_eq!(parse_key("4432214").unwrap(), vec![4, 4, 3, 2, 2, 1, 4]);
        assert_eq!(key_of(&[4, 4, 3, 2, 2, 1, 4]), "4432214");
        for bad in ["443221", "4432215", "44322a4", "44322140"] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
        let m = MacroSpace::benchmark(Family::MobileNet);
        assert!(m.widths(&[0, 1, 1, 1, 1, 1, 1]).is_err());
        assert_eq!(
            m.widths(&[1; 7]).unwrap(),
            [32, 192, 192, 192, 64, 384, 256]
        );
    }

    #[test]
    fn the_scaled_space_of_the_fashion_mnist_runs() {
        // Spec 4.2: maxima / 8 on 1x28x28, about 2.95 MMACs at full width.
        let s = MacroSpace::scaled(Family::MobileNet, 8, 1, 28);
        assert_eq!(s.maxima, [16, 96, 96, 96, 32, 192, 128]);
        let macs = s.max_cost().macs as f64 / 1e6;
        assert!((macs - 2.95).abs() < 0.01, "{macs}");
    }
}
