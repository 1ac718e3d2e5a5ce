//! Writing generated code to disk: the build-script path (prost-build style), `resnetc emit`,
//! and the weight-blob cache the `resnet!` macro uses.
//!
//! In `build.rs`:
//!
//! ```no_run
//! resnet_compiler::build::Builder::new("specs/resnet18.yaml")
//!     .weights("weights/resnet18.safetensors")
//!     .write()
//!     .unwrap_or_else(|e| panic!("{e}"));
//! ```
//!
//! and in the crate: `pub mod resnet18 { include!(concat!(env!("OUT_DIR"), "/resnet18.rs")); }`.
//!
//! Files are written only when their content changes (so Cargo does not rebuild for
//! nothing), each through a temporary file renamed into place (so a failure never leaves a
//! half-written file). Weight blobs are named by a hash of everything they derive from; a
//! blob that already exists is reused without reading the weights again.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::back::rust::{self, Weights};
use crate::program::Program;
use crate::spec::{Spec, SpecErrors};
use crate::{Compilation, Options};

/// Why writing generated code failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The spec is invalid.
    #[error("{0}")]
    Spec(#[from] SpecErrors),
    /// The weights do not fit the spec.
    #[error("{}: {source}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// Every problem.
        source: resnet_runtime::load::LoadError,
    },
    /// A compiler bug.
    #[error(transparent)]
    Compile(#[from] crate::Error),
    /// No output directory was given and `OUT_DIR` is not set.
    #[error("no output directory: call `out_dir`, or run from a build script (OUT_DIR is not set)")]
    NoOutDir,
}

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsSource {
    /// None: the generated module loads them at run time.
    None,
    /// A torchvision `state_dict` in safetensors.
    File(PathBuf),
    /// Deterministic synthetic weights ([`crate::synth`]) with this seed.
    Synthetic(u64),
}

/// Compiles one spec into `OUT_DIR` (or another directory).
#[derive(Debug, Clone)]
pub struct Builder {
    spec: PathBuf,
    weights: WeightsSource,
    out_dir: Option<PathBuf>,
    options: Options,
    rerun_if_changed: bool,
}

/// What [`Builder::write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The Rust module, `<name>.rs`.
    pub module: PathBuf,
    /// The weight blob, when weights were given.
    pub blob: Option<PathBuf>,
}

impl Builder {
    /// Compiles the spec file at `spec` (relative to the current directory, which Cargo sets
    /// to the package root for build scripts).
    pub fn new(spec: impl Into<PathBuf>) -> Builder {
        Builder {
            spec: spec.into(),
            weights: WeightsSource::None,
            out_dir: None,
            options: Options::default(),
            rerun_if_changed: std::env::var_os("OUT_DIR").is_some(),
        }
    }

    /// Embeds the weights of this torchvision safetensors file.
    pub fn weights(mut self, path: impl Into<PathBuf>) -> Builder {
        self.weights = WeightsSource::File(path.into());
        self
    }

    /// Embeds deterministic synthetic weights (for tests, footprint and speed work).
    pub fn synthetic_weights(mut self, seed: u64) -> Builder {
        self.weights = WeightsSource::Synthetic(seed);
        self
    }

    /// Writes into `dir` instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.out_dir = Some(dir.into());
        self
    }

    /// Compiler options.
    pub fn options(mut self, options: Options) -> Builder {
        self.options = options;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines (on by default under a build script).
    pub fn rerun_if_changed(mut self, on: bool) -> Builder {
        self.rerun_if_changed = on;
        self
    }

    /// Compiles and writes `<name>.rs` and, with weights, `<name>-<hash>.weights`.
    pub fn write(&self) -> Result<Written, BuildError> {
        let dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or(BuildError::NoOutDir)?),
        };
        if self.rerun_if_changed {
            println!("cargo:rerun-if-changed={}", self.spec.display());
            if let WeightsSource::File(w) = &self.weights {
                println!("cargo:rerun-if-changed={}", w.display());
            }
        }
        let spec = read_spec(&self.spec)?;
        let c = crate::compile(&spec, &self.options)?;
        std::fs::create_dir_all(&dir).map_err(|source| BuildError::Io {
            action: "cannot create the directory",
            path: dir.clone(),
            source,
        })?;
        let blob = match &self.weights {
            WeightsSource::None => None,
            source => Some(ensure_blob(&c, source, &dir)?),
        };
        let weights = match &blob {
            Some(path) => Weights::Embedded {
                include_path: path.file_name().expect("a file").to_string_lossy().into_owned(),
            },
            None => Weights::Runtime,
        };
        let source = format!("`{}`", self.spec.display());
        let module = dir.join(format!("{}.rs", spec.name));
        write_if_changed(&module, rust::file(&c.program, &weights, &source).as_bytes())?;
        Ok(Written { module, blob })
    }
}

/// Reads and validates a spec file.
pub fn read_spec(path: &Path) -> Result<Spec, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::Io {
        action: "cannot read",
        path: path.to_owned(),
        source,
    })?;
    Ok(crate::spec::parse_yaml(&text, &path.display().to_string())?)
}

