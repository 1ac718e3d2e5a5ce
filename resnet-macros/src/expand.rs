//! From the parsed input to the module: read and validate the spec (file or inline), compile,
//! prepare the weight blob, emit. Every error becomes a `compile_error!` on the span it is
//! about; a stub module with the same items follows, so that code using the module gets this
//! one error and not one per use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proc_macro2::{Span, TokenStream};
use quote::quote;
use resnet_compiler::back::rust::{Weights, module_doc, module_items};
use resnet_compiler::build::{BuildError, WeightsSource, ensure_blob};
use resnet_compiler::spec::{Block, Field, FieldPath, HeadKind, RawSpec, Stem, parse_yaml};
use resnet_compiler::{Options, compile};

use crate::input::{Entry, ModelInput, Value};

pub fn expand(input: &ModelInput) -> TokenStream {
    let file_form = input.entries.iter().any(|e| e.key == "spec");
    match try_expand(input, file_form) {
        Ok(tokens) => tokens,
        Err(e) => {
            let errors = e.to_compile_error();
            let stub = stub(
                input,
                !file_form || !input.entries.iter().any(|e| e.key == "weights"),
            );
            quote! { #errors #stub }
        }
    }
}

fn try_expand(input: &ModelInput, file_form: bool) -> syn::Result<TokenStream> {
    let Expanded {
        c,
        blob,
        tracking,
        source,
    } = if file_form {
        from_file(input)?
    } else {
        from_inline(input)?
    };
    let weights = match blob {
        Some(path) => Weights::Embedded {
            include_path: path.display().to_string(),
        },
        None => Weights::Runtime,
    };
    let items = module_items(&c.program, &weights);
    let doc = module_doc(&c.program, &source);
    let ModelInput { attrs, vis, name, .. } = input;
    Ok(quote! {
        #(#attrs)*
        #[doc = #doc]
        #vis mod #name {
            #tracking
            #items
        }
    })
}

/// A compiled spec, ready to emit.
struct Expanded {
    c: resnet_compiler::Compilation,
    /// The weight blob, when weights are embedded.
    blob: Option<PathBuf>,
    /// Items that make Cargo rebuild when an input file changes.
    tracking: TokenStream,
    /// Where the spec came from, for the module's doc.
    source: String,
}

