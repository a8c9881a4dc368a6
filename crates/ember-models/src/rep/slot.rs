//! A convolution slot whose form can change while training: a plain convolution, or a Diverse
//! Branch Block in its place (under `<path>.dbb_*`). Models build their re-parameterisable
//! convolutions as slots; DyRep grows and cuts them in place, and the model keeps running.

use std::sync::{Arc, Mutex, RwLock};

use candle_core::{Result, Tensor};
use candle_nn::{Init, Module, VarBuilder};
use ember_core::SeededVarMap;

use super::block::{BnMode, BranchInit};
use super::fold::Kernel;
use super::plan::{FoldedTag, SlotForm};
use super::{Branch, Branches, ConvShape, DiverseBranchBlock, RepPlan};
use crate::layers::{set_variable, BatchNorm2d, Conv2d};

#[derive(Debug)]
enum Form {
    Plain(Conv2d),
    Block(Box<DiverseBranchBlock>),
}

#[derive(Debug)]
struct Slot {
    path: String,
    shape: ConvShape,
    form: RwLock<Form>,
    /// Batches seen since recalibration was armed (`None`: not recalibrating).
    calibrating: Mutex<Option<usize>>,
}

/// A shared handle on one slot: clones see the same form.
#[derive(Debug, Clone)]
pub struct RepConv(Arc<Slot>);

impl RepConv {
    /// The slot at `vb`'s path: a plain convolution of `shape` (weights from `init`) unless
    /// `plan` says otherwise.
    pub fn new(vb: VarBuilder, shape: ConvShape, init: Init, plan: &RepPlan) -> Result<Self> {
        Self::with_init(vb, shape, init, BranchInit::Fresh(init), plan)
    }

    pub(crate) fn with_init(
        vb: VarBuilder,
        shape: ConvShape,
        plain: Init,
        branches: BranchInit,
        plan: &RepPlan,
    ) -> Result<Self> {
        let path = vb.prefix();
        let form = build_form(vb, shape, plan.get(&path), plain, branches, plan)?;
        Ok(Self(Arc::new(Slot {
            path,
            shape,
            form: RwLock::new(form),
            calibrating: Mutex::new(None),
        })))
    }

    pub fn path(&self) -> &str {
        &self.0.path
    }

    pub fn shape(&self) -> ConvShape {
        self.0.shape
    }

    /// The block's branches, or `None` for a plain convolution.
    pub fn branches(&self) -> Option<Branches> {
        match &*self.0.form.read().unwrap() {
            Form::Plain(_) => None,
            Form::Block(b) => Some(b.branches()),
        }
    }

    /// The plain convolution's weight (`None` for a block).
    pub fn weight(&self) -> Option<Tensor> {
        match &*self.0.form.read().unwrap() {
            Form::Plain(c) => Some(c.weight().clone()),
            Form::Block(_) => None,
        }
    }

    /// How deeply the slot sits inside other blocks (DyRep grows slots up to depth 1, so
    /// blocks nest at most two deep).
    pub fn depth(&self) -> usize {
        self.0.path.matches("dbb").count()
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut calibrating = self.0.calibrating.lock().unwrap();
        match calibrating.as_mut() {
            Some(n) if !train => {
                *n += 1;
                let momentum = 1.0 / *n as f64;
                drop(calibrating);
                self.forward_mode(x, BnMode::Calibrate(momentum))
            }
            _ => {
                drop(calibrating);
                self.forward_mode(x, BnMode::from_train(train))
            }
        }
    }

    pub(crate) fn forward_mode(&self, x: &Tensor, mode: BnMode) -> Result<Tensor> {
        match &*self.0.form.read().unwrap() {
            Form::Plain(c) => c.forward(x),
            Form::Block(b) => b.forward(x, mode),
        }
    }

    /// The slot as one convolution `(weight, bias)` (a zero bias when it has none).
    pub fn kernel(&self) -> Result<Kernel> {
        match &*self.0.form.read().unwrap() {
            Form::Plain(c) => {
                let w = c.weight().detach();
                let b = match c.bias() {
                    Some(b) => b.detach(),
                    None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
                };
                Ok((w, b))
            }
            Form::Block(b) => b.kernel(false),
        }
    }

