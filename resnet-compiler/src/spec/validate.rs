//! The rules a spec must follow: torchvision's own (in torchvision's words) and this project's.
//!
//! Rules are checked field by field, and every broken rule is reported, so that one run of
//! `resnetc check` lists everything wrong with a file. Rules that need a well-formed spec (the
//! feature-map sizes, which need the whole network) run only when the fields themselves are good.

use super::{Block, Diagnostic, Field, FieldPath, Head, HeadKind, RawSpec, Spec};

/// Limits that keep every size computed from a spec far from overflow, in `usize` on a 32-bit
/// target and in a C `int` holding element offsets.
pub(crate) mod limits {
    /// Most stages in a spec.
    pub const STAGES: u64 = 8;
    /// Most blocks in one stage (resnet152 has 36; the CIFAR ResNet-1202 has 200).
    pub const BLOCKS: u64 = 256;
    /// Most channels of any tensor, and most classes.
    pub const CHANNELS: u64 = 1 << 16;
    /// Largest input height or width.
    pub const EXTENT: u64 = 1 << 14;
    /// Largest batch.
    pub const BATCH: u64 = 1024;
    /// Largest tensor, in elements. A ResNet's plan never has more than three tensors live at
    /// once (a block's input, its last inner activation and its output), so every arena offset
    /// stays below 3 * 2^29 < 2^31 elements and fits a C `int`.
    pub const ELEMENTS: u64 = 1 << 29;
    /// Most parameters (torchvision's count): 8 GB of `f32` weights. The largest torchvision
    /// ResNet, wide_resnet101_2, has 126,886,696.
    pub const PARAMS: u64 = (1 << 31) - 1;
}

/// Channels of a bottleneck's inner 3x3, torchvision's `int(planes * (base_width / 64.0)) * groups`.
///
/// Exact: dividing by 64 is exact in floating point, so the float expression equals this integer one.
pub fn bottleneck_width(planes: usize, width_per_group: usize, groups: usize) -> usize {
    planes * width_per_group / 64 * groups
}

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv", "try", "typeof",
    "unsized", "virtual", "yield",
];

const C_KEYWORDS: &[&str] = &[
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
    "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
    "volatile", "while", "bool", "true", "false", "main",
];