/// The safetensors bytes `source` stands for.
fn weights_bytes(c: &Compilation, source: &WeightsSource) -> Result<Vec<u8>, BuildError> {
    Ok(match source {
        WeightsSource::File(path) => std::fs::read(path).map_err(|e| BuildError::Io {
            action: "cannot read the weights",
            path: path.clone(),
            source: e,
        })?,
        WeightsSource::Synthetic(seed) => crate::weights::synthetic_safetensors(&c.graph, *seed),
        WeightsSource::None => unreachable!("no blob without weights"),
    })
}

/// Checks, folds and packs the weights `source` stands for.
pub fn packed_weights(c: &Compilation, source: &WeightsSource) -> Result<Vec<f32>, BuildError> {
    let bytes = weights_bytes(c, source)?;
    crate::weights::pack(&c.program, &bytes).map_err(|e| weights_error(source, e))
}

fn weights_error(source: &WeightsSource, e: resnet_runtime::load::LoadError) -> BuildError {
    BuildError::Weights {
        path: match source {
            WeightsSource::File(p) => p.clone(),
            _ => PathBuf::from("synthetic weights"),
        },
        source: e,
    }
}

/// Writes the C back end's `<name>.h`, `<name>.c` and `<name>_weights.c` into `dir`. All three
/// are written to temporary files first and renamed into place only when all are written. The
/// C runs direct convolutions only: `options.winograd` is ignored.
pub fn write_c(
    spec: &Path,
    source: &WeightsSource,
    dir: &Path,
    options: &Options,
) -> Result<Vec<PathBuf>, BuildError> {
    let s = read_spec(spec)?;
    let options = Options {
        winograd: false,
        ..options.clone()
    };
    let c = crate::compile(&s, &options)?;
    let blob = packed_weights(&c, source)?;
    let files = crate::back::c::emit(&c.program, &blob, &format!("`{}`", spec.display()));
    std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
        action: "cannot create the directory",
        path: dir.to_owned(),
        source,
    })?;
    let name = &s.name;
    let outputs = [
        (dir.join(format!("{name}.h")), files.header),
        (dir.join(format!("{name}.c")), files.source),
        (dir.join(format!("{name}_weights.c")), files.weights),
    ];
    write_all_or_nothing(&outputs)?;
    Ok(outputs.into_iter().map(|(p, _)| p).collect())
}

/// Writes every file or, on failure, none (leaving earlier versions in place).
fn write_all_or_nothing(files: &[(PathBuf, String)]) -> Result<(), BuildError> {
    let tmp = |p: &Path| {
        let name = p.file_name().expect("a file path").to_string_lossy();
        p.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
    };
    let cleanup = || {
        for (p, _) in files {
            let _ = std::fs::remove_file(tmp(p));
        }
    };
    for (p, text) in files {
        if let Err(source) = std::fs::write(tmp(p), text) {
            cleanup();
            return Err(BuildError::Io {
                action: "cannot write",
                path: p.clone(),
                source,
            });
        }
    }
    for (p, _) in files {
        if let Err(source) = std::fs::rename(tmp(p), p) {
            cleanup();
            return Err(BuildError::Io {
                action: "cannot write",
                path: p.clone(),
                source,
            });
        }
    }
    Ok(())
}

/// Makes sure the blob for `c` and `source` exists in `dir` and returns its path.
pub fn ensure_blob(c: &Compilation, source: &WeightsSource, dir: &Path) -> Result<PathBuf, BuildError> {
    let bytes = weights_bytes(c, source)?;
    let hash = blob_hash(&c.program, &bytes);
    let path = dir.join(format!("{}-{hash:016x}.weights", c.program.name));
    let blob_len = crate::weights::Layout::new(&c.program).blob_len * 4;
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == blob_len as u64) {
        return Ok(path);
    }
    let blob = crate::weights::pack(&c.program, &bytes).map_err(|e| weights_error(source, e))?;
    write_if_changed(&path, &crate::weights::blob_bytes(&blob))?;
    Ok(path)
}

/// FNV-1a (64-bit) of what a blob derives from: the compiler version, the program (its text
/// form holds every shape and what each conv fuses) and the weights file.
pub fn blob_hash(program: &Program, weights: &[u8]) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.write(env!("CARGO_PKG_VERSION").as_bytes());
    h.write(program.to_string().as_bytes());
    h.write(weights);
    h.0
}

struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        // Eight bytes per round: FNV-1a's byte loop is too slow for 100 MB weights files.
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.0 =
                (self.0 ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(0x0100_0000_01b3);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = (self.0 ^ bytes.len() as u64).wrapping_mul(0x0100_0000_01b3);
    }
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.module.display())?;
        if let Some(b) = &self.blob {
            write!(f, ", {}", b.display())?;
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` unless it already holds them, through a temporary file in the
/// same directory renamed into place.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    let io = |action, source| BuildError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let file_name = path.file_name().expect("a file path").to_string_lossy();
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| io("cannot write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("cannot write", e)
    })
}
