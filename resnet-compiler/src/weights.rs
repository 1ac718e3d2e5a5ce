//! The weight blob: its layout (derived from the Program), packing from a safetensors file,
//! and synthetic `state_dict`s written as safetensors.
//!
//! The blob is the packed weights and biases of every layer, in execution order, each segment
//! starting at a multiple of 16 `f32` (64 bytes), little-endian. Checking, folding and packing
//! are `resnet_runtime::load`'s, so that a blob made at build time and weights loaded at run
//! time are the same bits.

use resnet_runtime::model::{LayerKind, LayerWeights, ModelWeights};
use resnet_runtime::{ConvGeom, ShortcutGeom};

use crate::ir::Shortcut;
use crate::program::{ConvStep, Program, StepKind};
use crate::shape::Shape;

/// Alignment of every blob segment, in `f32` elements (64 bytes).
pub const SEGMENT_ALIGN: usize = 16;

/// The kernel geometry of a conv step.
pub fn conv_geom(s: &ConvStep) -> ConvGeom {
    let (Shape::Nchw([n, c, h, w]), Shape::Nchw([_, o, oh, ow])) = (s.input.shape, s.output.shape) else {
        unreachable!("convs read and write feature maps")
    };
    let shortcut = match (&s.conv.fused.shortcut, s.shortcut) {
        (
            Some(Shortcut::Projection {
                in_channels, stride, ..
            }),
            Some(t),
        ) => {
            let Shape::Nchw([_, sc, sh, sw]) = t.shape else {
                unreachable!()
            };
            debug_assert_eq!(sc, *in_channels);
            Some(ShortcutGeom {
                c: sc,
                h: sh,
                w: sw,
                stride: *stride,
            })
        }
        _ => None,
    };
    ConvGeom {
        n,
        c,
        h,
        w,
        o,
        oh,
        ow,
        k: s.conv.kernel,
        stride: s.conv.stride,
        pad: s.conv.padding,
        dilation: s.conv.dilation,
        groups: s.conv.groups,
        shortcut,
        residual: s.residual.is_some(),
        relu: s.conv.fused.relu.is_some(),
    }
}

/// Where each layer's weights go in the blob.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout<'p> {
    /// The layers with weights, in execution order (one per conv or linear step).
    pub layers: Vec<LayerWeights<'p>>,
    /// The blob's length in `f32`.
    pub blob_len: usize,
    /// See [`Program::unused_prefixes`].
    pub unused_prefixes: Vec<&'p str>,
}

impl<'p> Layout<'p> {
    /// Lays out the weights of `program`.
    pub fn new(program: &'p Program) -> Layout<'p> {
        let mut at = 0;
        let mut take = |len: usize| {
            let start = at;
            at = (at + len).next_multiple_of(SEGMENT_ALIGN);
            start
        };
        let mut layers = Vec::new();
        for step in &program.steps {
            let kind = match &step.kind {
                StepKind::Conv(s) => LayerKind::Conv {
                    geom: conv_geom(s),
                    conv: &s.name,
                    bn: s.conv.fused.bn.as_deref(),
                    shortcut: match &s.conv.fused.shortcut {
                        Some(Shortcut::Projection { conv, bn, .. }) => Some((conv.as_str(), bn.as_deref())),
                        _ => None,
                    },
                    winograd: s.winograd,
                },
                StepKind::Linear { name, linear, .. } => LayerKind::Linear {
                    name,
                    in_features: linear.in_features,
                    out_features: linear.out_features,
                },
                StepKind::MaxPool { .. } | StepKind::GlobalAvgPool { .. } => continue,
            };
            let mut layer = LayerWeights {
                kind,
                weights: 0,
                bias: 0,
            };
            layer.weights = take(layer.weights_len());
            layer.bias = take(layer.bias_len());
            layers.push(layer);
        }
        Layout {
            layers,
            blob_len: at,
            unused_prefixes: program.unused_prefixes.iter().map(String::as_str).collect(),
        }
    }

    /// The runtime's view of this layout, for `model` named `name`.
    pub fn model<'a>(&'a self, name: &'a str, unused: &'a [&'a str]) -> ModelWeights<'a> {
        ModelWeights {
            name,
            layers: &self.layers,
            blob_len: self.blob_len,
            bn_eps: 1e-5,
            unused_prefixes: unused,
        }
    }
}

/// Checks, folds and packs the safetensors `bytes` for `program`.
pub fn pack(program: &Program, bytes: &[u8]) -> Result<Vec<f32>, resnet_runtime::load::LoadError> {
    let layout = Layout::new(program);
    let model = layout.model(&program.name, &layout.unused_prefixes);
    resnet_runtime::load::pack_safetensors(&model, bytes)
}

/// The blob as little-endian bytes.
pub fn blob_bytes(blob: &[f32]) -> Vec<u8> {
    blob.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A synthetic `state_dict` for the graph's modules (see [`crate::synth`]) as a safetensors
/// file, F32 throughout and `num_batches_tracked` as I64 0, as torchvision saves them.
pub fn synthetic_safetensors(graph: &crate::ir::Graph, seed: u64) -> Vec<u8> {
    let entries = crate::synth::state_dict(&graph.state_dict(), seed);
    let bytes: Vec<(String, Vec<usize>, safetensors::Dtype, Vec<u8>)> = entries
        .into_iter()
        .map(|(p, values)| match values {
            Some(v) => (
                p.name,
                p.shape,
                safetensors::Dtype::F32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            None => (
                p.name,
                p.shape,
                safetensors::Dtype::I64,
                0i64.to_le_bytes().to_vec(),
            ),
        })
        .collect();
    let views = bytes.iter().map(|(name, shape, dtype, data)| {
        let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).expect("sizes agree");
        (name.as_str(), view)
    });
    safetensors::serialize(views, None).expect("serializing in memory")
}