impl RawSpec {
    /// Checks every rule and returns the spec, or every broken rule.
    pub fn validate(&self) -> Result<Spec, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let spec = self.check_fields(&mut diags);
        match spec {
            Some(spec) if diags.is_empty() => {
                // The rules on the whole network need the network, built once for both.
                let graph = crate::ir::Graph::from_spec(&spec);
                crate::shape::check_input_extent(&spec, &graph)
                    .and_then(|()| check_params(&graph))
                    .map(|()| spec)
                    .map_err(|d| vec![d])
            }
            _ => Err(diags),
        }
    }

    /// Field rules; returns a spec when every required field could be read.
    fn check_fields(&self, diags: &mut Vec<Diagnostic>) -> Option<Spec> {
        let mut err = |path: FieldPath, msg: String| diags.push(Diagnostic::new(path, msg));
        let missing = |field: Field| {
            (
                FieldPath::Missing(field),
                format!("missing field `{field}`: expected {}", field.expected()),
            )
        };

        let name = match &self.name {
            None => {
                let (path, msg) = missing(Field::Name);
                err(path, msg);
                None
            }
            Some(name) => {
                if let Some(problem) = identifier_problem(name) {
                    err(
                        FieldPath::Field(Field::Name),
                        format!(
                            "name `{name}` {problem}: it names the Rust module and the C prefix, \
                             so use lowercase letters, digits and `_`, starting with a letter"
                        ),
                    );
                }
                Some(name.clone())
            }
        };

        let block = self.block;
        if block.is_none() {
            let (path, msg) = missing(Field::Block);
            err(path, msg);
        }

        // Stages: from `layers`.
        let layers = match &self.layers {
            None => {
                let (path, msg) = missing(Field::Layers);
                err(path, msg);
                None
            }
            Some(layers) if layers.is_empty() => {
                err(
                    FieldPath::Field(Field::Layers),
                    "layers is empty: give the number of blocks of each stage, such as [2, 2, 2, 2]".into(),
                );
                None
            }
            Some(layers) if layers.len() as u64 > limits::STAGES => {
                err(
                    FieldPath::Field(Field::Layers),
                    format!(
                        "layers has {} stages; at most {} are supported",
                        layers.len(),
                        limits::STAGES
                    ),
                );
                None
            }
            Some(layers) => {
                for (i, &n) in layers.iter().enumerate() {
                    if n == 0 {
                        err(
                            FieldPath::Element(Field::Layers, i),
                            format!(
                                "layers[{i}] is 0: every stage needs at least one block (layer{} has none)",
                                i + 1
                            ),
                        );
                    } else if n > limits::BLOCKS {
                        err(
                            FieldPath::Element(Field::Layers, i),
                            format!(
                                "layers[{i}] is {n}: at most {} blocks per stage are supported",
                                limits::BLOCKS
                            ),
                        );
                    }
                }
                Some(layers.iter().map(|&n| n as usize).collect::<Vec<_>>())
            }
        };
        let stages = layers.as_ref().map(Vec::len);

        let groups = self.groups.unwrap_or(1);
        let width_per_group = self.width_per_group.unwrap_or(64);
        for (field, value, what) in [
            (Field::Groups, groups, "groups"),
            (Field::WidthPerGroup, width_per_group, "width_per_group"),
        ] {
            if value == 0 {
                err(
                    FieldPath::Field(field),
                    format!("{what} is 0: expected {}", field.expected()),
                );
            } else if value > limits::CHANNELS {
                err(
                    FieldPath::Field(field),
                    format!("{what} is {value}: at most {} is supported", limits::CHANNELS),
                );
            }
        }
        if block == Some(Block::Basic) && (groups != 1 || width_per_group != 64) {
            let field = if groups != 1 {
                Field::Groups
            } else {
                Field::WidthPerGroup
            };
            err(
                FieldPath::Field(field),
                format!(
                    "BasicBlock only supports groups=1 and base_width=64 (this spec has groups={groups}, \
                     width_per_group={width_per_group}); use `block: bottleneck` for ResNeXt and wide ResNets"
                ),
            );
        }

        // One dilation flag per stage after the first.
        let rswd = match (&self.replace_stride_with_dilation, stages) {
            (None, Some(stages)) => Some(vec![false; stages - 1]),
            (Some(flags), Some(stages)) if flags.len() == stages - 1 => Some(flags.clone()),
            (Some(flags), Some(stages)) => {
                let got = format!("{flags:?}").replace('"', "");
                err(
                    FieldPath::Field(Field::ReplaceStrideWithDilation),
                    format!(
                        "replace_stride_with_dilation should be None or a {}-element tuple, got {got} \
                         (one boolean per stage after the first; this spec has {stages} stages)",
                        stages - 1
                    ),
                );
                None
            }
            (_, None) => None,
        };
        if let (Some(Block::Basic), Some(rswd), Some(layers)) = (block, &rswd, &layers)
            && let Some((flag, stage, index)) = first_dilated_basic_block(rswd, layers)
        {
            err(
                FieldPath::Element(Field::ReplaceStrideWithDilation, flag),
                format!(
                    "Dilation > 1 not supported in BasicBlock: replace_stride_with_dilation[{flag}] \
                         makes layer{}.{index} dilated; use `block: bottleneck` for a dilated backbone",
                    stage + 1
                ),
            );
        }

        let num_classes = self.num_classes.unwrap_or(1000);
        if num_classes == 0 {
            err(
                FieldPath::Field(Field::NumClasses),
                "num_classes is 0: a classifier needs at least one class".into(),
            );
        } else if num_classes > limits::CHANNELS {
            err(
                FieldPath::Field(Field::NumClasses),
                format!(
                    "num_classes is {num_classes}: at most {} is supported",
                    limits::CHANNELS
                ),
            );
        }

        let input = match &self.input {
            None => Some([1, 3, 224, 224]),
            Some(dims) if dims.len() != 4 => {
                err(
                    FieldPath::Field(Field::Input),
                    format!(
                        "input has {} dimensions; expected 4, [N, C, H, W], such as [1, 3, 224, 224]",
                        dims.len()
                    ),
                );
                None
            }
            Some(dims) => {
                let what = ["batch size N", "channel count C", "height H", "width W"];
                let max = [limits::BATCH, limits::CHANNELS, limits::EXTENT, limits::EXTENT];
                let mut ok = true;
                for i in 0..4 {
                    if dims[i] == 0 {
                        err(
                            FieldPath::Element(Field::Input, i),
                            format!("input[{i}], the {}, is 0: it must be at least 1", what[i]),
                        );
                        ok = false;
                    } else if dims[i] > max[i] {
                        err(
                            FieldPath::Element(Field::Input, i),
                            format!(
                                "input[{i}], the {}, is {}: at most {} is supported",
                                what[i], dims[i], max[i]
                            ),
                        );
                        ok = false;
                    }
                }
                ok.then(|| {
                    dims.iter()
                        .map(|&d| d as usize)
                        .collect::<Vec<_>>()
                        .try_into()
                        .ok()
                })
                .flatten()
            }
        };

        let widths = match (&self.widths, stages) {
            (None, Some(stages)) => Some((0..stages).map(|i| 64usize << i).collect::<Vec<_>>()),
            (Some(widths), Some(stages)) if widths.len() != stages => {
                err(
                    FieldPath::Field(Field::Widths),
                    format!(
                        "widths has {} entries but layers has {stages} stages: give the planes of each stage",
                        widths.len()
                    ),
                );
                None
            }
            (Some(widths), Some(_)) => {
                let mut ok = true;
                for (i, &w) in widths.iter().enumerate() {
                    if w == 0 || w > limits::CHANNELS {
                        err(
                            FieldPath::Element(Field::Widths, i),
                            format!(
                                "widths[{i}] is {w}: the planes of layer{} must be between 1 and {}",
                                i + 1,
                                limits::CHANNELS
                            ),
                        );
                        ok = false;
                    }
                }
                ok.then(|| widths.iter().map(|&w| w as usize).collect())
            }
            (_, None) => None,
        };
        if let (Some(Block::Bottleneck), Some(widths)) = (block, &widths)
            && (1..=limits::CHANNELS).contains(&groups)
            && (1..=limits::CHANNELS).contains(&width_per_group)
        {
            for (i, &planes) in widths.iter().enumerate() {
                let width = bottleneck_width(planes, width_per_group as usize, groups as usize);
                if width == 0 {
                    err(
                        FieldPath::Field(Field::WidthPerGroup),
                        format!(
                            "the bottleneck width of layer{} is int({planes} * {width_per_group} / 64) * {groups} = 0 \
                                 channels: increase width_per_group or widths[{i}]",
                            i + 1
                        ),
                    );
                    break;
                } else if width as u64 > limits::CHANNELS {
                    err(
                        FieldPath::Field(Field::WidthPerGroup),
                        format!(
                            "the bottleneck width of layer{} is {width} channels: at most {} is supported",
                            i + 1,
                            limits::CHANNELS
                        ),
                    );
                    break;
                }
            }
        }

        let head = match (self.head.unwrap_or_default(), &self.features, stages) {
            (HeadKind::Classifier, Some(_), _) => {
                err(
                    FieldPath::Field(Field::Features),
                    "features is only used with `head: features`; remove it or set `head: features`".into(),
                );
                None
            }
            (HeadKind::Classifier, None, _) => Some(Head::Classifier),
            (HeadKind::Features, None, Some(stages)) => Some(Head::Features(vec![stages - 1])),
            (HeadKind::Features, Some(names), Some(stages)) => {
                check_features(names, stages, &mut err).map(Head::Features)
            }
            (HeadKind::Features, _, None) => None,
        };

        Some(Spec {
            name: name?,
            block: block?,
            layers: layers?,
            groups: groups as usize,
            width_per_group: width_per_group as usize,
            replace_stride_with_dilation: rswd?,
            num_classes: num_classes as usize,
            input: input?,
            widths: widths?,
            stem: self.stem.unwrap_or_default(),
            head: head?,
        })
    }
}

