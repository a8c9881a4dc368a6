//! Ember's models: layers shared by every family, the families themselves (with the official
//! PyTorch state_dict names), and a registry that builds any of them from (arch, JSON config).

pub mod cbm;
pub mod cost;
pub mod from_checkpoint;
pub mod layers;
pub mod lightvit;
pub mod mim;
pub mod registry;
pub mod rep;
pub mod resnet;
pub mod scalenet;
pub mod seg;
pub mod ssl;
pub mod swin;
pub mod taps;
pub mod taylorse;
pub mod weights;

pub use from_checkpoint::{load_checkpoint, load_frozen, LoadedModel};
pub use registry::{build, resolve, Classifier, ModelConfig, ARCHS};
pub use weights::{load_into, load_pretrained};