/// `spec: "path"` and the optional `weights: "path"`.
fn from_file(input: &ModelInput) -> syn::Result<Expanded> {
    let mut spec = None;
    let mut weights = None;
    let mut errors = Errors::default();
    for Entry { key, value } in &input.entries {
        let slot = match key.to_string().as_str() {
            "spec" => &mut spec,
            "weights" => &mut weights,
            "winograd" => continue,
            other => {
                let hint = if Field::from_key(other).is_some() {
                    " (with `spec`, the spec's fields are in the file)"
                } else {
                    ""
                };
                errors.push(
                    key.span(),
                    format!("unknown key `{other}`: expected `spec`, `weights` or `winograd`{hint}"),
                );
                continue;
            }
        };
        match value {
            Value::Str(path, span) if slot.is_none() => *slot = Some((path.clone(), *span)),
            Value::Str(..) => errors.push(key.span(), format!("`{key}` is given twice")),
            other => errors.push(other.span(), format!("`{key}` takes a string literal path")),
        }
    }
    let options = options(input, &mut errors);
    errors.finish()?;
    let (spec_path, spec_span) = spec.expect("file form has `spec`");
    let manifest = manifest_dir(spec_span)?;
    let abs = resolve(&manifest, &spec_path, spec_span)?;
    let text = std::fs::read_to_string(&abs).map_err(|e| {
        syn::Error::new(
            spec_span,
            format!("cannot read the spec `{spec_path}` (relative to CARGO_MANIFEST_DIR): {e}"),
        )
    })?;
    let spec = parse_yaml(&text, &spec_path).map_err(|errors| {
        let mut errs = errors.0.iter().map(|e| syn::Error::new(spec_span, e.to_string()));
        let mut first = errs.next().expect("at least one error");
        first.extend(errs);
        first
    })?;
    let c = compile(&spec, &options).map_err(|e| syn::Error::new(spec_span, e.to_string()))?;
    let abs_str = abs.display().to_string();
    let mut tracking = quote! { const _: &str = include_str!(#abs_str); };
    let blob = match weights {
        None => None,
        Some((w, span)) => {
            let w_abs = resolve(&manifest, &w, span)?;
            if !w_abs.is_file() {
                let msg =
                    format!("cannot read the weights `{w}` (relative to CARGO_MANIFEST_DIR): no such file");
                return Err(syn::Error::new(span, msg));
            }
            let cache = cache_dir(&manifest, span)?;
            let blob = ensure_blob(&c, &WeightsSource::File(w_abs.clone()), &cache).map_err(|e| match e {
                BuildError::Weights { source, .. } => syn::Error::new(span, format!("`{w}`: {source}")),
                other => syn::Error::new(span, other.to_string()),
            })?;
            let w_str = w_abs.display().to_string();
            // Rebuild when the weights change (the blob's name changes with them).
            tracking.extend(quote! { const _: &[u8] = include_bytes!(#w_str); });
            Some(blob)
        }
    };
    Ok(Expanded {
        c,
        blob,
        tracking,
        source: format!("`{spec_path}`"),
    })
}

/// The spec written inline, in the fields of a spec file.
fn from_inline(input: &ModelInput) -> syn::Result<Expanded> {
    let mut raw = RawSpec {
        name: Some(input.name.to_string()),
        ..RawSpec::default()
    };
    let mut spans: BTreeMap<Field, &Value> = BTreeMap::new();
    let mut errors = Errors::default();
    for Entry { key, value } in &input.entries {
        let k = key.to_string();
        if k == "winograd" {
            continue;
        }
        let Some(field) = Field::from_key(&k) else {
            errors.push(
                key.span(),
                format!(
                    "unknown field `{k}`; expected one of the spec's fields, `winograd: false`, or `spec: \"path\"`"
                ),
            );
            continue;
        };
        if field == Field::Name {
            errors.push(
                key.span(),
                "the module's name is the spec's `name`; remove this field".into(),
            );
            continue;
        }
        if spans.insert(field, value).is_some() {
            errors.push(key.span(), format!("field `{k}` is given twice"));
            continue;
        }
        if let Err((span, msg)) = set_field(&mut raw, field, value) {
            errors.push(span, format!("{field}: {msg}; expected {}", field.expected()));
            spans.remove(&field);
        }
    }
    let options = options(input, &mut errors);
    errors.finish()?;
    let spec = raw.validate().map_err(|diags| {
        let mut errs = diags.iter().map(|d| {
            let span = match &d.path {
                FieldPath::Field(f) => spans.get(f).map(|v| v.span()),
                FieldPath::Element(f, i) => spans.get(f).map(|v| match v {
                    Value::List(items, _) => items.get(*i).map_or(v.span(), Value::span),
                    other => other.span(),
                }),
                FieldPath::Missing(_) | FieldPath::Document | FieldPath::UnknownKey(_) => None,
            };
            syn::Error::new(span.unwrap_or_else(|| input.name.span()), &d.message)
        });
        let mut first = errs.next().expect("at least one diagnostic");
        first.extend(errs);
        first
    })?;
    let c = compile(&spec, &options).map_err(|e| syn::Error::new(input.name.span(), e.to_string()))?;
    Ok(Expanded {
        c,
        blob: None,
        tracking: quote! {},
        source: "an inline spec".into(),
    })
}

/// The compile options of either form: `winograd: false` runs every conv directly (smaller
/// weights; the default `true` runs the large 3x3 stride-1 convs as Winograd F(4x4, 3x3) or
/// F(2x2, 3x3)).
fn options(input: &ModelInput, errors: &mut Errors) -> Options {
    let mut options = Options::default();
    let mut seen = false;
    for Entry { key, value } in input.entries.iter().filter(|e| e.key == "winograd") {
        match value {
            _ if seen => errors.push(key.span(), "`winograd` is given twice".into()),
            Value::Bool(on, _) => options.winograd = *on,
            other => errors.push(other.span(), "`winograd` takes `true` or `false`".into()),
        }
        seen = true;
    }
    options
}

/// Converts one inline value into its field's raw form.
fn set_field(raw: &mut RawSpec, field: Field, v: &Value) -> Result<(), (Span, String)> {
    let wrong = |v: &Value, what: &str| (v.span(), format!("{what} is not allowed here"));
    let int = |v: &Value| match v {
        Value::Int(n, _) => Ok(*n),
        other => Err(wrong(other, "this value")),
    };
    let ints = |v: &Value| match v {
        Value::List(items, _) => items.iter().map(int).collect::<Result<Vec<_>, _>>(),
        other => Err(wrong(other, "a single value")),
    };
    let word = |v: &Value| match v {
        Value::Word(w, _) => Ok(w.clone()),
        other => Err(wrong(other, "this value")),
    };
    let choice = |v: &Value, options: &[&str]| -> Result<usize, (Span, String)> {
        let w = word(v)?;
        options
            .iter()
            .position(|o| *o == w)
            .ok_or_else(|| (v.span(), format!("unknown variant `{w}`")))
    };
    match field {
        Field::Name => unreachable!("rejected above"),
        Field::Block => {
            raw.block = Some([Block::Basic, Block::Bottleneck][choice(v, &["basic", "bottleneck"])?])
        }
        Field::Layers => raw.layers = Some(ints(v)?),
        Field::Groups => raw.groups = Some(int(v)?),
        Field::WidthPerGroup => raw.width_per_group = Some(int(v)?),
        Field::ReplaceStrideWithDilation => {
            raw.replace_stride_with_dilation = match v {
                Value::Word(w, _) if w == "None" || w == "null" => None,
                Value::List(items, _) => Some(
                    items
                        .iter()
                        .map(|i| match i {
                            Value::Bool(b, _) => Ok(*b),
                            other => Err(wrong(other, "this value")),
                        })
                        .collect::<Result<_, _>>()?,
                ),
                other => return Err(wrong(other, "this value")),
            }
        }
        Field::NumClasses => raw.num_classes = Some(int(v)?),
        Field::Input => raw.input = Some(ints(v)?),
        Field::Widths => raw.widths = Some(ints(v)?),
        Field::Stem => raw.stem = Some([Stem::Imagenet, Stem::Cifar][choice(v, &["imagenet", "cifar"])?]),
        Field::Head => {
            raw.head =
                Some([HeadKind::Classifier, HeadKind::Features][choice(v, &["classifier", "features"])?])
        }
        Field::Features => {
            raw.features = Some(match v {
                Value::List(items, _) => items.iter().map(word).collect::<Result<_, _>>()?,
                other => return Err(wrong(other, "a single value")),
            })
        }
    }
    Ok(())
}

/// Collects errors to report together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, span: Span, msg: String) {
        let e = syn::Error::new(span, msg);
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// A path as written in the macro: relative to `CARGO_MANIFEST_DIR`, or starting with an
/// environment variable, `$OUT_DIR/weights.safetensors`, for files a build script writes.
fn resolve(manifest: &Path, path: &str, span: Span) -> syn::Result<PathBuf> {
    let Some(rest) = path.strip_prefix('$') else {
        return Ok(manifest.join(path));
    };
    let (var, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let var = var.trim_start_matches('{').trim_end_matches('}');
    match std::env::var_os(var) {
        Some(value) => Ok(PathBuf::from(value).join(tail)),
        None => Err(syn::Error::new(
            span,
            format!(
                "`{path}`: the environment variable {var} is not set (OUT_DIR is set for crates with a build script)"
            ),
        )),
    }
}

fn manifest_dir(span: Span) -> syn::Result<PathBuf> {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .ok_or_else(|| syn::Error::new(span, "CARGO_MANIFEST_DIR is not set: build with Cargo"))
}

/// Where weight blobs go: `RESNETC_CACHE_DIR`, else `OUT_DIR` (a crate with a build script),
/// else `resnetc/` in Cargo's target directory, else the system's temporary directory. Blob
/// names carry a content hash, so any of these can be shared and cleaned freely.
fn cache_dir(manifest: &Path, span: Span) -> syn::Result<PathBuf> {
    let dir = if let Some(d) = std::env::var_os("RESNETC_CACHE_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("OUT_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        PathBuf::from(d).join("resnetc")
    } else if let Some(target) = manifest
        .ancestors()
        .map(|a| a.join("target"))
        .find(|t| t.join("CACHEDIR.TAG").is_file())
    {
        target.join("resnetc")
    } else {
        std::env::temp_dir().join("resnetc")
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        syn::Error::new(
            span,
            format!("cannot create the weight cache {}: {e}", dir.display()),
        )
    })?;
    Ok(dir)
}

/// The module's items with placeholder values, so that uses of it compile after an error.
fn stub(input: &ModelInput, runtime_weights: bool) -> TokenStream {
    let ModelInput { attrs, vis, name, .. } = input;
    let forward = if runtime_weights {
        quote! {
            pub struct Weights;
            impl Weights {
                pub fn from_safetensors(_: &[u8]) -> ::core::result::Result<Weights, ()> { unreachable!() }
                pub fn load<P>(_: P) -> ::core::result::Result<Weights, ()> { unreachable!() }
            }
            pub fn forward<I, O>(_: &Weights, _: I, _: O, _: &mut Arena) { unreachable!() }
        }
    } else {
        quote! { pub fn forward<I, O>(_: I, _: O, _: &mut Arena) { unreachable!() } }
    };
    quote! {
        #(#attrs)*
        #[allow(dead_code, unused_variables)]
        #vis mod #name {
            pub const INPUT_LEN: usize = 0;
            pub const INPUT_SHAPE: [usize; 4] = [0; 4];
            pub const OUTPUT_LEN: usize = 0;
            pub const ARENA_BYTES: usize = 0;
            pub struct Arena;
            impl Arena {
                pub const fn new() -> Arena { Arena }
            }
            #forward
        }
    }
}
