//! Every model by name: `resolve` turns an arch name (a family like `resnet` or a preset like
//! `resnet50`) and JSON overrides into a full config; `build` makes the model from (family,
//! config) and a VarBuilder. A checkpoint stores exactly that (family, config) pair, so any
//! tool rebuilds the model from the file alone.

use candle_core::{ModuleT, Result as CandleResult, Tensor};
use candle_nn::VarBuilder;
use ember_core::{EmberError, Result};
use serde_json::{Map, Value};

use crate::cbm::{self, MacroNet};
use crate::lightvit::{self, LightViT};
use crate::rep::RepSite;
use crate::resnet::{self, ResNet};
use crate::scalenet::{self, ScaleNet, SuperSupernet};
use crate::seg::{self, SegModel};
use crate::swin::{self, Swin};
use crate::taps::Taps;

/// A model that maps images to class logits (per pixel, `[n, classes, h', w']` at its output
/// stride, for segmentation).
pub trait Classifier: Send + Sync {
    fn forward_t(&self, x: &Tensor, train: bool) -> CandleResult<Tensor>;

    /// The classifier layer's input `[n, d]`: the backbone's pooled features (what
    /// self-supervised methods, kNN monitors and linear probes read).
    fn features(&self, x: &Tensor, train: bool) -> CandleResult<Tensor>;

    /// The backbone's last feature map `[n, d, h, w]`, before pooling (LEWEL's alignment
    /// maps are computed on it).
    fn feature_map(&self, x: &Tensor, train: bool) -> CandleResult<Tensor>;

    /// Named intermediate outputs (as the parity fixtures name them), `logits` last.
    fn outputs(&self, x: &Tensor, train: bool) -> CandleResult<Vec<(String, Tensor)>> {
        Ok(vec![("logits".into(), self.forward_t(x, train)?)])
    }

    /// Seeds the stochastic layers (drop path, dropout) for the next training step; the
    /// trainer calls it with a seed drawn from (run seed, step).
    fn reseed(&self, _seed: u64) {}

    /// Name fragments of parameters that get no weight decay beyond the 1-d ones (the
    /// official model's `no_weight_decay()`).
    fn no_weight_decay(&self) -> &'static [&'static str] {
        &[]
    }

    /// The name prefix of the classifier layer (replaced when fine-tuning to other classes).
    fn head_prefix(&self) -> &'static str {
        "head."
    }

    /// The re-parameterisable convolution slots, in forward order (none for a model
    /// without them).
    fn rep_sites(&self) -> Vec<RepSite> {
        Vec::new()
    }
}

impl Classifier for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        ModuleT::forward_t(self, x, train)
    }

    fn features(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        self.forward_features(x, train)
    }

    fn feature_map(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        ResNet::feature_map(self, x, train)
    }

    fn head_prefix(&self) -> &'static str {
        "fc."
    }

    fn rep_sites(&self) -> Vec<RepSite> {
        ResNet::rep_sites(self)
    }

    fn outputs(&self, x: &Tensor, train: bool) -> CandleResult<Vec<(String, Tensor)>> {
        let out = self.forward_outputs(x, train)?;
        let mut named = vec![("stem".to_string(), out.stem)];
        for (i, s) in out.stages.into_iter().enumerate() {
            named.push((format!("layer{}", i + 1), s));
        }
        named.push(("logits".into(), out.logits));
        Ok(named)
    }
}

/// The named outputs of a forward pass that offers its intermediates to taps: those, then
/// `logits`.
fn tapped(
    forward: impl FnOnce(&mut Taps) -> CandleResult<Tensor>,
) -> CandleResult<Vec<(String, Tensor)>> {
    let mut taps = Taps::on();
    let logits = forward(&mut taps)?;
    let mut named = taps.into_vec();
    named.push(("logits".into(), logits));
    Ok(named)
}

impl Classifier for LightViT {
    fn forward_t(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        self.forward_taps(x, train, &mut Taps::off())
    }

    fn features(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        LightViT::features(self, x, train)
    }

    fn feature_map(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        LightViT::feature_map(self, x, train)
    }

