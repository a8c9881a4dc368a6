//! Structural re-parameterisation (DBB / RepVGG / DyRep): convolution slots that hold either a
//! plain convolution or a Diverse Branch Block with the official weight names; growth with
//! function-preserving initialisation, the cut of unimportant branches, and the exact fold of
//! a block into one convolution for deployment.

mod block;
mod branches;
pub mod cut;
pub mod fold;
mod importance;
mod plan;
mod slot;
#[cfg(test)]
mod tests;

pub use block::{BranchInit, DiverseBranchBlock};
pub use branches::{Branch, Branches, ConvShape};
pub use fold::Kernel;
pub use importance::Importance;
pub use plan::{FoldedTag, RepPlan, SlotForm};
pub use slot::RepConv;

/// A top-level slot of a model and the BN that follows it (where deployment folds the
/// merged kernel's bias).
#[derive(Debug, Clone)]
pub struct RepSite {
    pub conv: RepConv,
    pub next_bn: Option<String>,
}
