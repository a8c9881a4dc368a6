use clap::Args;

/// Which data and how to batch it.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// fashion-mnist ($EMBER_DATA, then /usr/share/datasets/fashion-mnist, then the bundled
    /// subset), fashion-mnist-subset (the bundled 4000/1000 images), or a folder of images
    /// (DIR/train/<class>/*.png and DIR/test/, or DIR/<class>/* with every tenth image held out).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Images per batch (under `ember launch`, the global batch: each of the N processes
    /// takes 1/N of it).
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Threads decoding and augmenting batches ahead of the model (0: on the main thread).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Side of the square images the model sees: folder images are resized to it (default
    /// 32), Fashion-MNIST's 28 px images are resized to it when given (LightViT needs sides
    /// that split into its windows, e.g. 32).
    #[arg(long)]
    pub image_size: Option<usize>,
    /// Channels a folder dataset is decoded to: 1 (grey) or 3 (RGB).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub channels: u8,
    /// Train on this share of the labelled training images only, the same share of each
    /// class (semi-supervised fine-tuning, e.g. 0.1); the test set is unchanged.
    #[arg(long, value_name = "F")]
    pub label_fraction: Option<f64>,
    /// Seed of the --label-fraction draw (the same images for every run with the same seed,
    /// whatever its --seed).
    #[arg(long, default_value_t = 0)]
    pub label_seed: u64,
}

impl DataArgs {
    /// The side folder images are decoded at.
    pub fn folder_size(&self) -> usize {
        self.image_size.unwrap_or(32)
    }
}
