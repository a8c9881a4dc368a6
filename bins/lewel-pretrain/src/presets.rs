//! Recipes as flags. `imagenet` is the official EMAN recipe for 100/200 epochs
//! (`scripts/*.sh`, `main.py`); `fashion-mnist` scales it to 28 px grey images on 2 CPU cores
//! as `specs/ssl_rep.md` section 5 does; `fashion-mnist-moco` is the same with the MoCo base
//! and MoCo v2's optimizer; `quick` is a smoke run on the bundled subset.
//!
//! The small-data presets keep the target in training mode (`--target-norm batch`, the
//! official SyncBN recipe's `LEWELB`) rather than EMAN: in runs of a few hundred steps the
//! EMAN target's averaged BN statistics trail its weights and BYOL often fell below the
//! untrained network. Measured on the bundled subset, 4 epochs of `--preset quick
//! --no-align`, kNN (k 20) top-1 for seeds 0 / 1 / 2: EMAN target 33.5 / 59.5 / 37.7,
//! training-mode target 55.0 / 61.4 / 51.2, untrained 54.2 / 57.9 / 53.6 (README).

use ember_cli::preset::Preset;

/// CIFAR-style ResNet with one BasicBlock per stage, widths 8-16-32 (the spec's small net).
const SMALL_NET: &str =
    r#"{"stem_type": "small", "layers": [1, 1, 1], "channels": [8, 16, 32], "stem_width": 8}"#;

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "imagenet",
        about: "the official EMAN recipe (LEWEL_B, 100 epochs): ResNet-50, batch 1024, LARS lr 3.6, weight decay 1.5e-6, 10 warm-up epochs then cosine; neck and predictors 2048-4096-256, 4 heads, scale 1, loss weight 0.5, target momentum 0.98 to 1. Give --data an image folder",
        flags: &[
            "--base", "byol", "--arch", "resnet50", "--image-size", "224", "--channels", "3",
            "--epochs", "100", "--batch-size", "1024", "--optimizer", "lars", "--lr", "3.6",
            "--momentum", "0.9", "--weight-decay", "1.5e-6", "--warmup-epochs", "10",
            "--schedule", "cosine", "--dim", "256", "--hidden", "4096", "--heads", "4",
            "--scale", "1", "--loss-weight", "0.5", "--teacher-momentum", "0.98",
        ],
    },
    Preset {
        name: "fashion-mnist",
        about: "Fashion-MNIST at 28 px, BYOL base: ResNet 8-16-32 with one block per stage (7x7 map), 10 epochs, batch 256, LARS lr 0.9 (3.6 x 256/1024), weight decay 1.5e-6, 0.5 warm-up epochs then cosine; neck and predictors 32-256-64, 4 heads (16 aligned embeddings), scale 1, loss weight 0.5, target momentum 0.98 to 1, target in training mode (see the module docs)",
        flags: &[
            "--base", "byol", "--arch", "resnet", "--model-config", SMALL_NET,
            "--data", "fashion-mnist", "--epochs", "10", "--batch-size", "256",
            "--optimizer", "lars", "--lr", "0.9", "--momentum", "0.9", "--weight-decay", "1.5e-6",
            "--warmup-epochs", "0.5", "--schedule", "cosine", "--dim", "64", "--hidden", "256",
            "--heads", "4", "--scale", "1", "--loss-weight", "0.5", "--teacher-momentum", "0.98",
            "--target-norm", "batch",
        ],
    },
    Preset {
        name: "fashion-mnist-moco",
        about: "the fashion-mnist recipe on the MoCo base: SGD lr 0.03 (MoCo v2's, batch 256), weight decay 5e-4, InfoNCE temperature 0.2, queues of 4096, target momentum 0.99 to 1",
        flags: &[
            "--base", "moco", "--arch", "resnet", "--model-config", SMALL_NET,
            "--data", "fashion-mnist", "--epochs", "10", "--batch-size", "256",
            "--optimizer", "sgd", "--lr", "0.03", "--momentum", "0.9", "--weight-decay", "5e-4",
            "--warmup-epochs", "0.5", "--schedule", "cosine", "--dim", "64", "--hidden", "256",
            "--heads", "4", "--scale", "1", "--loss-weight", "0.5", "--teacher-momentum", "0.99",
            "--tau", "0.2", "--queue", "4096", "--target-norm", "batch",
        ],
    },
    Preset {
        name: "quick",
        about: "a smoke run: the fashion-mnist recipe for 2 epochs on the bundled 4000-image subset, kNN bank 1000 with k 20",
        flags: &[
            "--base", "byol", "--arch", "resnet", "--model-config", SMALL_NET,
            "--data", "fashion-mnist-subset", "--epochs", "2", "--batch-size", "128",
            "--optimizer", "lars", "--lr", "0.45", "--momentum", "0.9", "--weight-decay", "1.5e-6",
            "--warmup-epochs", "0.5", "--schedule", "cosine", "--dim", "64", "--hidden", "256",
            "--heads", "4", "--scale", "1", "--loss-weight", "0.5", "--teacher-momentum", "0.98",
            "--knn-bank", "1000", "--knn-k", "20", "--queue", "1024", "--target-norm", "batch",
        ],
    },
];
