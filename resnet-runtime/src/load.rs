//! Torchvision weights to the packed blob: check, fold BatchNorm in f64, pack (`std` only).
//!
//! The compiler runs this at build time to embed a blob; models compiled without weights run
//! it at load time. Either way the same code produces the same bits.
//!
//! Checks come first and report every problem at once, by `state_dict` name: a missing tensor
//! (with the shape it should have), an unexpected one, a wrong shape (both shapes), a dtype
//! other than F32/F64, a value that is NaN or infinite, a `running_var` below `-eps`.
//!
//! Folding, per output channel `o`, in f64 from the stored values:
//! `s = gamma[o] / sqrt(running_var[o] + eps)`, `W'[o, ..] = W[o, ..] * s`,
//! `b'[o] = beta[o] - running_mean[o] * s`; a projection shortcut's `W_ds` folds the same way
//! with its own BatchNorm, and its bias adds to the conv's (`b' = b_last + b_ds`, summed in
//! f64). Each result is rounded to `f32` once.

use std::collections::BTreeMap;
use std::fmt;

use safetensors::{Dtype, SafeTensors};

use crate::model::{LayerKind, ModelWeights};

/// One problem with a `state_dict`.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The file cannot be read.
    Io(String),
    /// The file is not a safetensors file.
    Format(String),
    /// A tensor the model needs is not there.
    Missing {
        /// Its name.
        name: String,
        /// The shape it should have.
        shape: Vec<usize>,
    },
    /// A tensor the model does not have.
    Unexpected {
        /// Its name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A tensor has the wrong shape.
    Shape {
        /// Its name.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype that is not F32 or F64.
    Dtype {
        /// Its name.
        name: String,
        /// The dtype in the file.
        found: String,
    },
    /// A tensor holds NaN or an infinity.
    NonFinite {
        /// Its name.
        name: String,
        /// The first bad element (row-major index).
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A `running_var` is so negative that `sqrt(var + eps)` is undefined.
    NegativeVariance {
        /// Its name.
        name: String,
        /// The first bad element.
        index: usize,
        /// Its value.
        value: f64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Io(e) => write!(f, "{e}"),
            Problem::Format(e) => write!(f, "not a safetensors file: {e}"),
            Problem::Missing { name, shape } => write!(f, "missing tensor `{name}` of shape {shape:?}"),
            Problem::Unexpected { name, shape } => {
                write!(
                    f,
                    "unexpected tensor `{name}` of shape {shape:?}: the model has no such parameter"
                )
            }
            Problem::Shape {
                name,
                expected,
                found,
            } => {
                write!(
                    f,
                    "tensor `{name}` has shape {found:?}, but the model needs {expected:?}"
                )
            }
            Problem::Dtype { name, found } => write!(
                f,
                "tensor `{name}` is {found}; expected F32 or F64 (tools/convert_checkpoint.py writes F32)"
            ),
            Problem::NonFinite { name, index, value } => {
                write!(
                    f,
                    "tensor `{name}` holds {value} at index {index}; weights must be finite"
                )
            }
            Problem::NegativeVariance { name, index, value } => write!(
                f,
                "tensor `{name}` holds {value} at index {index}; a BatchNorm variance must be >= -eps"
            ),
        }
    }
}

/// Every problem found in a `state_dict`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// The model the weights were for.
    pub model: String,
    /// The problems, in `state_dict` order of the model (unexpected tensors last, by name).
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "the weights do not fit {} ({n} problem{})",
            self.model,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// One required `state_dict` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// The `state_dict` entries `model` needs, in torchvision's order for each layer. BatchNorm's
/// `num_batches_tracked` is accepted but not required, and not listed.
pub fn expected(model: &ModelWeights<'_>) -> Vec<Expected> {
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>| out.push(Expected { name, shape });
    let bn = |push: &mut dyn FnMut(String, Vec<usize>), bn: &str, c: usize| {
        for what in ["weight", "bias", "running_mean", "running_var"] {
            push(format!("{bn}.{what}"), vec![c]);
        }
    };
    for layer in model.layers {
        match layer.kind {
            LayerKind::Conv {
                geom,
                conv,
                bn: b,
                shortcut,
                ..
            } => {
                push(
                    format!("{conv}.weight"),
                    vec![geom.o, geom.c / geom.groups, geom.k, geom.k],
                );
                if let Some(b) = b {
                    bn(&mut push, b, geom.o);
                }
                if let (Some((ds, ds_bn)), Some(s)) = (shortcut, geom.shortcut) {
                    push(format!("{ds}.weight"), vec![geom.o, s.c, 1, 1]);
                    if let Some(b) = ds_bn {
                        bn(&mut push, b, geom.o);
                    }
                }
            }
            LayerKind::Linear {
                name,
                in_features,
                out_features,
            } => {
                push(format!("{name}.weight"), vec![out_features, in_features]);
                push(format!("{name}.bias"), vec![out_features]);
            }
        }
    }
    out
}

/// Reads, checks, folds and packs the safetensors file `bytes` for `model`.
pub fn pack_safetensors(model: &ModelWeights<'_>, bytes: &[u8]) -> Result<Vec<f32>, LoadError> {
    let fail = |problems| LoadError {
        model: model.name.to_owned(),
        problems,
    };
    let st = SafeTensors::deserialize(bytes).map_err(|e| fail(vec![Problem::Format(e.to_string())]))?;
    let tensors = check(model, &st).map_err(fail)?;
    Ok(fold_and_pack(model, &tensors))
}

/// Reads the safetensors file at `path`, then as [`pack_safetensors`].
pub fn pack_file(model: &ModelWeights<'_>, path: &std::path::Path) -> Result<Vec<f32>, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError {
        model: model.name.to_owned(),
        problems: vec![Problem::Io(format!("cannot read {}: {e}", path.display()))],
    })?;
    pack_safetensors(model, &bytes)
}

