//! The `ember` command line: subcommands and their flags. `main.rs` only parses and
//! dispatches; each command's work is in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ember_cli::supervised::SupervisedArgs;
use ember_cli::RuntimeArgs;

/// Ember: train, evaluate and use image classifiers; the shared tool of the Ember methods.
/// Results go to stdout as JSON lines, progress to stderr.
#[derive(Debug, Parser)]
#[command(name = "ember", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a registered model on a dataset (a run directory holds metrics, curves and checkpoints).
    Train(Box<TrainCommand>),
    /// Evaluate a checkpoint: loss, top-1 and top-5 accuracy on a dataset's test split (and
    /// mean IoU, pixel accuracy and per-class IoU for a segmentation model).
    Eval(EvalCommand),
    /// Classify image files with a checkpoint: one JSON line of top-k classes per image.
    Predict(PredictCommand),
    /// Show what a checkpoint holds: arch, config, labels, parameters, metrics.
    Info(InfoCommand),
    /// Linear probe of a frozen backbone (a pre-trained checkpoint): features extracted once,
    /// one linear layer trained on them, test top-1 reported.
    LinearEval(LinearEvalCommand),
    /// Download a file from the Hugging Face Hub into the local cache and print its path.
    Pull(PullCommand),
    /// Look at a dataset: `ember data preview` writes a PNG grid of its images (with the
    /// pixel labels coloured in, for segmentation data).
    #[command(subcommand)]
    Data(DataCommand),
    /// Run a training command data-parallel as N processes on this machine (one per GPU),
    /// as torchrun does: `ember launch --gpus 4 -- lightvit-train --preset imagenet ...`.
    /// --batch-size stays the global batch (each process takes 1/N of every batch);
    /// gradients are averaged after every backward pass (NCCL on GPUs, TCP on CPU); only
    /// rank 0 writes the run folder and prints the result.
    Launch(LaunchCommand),
}

#[derive(Debug, Clone, Args)]
pub struct LaunchCommand {
    /// Processes to start: one per GPU (process r takes cuda:r), or CPU processes (each
    /// computes with cores / N threads unless RAYON_NUM_THREADS or --threads says otherwise).
    #[arg(long, visible_alias = "gpus", default_value_t = 1)]
    pub nproc: usize,
    /// Port of rank 0's rendezvous on 127.0.0.1 (default: a free one).
    #[arg(long)]
    pub master_port: Option<u16>,
    /// The command each process runs: ember train, lightvit-train, dist-distill,
    /// dyrep-train or greenmim-pretrain with its arguments (after `--`).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DataCommand {
    /// A PNG grid of the first test images of --data: each image, and for data labelled
    /// per pixel the same image with every class coloured (README lists the palette).
    Preview(PreviewCommand),
}

#[derive(Debug, Clone, Args)]
pub struct PreviewCommand {
    /// fashion-mnist, fashion-mnist-subset, fashion-seg[:options] or a folder (see `ember
    /// train --help`).
    #[arg(long, default_value = "fashion-seg")]
    pub data: String,
    /// Which split to show.
    #[arg(long, value_enum, default_value = "test")]
    pub split: PreviewSplit,
    /// Images to show.
    #[arg(long, default_value_t = 16)]
    pub count: usize,
    /// Images per row.
    #[arg(long, default_value_t = 8)]
    pub columns: usize,
    /// Enlargement of each pixel.
    #[arg(long, default_value_t = 3)]
    pub scale: usize,
    /// Where to write the PNG.
    #[arg(long, short, default_value = "preview.png")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PreviewSplit {
    Train,
    Test,
}

#[derive(Debug, Clone, Args)]
pub struct TrainCommand {
    /// Model: resnet (default ResNet-18; any depth and width through --model-config), resnet18,
    /// resnet34, resnet50, lightvit (LightViT-T), lightvit_tiny, lightvit_small, lightvit_base,
    /// lightvit_tiny_32, lightvit_tiny_64, swin, swin_tiny, swin_base, swin_nano_32 (`ember
    /// info --arch NAME` describes one). Default: the --init checkpoint's, else resnet.
    #[arg(long)]
    pub arch: Option<String>,
    #[command(flatten)]
    pub run: SupervisedArgs,
}

#[derive(Debug, Clone, Args)]
pub struct EvalCommand {
    /// Checkpoint: a path or hf://owner/repo[@revision]/file.safetensors.
    pub checkpoint: String,
    /// Dataset whose test split to evaluate on (see `ember train --help`).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Images per batch.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Threads decoding batches ahead of the model.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

#[derive(Debug, Clone, Args)]
pub struct PredictCommand {
    /// Checkpoint: a path or hf://owner/repo[@revision]/file.safetensors.
    pub checkpoint: String,
    /// Image files (PNG or JPEG), resized and normalised as the model was trained.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Classes to report per image.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
}

#[derive(Debug, Clone, Args)]
pub struct InfoCommand {
    /// Checkpoint: a path or hf://owner/repo[@revision]/file.safetensors. Leave it out and
    /// give --arch to describe a model without weights.
    #[arg(required_unless_present = "arch")]
    pub checkpoint: Option<String>,
    /// An arch (e.g. lightvit_tiny) to describe instead of a checkpoint: its parameters and
    /// multiply-accumulates.
    #[arg(long, conflicts_with = "checkpoint")]
    pub arch: Option<String>,
    /// JSON object (or a path to a JSON file) overriding fields of --arch's config.
    #[arg(long, value_name = "JSON|FILE", requires = "arch")]
    pub model_config: Option<String>,
    /// Side of the square input the MACs are counted for (default: the size the model is
    /// meant for: LightViT's img_size, a checkpoint's training size, 224 for ResNets).
    #[arg(long)]
    pub input_size: Option<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct LinearEvalCommand {
    /// The backbone: any checkpoint (`backbone.safetensors` of a pre-training run, a path or
    /// hf://owner/repo[@revision]/file.safetensors); its classifier layer is ignored.
    #[arg(
        long,
        required_unless_present = "random_arch",
        conflicts_with = "random_arch"
    )]
    pub backbone: Option<String>,
    /// Instead of --backbone: a randomly initialised network of this arch (drawn from
    /// --seed), the baseline of self-supervised tables.
    #[arg(long, value_name = "ARCH")]
    pub random_arch: Option<String>,
    /// With --random-arch: JSON object (or a path to a JSON file) overriding its config.
    #[arg(long, value_name = "JSON|FILE", requires = "random_arch")]
    pub model_config: Option<String>,
    /// Labelled dataset to probe on (see `ember train --help`); its train split trains the
    /// layer, its test split measures it.
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Share of each class's training images the layer sees (e.g. 0.1 or 0.01, as
    /// semi-supervised evaluations do), drawn with --seed.
    #[arg(long, default_value_t = 1.0)]
    pub fraction: f64,
    /// Epochs of the linear layer (ReSSL's protocol: 100).
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// SGD learning rate (momentum 0.9, no weight decay, cosine per step; ReSSL's 0.3).
    #[arg(long, default_value_t = 0.3)]
    pub lr: f64,
    /// Features per step.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
    /// Threads decoding images ahead of the backbone.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Also write the backbone with the trained layer as its classifier: a checkpoint for
    /// `ember eval` and `ember predict`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct PullCommand {
    /// hf://owner/repo[@revision]/file (HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE are honoured).
    pub file: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