    /// The block's `branch_weights()`, or `None` for a plain convolution.
    pub fn branch_weights(&self) -> Result<Option<[f64; 7]>> {
        match &*self.0.form.read().unwrap() {
            Form::Plain(_) => Ok(None),
            Form::Block(b) => b.branch_weights().map(Some),
        }
    }

    /// This slot and every slot nested in it, outermost first.
    pub fn visit(&self, f: &mut dyn FnMut(&RepConv)) {
        f(self);
        if let Form::Block(b) = &*self.0.form.read().unwrap() {
            b.kxk.visit(f);
            if let Some(br) = &b.one_kxk {
                br.conv2.visit(f);
            }
        }
    }

    /// Adds the form of this slot and of the slots nested in it to `plan`.
    pub fn record(&self, plan: &mut RepPlan) {
        self.visit(&mut |slot| {
            let form = match &*slot.0.form.read().unwrap() {
                Form::Block(b) => Some(SlotForm::Block(b.branches())),
                Form::Plain(c) if c.bias().is_some() && !slot.0.shape.bias => {
                    Some(SlotForm::Folded(FoldedTag::Folded))
                }
                Form::Plain(_) => None,
            };
            if let Some(form) = form {
                plan.set(&slot.0.path, form);
            }
        });
    }

    pub(crate) fn batch_norms(&self) -> Vec<BatchNorm2d> {
        match &*self.0.form.read().unwrap() {
            Form::Plain(_) => Vec::new(),
            Form::Block(b) => b.batch_norms(),
        }
    }

    /// Replaces the plain convolution with a block of `configured` branches (as DyRep picks
    /// them for this shape: [`Branches::for_growth`]) whose new variables start as DyRep's
    /// growth sets them, and returns the original kernel. The block's kxk convolution holds
    /// the original kernel until [`RepConv::absorb`] makes the block compute it.
    pub fn grow(
        &self,
        vars: &SeededVarMap,
        configured: Branches,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mut form = self.0.form.write().unwrap();
        let Form::Plain(conv) = &*form else {
            candle_core::bail!("{} is already a block", self.0.path)
        };
        let w = conv.weight().detach().copy()?;
        let b = conv.bias().map(|b| b.detach().copy()).transpose()?;
        let (dtype, device) = (w.dtype(), w.device().clone());
        vars.remove(&format!("{}.weight", self.0.path));
        vars.remove(&format!("{}.bias", self.0.path));
        let vb = vars.var_builder(dtype, &device).pp(&self.0.path);
        let branches = configured.for_growth(&self.0.shape);
        let block = DiverseBranchBlock::new(
            vb,
            self.0.shape,
            branches,
            BranchInit::Growth,
            &RepPlan::default(),
        )?;
        // What recalibration runs the block with: the original conv in the kxk branch.
        let kxk_b = match &b {
            Some(b) => b.clone(),
            None => Tensor::zeros(self.0.shape.cout, dtype, &device)?,
        };
        block.kxk.set_plain(&w, &kxk_b)?;
        *form = Form::Block(Box::new(block));
        Ok((w, b))
    }

    /// Makes the block compute `target` in eval mode: the kxk branch's BN is reset (scale 1,
    /// shift 0, running statistics 0 and 1) and its convolution takes `target` minus what
    /// the other branches add (`_reset_dbb`). Up to the factor `1 / sqrt(1 + eps)` of the
    /// reset BN, the folded kernel is then `target`.
    pub fn absorb(&self, target: &(Tensor, Option<Tensor>)) -> Result<()> {
        let form = self.0.form.read().unwrap();
        let Form::Block(block) = &*form else {
            candle_core::bail!("{} is not a block", self.0.path)
        };
        block.kxk_bn.reset_running()?;
        block.kxk_bn.set_affine(1.0, 0.0)?;
        let (others_w, others_b) = block.kernel(true)?;
        let (w, b) = target;
        let w = (w.to_dtype(others_w.dtype())? - others_w)?;
        let b = match b {
            Some(b) => (b.to_dtype(others_b.dtype())? - others_b)?,
            None => others_b.neg()?,
        };
        if block.kxk.branches().is_some() {
            block.kxk.absorb(&(w, Some(b)))
        } else {
            block.kxk.set_plain(&w, &b)
        }
    }

