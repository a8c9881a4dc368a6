//! ScaleNet's search space (arXiv 2207.07267; the official `config/training_super_supernet.yaml`
//! and `core/searcher/uniform_searcher.py`): MobileNetV3-like base models, one op per layer slot
//! (skip, or an inverted residual with squeeze-excite and a kernel from `kernels`), and per
//! scaling stage `s` a grid of (depth, width, resolution) multipliers for models of 2^s times
//! the base's FLOPs.
//!
//! Everything here is plain data: which slots exist, how a base model is scaled into a
//! sub-network, and the concrete layers ([`Plan`]) of a sub-network. The super-supernet
//! (`super::supernet`) stores weights for the largest of them.

use serde::{Deserialize, Serialize};

/// One stage of the base space: up to `layers` inverted-residual layers of `channels` outputs,
/// the first with `stride`, hidden width `expansion` times the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub layers: usize,
    pub channels: usize,
    pub stride: usize,
    pub expansion: usize,
}

/// The multipliers of one scaling stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageScaling {
    pub depth: Vec<f64>,
    pub width: Vec<f64>,
    pub resolution: Vec<usize>,
}

impl StageScaling {
    /// Every (depth, width, resolution) index triple of the stage's grid.
    pub fn grid(&self) -> Vec<[usize; 3]> {
        let mut all = Vec::new();
        for d in 0..self.depth.len() {
            for w in 0..self.width.len() {
                for r in 0..self.resolution.len() {
                    all.push([d, w, r]);
                }
            }
        }
        all
    }

    /// The multipliers of an index triple.
    pub fn values(&self, [d, w, r]: [usize; 3]) -> (f64, f64, usize) {
        (self.depth[d], self.width[w], self.resolution[r])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Space {
    pub in_chans: usize,
    pub num_classes: usize,
    /// Output channels of the 3x3 stride-2 stem.
    pub stem: usize,
    pub stages: Vec<StageSpec>,
    /// Depthwise kernel of op 1, 2, ... (op 0 skips the slot).
    pub kernels: Vec<usize>,
    /// Output channels of the final 1x1 conv (never width-scaled).
    pub conv_out: usize,
    /// Scaling stage 0 (the base: multipliers 1 at the base resolution), 1, 2, ...
    pub scaling: Vec<StageScaling>,
}

/// A sub-network: per stage, the op of every slot (0 = skipped, k = `kernels[k - 1]`), one
/// global width multiplier and the input resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub ops: Vec<Vec<usize>>,
    pub width: f64,
    pub resolution: usize,
}

/// `ceil(c * m)` as the official code computes it (`int(math.ceil(c * m))` on doubles).
pub fn scaled(c: usize, m: f64) -> usize {
    (c as f64 * m).ceil() as usize
}

fn stage(layers: usize, channels: usize, stride: usize, expansion: usize) -> StageSpec {
    StageSpec {
        layers,
        channels,
        stride,
        expansion,
    }
}

/// A scaling stage whose depth and width multipliers are the same set (as officially).
fn grid(multipliers: Vec<f64>, resolution: Vec<usize>) -> StageScaling {
    StageScaling {
        depth: multipliers.clone(),
        width: multipliers,
        resolution,
    }
}

impl Space {
    /// The official ImageNet space: stem 32, seven stages, kernels 3/5/7, conv_out 1280,
    /// scaling stages 0-3 (note the config's 354, not 352).
    pub fn imagenet() -> Self {
        let steps = |from: f64, n: usize| (0..n).map(|i| from + 0.04 * i as f64).collect();
        Self {
            in_chans: 3,
            num_classes: 1000,
            stem: 32,
            stages: vec![
                stage(1, 16, 1, 1),
                stage(4, 32, 2, 6),
                stage(4, 40, 2, 6),
                stage(4, 80, 2, 6),
                stage(4, 96, 1, 6),
                stage(4, 192, 2, 6),
                stage(1, 320, 1, 6),
            ],
            kernels: vec![3, 5, 7],
            conv_out: 1280,
            scaling: vec![
                grid(vec![1.0], vec![224]),
                grid(steps(1.04, 4), vec![224, 240, 256]),
                grid(steps(1.20, 5), vec![272, 288, 304]),
                grid(steps(1.40, 7), vec![320, 336, 354]),
            ],
        }
    }

