//! The spec: the YAML description of a ResNet, and its validation.
//!
//! A spec is read in two steps. A front end turns source text into a [`RawSpec`], where
//! every field is optional and no rule has been checked yet: [`parse_yaml`] for spec files,
//! and the `resnet!` macro's inline form for Rust tokens. Then [`RawSpec::validate`] applies
//! torchvision's rules and this project's, and yields a [`Spec`] whose every field is known
//! good, or every problem at once as [`Diagnostic`]s. A diagnostic names the offending field
//! by [`FieldPath`], never by position, so that each front end can point at its own source:
//! a line and column in a file, or a span in a macro call.

pub(crate) mod validate;
pub(crate) use validate::limits;
mod yaml;

use std::fmt;

pub use validate::bottleneck_width;
pub use yaml::{SpecError, SpecErrors, parse_yaml};

/// A validated spec. Every field holds a value torchvision would accept, and the input is
/// large enough that no feature map becomes empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Identifier of the model: the Rust module name and the C prefix.
    pub name: String,
    /// Residual block type.
    pub block: Block,
    /// Blocks per stage; at least one stage, at least one block each.
    pub layers: Vec<usize>,
    /// ResNeXt cardinality (1 for a plain ResNet).
    pub groups: usize,
    /// torchvision's `width_per_group` (`base_width` inside the blocks).
    pub width_per_group: usize,
    /// One flag per stage after the first: replace that stage's stride 2 by dilation.
    pub replace_stride_with_dilation: Vec<bool>,
    /// Outputs of the classifier head (unused with [`Head::Features`]).
    pub num_classes: usize,
    /// Static input shape, `[N, C, H, W]`.
    pub input: [usize; 4],
    /// Planes of each stage (`planes` in torchvision's `_make_layer`).
    pub widths: Vec<usize>,
    /// The stem before the first stage.
    pub stem: Stem,
    /// What the network returns.
    pub head: Head,
}

impl Spec {
    /// Number of stages (`layer1` .. `layerN`).
    pub fn stages(&self) -> usize {
        self.layers.len()
    }
}

/// Residual block type, torchvision's `BasicBlock` or `Bottleneck`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Block {
    /// Two 3x3 convolutions; expansion 1.
    Basic,
    /// 1x1, 3x3 (strided, grouped, dilated), 1x1; expansion 4.
    Bottleneck,
}

impl Block {
    /// Output channels of a block per input `planes` (torchvision's `block.expansion`).
    pub fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }

    /// The spec spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Block::Basic => "basic",
            Block::Bottleneck => "bottleneck",
        }
    }
}

/// The layers before the first stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// torchvision's: 7x7 stride-2 conv, BatchNorm, ReLU, 3x3 stride-2 max pool.
    #[default]
    Imagenet,
    /// Small-image models (He et al. 2015, section 4.2): 3x3 stride-1 conv, BatchNorm, ReLU.
    Cifar,
}

/// What the network returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// Global average pool, flatten, fully connected: `[N, num_classes]` logits.
    Classifier,
    /// The outputs of the listed stages (0-based stage indices, in the order listed), as a
    /// detection or segmentation backbone returns them.
    Features(Vec<usize>),
}

/// The spelling of `head` in a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// See [`Head::Classifier`].
    #[default]
    Classifier,
    /// See [`Head::Features`].
    Features,
}

/// A spec as written: every field optional, nothing checked.
///
/// Integer fields are `u64` so that a front end never has to reject a number that validation
/// would explain better (a 0 or a huge width gets a message about widths, not about integer types).
#[derive(Debug, Clone, Default, PartialEq)]
#[allow(missing_docs)]
pub struct RawSpec {
    pub name: Option<String>,
    pub block: Option<Block>,
    pub layers: Option<Vec<u64>>,
    pub groups: Option<u64>,
    pub width_per_group: Option<u64>,
    pub replace_stride_with_dilation: Option<Vec<bool>>,
    pub num_classes: Option<u64>,
    pub input: Option<Vec<u64>>,
    pub widths: Option<Vec<u64>>,
    pub stem: Option<Stem>,
    pub head: Option<HeadKind>,
    pub features: Option<Vec<String>>,
}

/// The fields of a spec, in the order DESIGN.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Field {
    Name,
    Block,
    Layers,
    Groups,
    WidthPerGroup,
    ReplaceStrideWithDilation,
    NumClasses,
    Input,
    Widths,
    Stem,
    Head,
    Features,
}

impl Field {
    /// Every field, in spec order.
    pub const ALL: [Field; 12] = [
        Field::Name,
        Field::Block,
        Field::Layers,
        Field::Groups,
        Field::WidthPerGroup,
        Field::ReplaceStrideWithDilation,
        Field::NumClasses,
        Field::Input,
        Field::Widths,
        Field::Stem,
        Field::Head,
        Field::Features,
    ];

    /// The key as written in a spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Block => "block",
            Field::Layers => "layers",
            Field::Groups => "groups",
            Field::WidthPerGroup => "width_per_group",
            Field::ReplaceStrideWithDilation => "replace_stride_with_dilation",
            Field::NumClasses => "num_classes",
            Field::Input => "input",
            Field::Widths => "widths",
            Field::Stem => "stem",
            Field::Head => "head",
            Field::Features => "features",
        }
    }

    /// The field spelled `key`, if any.
    pub fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.as_str() == key)
    }

    /// What a valid value looks like, for messages about a value of the wrong type.
    pub fn expected(self) -> &'static str {
        match self {
            Field::Name => "an identifier such as `resnet50`",
            Field::Block => "`basic` or `bottleneck`",
            Field::Layers => "a list of blocks per stage, such as [3, 4, 6, 3]",
            Field::Groups => "a positive integer, such as 32",
            Field::WidthPerGroup => "a positive integer, such as 64",
            Field::ReplaceStrideWithDilation => {
                "null or a list of booleans, one per stage after the first, such as [false, true, true]"
            }
            Field::NumClasses => "a positive integer, such as 1000",
            Field::Input => "[N, C, H, W], such as [1, 3, 224, 224]",
            Field::Widths => "a list of planes per stage, such as [64, 128, 256, 512]",
            Field::Stem => "`imagenet` or `cifar`",
            Field::Head => "`classifier` or `features`",
            Field::Features => "a list of stage names, such as [layer3, layer4]",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a spec a problem is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum FieldPath {
    /// The spec as a whole (a document that is not a mapping, an input too small for the network).
    Document,
    /// A required field that is not there.
    Missing(Field),
    /// A key that is not a field of the spec.
    UnknownKey(String),
    /// A field's value.
    Field(Field),
    /// One element of a list-valued field.
    Element(Field, usize),
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Document => f.write_str("spec"),
            FieldPath::Missing(field) => write!(f, "{field}"),
            FieldPath::UnknownKey(key) => write!(f, "{key}"),
            FieldPath::Field(field) => write!(f, "{field}"),
            FieldPath::Element(field, i) => write!(f, "{field}[{i}]"),
        }
    }
}

/// One problem found in a spec, with the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The field the message is about.
    pub path: FieldPath,
    /// A sentence saying what is wrong and what would be valid.
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(path: FieldPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
