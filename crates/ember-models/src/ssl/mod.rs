//! The heads of self-supervised pre-training, under the official state_dict names: ReSSL's
//! projection head (`network/head.py`) and LEWEL's 1-d MLP and object neck
//! (`models/lewel.py`). Each takes backbone features, never images, so any registered
//! backbone can sit under it.

mod mlp1d;
mod neck;
mod projection;

pub use mlp1d::Mlp1d;
pub use neck::{NeckOutput, ObjectNeck};
pub use projection::ProjectionHead;