    /// The spec's Fashion-MNIST space (section 4.3): stem 8, four stages, kernels 3/5,
    /// conv_out 64, base resolution 20, scaling stages 0-2 up to the native 28 px.
    pub fn fashion() -> Self {
        Self {
            in_chans: 1,
            num_classes: 10,
            stem: 8,
            stages: vec![
                stage(1, 8, 1, 1),
                stage(3, 16, 2, 3),
                stage(3, 24, 2, 3),
                stage(2, 32, 1, 3),
            ],
            kernels: vec![3, 5],
            conv_out: 64,
            scaling: vec![
                grid(vec![1.0], vec![20]),
                grid(vec![1.04, 1.08, 1.12], vec![20, 22, 24]),
                grid(vec![1.20, 1.25, 1.30, 1.35], vec![24, 26, 28]),
            ],
        }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.in_chans == 0 || self.num_classes == 0 || self.stem == 0 || self.conv_out == 0 {
            return Err(
                "scalenet: in_chans, num_classes, stem and conv_out must be positive".into(),
            );
        }
        if self.stages.is_empty()
            || self.stages.iter().any(|s| {
                s.layers == 0 || s.channels < 4 || !(1..=2).contains(&s.stride) || s.expansion == 0
            })
        {
            return Err("scalenet: every stage needs layers >= 1, channels >= 4 (squeeze-excite reduces by 4), stride 1 or 2 and expansion >= 1".into());
        }
        if self.kernels.is_empty() || self.kernels.iter().any(|k| k % 2 == 0) {
            return Err("scalenet: kernels must be odd and at least one".into());
        }
        let base = self.scaling.first().ok_or("scalenet: no scaling stages")?;
        if base.depth != [1.0] || base.width != [1.0] || base.resolution.len() != 1 {
            return Err(
                "scalenet: scaling stage 0 is the base: depth [1.0], width [1.0], one resolution"
                    .into(),
            );
        }
        for (s, st) in self.scaling.iter().enumerate() {
            if st.depth.is_empty() || st.width.is_empty() || st.resolution.is_empty() {
                return Err(format!(
                    "scalenet: scaling stage {s} has an empty multiplier set"
                ));
            }
            if st.depth.iter().chain(&st.width).any(|&m| m < 1.0) || st.resolution.contains(&0) {
                return Err(format!(
                    "scalenet: scaling stage {s}: multipliers below 1 or resolution 0"
                ));
            }
        }
        Ok(())
    }

    /// The largest width multiplier of any stage (the official `w_max` of the last stage).
    pub fn max_width(&self) -> f64 {
        self.scaling
            .iter()
            .flat_map(|s| s.width.iter().copied())
            .fold(1.0, f64::max)
    }

    pub fn max_depth(&self) -> f64 {
        self.scaling
            .iter()
            .flat_map(|s| s.depth.iter().copied())
            .fold(1.0, f64::max)
    }

    /// Channels a layer of base width `c` stores: `c + ceil(c * w_max)`, so the largest width
    /// leaves a band that only the widest sub-networks and the right path reach.
    pub fn stored(&self, c: usize) -> usize {
        c + scaled(c, self.max_width())
    }

    /// Layer slots of each stage: `ceil(n * d_max)` (a one-layer stage gets two).
    pub fn slots(&self) -> Vec<usize> {
        self.stages
            .iter()
            .map(|s| scaled(s.layers, self.max_depth()))
            .collect()
    }

    /// Base channels entering stage `i`'s first layer.
    pub fn stage_input(&self, i: usize) -> usize {
        if i == 0 {
            self.stem
        } else {
            self.stages[i - 1].channels
        }
    }

    /// Base input channels of slot `j` of stage `i`.
    pub fn slot_input(&self, i: usize, j: usize) -> usize {
        if j == 0 {
            self.stage_input(i)
        } else {
            self.stages[i].channels
        }
    }

    /// Number of scaling stages above the base.
    pub fn scaled_stages(&self) -> usize {
        self.scaling.len() - 1
    }

    /// Base depth of every stage: its leading non-skipped slots.
    pub fn depths(&self, ops: &[Vec<usize>]) -> Vec<usize> {
        ops.iter()
            .map(|stage| stage.iter().take_while(|&&op| op != 0).count())
            .collect()
    }

    /// Whether `ops` is a base model: a valid op per base slot, the first of each stage
    /// present, the present ones in front ("thermometer" depth), the scaling slots empty.
    pub fn is_base(&self, ops: &[Vec<usize>]) -> bool {
        let slots = self.slots();
        ops.len() == self.stages.len()
            && ops
                .iter()
                .zip(&self.stages)
                .zip(&slots)
                .all(|((stage, spec), &n)| {
                    let depth = stage.iter().take_while(|&&op| op != 0).count();
                    stage.len() == n
                        && (1..=spec.layers).contains(&depth)
                        && stage.iter().all(|&op| op <= self.kernels.len())
                        && stage[depth..].iter().all(|&op| op == 0)
                })
    }

