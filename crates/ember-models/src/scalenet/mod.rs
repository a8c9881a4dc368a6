//! ScaleNet (arXiv 2207.07267): the search space of base models and scaling strategies
//! ([`space`]), its two FLOPs counts ([`flops`]), the super-supernet that holds every scaled
//! sub-network ([`supernet`]) and a stand-alone sub-network ([`model`]).

pub mod blocks;
pub mod flops;
pub mod model;
pub mod space;
pub mod supernet;

pub use model::ScaleNet;
pub use space::{LayerPlan, Plan, Space, StageScaling, StageSpec, Subnet};
pub use supernet::SuperSupernet;
