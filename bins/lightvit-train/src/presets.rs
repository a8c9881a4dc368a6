//! Recipes as flags. `imagenet` is the official ImageNet-1K recipe (hunto/image_classification_sota
//! `configs/strategies/lightvit/config.yaml` and its defaults) as far as Ember's data pipeline
//! goes; `fashion-mnist` scales it to 32 px grey images on 2 CPU cores; `quick` is a smoke
//! run on the bundled subset.

use ember_cli::preset::Preset;

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "imagenet",
        about: "official ImageNet-1K recipe for LightViT-T at 224 px: AdamW lr 1e-3, wd 0.04, 20 warm-up epochs then cosine to 1e-6 over 300, label smoothing 0.1, mixup 0.2 / cutmix 1.0, drop path 0.1 (use 0.3 for lightvit_base). Give --data an image folder. Not reproduced here: RandomResizedCrop, RandAugment and random erasing (Ember's pipeline has resize, crop and flip), and the 8x128 batch (one device, lr kept at 1e-3)",
        flags: &[
            "--arch", "lightvit_tiny", "--image-size", "224", "--channels", "3",
            "--epochs", "300", "--batch-size", "128", "--optimizer", "adamw", "--lr", "1e-3",
            "--weight-decay", "0.04", "--warmup-epochs", "20", "--min-lr", "1e-6",
            "--label-smoothing", "0.1", "--mixup", "0.2", "--cutmix", "1.0",
            "--drop-path", "0.1", "--crop-padding", "0",
        ],
    },
    Preset {
        name: "fashion-mnist",
        about: "Fashion-MNIST at 32 px: lightvit_nano_32, AdamW lr 1e-3, wd 0.05, 2 warm-up epochs then cosine to 1e-5 over 60, label smoothing 0.1, drop path 0.1, random crop (padding 2) and flip",
        flags: &[
            "--arch", "lightvit_nano_32", "--data", "fashion-mnist", "--image-size", "32",
            "--epochs", "60", "--batch-size", "128", "--optimizer", "adamw", "--lr", "1e-3",
            "--weight-decay", "0.05", "--warmup-epochs", "2", "--min-lr", "1e-5",
            "--label-smoothing", "0.1", "--drop-path", "0.1", "--crop-padding", "2",
        ],
    },
    Preset {
        name: "quick",
        about: "a smoke run: lightvit_nano_32 for 2 epochs on the bundled 4000-image subset (about a minute)",
        flags: &[
            "--arch", "lightvit_nano_32", "--data", "fashion-mnist-subset", "--image-size", "32",
            "--epochs", "2", "--batch-size", "64", "--optimizer", "adamw", "--lr", "1e-3",
            "--weight-decay", "0.05", "--warmup-epochs", "1", "--label-smoothing", "0.1",
            "--crop-padding", "2",
        ],
    },
];