    /// The base model nearest to `ops` as the official `check_basenet` repairs a GA
    /// candidate: the first slot of a stage forced to op 1 if skipped, present ops moved in
    /// front of skipped ones (in order), the scaling slots emptied. (The official swap loop
    /// leaves a gap for `[a, 0, b, c]` in a four-layer stage; this is the thermometer code it
    /// aims at.)
    pub fn repair(&self, ops: &[Vec<usize>]) -> Vec<Vec<usize>> {
        ops.iter()
            .zip(&self.stages)
            .map(|(stage, spec)| {
                let mut base: Vec<usize> = stage.iter().take(spec.layers).copied().collect();
                if base.first() == Some(&0) {
                    base[0] = 1;
                }
                let mut present: Vec<usize> = base.iter().copied().filter(|&op| op != 0).collect();
                present.resize(stage.len(), 0);
                present
            })
            .collect()
    }

    /// `base` scaled by stage-`s` multipliers `(d, w, r)`: each stage of base depth `n` runs
    /// `ceil(n * d)` slots, the added ones repeating the op of its last base layer (each slot
    /// has its own weights); every width times `w`; input `r` px.
    pub fn scale(&self, base: &[Vec<usize>], d: f64, w: f64, r: usize) -> Subnet {
        let ops = base
            .iter()
            .map(|stage| {
                let n = stage.iter().take_while(|&&op| op != 0).count();
                let deep = scaled(n, d).min(stage.len());
                let mut scaled_stage = stage.clone();
                for slot in scaled_stage.iter_mut().take(deep).skip(n) {
                    *slot = stage[n - 1];
                }
                scaled_stage
            })
            .collect();
        Subnet {
            ops,
            width: w,
            resolution: r,
        }
    }

    /// `base` scaled by the index triple `strategy` of scaling stage `s`.
    pub fn scale_stage(&self, base: &[Vec<usize>], s: usize, strategy: [usize; 3]) -> Subnet {
        let (d, w, r) = self.scaling[s].values(strategy);
        self.scale(base, d, w, r)
    }

    /// The deepest base, every layer with the largest kernel.
    pub fn deepest_base(&self) -> Vec<Vec<usize>> {
        self.stages
            .iter()
            .zip(self.slots())
            .map(|(spec, n)| {
                let mut v = vec![0; n];
                v[..spec.layers].fill(self.kernels.len());
                v
            })
            .collect()
    }

    /// The base model itself (stage 0).
    pub fn base_subnet(&self, base: &[Vec<usize>]) -> Subnet {
        self.scale_stage(base, 0, [0, 0, 0])
    }

    /// The concrete layers the super-supernet runs for `subnet`, with the forward pass's
    /// widths: outputs `ceil(c * w)`, hidden `ceil(round(c_in * t) * w)` from the slot's
    /// base input `c_in`, and a shortcut where the stored layer keeps its width and stride 1.
    pub fn plan(&self, subnet: &Subnet) -> Plan {
        let w = subnet.width;
        let stem = scaled(self.stem, w);
        let mut layers = Vec::new();
        let mut c_in = stem;
        for (i, (stage, spec)) in subnet.ops.iter().zip(&self.stages).enumerate() {
            for (j, &op) in stage.iter().enumerate() {
                if op == 0 {
                    continue;
                }
                let base_in = self.slot_input(i, j);
                let expand = spec.expansion > 1;
                let hidden = if expand {
                    scaled(base_in * spec.expansion, w)
                } else {
                    c_in
                };
                let c_out = scaled(spec.channels, w);
                let stride = if j == 0 { spec.stride } else { 1 };
                layers.push(LayerPlan {
                    stage: i,
                    slot: j,
                    kernel: self.kernels[op - 1],
                    c_in,
                    hidden,
                    c_out,
                    stride,
                    expand,
                    residual: stride == 1 && self.stored(base_in) == self.stored(spec.channels),
                });
                c_in = c_out;
            }
        }
        Plan {
            in_chans: self.in_chans,
            num_classes: self.num_classes,
            resolution: subnet.resolution,
            stem,
            layers,
            conv_out: self.conv_out,
        }
    }
}

/// One inverted-residual layer of a sub-network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerPlan {
    /// Where the super-supernet keeps its weights.
    pub stage: usize,
    pub slot: usize,
    pub kernel: usize,
    pub c_in: usize,
    pub hidden: usize,
    pub c_out: usize,
    pub stride: usize,
    /// A 1x1 expansion conv first (expansion above 1); without one the depthwise conv runs
    /// on the input (hidden = c_in).
    pub expand: bool,
    pub residual: bool,
}

