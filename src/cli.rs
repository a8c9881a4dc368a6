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
    /// Evaluate a checkpoint: loss, top-1 and top-5 accuracy on a dataset's test split.
    Eval(EvalCommand),
    /// Classify image files with a checkpoint: one JSON line of top-k classes per image.
    Predict(PredictCommand),
    /// Show what a checkpoint holds: arch, config, labels, parameters, metrics.
    Info(InfoCommand),
    /// Download a file from the Hugging Face Hub into the local cache and print its path.
    Pull(PullCommand),
}

#[derive(Debug, Clone, Args)]
pub struct TrainCommand {
    /// Model: resnet (default ResNet-18; any depth and width through --model-config), resnet18,
    /// resnet34, resnet50, lightvit (LightViT-T), lightvit_tiny, lightvit_small, lightvit_base,
    /// lightvit_tiny_32, lightvit_tiny_64 (`ember info --arch NAME` describes one).
    #[arg(long, default_value = "resnet")]
    pub arch: String,
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
