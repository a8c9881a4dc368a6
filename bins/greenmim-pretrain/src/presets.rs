//! Recipes as flags. `imagenet` is the official recipe (`scripts/srun_greenmim_swin_base.sh`,
//! `main_pretrain.py`: Swin-B w7, 800 epochs, batch 2048, blr 1e-4 so lr 8e-4, 40 warm-up
//! epochs, AdamW (0.9, 0.95) wd 0.05, mask 0.75 on 32 px units, normalised-pixel loss,
//! decoder 512 wide with one block); `fashion-mnist` scales it to 32 px grey images on 2 CPU
//! cores (specs/greenmim.md section 7); `quick` is a smoke run on the bundled subset.

use ember_cli::preset::Preset;

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "imagenet",
        about: "the official recipe: Swin-B window 7 at 224 px, 800 epochs, batch 2048, AdamW betas 0.9,0.95 lr 8e-4 (blr 1e-4 x 2048 / 256) weight decay 0.05, 40 warm-up epochs then cosine to 0; mask ratio 0.75 on 32 px units, decoder 512 wide, 1 block, 16 heads, normalised-pixel loss. Give --data an image folder",
        flags: &[
            "--arch", "swin_base", "--model-config", r#"{"drop_path_rate": 0.0, "norm_eps": 1e-6}"#,
            "--image-size", "224", "--channels", "3", "--epochs", "800", "--batch-size", "2048",
            "--optimizer", "adamw", "--betas", "0.9,0.95", "--lr", "8e-4", "--weight-decay", "0.05",
            "--warmup-epochs", "40", "--schedule", "cosine", "--mask-ratio", "0.75",
            "--decoder-dim", "512", "--decoder-depth", "1", "--decoder-heads", "16",
        ],
    },
    Preset {
        name: "fashion-mnist",
        about: "Fashion-MNIST resized to 32 px: the three-stage swin_nano_32 (patch 2, window 4, 8 px mask units: 4 of 16 visible), 20 epochs, batch 128, AdamW betas 0.9,0.95 lr 1e-3 weight decay 0.05, 1 warm-up epoch then cosine; decoder 64 wide, 1 block, 4 heads; normalised-pixel loss",
        flags: &[
            "--arch", "swin_nano_32", "--model-config", r#"{"drop_path_rate": 0.0, "norm_eps": 1e-6}"#,
            "--data", "fashion-mnist", "--image-size", "32", "--epochs", "20", "--batch-size", "128",
            "--optimizer", "adamw", "--betas", "0.9,0.95", "--lr", "1e-3", "--weight-decay", "0.05",
            "--warmup-epochs", "1", "--schedule", "cosine", "--mask-ratio", "0.75",
            "--decoder-dim", "64", "--decoder-depth", "1", "--decoder-heads", "4",
        ],
    },
    Preset {
        name: "quick",
        about: "a smoke run: the fashion-mnist recipe for 2 epochs on the bundled 4000-image subset, kNN bank 1000 with k 20, a reconstruction grid every epoch",
        flags: &[
            "--arch", "swin_nano_32", "--model-config", r#"{"drop_path_rate": 0.0, "norm_eps": 1e-6}"#,
            "--data", "fashion-mnist-subset", "--image-size", "32", "--epochs", "2",
            "--batch-size", "128", "--optimizer", "adamw", "--betas", "0.9,0.95", "--lr", "1e-3",
            "--weight-decay", "0.05", "--warmup-epochs", "0.5", "--schedule", "cosine",
            "--mask-ratio", "0.75", "--decoder-dim", "64", "--decoder-depth", "1",
            "--decoder-heads", "4", "--knn-bank", "1000", "--knn-k", "20", "--grid-every", "1",
        ],
    },
];