/// A sub-network's concrete layers: the arch config of a stand-alone ScaleNet model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub in_chans: usize,
    pub num_classes: usize,
    /// Images are resized (bilinear) to this side before the stem.
    pub resolution: usize,
    pub stem: usize,
    pub layers: Vec<LayerPlan>,
    pub conv_out: usize,
}

impl Plan {
    /// Channels entering the final 1x1 conv.
    pub fn last_channels(&self) -> usize {
        self.layers.last().map_or(self.stem, |l| l.c_out)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.in_chans == 0 || self.num_classes == 0 || self.stem == 0 || self.conv_out == 0 {
            return Err(
                "scalenet: in_chans, num_classes, stem and conv_out must be positive".into(),
            );
        }
        if self.resolution < 8 {
            return Err(format!(
                "scalenet: resolution {} is below 8 px",
                self.resolution
            ));
        }
        let mut c = self.stem;
        for (i, l) in self.layers.iter().enumerate() {
            let bad = l.c_in != c
                || l.c_out == 0
                || l.hidden < 4
                || l.kernel % 2 == 0
                || !(1..=2).contains(&l.stride)
                || (!l.expand && l.hidden != l.c_in)
                || (l.residual && (l.stride != 1 || l.c_in != l.c_out));
            if bad {
                return Err(format!("scalenet: layer {i} {l:?} does not follow from the one before (input {c} channels) or is malformed"));
            }
            c = l.c_out;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_widths_and_slots_follow_the_official_rules() {
        let s = Space::imagenet();
        assert!(s.validate().is_ok());
        // c + ceil(1.64 c): 16 -> 43, 320 -> 845; slots ceil(4 * 1.64) = 7, ceil(1.64) = 2.
        assert_eq!(s.stored(16), 16 + 27);
        assert_eq!(s.stored(320), 320 + 525);
        assert_eq!(s.slots(), vec![2, 7, 7, 7, 7, 7, 2]);
        assert_eq!(s.scaling[1].grid().len(), 48);
        assert_eq!(s.scaling[2].grid().len(), 75);
        assert_eq!(s.scaling[3].grid().len(), 147);
        let f = Space::fashion();
        assert!(f.validate().is_ok());
        // d_max 1.35: ceil(1.35) = 2, ceil(4.05) = 5, ceil(2.7) = 3.
        assert_eq!(f.slots(), vec![2, 5, 5, 3]);
        assert_eq!(f.stored(8), 8 + 11);
    }

    #[test]
    fn scaling_repeats_the_last_base_op_and_single_layer_stages_double() {
        let f = Space::fashion();
        let base = vec![
            vec![2, 0],
            vec![1, 2, 0, 0, 0],
            vec![2, 0, 0, 0, 0],
            vec![1, 1, 0],
        ];
        assert!(f.is_base(&base));
        let sub = f.scale(&base, 1.35, 1.2, 26);
        // ceil(1 * 1.35) = 2, ceil(2 * 1.35) = 3, ceil(1.35) = 2, ceil(2 * 1.35) = 3.
        assert_eq!(
            sub.ops,
            vec![
                vec![2, 2],
                vec![1, 2, 2, 0, 0],
                vec![2, 2, 0, 0, 0],
                vec![1, 1, 1]
            ]
        );
        assert_eq!(f.base_subnet(&base).ops, base);
        let plan = f.plan(&sub);
        assert_eq!(plan.stem, 10);
        let first = &plan.layers[0];
        // Stage 1 (expansion 1, stride 1, 8 -> 8): depthwise on the input, with a shortcut.
        assert!(!first.expand && first.residual && first.hidden == 10 && first.c_out == 10);
        // Stage 2's first layer: 8 -> 16 at stride 2, hidden ceil(round(8 * 3) * 1.2) = 29.
        let second_stage = plan.layers.iter().find(|l| l.stage == 1).unwrap();
        assert_eq!(
            (second_stage.hidden, second_stage.c_out, second_stage.stride),
            (29, 20, 2)
        );
        assert!(!second_stage.residual);
        assert!(plan.validate().is_ok());
    }

    #[test]
    fn repair_makes_a_thermometer_code() {
        let s = Space::imagenet();
        let mut ops: Vec<Vec<usize>> = s.slots().iter().map(|&n| vec![0; n]).collect();
        ops[1] = vec![0, 2, 0, 3, 1, 1, 1];
        let fixed = s.repair(&ops);
        assert_eq!(fixed[1], vec![1, 2, 3, 0, 0, 0, 0]);
        assert_eq!(fixed[0], vec![1, 0]);
        assert!(s.is_base(&fixed));
        assert!(!s.is_base(&ops));
    }
}
