//! The benchmarked models, each compiled by `resnet!` at batch 1 (`specs/`) and batch 8
//! (`$OUT_DIR`, written by `build.rs`), with weights loaded at run time, behind one
//! object-safe [`Net`] so that the benchmark loops are written once.

use anyhow::{Context, Result};
use resnet_compiler::program::StepKind;
use resnet_compiler::summary::Summary;
use resnet_compiler::{Compilation, Options, compile, spec::parse_yaml};

/// One compiled module with its weights, arena, input and output: everything a forward
/// needs, allocated once, before any timing.
pub trait Net {
    /// Runs one forward pass on the input, writing the output.
    fn forward(&mut self);
    /// [`Net::forward`], calling `hook(i)` after kernel call `i`.
    fn forward_with_hook(&mut self, hook: &mut dyn FnMut(usize));
    /// The kernel calls, by the torchvision modules each covers.
    fn steps(&self) -> &'static [&'static str];
    /// Multiply-accumulates of each kernel call.
    fn step_macs(&self) -> &'static [u64];
    /// The output of the last forward pass.
    fn output(&self) -> &[f32];
}

/// Packs a torchvision `state_dict` (safetensors) and allocates the buffers, given the input.
type Loader = fn(&[u8], &[f32]) -> Result<Box<dyn Net>>;

/// A benchmarked model at one batch size.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// torchvision's name (`resnet50`).
    pub name: &'static str,
    /// Images per forward pass.
    pub batch: usize,
    /// The spec's text.
    spec: &'static str,
    /// Where the spec came from, for messages.
    spec_path: &'static str,
    /// Packs `safetensors` and allocates the arena, input and output.
    load: Loader,
}

/// A model's spec compiled, with its synthetic input.
#[derive(Debug)]
pub struct Prepared {
    /// The compilation of the spec (its `graph` gives the synthetic weights:
    /// `resnet_compiler::weights::synthetic_safetensors(&graph, 0)`, as `tools/` gives torchvision).
    pub compilation: Compilation,
    /// Multiply-accumulates of one forward pass (the whole batch): convolutions as direct
    /// convolutions, and the classifier.
    pub macs: u64,
    /// The synthetic input (seed 0).
    pub input: Vec<f32>,
}

impl Prepared {
    /// How each kernel call computes, in [`Net::steps`] order: `winograd`, `direct` (conv),
    /// `linear` or `pool`. `compile` with the default options is what `resnet!` runs.
    pub fn algorithms(&self) -> Vec<&'static str> {
        self.compilation
            .program
            .steps
            .iter()
            .map(|s| match &s.kind {
                StepKind::Conv(c) if c.winograd => "winograd",
                StepKind::Conv(_) => "direct",
                StepKind::Linear { .. } => "linear",
                StepKind::MaxPool { .. } | StepKind::GlobalAvgPool { .. } => "pool",
            })
            .collect()
    }
}