    fn outputs(&self, x: &Tensor, train: bool) -> CandleResult<Vec<(String, Tensor)>> {
        tapped(|taps| self.forward_taps(x, train, taps))
    }

    fn reseed(&self, seed: u64) {
        self.noise().reseed(seed)
    }

    fn no_weight_decay(&self) -> &'static [&'static str] {
        &["global_token", "relative_position_bias_table"]
    }
}

impl Classifier for Swin {
    fn forward_t(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        self.forward_taps(x, train, &mut Taps::off())
    }

    fn features(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        Swin::features(self, x, train)
    }

    fn feature_map(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        Swin::feature_map(self, x, train)
    }

    fn outputs(&self, x: &Tensor, train: bool) -> CandleResult<Vec<(String, Tensor)>> {
        tapped(|taps| self.forward_taps(x, train, taps))
    }

    fn reseed(&self, seed: u64) {
        self.noise().reseed(seed)
    }

    fn no_weight_decay(&self) -> &'static [&'static str] {
        &["relative_position_bias_table", "absolute_pos_embed"]
    }
}

impl Classifier for SegModel {
    /// Per-pixel logits `[n, classes, h / s, w / s]` at the output stride `s`.
    fn forward_t(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        ModuleT::forward_t(self, x, train)
    }

    fn features(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        self.backbone().forward_features(x, train)
    }

    fn feature_map(&self, x: &Tensor, train: bool) -> CandleResult<Tensor> {
        self.backbone().feature_map(x, train)
    }

    fn head_prefix(&self) -> &'static str {
        "decoder.classifier."
    }

    fn outputs(&self, x: &Tensor, train: bool) -> CandleResult<Vec<(String, Tensor)>> {
        let out = self.forward_dense(x, train)?;
        let mut named: Vec<(String, Tensor)> = out
            .stages
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("layer{}", i + 1), s))
            .collect();
        named.push(("decoder.fused".into(), out.fused));
        named.push(("logits".into(), out.logits));
        Ok(named)
    }
}

/// A registered name: the family it builds and its preset config.
pub struct Arch {
    pub name: &'static str,
    pub family: &'static str,
    pub about: &'static str,
    preset: fn() -> Value,
}

fn json<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("configs serialise")
}

