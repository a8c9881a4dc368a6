//! Recipes as flags. `imagenet` is the official recipe (`script/train.sh`, `ressl.py`);
//! `fashion-mnist` scales it to 28 px grey images on 2 CPU cores as
//! `specs/ssl_rep.md` section 5 does; `quick` is a smoke run on the bundled subset.

use ember_cli::preset::Preset;

/// CIFAR-style ResNet with one BasicBlock per stage, widths 8-16-32 (the spec's small net).
const SMALL_NET: &str =
    r#"{"stem_type": "small", "layers": [1, 1, 1], "channels": [8, 16, 32], "stem_width": 8}"#;

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "imagenet",
        about: "the official ImageNet recipe: ResNet-50, 200 epochs, batch 256, SGD momentum 0.9 lr 0.05, weight decay 1e-4 (not on bn/bias), 5 warm-up epochs then cosine; head 2048-4096-512, queue 131072, teacher momentum 0.999, tau_s 0.1, tau_t 0.04. Give --data an image folder",
        flags: &[
            "--arch", "resnet50", "--image-size", "224", "--channels", "3", "--epochs", "200",
            "--batch-size", "256", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
            "--weight-decay", "1e-4", "--warmup-epochs", "5", "--schedule", "cosine",
            "--dim", "512", "--hidden", "4096", "--queue", "131072",
            "--teacher-momentum", "0.999", "--tau-s", "0.1", "--tau-t", "0.04",
        ],
    },
    Preset {
        name: "fashion-mnist",
        about: "Fashion-MNIST at 28 px: ResNet 8-16-32 with one block per stage, 10 epochs, batch 256, SGD lr 0.05, weight decay 5e-4, 0.25 warm-up epochs then cosine; head 32-512-128, queue 4096, teacher momentum 0.99 (the small-data value), tau_s 0.1, tau_t 0.04",
        flags: &[
            "--arch", "resnet", "--model-config", SMALL_NET, "--data", "fashion-mnist",
            "--epochs", "10", "--batch-size", "256", "--optimizer", "sgd", "--lr", "0.05",
            "--momentum", "0.9", "--weight-decay", "5e-4", "--warmup-epochs", "0.25",
            "--schedule", "cosine", "--dim", "128", "--hidden", "512", "--queue", "4096",
            "--teacher-momentum", "0.99", "--tau-s", "0.1", "--tau-t", "0.04",
        ],
    },
    Preset {
        name: "quick",
        about: "a smoke run: the fashion-mnist recipe for 2 epochs on the bundled 4000-image subset, queue 1024, kNN bank 1000 with k 20",
        flags: &[
            "--arch", "resnet", "--model-config", SMALL_NET, "--data", "fashion-mnist-subset",
            "--epochs", "2", "--batch-size", "128", "--optimizer", "sgd", "--lr", "0.05",
            "--momentum", "0.9", "--weight-decay", "5e-4", "--warmup-epochs", "0.25",
            "--schedule", "cosine", "--dim", "128", "--hidden", "512", "--queue", "1024",
            "--teacher-momentum", "0.99", "--knn-bank", "1000", "--knn-k", "20",
        ],
    },
];
