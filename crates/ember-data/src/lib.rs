//! Ember's data: datasets (Fashion-MNIST from IDX files, FashionSeg canvases, image folders), torchvision-style
//! transforms, the two-view recipes of self-supervised learning, and a seeded loader that
//! decodes and augments (one or several views per image) on worker threads.

pub mod dataset;
pub mod fashion;
pub mod fashion_seg;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod photometric;
pub mod preprocess;
pub mod resized_crop;
pub mod sample;
pub mod source;
pub mod transforms;
pub mod views;

pub use dataset::{describe_classes, Dataset, Split};
pub use fashion::FashionMnist;
pub use fashion_seg::{Canvas, CanvasSpec, FashionSeg, ItemBox};
pub use folder::{decode_image, ImageFolder};
pub use loader::{Batch, EpochBatches, Loader, LoaderConfig, Shard};
pub use photometric::Jitter;
pub use preprocess::Preprocess;
pub use sample::Chw;
pub use source::{open, DataSource, OpenedData};
pub use transforms::{Pipeline, Transform};
pub use views::{ViewRecipe, Views};