/// Every name `--arch` accepts.
pub const ARCHS: &[Arch] = &[
    Arch {
        name: "resnet",
        family: "resnet",
        about: "ResNet, any depth and width (default: ResNet-18)",
        preset: || json(resnet::Config::resnet18()),
    },
    Arch {
        name: "resnet18",
        family: "resnet",
        about: "ResNet-18 (basic blocks 2-2-2-2)",
        preset: || json(resnet::Config::resnet18()),
    },
    Arch {
        name: "resnet34",
        family: "resnet",
        about: "ResNet-34 (basic blocks 3-4-6-3)",
        preset: || json(resnet::Config::resnet34()),
    },
    Arch {
        name: "resnet50",
        family: "resnet",
        about: "ResNet-50 (bottleneck blocks 3-4-6-3)",
        preset: || json(resnet::Config::resnet50()),
    },
    Arch {
        name: "lightvit",
        family: "lightvit",
        about: "LightViT, any widths, depths, heads and window (default: LightViT-T)",
        preset: || json(lightvit::Config::tiny()),
    },
    Arch {
        name: "lightvit_tiny",
        family: "lightvit",
        about: "LightViT-T, ImageNet 224 px (9.4M parameters, 0.7 GFLOPs)",
        preset: || json(lightvit::Config::tiny()),
    },
    Arch {
        name: "lightvit_small",
        family: "lightvit",
        about: "LightViT-S, ImageNet 224 px (19.2M parameters, 1.7 GFLOPs)",
        preset: || json(lightvit::Config::small()),
    },
    Arch {
        name: "lightvit_base",
        family: "lightvit",
        about: "LightViT-B, ImageNet 224 px (35.2M parameters, 3.9 GFLOPs)",
        preset: || json(lightvit::Config::base()),
    },
    Arch {
        name: "lightvit_tiny_32",
        family: "lightvit",
        about: "LightViT-T widths for 32 px images (stem stride 4, 2x2 windows)",
        preset: || json(lightvit::Config::tiny_32()),
    },
    Arch {
        name: "lightvit_nano_32",
        family: "lightvit",
        about: "half LightViT-T's widths for 32 px images (2.0M parameters)",
        preset: || json(lightvit::Config::nano_32()),
    },
    Arch {
        name: "lightvit_tiny_64",
        family: "lightvit",
        about: "LightViT-T widths for 64 px images (official stem, 2x2 windows)",
        preset: || json(lightvit::Config::tiny_64()),
    },
    Arch {
        name: "swin",
        family: "swin",
        about: "Swin Transformer, any widths, depths, heads and window (default: Swin-T)",
        preset: || json(swin::Config::tiny()),
    },
    Arch {
        name: "swin_tiny",
        family: "swin",
        about: "Swin-T, ImageNet 224 px (window 7)",
        preset: || json(swin::Config::tiny()),
    },
    Arch {
        name: "swin_base",
        family: "swin",
        about: "Swin-B, ImageNet 224 px (window 7), GreenMIM's encoder",
        preset: || json(swin::Config::base()),
    },
    Arch {
        name: "swin_nano_32",
        family: "swin",
        about: "a three-stage Swin for 32 px images (patch 2, window 4, 8 px mask units)",
        preset: || json(swin::Config::nano_32()),
    },
    Arch {
        name: "seg_resnet18",
        family: "seg",
        about: "segmentation: ResNet-18 backbone, FPN decoder (64 channels, stride 4)",
        preset: || json(seg::Config::resnet18()),
    },
    Arch {
        name: "seg_resnet_quarter",
        family: "seg",
        about:
            "segmentation: ResNet-18 at quarter width (16-128), FPN decoder (32 channels, stride 4)",
        preset: || json(seg::Config::resnet_quarter()),
    },
    Arch {
        name: "cbm",
        family: "cbm",
        about: "a Channel-Bench-Macro network, either layout and any 7 widths (default: the benchmark's MobileNet)",
        preset: || json(cbm::Config::benchmark(cbm::Layout::MobileNet)),
    },
    Arch {
        name: "cbm_mobilenet",
        family: "cbm",
        about: "Channel-Bench-Macro's MobileNet at its maximum widths (any 7 widths)",
        preset: || json(cbm::Config::benchmark(cbm::Layout::MobileNet)),
    },
    Arch {
        name: "cbm_resnet",
        family: "cbm",
        about: "Channel-Bench-Macro's ResNet at its maximum widths (any 7 widths)",
        preset: || json(cbm::Config::benchmark(cbm::Layout::ResNet)),
    },
    Arch {
        name: "cbm_mobilenet_small",
        family: "cbm",
        about: "Channel-Bench-Macro's MobileNet at 1/8 of its widths (16-192; the Fashion-MNIST search space)",
        preset: || json(cbm::Config::scaled(cbm::Layout::MobileNet, 8)),
    },
    Arch {
        name: "scalenet",
        family: "scalenet",
        about: "a ScaleNet sub-network from its layer plan (`scalenet-search export`; default: the deepest 5x5 base of the Fashion-MNIST space)",
        preset: || json(scalenet_reference(&scalenet::Space::fashion())),
    },
    Arch {
        name: "scalenet_supernet",
        family: "scalenet_supernet",
        about: "ScaleNet's super-supernet over the official ImageNet space (every base and scale up to 8x)",
        preset: || json(scalenet::Space::imagenet()),
    },
    Arch {
        name: "scalenet_supernet_fashion",
        family: "scalenet_supernet",
        about: "ScaleNet's super-supernet over the spec's Fashion-MNIST space (scales up to 4x, 20-28 px)",
        preset: || json(scalenet::Space::fashion()),
    },
];

/// The deepest base of a ScaleNet space with its largest kernel, as a stand-alone plan.
fn scalenet_reference(space: &scalenet::Space) -> scalenet::Plan {
    space.plan(&space.base_subnet(&space.deepest_base()))
}

/// The model families `build` knows.
pub const FAMILIES: &[&str] = &[
    "resnet",
    "lightvit",
    "swin",
    "seg",
    "cbm",
    "scalenet",
    "scalenet_supernet",
];