impl Model {
    /// Compiles the spec and generates the synthetic input.
    pub fn prepare(&self) -> Result<Prepared> {
        let spec = parse_yaml(self.spec, self.spec_path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let compilation =
            compile(&spec, &Options::default()).with_context(|| format!("compiling {}", self.spec_path))?;
        let macs = Summary::new(&compilation).macs as u64;
        let input = resnet_compiler::synth::input(&compilation.spec.input, 0);
        Ok(Prepared {
            compilation,
            macs,
            input,
        })
    }

    /// Checks, folds and packs `safetensors` (a torchvision `state_dict`); allocates and
    /// fills everything a forward pass uses.
    pub fn load(&self, safetensors: &[u8], input: &[f32]) -> Result<Box<dyn Net>> {
        (self.load)(safetensors, input)
            .with_context(|| format!("loading the weights of {} (batch {})", self.name, self.batch))
    }
}

/// Defines one module per (model, batch), its [`Net`], and [`MODELS`].
macro_rules! models {
    ($($module:ident = $name:literal, $batch:literal, $spec:tt, $text:expr;)*) => {
        $(
            /// Generated code of one (model, batch); reached through [`MODELS`] only.
            mod $module {
                // Not every generated constant is used here.
                resnet_macros::resnet! { #[allow(dead_code)] pub mod net { spec: $spec } }

                /// [`net`] with its weights and buffers.
                struct Loaded {
                    weights: net::Weights,
                    arena: Box<net::Arena>,
                    input: Box<[f32; net::INPUT_LEN]>,
                    output: Box<[f32; net::OUTPUT_LEN]>,
                }

                /// Packs the weights and allocates the buffers (on the heap: the arena and
                /// a batch-8 input are megabytes).
                pub(super) fn load(safetensors: &[u8], input: &[f32]) -> anyhow::Result<Box<dyn super::Net>> {
                    let weights = net::Weights::from_safetensors(safetensors)?;
                    let input: Box<[f32; net::INPUT_LEN]> = input
                        .to_vec()
                        .into_boxed_slice()
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("the input has the wrong length"))?;
                    let output = vec![0.0f32; net::OUTPUT_LEN]
                        .into_boxed_slice()
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("unreachable: OUTPUT_LEN elements"))?;
                    Ok(Box::new(Loaded {
                        weights,
                        arena: resnet_runtime::zeroed_box::<net::Arena>(),
                        input,
                        output,
                    }))
                }

                impl super::Net for Loaded {
                    fn forward(&mut self) {
                        net::forward(&self.weights, &self.input, &mut self.output, &mut self.arena);
                    }
                    fn forward_with_hook(&mut self, hook: &mut dyn FnMut(usize)) {
                        net::forward_with_hook(&self.weights, &self.input, &mut self.output, &mut self.arena, hook);
                    }
                    fn steps(&self) -> &'static [&'static str] {
                        &net::STEPS
                    }
                    fn step_macs(&self) -> &'static [u64] {
                        &net::STEP_MACS
                    }
                    fn output(&self) -> &[f32] {
                        &self.output[..]
                    }
                }
            }
        )*

        /// Every (model, batch) compiled in, by model then batch.
        pub const MODELS: &[Model] = &[
            $(Model { name: $name, batch: $batch, spec: $text, spec_path: $spec, load: $module::load },)*
        ];
    };
}

models! {
    resnet18 = "resnet18", 1, "../specs/resnet18.yaml", include_str!("../../specs/resnet18.yaml");
    resnet18_b8 = "resnet18", 8, "$OUT_DIR/resnet18_b8.yaml",
        include_str!(concat!(env!("OUT_DIR"), "/resnet18_b8.yaml"));
    resnet50 = "resnet50", 1, "../specs/resnet50.yaml", include_str!("../../specs/resnet50.yaml");
    resnet50_b8 = "resnet50", 8, "$OUT_DIR/resnet50_b8.yaml",
        include_str!(concat!(env!("OUT_DIR"), "/resnet50_b8.yaml"));
    resnext50_32x4d = "resnext50_32x4d", 1, "../specs/resnext50_32x4d.yaml",
        include_str!("../../specs/resnext50_32x4d.yaml");
    resnext50_32x4d_b8 = "resnext50_32x4d", 8, "$OUT_DIR/resnext50_32x4d_b8.yaml",
        include_str!(concat!(env!("OUT_DIR"), "/resnext50_32x4d_b8.yaml"));
    wide_resnet50_2 = "wide_resnet50_2", 1, "../specs/wide_resnet50_2.yaml",
        include_str!("../../specs/wide_resnet50_2.yaml");
    wide_resnet50_2_b8 = "wide_resnet50_2", 8, "$OUT_DIR/wide_resnet50_2_b8.yaml",
        include_str!(concat!(env!("OUT_DIR"), "/wide_resnet50_2_b8.yaml"));
}

/// The model names, in benchmark order.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for m in MODELS {
        if !names.contains(&m.name) {
            names.push(m.name);
        }
    }
    names
}

/// The batch sizes compiled in.
pub fn batches() -> Vec<usize> {
    let mut batches: Vec<usize> = MODELS.iter().map(|m| m.batch).collect();
    batches.sort_unstable();
    batches.dedup();
    batches
}

/// The module of `name` at `batch`.
pub fn find(name: &str, batch: usize) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name && m.batch == batch)
}
