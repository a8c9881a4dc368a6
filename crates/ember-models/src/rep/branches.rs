//! The seven branch kinds of a Diverse Branch Block, the set a block holds, and the shape
//! of the convolution it stands in for.

use ember_ops::Conv2dParams;
use serde::{Deserialize, Serialize};

/// A branch, in the official index order (`branches` lists, `branch_weights()`, cuts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// 1x1 conv, BN.
    OneByOne,
    /// 1x1 conv, BN and pad, kxk conv (padding 0), BN.
    OneByOneKxk,
    /// (1x1 conv, BN and pad,) average pooling, BN.
    OneByOneAvg,
    /// The original kxk conv (with bias), BN. Always present.
    Kxk,
    /// 1xk conv, BN.
    OneByK,
    /// kx1 conv, BN.
    KByOne,
    /// A BN on the input (only when the conv keeps shape: cin == cout, stride 1).
    Identity,
}

impl Branch {
    pub const ALL: [Branch; 7] = [
        Branch::OneByOne,
        Branch::OneByOneKxk,
        Branch::OneByOneAvg,
        Branch::Kxk,
        Branch::OneByK,
        Branch::KByOne,
        Branch::Identity,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The official module name, the key prefix of the branch's weights.
    pub fn key(self) -> &'static str {
        match self {
            Branch::OneByOne => "dbb_1x1",
            Branch::OneByOneKxk => "dbb_1x1_kxk",
            Branch::OneByOneAvg => "dbb_1x1_avg",
            Branch::Kxk => "dbb_kxk",
            Branch::OneByK => "dbb_1xk",
            Branch::KByOne => "dbb_kx1",
            Branch::Identity => "dbb_id",
        }
    }
}

/// Which branches a block holds; serialised as the official 0/1 list
/// `[1x1, 1x1_kxk, 1x1_avg, kxk, 1xk, kx1, id]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct Branches([bool; 7]);

impl Branches {
    /// Every branch (the DBB default and DyRep's).
    pub const ALL: Branches = Branches([true; 7]);
    /// RepVGG's block: kxk, 1x1 and identity.
    pub const REPVGG: Branches = Branches([true, false, false, true, false, false, true]);
    /// The DBB paper's block: 1x1, 1x1-kxk, 1x1-avg and kxk.
    pub const DBB: Branches = Branches([true, true, true, true, false, false, false]);

    pub fn has(self, b: Branch) -> bool {
        self.0[b.index()]
    }

    pub fn with(mut self, b: Branch, on: bool) -> Self {
        self.0[b.index()] = on;
        self
    }

    pub fn active(self) -> impl Iterator<Item = Branch> {
        Branch::ALL.into_iter().filter(move |b| self.has(*b))
    }

    pub fn count(self) -> usize {
        self.0.iter().filter(|b| **b).count()
    }

    pub fn flags(self) -> [u8; 7] {
        self.0.map(u8::from)
    }

    /// As a block on `shape` can hold them: the identity only when the conv keeps its
    /// shape (as the official constructor rules), and, when the conv does not pad by k/2,
    /// only the branches that pad themselves (1x1-kxk, 1x1-avg, kxk): the others would give
    /// maps of another size. The official constructor would build those and fail in the
    /// forward pass; DyRep's growth never asks for them (`dbb_branches_unequal`).
    pub fn fitted(self, shape: &ConvShape) -> Self {
        let keeps_shape = shape.cin == shape.cout && shape.stride == 1;
        let mut b = self.with(Branch::Identity, self.has(Branch::Identity) && keeps_shape);
        if shape.padding != shape.k / 2 {
            for off in [
                Branch::OneByOne,
                Branch::OneByK,
                Branch::KByOne,
                Branch::Identity,
            ] {
                b = b.with(off, false);
            }
        }
        b
    }

    /// What DyRep grows on `shape` from the configured set.
    pub fn for_growth(self, shape: &ConvShape) -> Self {
        self.fitted(shape)
    }
}

impl TryFrom<Vec<u8>> for Branches {
    type Error = String;

    fn try_from(v: Vec<u8>) -> Result<Self, String> {
        let flags: [u8; 7] = v
            .try_into()
            .map_err(|v: Vec<u8>| format!("a branch list has 7 entries, not {}", v.len()))?;
        if flags.iter().any(|f| *f > 1) {
            return Err(format!("branch flags are 0 or 1, not {flags:?}"));
        }
        if flags[Branch::Kxk.index()] == 0 {
            return Err("the kxk branch (index 3) is always present".into());
        }
        Ok(Self(flags.map(|f| f == 1)))
    }
}

impl From<Branches> for Vec<u8> {
    fn from(b: Branches) -> Self {
        b.flags().to_vec()
    }
}

/// The convolution a slot holds: `torch.nn.Conv2d(cin, cout, k, stride, padding, groups,
/// bias)` with a square kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub bias: bool,
}

impl ConvShape {
    pub fn params(&self) -> Conv2dParams {
        Conv2dParams::default()
            .stride(self.stride)
            .padding(self.padding)
            .groups(self.groups)
    }

    /// DyRep grows square kernels larger than 1x1.
    pub fn can_grow(&self) -> bool {
        self.k > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(cin: usize, cout: usize, stride: usize, padding: usize) -> ConvShape {
        ConvShape {
            cin,
            cout,
            k: 3,
            stride,
            padding,
            groups: 1,
            bias: false,
        }
    }

    #[test]
    fn identity_needs_an_unchanged_shape() {
        assert!(Branches::ALL
            .fitted(&shape(4, 4, 1, 1))
            .has(Branch::Identity));
        assert!(!Branches::ALL
            .fitted(&shape(4, 8, 1, 1))
            .has(Branch::Identity));
        assert!(!Branches::ALL
            .fitted(&shape(4, 4, 2, 1))
            .has(Branch::Identity));
    }

    #[test]
    fn growth_without_same_padding_keeps_the_self_padding_branches() {
        let b = Branches::ALL.for_growth(&shape(4, 4, 1, 0));
        assert_eq!(b.flags(), [0, 1, 1, 1, 0, 0, 0]);
    }

    #[test]
    fn serialises_as_the_official_list() {
        let b: Branches = serde_json::from_str("[1,0,0,1,0,0,1]").unwrap();
        assert_eq!(b, Branches::REPVGG);
        assert_eq!(serde_json::to_string(&b).unwrap(), "[1,0,0,1,0,0,1]");
        assert!(serde_json::from_str::<Branches>("[1,1,1,0,1,1,1]").is_err());
        assert!(serde_json::from_str::<Branches>("[1,1]").is_err());
    }
}