fn arch(name: &str) -> Result<&'static Arch> {
    ARCHS.iter().find(|a| a.name == name).ok_or_else(|| {
        let names: Vec<&str> = ARCHS.iter().map(|a| a.name).collect();
        EmberError::bad_input(format!(
            "unknown arch `{name}` (known: {})",
            names.join(", ")
        ))
    })
}

/// A model family and its full config.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub family: String,
    pub config: Value,
}

impl ModelConfig {
    /// Replaces fields of the config by those of `overrides` (a JSON object, or null for
    /// none).
    pub fn apply(&mut self, overrides: &Value) -> Result<()> {
        match overrides {
            Value::Null => Ok(()),
            Value::Object(fields) => {
                let target = self
                    .config
                    .as_object_mut()
                    .ok_or_else(|| EmberError::bad_input("a model config must be a JSON object"))?;
                for (k, v) in fields {
                    target.insert(k.clone(), v.clone());
                }
                Ok(())
            }
            other => Err(EmberError::bad_input(format!(
                "model config must be a JSON object, got {other}"
            ))),
        }
    }

    /// Sets a config field (e.g. `in_chans` and `num_classes` from the data) unless the user
    /// already chose a different value, which is an error.
    pub fn fit(&mut self, key: &str, value: usize, user: &Value) -> Result<()> {
        if let Some(given) = user.get(key) {
            if given.as_u64() != Some(value as u64) {
                return Err(EmberError::bad_input(format!(
                    "model config sets {key} = {given}, but the data needs {value}"
                )));
            }
        }
        self.config[key] = Value::from(value);
        Ok(())
    }
}

/// The preset of `arch` with the fields of `overrides` (a JSON object) replacing its own.
pub fn resolve(arch_name: &str, overrides: &Value) -> Result<ModelConfig> {
    let arch = arch(arch_name)?;
    let mut cfg = ModelConfig {
        family: arch.family.to_string(),
        config: (arch.preset)(),
    };
    cfg.apply(overrides)?;
    Ok(cfg)
}

/// `config` read as `family`'s config type; unknown or ill-typed fields are bad input.
fn parse<T: serde::de::DeserializeOwned>(family: &str, config: &Value) -> Result<T> {
    serde_json::from_value(config.clone())
        .map_err(|e| EmberError::bad_input(format!("{family} config: {e}")))
}

/// Learnt parameters of the model whose variables are `vars` (buffers excluded), as
/// PyTorch's `sum(p.numel() for p in model.parameters())`.
pub fn parameter_count(vars: &candle_nn::VarMap) -> usize {
    vars.data()
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| !ember_core::checkpoint::is_buffer(k))
        .map(|(_, v)| v.elem_count())
        .sum()
}

/// The input side a config is meant for: LightViT's `img_size`; 224 for an ImageNet-stem
/// ResNet, 32 for a small-stem one.
pub fn default_input_size(family: &str, config: &Value) -> usize {
    let field = |k: &str| config.get(k).and_then(Value::as_u64).map(|v| v as usize);
    match family {
        "lightvit" | "swin" => field("img_size").unwrap_or(224),
        "seg" => 64,
        "cbm" => 32,
        "scalenet" => field("resolution").unwrap_or(224),
        "scalenet_supernet" => 28,
        _ if config.get("stem_type").and_then(Value::as_str) == Some("small") => 32,
        _ => 224,
    }
}

/// Whether the model takes `h x w` inputs (LightViT's windows must tile every stage); bad
/// input that says why if not.
pub fn check_input(family: &str, config: &Value, h: usize, w: usize) -> Result<()> {
    if family == "lightvit" {
        parse::<lightvit::Config>(family, config)?
            .grids(h, w)
            .map_err(|e| EmberError::bad_input(format!("lightvit: {e}")))?;
    }
    if family == "swin" {
        let side = parse::<swin::Config>(family, config)?.img_size;
        if (h, w) != (side, side) {
            return Err(EmberError::bad_input(format!(
                "swin: the model takes {side}x{side} images, got {h}x{w} (set img_size in the model config)"
            )));
        }
    }
    Ok(())
}