/// The limit on the whole network's parameters (see [`limits`]).
fn check_params(graph: &crate::ir::Graph) -> Result<(), Diagnostic> {
    let params: u64 = graph
        .schedule()
        .iter()
        .map(|&id| graph.node(id).op.params() as u64)
        .sum();
    if params > limits::PARAMS {
        return Err(Diagnostic::new(
            FieldPath::Field(Field::Layers),
            format!(
                "this network has {params} parameters; at most {} (8 GB of f32 weights) are supported",
                limits::PARAMS
            ),
        ));
    }
    Ok(())
}

/// Stage indices of the `features` names, or `None` after reporting what is wrong.
fn check_features(
    names: &[String],
    stages: usize,
    err: &mut impl FnMut(FieldPath, String),
) -> Option<Vec<usize>> {
    if names.is_empty() {
        err(
            FieldPath::Field(Field::Features),
            format!("features is empty: list the stages to return, such as [layer{stages}]"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, name) in names.iter().enumerate() {
        let stage = name
            .strip_prefix("layer")
            .filter(|k| !k.starts_with('0') && k.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|k| (1..=stages).contains(k));
        match stage {
            None => {
                err(
                    FieldPath::Element(Field::Features, i),
                    format!("`{name}` is not a stage: this spec has the stages layer1 to layer{stages}"),
                );
                ok = false;
            }
            Some(k) if out.contains(&(k - 1)) => {
                err(
                    FieldPath::Element(Field::Features, i),
                    format!("`{name}` is listed twice in features"),
                );
                ok = false;
            }
            Some(k) => out.push(k - 1),
        }
    }
    ok.then_some(out)
}

/// torchvision's dilation bookkeeping (`ResNet._make_layer`): the first block of a stage gets
/// the dilation before the stage's own flag applies, the other blocks the dilation after it.
/// Returns the flag, stage and block index of the first block that would be dilated.
fn first_dilated_basic_block(rswd: &[bool], layers: &[usize]) -> Option<(usize, usize, usize)> {
    let mut dilated_by = None;
    for (stage, &blocks) in layers.iter().enumerate() {
        let previous = dilated_by;
        if stage > 0 && rswd[stage - 1] && dilated_by.is_none() {
            dilated_by = Some(stage - 1);
        }
        if let Some(flag) = previous {
            return Some((flag, stage, 0));
        }
        if let Some(flag) = dilated_by
            && blocks > 1
        {
            return Some((flag, stage, 1));
        }
    }
    None
}

/// Why `name` cannot be a Rust module and C prefix, if it cannot.
fn identifier_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Some("is empty"),
        Some(c) if !c.is_ascii_lowercase() => {
            return Some("does not start with a lowercase letter");
        }
        _ => {}
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Some("has characters other than lowercase letters, digits and `_`");
    }
    if name.len() > 64 {
        return Some("is longer than 64 characters");
    }
    if RUST_KEYWORDS.contains(&name) || C_KEYWORDS.contains(&name) {
        return Some("is a Rust or C keyword");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(block: Block, layers: &[u64]) -> RawSpec {
        RawSpec {
            name: Some("net".into()),
            block: Some(block),
            layers: Some(layers.to_vec()),
            ..RawSpec::default()
        }
    }

    fn messages(raw: &RawSpec) -> Vec<(FieldPath, String)> {
        raw.validate()
            .unwrap_err()
            .into_iter()
            .map(|d| (d.path, d.message))
            .collect()
    }

    #[test]
    fn defaults_are_torchvision_resnet() {
        let spec = raw(Block::Bottleneck, &[3, 4, 6, 3]).validate().unwrap();
        assert_eq!(spec.groups, 1);
        assert_eq!(spec.width_per_group, 64);
        assert_eq!(spec.widths, [64, 128, 256, 512]);
        assert_eq!(spec.replace_stride_with_dilation, [false; 3]);
        assert_eq!(spec.num_classes, 1000);
        assert_eq!(spec.input, [1, 3, 224, 224]);
        assert_eq!(spec.head, Head::Classifier);
    }

    #[test]
    fn basic_block_rejects_groups_in_torchvision_words() {
        let mut r = raw(Block::Basic, &[2, 2]);
        r.groups = Some(2);
        let m = messages(&r);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, FieldPath::Field(Field::Groups));
        assert!(
            m[0].1
                .starts_with("BasicBlock only supports groups=1 and base_width=64")
        );
    }

    #[test]
    fn basic_block_dilation_follows_torchvision_bookkeeping() {
        // One block per stage: layer2's only block gets the dilation from *before* its flag,
        // so torchvision accepts it; layer3's block inherits dilation 2 and is rejected.
        assert_eq!(
            first_dilated_basic_block(&[true, false], &[1, 1, 1]),
            Some((0, 2, 0))
        );
        assert_eq!(first_dilated_basic_block(&[false, true], &[1, 1, 1]), None);
        assert_eq!(
            first_dilated_basic_block(&[false, true], &[1, 1, 2]),
            Some((1, 2, 1))
        );
        let mut r = raw(Block::Basic, &[2, 2, 2, 2]);
        r.replace_stride_with_dilation = Some(vec![false, true, true]);
        let m = messages(&r);
        assert_eq!(m[0].0, FieldPath::Element(Field::ReplaceStrideWithDilation, 1));
        assert!(
            m[0].1.starts_with("Dilation > 1 not supported in BasicBlock"),
            "{}",
            m[0].1
        );
    }

    #[test]
    fn wrong_dilation_length_uses_torchvision_words() {
        let mut r = raw(Block::Bottleneck, &[3, 4, 6, 3]);
        r.replace_stride_with_dilation = Some(vec![true]);
        let m = messages(&r);
        assert_eq!(
            m[0].1,
            "replace_stride_with_dilation should be None or a 3-element tuple, got [true] \
             (one boolean per stage after the first; this spec has 4 stages)"
        );
    }

    #[test]
    fn all_field_errors_are_reported_at_once() {
        let mut r = raw(Block::Bottleneck, &[3, 0, 6]);
        r.name = Some("Bad-Name".into());
        r.num_classes = Some(0);
        r.widths = Some(vec![64, 128]);
        r.features = Some(vec!["layer9".into()]);
        let paths: Vec<_> = messages(&r).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                FieldPath::Field(Field::Name),
                FieldPath::Element(Field::Layers, 1),
                FieldPath::Field(Field::NumClasses),
                FieldPath::Field(Field::Widths),
                FieldPath::Field(Field::Features),
            ]
        );
    }

    #[test]
    fn zero_bottleneck_width_is_rejected() {
        let mut r = raw(Block::Bottleneck, &[1, 1]);
        r.widths = Some(vec![16, 32]);
        r.width_per_group = Some(2);
        let m = messages(&r);
        assert_eq!(m[0].0, FieldPath::Field(Field::WidthPerGroup));
        assert!(m[0].1.contains("int(16 * 2 / 64) * 1 = 0"), "{}", m[0].1);
    }

    #[test]
    fn features_must_name_stages() {
        let mut r = raw(Block::Basic, &[1, 1, 1]);
        r.head = Some(HeadKind::Features);
        r.features = Some(vec![
            "layer2".into(),
            "layer4".into(),
            "layer2".into(),
            "layer01".into(),
        ]);
        let m = messages(&r);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].0, FieldPath::Element(Field::Features, 1));
        assert_eq!(
            m[0].1,
            "`layer4` is not a stage: this spec has the stages layer1 to layer3"
        );
        assert_eq!(m[1].1, "`layer2` is listed twice in features");
        r.features = Some(vec!["layer3".into(), "layer1".into()]);
        r.input = Some(vec![1, 3, 64, 64]);
        assert_eq!(r.validate().unwrap().head, Head::Features(vec![2, 0]));
    }

    #[test]
    fn names_must_be_identifiers() {
        assert_eq!(identifier_problem("resnet50"), None);
        assert!(identifier_problem("").is_some());
        assert!(identifier_problem("ResNet").is_some());
        assert!(identifier_problem("res-net").is_some());
        assert!(identifier_problem("static").is_some());
        assert!(identifier_problem("_x").is_some());
    }
}