/// A checked tensor of the file, F32 or F64, converted to f64 only when folded: the values of
/// one tensor at a time, so that loading needs the file, the blob and one tensor in f64.
struct Tensor<'a> {
    dtype: Dtype,
    data: &'a [u8],
}

impl Tensor<'_> {
    /// The values, in f64 (exact for F32).
    fn values(&self) -> Vec<f64> {
        match self.dtype {
            Dtype::F64 => self
                .data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            _ => self
                .data
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
        }
    }
}

/// The checked tensors, by name.
type Tensors<'a> = BTreeMap<String, Tensor<'a>>;

/// Checks `st` against `model` and returns every needed tensor, or every problem.
fn check<'a>(model: &ModelWeights<'_>, st: &SafeTensors<'a>) -> Result<Tensors<'a>, Vec<Problem>> {
    let expected = expected(model);
    let mut problems = Vec::new();
    let mut values = BTreeMap::new();
    for e in &expected {
        let Ok(view) = st.tensor(&e.name) else {
            problems.push(Problem::Missing {
                name: e.name.clone(),
                shape: e.shape.clone(),
            });
            continue;
        };
        if view.shape() != e.shape.as_slice() {
            problems.push(Problem::Shape {
                name: e.name.clone(),
                expected: e.shape.clone(),
                found: view.shape().to_vec(),
            });
            continue;
        }
        let tensor = match view.dtype() {
            dtype @ (Dtype::F32 | Dtype::F64) => Tensor {
                dtype,
                data: view.data(),
            },
            other => {
                problems.push(Problem::Dtype {
                    name: e.name.clone(),
                    found: format!("{other:?}"),
                });
                continue;
            }
        };
        let v = tensor.values();
        if let Some((index, &value)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            problems.push(Problem::NonFinite {
                name: e.name.clone(),
                index,
                value,
            });
            continue;
        }
        let negative = || v.iter().enumerate().find(|(_, x)| **x + model.bn_eps <= 0.0);
        if let Some((index, &value)) = e.name.ends_with(".running_var").then(negative).flatten() {
            problems.push(Problem::NegativeVariance {
                name: e.name.clone(),
                index,
                value,
            });
            continue;
        }
        values.insert(e.name.clone(), tensor);
    }
    let known: std::collections::BTreeSet<&str> = expected.iter().map(|e| e.name.as_str()).collect();
    let mut names: Vec<&str> = st.names();
    names.sort();
    for name in names {
        if known.contains(name) || model.unused_prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let view = st.tensor(name).expect("listed by names()");
        // BatchNorm's step counter: harmless when it belongs to a BatchNorm the model has.
        let counter_of_known_bn = name
            .strip_suffix(".num_batches_tracked")
            .is_some_and(|bn| known.contains(format!("{bn}.running_var").as_str()));
        if counter_of_known_bn {
            if !view.shape().is_empty() && view.shape() != [1] {
                problems.push(Problem::Shape {
                    name: name.to_owned(),
                    expected: vec![],
                    found: view.shape().to_vec(),
                });
            }
            continue;
        }
        problems.push(Problem::Unexpected {
            name: name.to_owned(),
            shape: view.shape().to_vec(),
        });
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

/// Per-channel BatchNorm scale and shift, `s = gamma / sqrt(var + eps)`, `t = beta - mean * s`.
fn bn_affine(t: &Tensors<'_>, bn: Option<&str>, c: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    match bn {
        None => (vec![1.0; c], vec![0.0; c]),
        Some(bn) => {
            let get = |what: &str| t[&format!("{bn}.{what}")].values();
            let (g, b, m, v) = (
                get("weight"),
                get("bias"),
                get("running_mean"),
                get("running_var"),
            );
            let s: Vec<f64> = (0..c).map(|o| g[o] / (v[o] + eps).sqrt()).collect();
            let shift = (0..c).map(|o| b[o] - m[o] * s[o]).collect();
            (s, shift)
        }
    }
}

/// Folds and packs checked tensors into the blob.
fn fold_and_pack(model: &ModelWeights<'_>, t: &Tensors<'_>) -> Vec<f32> {
    let mut blob = vec![0.0f32; model.blob_len];
    // Untouched so far where the allocator mapped it afresh (as it does for this much: zero
    // pages are mapped on first write), so huge pages from the start.
    crate::huge_pages(blob.as_ptr().cast(), blob.len() * 4);
    for layer in model.layers {
        match layer.kind {
            LayerKind::Conv {
                geom,
                conv,
                bn,
                shortcut,
                winograd,
            } => {
                let (scale, mut shift) = bn_affine(t, bn, geom.o, model.bn_eps);
                let w = t[&format!("{conv}.weight")].values();
                let per_o = w.len() / geom.o;
                let folded: Vec<f32> = w
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| (x * scale[i / per_o]) as f32)
                    .collect();
                let ds = match (shortcut, geom.shortcut) {
                    (Some((ds, ds_bn)), Some(s)) => {
                        let (ds_scale, ds_shift) = bn_affine(t, ds_bn, geom.o, model.bn_eps);
                        for (acc, x) in shift.iter_mut().zip(&ds_shift) {
                            *acc += x;
                        }
                        let w = t[&format!("{ds}.weight")].values();
                        Some(
                            w.iter()
                                .enumerate()
                                .map(|(i, &x)| (x * ds_scale[i / s.c]) as f32)
                                .collect::<Vec<f32>>(),
                        )
                    }
                    _ => None,
                };
                let dst = &mut blob[layer.weights..layer.weights + layer.weights_len()];
                if winograd {
                    crate::winograd::pack_winograd(&geom, &folded, dst);
                } else {
                    crate::pack::pack_conv(&geom, &folded, ds.as_deref(), dst);
                }
                for (dst, x) in blob[layer.bias..layer.bias + geom.o].iter_mut().zip(&shift) {
                    *dst = *x as f32;
                }
            }
            LayerKind::Linear { name, .. } => {
                let w = t[&format!("{name}.weight")].values();
                let b = t[&format!("{name}.bias")].values();
                for (dst, x) in blob[layer.weights..].iter_mut().zip(w) {
                    *dst = x as f32;
                }
                for (dst, x) in blob[layer.bias..].iter_mut().zip(b) {
                    *dst = x as f32;
                }
            }
        }
    }
    blob
}