/// Multiply-accumulates of one `h x w` image, derived from the config, each count labelled;
/// in GMACs.
pub fn macs(family: &str, config: &Value, h: usize, w: usize) -> Result<Value> {
    let bad = |e: String| EmberError::bad_input(format!("{family} config: {e}"));
    Ok(match family {
        "resnet" => {
            let cfg: resnet::Config = parse(family, config)?;
            serde_json::json!({ "convs_and_classifier": cfg.macs(h, w) / 1e9 })
        }
        "lightvit" => {
            let cfg: lightvit::Config = parse(family, config)?;
            cfg.grids(h, w).map_err(bad)?;
            let f = lightvit::flops::count(&cfg, h, w);
            serde_json::json!({
                "official_counter": f.official / 1e9,
                "window_attention_included": f.window_attention_included / 1e9,
                "note": "official_counter is the paper's count (LightViT.flops(): window attention charged as H*W*C*2, 1000 classes); window_attention_included charges it H*W*ws^2*C*2"
            })
        }
        "seg" => {
            let cfg: seg::Config = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            serde_json::json!({ "convs": cfg.macs(h, w) / 1e9 })
        }
        "cbm" => {
            let cfg: cbm::Config = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            if h != w {
                return Err(bad(format!("square inputs only, got {h}x{w}")));
            }
            serde_json::json!({ "convs_and_classifier": cfg.cost(h).macs as f64 / 1e9 })
        }
        "scalenet" => {
            let cfg: scalenet::Plan = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            serde_json::json!({
                "convs_se_and_classifier": cfg.cost().macs as f64 / 1e9,
                "note": "at the model's own resolution (inputs are resized to it first)"
            })
        }
        "scalenet_supernet" => {
            let space: scalenet::Space = parse(family, config)?;
            space.validate().map_err(bad)?;
            let last = space.scaling.len() - 1;
            let (d, w, r) = space.scaling[last].values([
                space.scaling[last].depth.len() - 1,
                space.scaling[last].width.len() - 1,
                space.scaling[last].resolution.len() - 1,
            ]);
            let largest = space.plan(&space.scale(&space.deepest_base(), d, w, r));
            serde_json::json!({
                "largest_subnet": largest.cost().macs as f64 / 1e9,
                "note": "the deepest base of the largest kernel at the largest scale, at its own resolution"
            })
        }
        "swin" => {
            let cfg: swin::Config = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            serde_json::json!({
                "official_counter": swin::flops::macs(&cfg) / 1e9,
                "note": "SwinTransformer.flops() of the official code at img_size (window attention at ws^2 keys per query, LayerNorms included)"
            })
        }
        other => {
            return Err(EmberError::bad_input(format!(
                "unknown model family `{other}`"
            )))
        }
    })
}

/// Builds `family` from `config`; unknown or ill-typed fields are bad input.
pub fn build(family: &str, config: &Value, vb: VarBuilder) -> Result<Box<dyn Classifier>> {
    let bad = |e: String| EmberError::bad_input(format!("{family} config: {e}"));
    match family {
        "resnet" => {
            let cfg: resnet::Config = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            Ok(Box::new(ResNet::new(&cfg, vb)?))
        }
        "lightvit" => {
            let cfg: lightvit::Config = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            Ok(Box::new(LightViT::new(&cfg, vb)?))
        }
        "swin" => {
            let cfg: swin::Config = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            Ok(Box::new(Swin::new(&cfg, vb)?))
        }
        "seg" => {
            let cfg: seg::Config = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            Ok(Box::new(SegModel::new(&cfg, vb)?))
        }
        "cbm" => {
            let cfg: cbm::Config = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            Ok(Box::new(MacroNet::new(&cfg, vb)?))
        }
        "scalenet" => {
            let cfg: scalenet::Plan = parse(family, config)?;
            cfg.validate().map_err(bad)?;
            Ok(Box::new(ScaleNet::new(&cfg, vb)?))
        }
        "scalenet_supernet" => {
            let space: scalenet::Space = parse(family, config)?;
            space.validate().map_err(bad)?;
            Ok(Box::new(SuperSupernet::new(&space, 2, vb)?))
        }
        other => Err(EmberError::bad_input(format!(
            "unknown model family `{other}` (known: {})",
            FAMILIES.join(", ")
        ))),
    }
}

