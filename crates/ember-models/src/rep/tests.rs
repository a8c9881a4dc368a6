//! Merged and unmerged blocks agree: every branch subset on shapes that exercise each rule
//! (identity only when the shape is kept, depthwise pooling, stride, padding other than
//! k/2, 5x5 kernels), nested growth, and the function-preserving growth and cut.

use candle_core::{DType, Device, Tensor};
use candle_nn::Init;
use ember_core::{EmberRng, SeededVarMap};
use ember_ops::conv2d;

use super::*;
use crate::layers::set_variable;

const TOL: f32 = 1e-4;

fn shape(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
) -> ConvShape {
    ConvShape {
        cin,
        cout,
        k,
        stride,
        padding,
        groups,
        bias: false,
    }
}

/// Seeded normal values of `shape`.
fn normal(shape: impl Into<candle_core::Shape>, std: f64, stream: &str) -> Tensor {
    let mut rng = EmberRng::for_name(7, stream);
    ember_core::Init::Normal { mean: 0.0, std }
        .tensor(shape.into(), DType::F32, &Device::Cpu, &mut rng)
        .unwrap()
}

/// Every variable of `vars` under seeded random values (BN scales around 1, variances
/// positive), so no branch is trivially zero and running statistics matter.
fn randomise(vars: &SeededVarMap) {
    for (name, var) in vars.named() {
        let t = var.as_tensor();
        let r = normal(t.shape().clone(), 0.3, &name);
        let value = if name.ends_with("running_var") {
            (r.abs().unwrap() + 0.5).unwrap()
        } else if name.ends_with(".weight") && t.rank() == 1 {
            (r + 1.0).unwrap()
        } else {
            r
        };
        set_variable(t, &value).unwrap();
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn slot_with(shape: ConvShape, branches: Branches) -> (SeededVarMap, RepConv) {
    let mut plan = RepPlan::default();
    plan.set("blk", SlotForm::Block(branches));
    let vars = SeededVarMap::new(3);
    let vb = vars.var_builder(DType::F32, &Device::Cpu).pp("blk");
    let slot = RepConv::new(vb, shape, Init::Const(0.1), &plan).unwrap();
    randomise(&vars);
    (vars, slot)
}

/// The slot's eval output against its folded kernel as one convolution.
fn merge_gap(slot: &RepConv, x: &Tensor) -> f32 {
    let (w, b) = slot.kernel().unwrap();
    let merged = conv2d(x, &w, slot.shape().params())
        .unwrap()
        .broadcast_add(&b.reshape((1, (), 1, 1)).unwrap())
        .unwrap();
    max_diff(&slot.forward_t(x, false).unwrap(), &merged)
}

fn input(shape: &ConvShape, hw: (usize, usize), stream: &str) -> Tensor {
    normal((2, shape.cin, hw.0, hw.1), 1.0, stream)
}

#[test]
fn every_branch_subset_folds_exactly() {
    let shapes = [
        shape(4, 4, 3, 1, 1, 1),
        shape(4, 6, 3, 2, 1, 1),
        shape(4, 4, 5, 1, 2, 2),
        shape(4, 4, 3, 1, 1, 4),
        shape(3, 5, 3, 1, 0, 1),
    ];
    for s in shapes {
        let x = input(&s, (7, 6), "x");
        for mask in 0u8..64 {
            // Six optional branches around the kxk one (index 3).
            let flags: Vec<u8> = (0..7)
                .map(|i| match i {
                    3 => 1,
                    i if i < 3 => (mask >> i) & 1,
                    i => (mask >> (i - 1)) & 1,
                })
                .collect();
            let branches = Branches::try_from(flags.clone()).unwrap();
            let (_, slot) = slot_with(s, branches);
            let gap = merge_gap(&slot, &x);
            assert!(
                gap < TOL,
                "{s:?} branches {flags:?}: merged differs by {gap}"
            );
        }
    }
}

#[test]
fn nested_blocks_fold_exactly() {
    let s = shape(4, 4, 3, 1, 1, 1);
    let mut plan = RepPlan::default();
    plan.set("blk", SlotForm::Block(Branches::ALL));
    plan.set("blk.dbb_kxk.conv", SlotForm::Block(Branches::ALL));
    plan.set(
        "blk.dbb_1x1_kxk.conv2",
        SlotForm::Block(Branches::ALL.for_growth(&shape(4, 4, 3, 1, 0, 1))),
    );
    let vars = SeededVarMap::new(1);
    let vb = vars.var_builder(DType::F32, &Device::Cpu).pp("blk");
    let slot = RepConv::new(vb, s, Init::Const(0.1), &plan).unwrap();
    randomise(&vars);
    let mut recorded = RepPlan::default();
    slot.record(&mut recorded);
    assert_eq!(recorded, plan);
    let gap = merge_gap(&slot, &input(&s, (6, 6), "x"));
    assert!(gap < TOL, "nested block merged differs by {gap}");
}

/// A plain slot with random weights.
fn plain(s: ConvShape) -> (SeededVarMap, RepConv) {
    let vars = SeededVarMap::new(2);
    let vb = vars.var_builder(DType::F32, &Device::Cpu).pp("conv");
    let slot = RepConv::new(
        vb,
        s,
        Init::Randn {
            mean: 0.0,
            stdev: 0.3,
        },
        &RepPlan::default(),
    )
    .unwrap();
    (vars, slot)
}

#[test]
fn growth_and_cuts_preserve_the_eval_function() {
    for s in [
        shape(4, 4, 3, 1, 1, 1),
        shape(4, 8, 3, 2, 1, 1),
        shape(4, 4, 3, 1, 0, 1),
    ] {
        let x = input(&s, (8, 8), "x");
        let (vars, slot) = plain(s);
        let before = slot.forward_t(&x, false).unwrap();
        let original = slot.grow(&vars, Branches::ALL).unwrap();
        // Training-mode batches move the new branches' statistics, as recalibration does.
        slot.begin_calibration().unwrap();
        for i in 0..3 {
            slot.forward_t(&input(&s, (8, 8), &format!("batch{i}")), false)
                .unwrap();
        }
        assert_eq!(slot.end_calibration(), 3);
        slot.absorb(&original).unwrap();
        // The reset kxk BN scales the kxk part by 1/sqrt(1 + eps).
        let grown = slot.forward_t(&x, false).unwrap();
        assert!(
            max_diff(&before, &grown) < TOL,
            "{s:?}: growth changed the output"
        );
        assert!(merge_gap(&slot, &x) < TOL);
        // The new variables are all in the map, the plain weight is gone.
        let names: Vec<String> = vars.named().into_iter().map(|(k, _)| k).collect();
        assert!(!names.contains(&"conv.weight".to_string()));
        assert!(names.contains(&"conv.dbb_kxk.conv.weight".to_string()));

        // Cut all but one branch, then everything: the function stays.
        let have = slot.branches().unwrap();
        let keep_one = Branch::ALL
            .into_iter()
            .filter(|b| *b != Branch::Kxk && have.has(*b))
            .take(1)
            .fold(
                Branches::try_from(vec![0, 0, 0, 1, 0, 0, 0]).unwrap(),
                |k, b| k.with(b, true),
            );
        slot.cut(&vars, keep_one).unwrap();
        assert_eq!(slot.branches(), Some(keep_one.fitted(&s)));
        assert!(max_diff(&before, &slot.forward_t(&x, false).unwrap()) < TOL);
        slot.cut(
            &vars,
            Branches::try_from(vec![0, 0, 0, 1, 0, 0, 0]).unwrap(),
        )
        .unwrap();
        assert_eq!(slot.branches(), None);
        assert!(max_diff(&before, &slot.forward_t(&x, false).unwrap()) < TOL);
        let names: Vec<String> = vars.named().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["conv.bias", "conv.weight"]);
        let mut plan = RepPlan::default();
        slot.record(&mut plan);
        assert_eq!(plan.get("conv"), Some(SlotForm::Folded(FoldedTag::Folded)));
    }
}
