//! `classify`: the top 5 ImageNet classes of an image, by resnet18 or resnet50.
//!
//! ```text
//! cargo run --release -p classify -- --model resnet50 --weights resnet50.safetensors photo.jpg
//! ```
//!
//! The weights are any torchvision checkpoint converted with `tools/convert_checkpoint.py`
//! (e.g. `ResNet50_Weights.IMAGENET1K_V2`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use classify::{class_names, preprocess, resnet18, resnet50, top_k};

#[derive(Debug, Parser)]
#[command(about = "Classify an image with a torchvision ResNet compiled by resnetc")]
struct Args {
    /// Which network the weights are for.
    #[arg(long, value_enum, default_value = "resnet50")]
    model: Model,
    /// torchvision weights as safetensors (tools/convert_checkpoint.py).
    #[arg(long)]
    weights: PathBuf,
    /// The image (JPEG or PNG).
    image: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Model {
    Resnet18,
    Resnet50,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let img = image::open(&args.image)
        .with_context(|| format!("cannot read the image {}", args.image.display()))?;
    let input = preprocess(&img);
    let logits = match args.model {
        Model::Resnet18 => {
            let weights = resnet18::Weights::load(&args.weights)?;
            let mut arena = resnet_runtime::zeroed_box::<resnet18::Arena>();
            let mut out = [0.0; resnet18::OUTPUT_LEN];
            resnet18::forward(&weights, input.as_slice().try_into()?, &mut out, &mut arena);
            out.to_vec()
        }
        Model::Resnet50 => {
            let weights = resnet50::Weights::load(&args.weights)?;
            let mut arena = resnet_runtime::zeroed_box::<resnet50::Arena>();
            let mut out = [0.0; resnet50::OUTPUT_LEN];
            resnet50::forward(&weights, input.as_slice().try_into()?, &mut out, &mut arena);
            out.to_vec()
        }
    };
    let names = class_names();
    for (class, p) in top_k(&logits, 5) {
        println!("{:6.2}%  {} ({class})", 100.0 * p, names[class]);
    }
    Ok(())
}