/// `config` without the fields `family`'s config does not have: reference manifests
/// describe a model with extra prose (`"stem": "7x7 conv stride 2 + ..."`) beside the fields.
pub fn known_fields(family: &str, config: &Value) -> Result<Value> {
    let preset = ARCHS
        .iter()
        .find(|a| a.family == family)
        .map(|a| (a.preset)())
        .ok_or_else(|| EmberError::bad_input(format!("unknown model family `{family}`")))?;
    let mut kept = Map::new();
    if let (Some(fields), Some(known)) = (config.as_object(), preset.as_object()) {
        for (k, v) in fields {
            if known.contains_key(k) {
                kept.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Value::Object(kept))
}

/// Sizes that the weights themselves fix, read from them: for a ResNet the stem width, input
/// channels and classes (torchvision always builds a 64-channel stem, whatever a description
/// of the model says). Returns the config to build and a note per field that changed.
pub fn fit_to_weights(
    family: &str,
    config: &Value,
    tensors: &std::collections::HashMap<String, Tensor>,
) -> (Value, Vec<String>) {
    let mut fitted = config.clone();
    let mut notes = Vec::new();
    let sizes: &[(&str, &str, usize)] = match family {
        "resnet" => &[
            ("stem_width", "conv1.weight", 0),
            ("in_chans", "conv1.weight", 1),
            ("num_classes", "fc.weight", 0),
        ],
        "lightvit" => &[
            ("in_chans", "patch_embed.stem.0.weight", 1),
            ("num_classes", "head.weight", 0),
        ],
        "swin" => &[
            ("in_chans", "patch_embed.proj.weight", 1),
            ("num_classes", "head.weight", 0),
        ],
        _ => &[],
    };
    for &(key, tensor, dim) in sizes {
        let Some(size) = tensors.get(tensor).and_then(|t| t.dims().get(dim).copied()) else {
            continue;
        };
        if fitted.get(key).and_then(Value::as_u64) != Some(size as u64) {
            notes.push(format!(
                "{key} {} -> {size} (from {tensor})",
                fitted.get(key).unwrap_or(&Value::Null)
            ));
            fitted[key] = Value::from(size);
        }
    }
    (fitted, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn presets_merge_with_overrides() {
        let m = resolve(
            "resnet50",
            &json!({"num_classes": 10, "stem_type": "small"}),
        )
        .unwrap();
        assert_eq!(m.family, "resnet");
        assert_eq!(m.config["block"], "bottleneck");
        assert_eq!(m.config["num_classes"], 10);
        assert_eq!(m.config["stem_type"], "small");
        assert_eq!(resolve("vgg", &Value::Null).unwrap_err().exit_code(), 2);
        assert_eq!(resolve("resnet", &json!([1])).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn fit_refuses_a_contradicting_user_value() {
        let mut m = resolve("resnet", &Value::Null).unwrap();
        m.fit("num_classes", 10, &Value::Null).unwrap();
        assert_eq!(m.config["num_classes"], 10);
        assert!(m
            .fit("num_classes", 10, &json!({"num_classes": 7}))
            .is_err());
    }

    #[test]
    fn unknown_fields_are_bad_input_unless_filtered() {
        let map = ember_core::SeededVarMap::new(0);
        let vb = map.var_builder(candle_core::DType::F32, &candle_core::Device::Cpu);
        let mut cfg = resolve(
            "resnet",
            &json!({"layers": [1, 1], "channels": [4, 8], "stem_width": 4}),
        )
        .unwrap()
        .config;
        cfg["stem"] = json!("7x7 conv stride 2 + BN + ReLU + 3x3 maxpool stride 2");
        let err = build("resnet", &cfg, vb.clone()).err().unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("unknown field `stem`"), "{err}");
        assert!(build("resnet", &known_fields("resnet", &cfg).unwrap(), vb).is_ok());
    }
}
