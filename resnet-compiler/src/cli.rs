//! The `resnetc` command: arguments, and the work behind each subcommand.
//!
//! Kept in the library so that tests can run it in-process; `main.rs` only calls [`main`].
//! Every failure ends as `error: ...` lines on stderr and a non-zero exit code, never a panic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::spec::{Spec, SpecErrors};
use crate::summary::Summary;
use crate::{Compilation, Options};

/// resnetc: compile a ResNet spec into statically-shaped inference code.
#[derive(Debug, Parser)]
#[command(name = "resnetc", version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a spec; print every error with its line and column.
    Check {
        /// The spec file (YAML).
        spec: PathBuf,
    },
    /// Print one row per layer (name, op, output shape, params, MACs), totals and memory.
    Summary {
        /// The spec file (YAML).
        spec: PathBuf,
        /// Print JSON: {"params", "macs", "arena_bytes", "weight_bytes", "layers": [...]}.
        #[arg(long)]
        json: bool,
    },
    /// Write generated code: `<name>.rs` and, with weights, `<name>-<hash>.weights`.
    Emit {
        /// The language.
        #[arg(value_enum)]
        lang: Lang,
        /// The spec file (YAML).
        spec: PathBuf,
        /// Embed this torchvision state_dict (safetensors); without it, the code loads weights at run time.
        #[arg(long, conflicts_with = "synthetic_weights")]
        weights: Option<PathBuf>,
        /// Embed deterministic synthetic weights with this seed (for footprint and speed work).
        #[arg(long, value_name = "SEED")]
        synthetic_weights: Option<u64>,
        /// The output directory (created if missing).
        #[arg(short = 'o', long = "out-dir", value_name = "DIR")]
        out_dir: PathBuf,
        /// Run every conv directly, none as Winograd F(4x4,3x3) or F(2x2,3x3) (Rust; the C always does):
        /// smaller weights, an error closer to torchvision's.
        #[arg(long)]
        no_winograd: bool,
    },
    /// Print the graph as Graphviz DOT.
    Graph {
        /// The spec file (YAML).
        spec: PathBuf,
        /// The graph after fusion, with arena offsets.
        #[arg(long)]
        fused: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Lang {
    /// A Rust module calling `resnet_runtime`.
    Rust,
    /// C99: `<name>.h`, `<name>.c` and `<name>_weights.c` (weights required).
    C,
}

/// Why a run failed: the errors of a spec (printed one per line), or anything else.
#[derive(Debug)]
enum Failure {
    Spec(SpecErrors),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::Other(e)
    }
}

/// Runs `resnetc` with the process's arguments.
pub fn main() -> ExitCode {
    let args = std::env::args_os();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run(args, &mut stdout.lock(), &mut stderr.lock())
}

/// Runs `resnetc` with `args` (the first is the program name), writing to `out` and `err`.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            // Help and version are successes; usage errors exit with 2, as clap's do.
            if e.use_stderr() {
                let _ = write!(err, "{}", e.render());
                return ExitCode::from(2);
            }
            let _ = write!(out, "{}", e.render());
            return ExitCode::SUCCESS;
        }
    };
    match execute(&args, out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Spec(errors)) => {
            for e in &errors.0 {
                let _ = writeln!(err, "error: {e}");
            }
            ExitCode::FAILURE
        }
        // A closed pipe (`resnetc summary ... | head`) means the reader has had enough.
        Err(Failure::Other(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(Failure::Other(e)) => {
            let _ = writeln!(err, "error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn execute(args: &Args, out: &mut dyn Write) -> Result<(), Failure> {
    match &args.command {
        Command::Check { spec } => {
            let s = load(spec)?;
            let c = compile(&s)?;
            let summary = Summary::new(&c);
            writeln!(
                out,
                "{}: ok: {}, {} params, {} kernel calls, arena {} bytes",
                spec.display(),
                s.name,
                crate::summary::thousands(summary.params),
                summary.steps,
                crate::summary::thousands(summary.arena_bytes)
            )
            .context("writing to stdout")?;
        }
        Command::Summary { spec, json } => {
            let c = compile(&load(spec)?)?;
            let summary = Summary::new(&c);
            if *json {
                let text = serde_json::to_string_pretty(&summary).context("serializing the summary")?;
                writeln!(out, "{text}").context("writing to stdout")?;
            } else {
                write!(out, "{summary}").context("writing to stdout")?;
            }
        }
        Command::Emit {
            lang: Lang::C,
            spec,
            weights,
            synthetic_weights,
            out_dir,
            no_winograd: _,
        } => {
            let source = match (weights, synthetic_weights) {
                (Some(w), _) => crate::build::WeightsSource::File(w.clone()),
                (None, Some(seed)) => crate::build::WeightsSource::Synthetic(*seed),
                (None, None) => {
                    return Err(Failure::Other(anyhow::anyhow!(
                        "emit c needs weights, which the C code embeds: give --weights FILE.safetensors \
                         or --synthetic-weights SEED"
                    )));
                }
            };
            let written = crate::build::write_c(spec, &source, out_dir, &crate::Options::default()).map_err(
                |e| match e {
                    crate::build::BuildError::Spec(errors) => Failure::Spec(errors),
                    other => Failure::Other(other.into()),
                },
            )?;
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            writeln!(out, "wrote {}", names.join(", ")).context("writing to stdout")?;
        }
        Command::Emit {
            lang: Lang::Rust,
            spec,
            weights,
            synthetic_weights,
            out_dir,
            no_winograd,
        } => {
            let mut b = crate::build::Builder::new(spec)
                .out_dir(out_dir)
                .rerun_if_changed(false)
                .options(Options {
                    winograd: !no_winograd,
                    ..Options::default()
                });
            if let Some(w) = weights {
                b = b.weights(w);
            }
            if let Some(seed) = synthetic_weights {
                b = b.synthetic_weights(*seed);
            }
            let written = b.write().map_err(|e| match e {
                crate::build::BuildError::Spec(errors) => Failure::Spec(errors),
                other => Failure::Other(other.into()),
            })?;
            writeln!(out, "wrote {written}").context("writing to stdout")?;
        }
        Command::Graph { spec, fused } => {
            let c = compile(&load(spec)?)?;
            let dot = if *fused {
                crate::back::dot::fused(&c)
            } else {
                crate::back::dot::unfused(&c)
            };
            write!(out, "{dot}").context("writing to stdout")?;
        }
    }
    Ok(())
}

/// Reads and validates a spec file.
fn load(path: &Path) -> Result<Spec, Failure> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: the spec is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    crate::spec::parse_yaml(&text, &path.display().to_string()).map_err(Failure::Spec)
}

fn compile(spec: &Spec) -> Result<Compilation, Failure> {
    Ok(crate::compile(spec, &Options::default()).map_err(anyhow::Error::from)?)
}