    /// Cuts the block down to `keep` (`cut_branch`): the whole block is folded, the cut
    /// branches' variables are dropped, the kxk branch is reset and re-absorbs the folded
    /// kernel less the kept branches, which keep their values. With only the kxk branch
    /// left, the slot becomes a plain convolution with a bias holding the folded kernel.
    pub fn cut(&self, vars: &SeededVarMap, keep: Branches) -> Result<()> {
        let (w_all, b_all) = self.kernel()?;
        let (dtype, device) = (w_all.dtype(), w_all.device().clone());
        let vb = vars.var_builder(dtype, &device).pp(&self.0.path);
        let mut plan = RepPlan::default();
        self.record(&mut plan);
        let mut form = self.0.form.write().unwrap();
        let Form::Block(block) = &*form else {
            candle_core::bail!("{} is not a block", self.0.path)
        };
        let have = block.branches();
        let keep = Branch::ALL
            .into_iter()
            .fold(keep, |k, b| k.with(b, keep.has(b) && have.has(b)))
            .with(Branch::Kxk, true);
        if keep.count() == 1 {
            vars.remove_under(&self.0.path);
            let shape = self.0.shape;
            let conv = Conv2d::new(
                vb,
                shape.cin,
                shape.cout,
                shape.k,
                shape.params(),
                true,
                Init::Const(0.0),
            )?;
            set_variable(conv.weight(), &w_all)?;
            set_variable(conv.bias().expect("built with a bias"), &b_all)?;
            *form = Form::Plain(conv);
            return Ok(());
        }
        for b in block.branches().active().filter(|b| !keep.has(*b)) {
            vars.remove_under(&format!("{}.{}", self.0.path, b.key()));
        }
        // A nested block in the kxk branch is re-drawn as a fresh growth, as the official
        // `_init_branch` + `_reset_dbb` recursion does.
        let nested = format!("{}.{}.conv", self.0.path, Branch::Kxk.key());
        if block.kxk.branches().is_some() {
            vars.remove_under(&nested);
        }
        let block = DiverseBranchBlock::new(vb, self.0.shape, keep, BranchInit::Growth, &plan)?;
        *form = Form::Block(Box::new(block));
        drop(form);
        self.absorb(&(w_all, Some(b_all)))
    }

    /// Sets a plain convolution's weight, and its bias when it has one.
    fn set_plain(&self, w: &Tensor, b: &Tensor) -> Result<()> {
        match &*self.0.form.read().unwrap() {
            Form::Plain(c) => {
                set_variable(c.weight(), w)?;
                match c.bias() {
                    Some(bias) => set_variable(bias, b),
                    None => Ok(()),
                }
            }
            Form::Block(_) => candle_core::bail!("{} is not a plain convolution", self.0.path),
        }
    }

    /// Arms recalibration: every BN of the block gets running statistics 0 and 1, then each
    /// eval-mode forward of the slot normalises with the batch statistics and folds them into
    /// a cumulative average, as `recal_bn` does for the new block (with the rest of the
    /// network in eval mode). [`RepConv::end_calibration`] disarms it.
    pub fn begin_calibration(&self) -> Result<()> {
        for bn in self.batch_norms() {
            bn.reset_running()?;
        }
        *self.0.calibrating.lock().unwrap() = Some(0);
        Ok(())
    }

    /// Disarms recalibration and returns the number of batches it saw.
    pub fn end_calibration(&self) -> usize {
        self.0.calibrating.lock().unwrap().take().unwrap_or(0)
    }
}

fn build_form(
    vb: VarBuilder,
    shape: ConvShape,
    form: Option<SlotForm>,
    plain: Init,
    branches: BranchInit,
    plan: &RepPlan,
) -> Result<Form> {
    let conv = |vb: VarBuilder, bias: bool| {
        Conv2d::new(
            vb,
            shape.cin,
            shape.cout,
            shape.k,
            shape.params(),
            bias,
            plain,
        )
    };
    Ok(match form {
        None => Form::Plain(conv(vb, shape.bias)?),
        Some(SlotForm::Folded(_)) => Form::Plain(conv(vb, true)?),
        Some(SlotForm::Block(b)) => Form::Block(Box::new(DiverseBranchBlock::new(
            vb, shape, b, branches, plan,
        )?)),
    })
}
