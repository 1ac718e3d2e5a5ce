//! What a compiled model's weights are: which torchvision tensors feed each layer, and where
//! the packed result lives in the weight blob. Plain data, usable without `std`; the compiler
//! writes it into generated code and `load` (the `std` feature) reads it.

use crate::geom::ConvGeom;

/// Which tensors a layer takes and where its packed weights go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerKind<'a> {
    /// A conv with its fused BatchNorm and shortcut.
    Conv {
        /// The call's geometry (it decides the packed layout).
        geom: ConvGeom,
        /// The conv module, e.g. `layer1.0.conv3` (tensor `layer1.0.conv3.weight`).
        conv: &'a str,
        /// The BatchNorm folded into it, e.g. `layer1.0.bn3`.
        bn: Option<&'a str>,
        /// The projection shortcut's conv and BatchNorm, e.g. `layer1.0.downsample.0` and `.1`.
        shortcut: Option<(&'a str, Option<&'a str>)>,
        /// Whether the conv runs as Winograd ([`crate::winograd`], F(4x4, 3x3) or, by
        /// [`crate::winograd::winograd_tile`], F(2x2, 3x3)): the weights
        /// are then packed by [`crate::winograd::pack_winograd`], else by
        /// [`crate::pack::pack_conv`].
        winograd: bool,
    },
    /// `nn.Linear` (tensors `{name}.weight` `[out, in]`, `{name}.bias` `[out]`), stored as is.
    Linear {
        /// Module name, `fc`.
        name: &'a str,
        /// Input features.
        in_features: usize,
        /// Output features.
        out_features: usize,
    },
}

/// One layer's place in the blob. Offsets count `f32` elements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerWeights<'a> {
    /// What the layer is.
    pub kind: LayerKind<'a>,
    /// Offset of the packed weights (`pack::packed_conv_len` or
    /// `winograd::winograd_packed_len` elements for a conv, `out * in` for a linear layer).
    pub weights: usize,
    /// Offset of the `out` bias values.
    pub bias: usize,
}

impl LayerWeights<'_> {
    /// Elements of the packed weights.
    pub const fn weights_len(&self) -> usize {
        match self.kind {
            LayerKind::Conv {
                geom, winograd: true, ..
            } => crate::winograd::winograd_packed_len(&geom),
            LayerKind::Conv { geom, .. } => crate::pack::packed_conv_len(&geom),
            LayerKind::Linear {
                in_features,
                out_features,
                ..
            } => in_features * out_features,
        }
    }

    /// Elements of the bias.
    pub const fn bias_len(&self) -> usize {
        match self.kind {
            LayerKind::Conv { geom, .. } => geom.o,
            LayerKind::Linear { out_features, .. } => out_features,
        }
    }
}

/// A model's weights: its layers in order, and the blob they fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelWeights<'a> {
    /// The model's name.
    pub name: &'a str,
    /// Every layer with weights, in execution order.
    pub layers: &'a [LayerWeights<'a>],
    /// Elements of the blob (`f32`).
    pub blob_len: usize,
    /// `eps` of every BatchNorm (torchvision's default, 1e-5).
    pub bn_eps: f64,
    /// `state_dict` prefixes that a torchvision checkpoint may have but this model does not
    /// use: with a features head, `fc.` and the stages after the last one returned (torchvision
    /// backbones load the full checkpoint, then drop those modules).
    pub unused_prefixes: &'a [&'a str],
}
