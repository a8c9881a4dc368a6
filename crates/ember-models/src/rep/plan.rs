//! Which convolution slots of a model are re-parameterised, recorded in the model config
//! (`"rep": {"layer1.0.conv1": [1, 1, 1, 1, 1, 1, 1], ...}`) so that a checkpoint rebuilds the
//! structure it was saved with. Nested slots (`<path>.dbb_kxk.conv`) have entries of their own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Branches;

/// What a slot holds, when it is not the model's plain convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SlotForm {
    /// A Diverse Branch Block with these branches.
    Block(Branches),
    /// A plain convolution that gained a bias: a block whose branches were all cut, folded
    /// into one kernel.
    Folded(FoldedTag),
}

/// Serialises as the string `"folded"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FoldedTag {
    #[serde(rename = "folded")]
    Folded,
}

/// Slot path -> form, for every slot that is not a plain convolution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RepPlan(pub BTreeMap<String, SlotForm>);

impl RepPlan {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, path: &str) -> Option<SlotForm> {
        self.0.get(path).copied()
    }

    pub fn set(&mut self, path: &str, form: SlotForm) {
        self.0.insert(path.to_string(), form);
    }

    /// Every slot in `paths` as a block with `branches` (RepVGG- or DBB-style training).
    pub fn everywhere<'a>(paths: impl IntoIterator<Item = &'a str>, branches: Branches) -> Self {
        Self(
            paths
                .into_iter()
                .map(|p| (p.to_string(), SlotForm::Block(branches)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_json() {
        let text = r#"{"conv1":[1,1,1,1,1,1,1],"layer1.0.conv1":"folded"}"#;
        let plan: RepPlan = serde_json::from_str(text).unwrap();
        assert_eq!(plan.get("conv1"), Some(SlotForm::Block(Branches::ALL)));
        assert_eq!(
            plan.get("layer1.0.conv1"),
            Some(SlotForm::Folded(FoldedTag::Folded))
        );
        assert_eq!(serde_json::to_string(&plan).unwrap(), text);
    }
}
