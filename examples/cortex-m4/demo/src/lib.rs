//! The CIFAR ResNets on a Cortex-M4, in C and in Rust, under QEMU: built, run, checked
//! against the host and measured.
//!
//! For each spec of [`MODELS`], [`run`]:
//! - computes the host reference: the compiled program on the runtime's portable kernels on
//!   this machine (the arithmetic a Cortex-M4 runs: no fused multiply-add, no Winograd; the
//!   generated Rust on a desktop CPU runs SIMD kernels with other bits), with the synthetic
//!   weights and input (seed 0) that torchvision got in `tests/expected/`;
//! - emits C (`resnetc emit c`), compiles it with the harness of `examples/cortex-m4/c` by
//!   `arm-none-eabi-gcc`, links it with newlib's semihosting library;
//! - builds `examples/cortex-m4/firmware`, where `resnet!` embeds the same weights;
//! - runs both images on QEMU's MPS2 AN386 (`-icount shift=0`), and measures flash (from
//!   `arm-none-eabi-size`), RAM (static data, plus the stack's high-water mark, which the
//!   harness measures by painting the stack) and instructions per inference (SysTick).
//!
//! `cargo run --release -p cortex-m4-demo` prints the table; `tests/embedded.rs` checks it.

mod c;
mod elf;
mod firmware;
mod qemu;
pub mod tools;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use qemu::QEMU_ARGS;
pub use tools::{APT_PACKAGES, RUST_TARGET, Tools};

/// The anchor the arena is compared with: TensorFlow Lite Micro's arena for the MLPerf Tiny
/// ResNet-8 (image classification) in float32, bytes.
pub const TFLM_RESNET8_ARENA_BYTES: u64 = 203_376;
/// Of which activations, bytes.
pub const TFLM_RESNET8_ACTIVATION_BYTES: u64 = 196_608;

/// A spec the demo runs.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    /// The spec's `name`: the C prefix and the firmware's binary.
    pub name: &'static str,
    /// The spec file, relative to the repository.
    spec: &'static str,
}

impl Model {
    /// The spec file.
    pub fn spec_path(&self) -> PathBuf {
        repository().join(self.spec)
    }
}

/// The two small specs: ResNet-8 (the size of MLPerf Tiny's) and ResNet-20 for CIFAR-10.
pub const MODELS: [Model; 2] = [
    Model {
        name: "resnet8_cifar",
        spec: "specs/resnet8_cifar.yaml",
    },
    Model {
        name: "resnet20_cifar",
        spec: "specs/resnet20_cifar.yaml",
    },
];

/// The language of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lang {
    /// `resnetc emit c`, compiled by `arm-none-eabi-gcc`.
    C,
    /// `resnet!` in the firmware crate, compiled by rustc.
    Rust,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Lang::C => "C",
            Lang::Rust => "Rust",
        })
    }
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Tools are missing; each entry names one and where it comes from.
    #[error(
        "the Cortex-M4 demo needs tools that are not installed:\n{}\n\
         install them with (as root, or with sudo):\n    apt-get install {APT_PACKAGES}\n    \
         rustup target add {RUST_TARGET}",
        missing.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n")
    )]
    MissingTools {
        /// The missing tools.
        missing: Vec<String>,
    },
    /// A tool gave an answer the demo cannot use.
    #[error("{tool}: {message}")]
    Tool {
        /// The tool.
        tool: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A command failed.
    #[error("{what} failed ({status}):\n    {command}\n{output}")]
    Command {
        /// What the command was for.
        what: String,
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its standard output and error.
        output: String,
    },
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The compiler refused a spec, or emitted something unexpected.
    #[error("{}: {message}", spec.display())]
    Emit {
        /// The spec.
        spec: PathBuf,
        /// The compiler's message.
        message: String,
    },
    /// An image did not run to the end, or printed something unexpected.
    #[error("{}: {message}\n{output}", image.display())]
    Qemu {
        /// The image.
        image: PathBuf,
        /// What went wrong.
        message: String,
        /// What QEMU printed.
        output: String,
    },
    /// A measurement is inconsistent with the compiler or the host.
    #[error("{model} ({lang}): {message}")]
    Check {
        /// The spec.
        model: &'static str,
        /// The image's language.
        lang: Lang,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    fn io(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// What the compiler and the host say about one spec.
#[derive(Debug, Clone)]
pub struct Host {
    /// The spec.
    pub model: Model,
    /// `resnetc summary --json`: arena, its lower bound, weight bytes, MACs.
    pub summary: resnet_compiler::summary::Summary,
    /// The input (seed 0).
    pub input: Vec<f32>,
    /// The output of the program on the portable kernels on this machine (the reference).
    pub output: Vec<f32>,
}

/// How close an image's output is to the host's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// `max |image - host|` over the output.
    pub max_abs_diff: f64,
    /// `max |host|`.
    pub max_abs_host: f64,
    /// Every output has the same bits as the host's.
    pub bit_identical: bool,
}

impl Agreement {
    fn new(image: &[f32], host: &[f32]) -> Agreement {
        let max = |it: &mut dyn Iterator<Item = f64>| it.fold(0.0, f64::max);
        Agreement {
            max_abs_diff: max(&mut image
                .iter()
                .zip(host)
                .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())),
            max_abs_host: max(&mut host.iter().map(|v| f64::from(v.abs()))),
            bit_identical: image.len() == host.len()
                && image.iter().zip(host).all(|(a, b)| a.to_bits() == b.to_bits()),
        }
    }

    /// `max |image - host| / max |host|`.
    pub fn relative(&self) -> f64 {
        self.max_abs_diff / self.max_abs_host
    }
}

impl fmt::Display for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bit_identical {
            f.pad("bit-identical")
        } else {
            f.pad(&format!("{:.1e}", self.relative()))
        }
    }
}

/// One image, measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The spec's name.
    pub model: &'static str,
    /// The language.
    pub lang: Lang,
    /// Flash for code and constants other than the weights: `text + data` of the ELF, less
    /// the weights and the test input (a fixture, not part of a deployed model).
    pub flash_code: u64,
    /// Flash for the weights: the object `resnetc emit c` wrote them to (C), the `WEIGHTS`
    /// static `resnet!` embeds (Rust).
    pub flash_weights: u64,
    /// The arena, as linked.
    pub ram_arena: u64,
    /// The stack's high-water mark during the inference, from the reset handler down.
    pub ram_stack: u64,
    /// The input and output buffers.
    pub ram_io: u64,
    /// The rest of `.data` and `.bss` (the C library's state, the harness's counters).
    pub ram_other: u64,
    /// Instructions per inference, to within `instructions_per_tick`.
    pub instructions: u64,
    /// The resolution of `instructions`: what one SysTick tick counts.
    pub instructions_per_tick: u64,
    /// The image's output.
    pub output: Vec<f32>,
    /// Against the host.
    pub agreement: Agreement,
}

impl Measurement {
    /// All RAM: static data and the stack.
    pub fn ram_total(&self) -> u64 {
        self.ram_arena + self.ram_stack + self.ram_io + self.ram_other
    }
}

/// Where the demo works.
#[derive(Debug, Clone)]
pub struct Options {
    /// Build directory (C objects and images, the firmware's Cargo target directory).
    pub work_dir: PathBuf,
}

impl Default for Options {
    /// `cortex-m4/` in Cargo's target directory (`CARGO_TARGET_DIR`, relative to the
    /// repository, else the repository's `target/`), so that the firmware's dependencies are
    /// compiled once.
    fn default() -> Options {
        let dir = std::env::var_os("CARGO_TARGET_DIR").unwrap_or_else(|| "target".into());
        let target = repository().join(dir);
        Options {
            work_dir: target.join("cortex-m4"),
        }
    }
}

/// Everything [`run`] found.
#[derive(Debug, Clone)]
pub struct Report {
    /// One per spec, in [`MODELS`] order.
    pub hosts: Vec<Host>,
    /// Per spec, C then Rust.
    pub measurements: Vec<Measurement>,
}

/// Runs the whole demo: tools, host references, C and Rust images, QEMU, measurements.
/// `progress` is told what is being done, for a person watching.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report, Error> {
    let tools = Tools::find()?;
    let mut hosts = Vec::new();
    for model in MODELS {
        progress(&format!("{}: host reference", model.name));
        hosts.push(host(&model)?);
    }
    progress("Rust firmware: cargo build --release (the first build compiles its dependencies)");
    let bins = firmware::build(&tools, &options.work_dir.join("firmware"))?;
    let mut measurements = Vec::new();
    for h in &hosts {
        let name = h.model.name;
        progress(&format!("{name}: C (resnetc emit c, arm-none-eabi-gcc)"));
        let image = c::build(&tools, &h.model, &h.input, &options.work_dir.join(name).join("c"))?;
        let weights = elf::sizes(&tools, &image.weights_object)?.flash();
        progress(&format!("{name}: C under QEMU"));
        measurements.push(measure(&tools, h, Lang::C, &image.elf, weights)?);

        let elf = bins.join(name);
        let weights = elf::symbol_size(&tools, &elf, "::WEIGHTS")?;
        progress(&format!("{name}: Rust under QEMU"));
        measurements.push(measure(&tools, h, Lang::Rust, &elf, weights)?);
    }
    Ok(Report { hosts, measurements })
}

/// Compiles `model` on the host and runs the reference.
fn host(model: &Model) -> Result<Host, Error> {
    let path = model.spec_path();
    let emit_error = |message: String| Error::Emit {
        spec: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    let spec = resnet_compiler::spec::parse_yaml(&text, &path.display().to_string())
        .map_err(|e| emit_error(e.to_string()))?;
    // As the firmware and the C are compiled: every conv direct.
    let options = resnet_compiler::Options {
        winograd: false,
        ..Default::default()
    };
    let c = resnet_compiler::compile(&spec, &options).map_err(|e| emit_error(e.to_string()))?;
    let input = resnet_compiler::synth::input(&spec.input, 0);
    let weights = resnet_compiler::weights::synthetic_safetensors(&c.graph, 0);
    let blob = resnet_compiler::weights::pack(&c.program, &weights).map_err(|e| emit_error(e.to_string()))?;
    let output = resnet_compiler::interp::run_program_on(
        &c.program,
        &blob,
        &input,
        resnet_compiler::interp::Kernels::Portable,
    );
    Ok(Host {
        model: *model,
        summary: resnet_compiler::summary::Summary::new(&c),
        input,
        output,
    })
}

/// Runs one image and measures it.
fn measure(tools: &Tools, host: &Host, lang: Lang, elf: &Path, weights: u64) -> Result<Measurement, Error> {
    let model = host.model.name;
    let check = |message: String| Error::Check { model, lang, message };
    let sizes = elf::sizes(tools, elf)?;
    let report = qemu::run(tools, elf)?;
    if report.model != model {
        return Err(check(format!("the image reports being `{}`", report.model)));
    }
    if report.output.len() != host.output.len() {
        return Err(check(format!(
            "{} outputs, the host has {}",
            report.output.len(),
            host.output.len()
        )));
    }
    let test_input = (host.input.len() * std::mem::size_of::<f32>()) as u64;
    let flash_code = sizes
        .flash()
        .checked_sub(weights + test_input)
        .ok_or_else(|| check(format!("{weights} bytes of weights do not fit in {sizes:?}")))?;
    let ram_other = sizes
        .ram()
        .checked_sub(report.arena + report.io)
        .ok_or_else(|| check(format!("the arena and buffers do not fit in {sizes:?}")))?;
    Ok(Measurement {
        model,
        lang,
        flash_code,
        flash_weights: weights,
        ram_arena: report.arena,
        ram_stack: report.stack,
        ram_io: report.io,
        ram_other,
        instructions: report.ticks * report.instructions_per_tick,
        instructions_per_tick: report.instructions_per_tick,
        agreement: Agreement::new(&report.output, &host.output),
        output: report.output,
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Cortex-M4F (QEMU mps2-an386, -icount shift=0), synthetic weights and input (seed 0); sizes in bytes"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<20} {:-^21} {:-^42} {:>13}  vs host",
            "", " flash ", " RAM ", "instructions"
        )?;
        row(
            f,
            [
                "spec",
                "lang",
                "code",
                "weights",
                "arena",
                "stack",
                "io",
                "other",
                "total",
                "/inference",
                "",
            ]
            .map(String::from),
        )?;
        for m in &self.measurements {
            row(
                f,
                [
                    m.model.to_owned(),
                    m.lang.to_string(),
                    thousands(m.flash_code),
                    thousands(m.flash_weights),
                    thousands(m.ram_arena),
                    thousands(m.ram_stack),
                    thousands(m.ram_io),
                    thousands(m.ram_other),
                    thousands(m.ram_total()),
                    thousands(m.instructions),
                    m.agreement.to_string(),
                ],
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "flash code: text + data of the linked ELF (arm-none-eabi-size) less the weights and the \
             test input;\nstack: high-water mark of the painted stack; io: input and output buffers; \
             other: the rest of .data and .bss;\ninstructions: per inference, SysTick ticks x {} \
             (calibrated on a 2,000,000-instruction loop), to within {0};\nvs host: max |image - host| \
             / max |host|, host = the program on the portable kernels on this machine.",
            self.measurements.first().map_or(40, |m| m.instructions_per_tick)
        )?;
        writeln!(f)?;
        for h in &self.hosts {
            writeln!(
                f,
                "resnetc's arena for {} (resnetc summary --json, arena_bytes): {} bytes (lower bound {})",
                h.model.name,
                thousands(h.summary.arena_bytes as u64),
                thousands(h.summary.lower_bound_bytes as u64)
            )?;
        }
        writeln!(
            f,
            "TensorFlow Lite Micro, MLPerf Tiny ResNet-8 in float32: a {}-byte arena ({} bytes of \
             activations)",
            thousands(TFLM_RESNET8_ARENA_BYTES),
            thousands(TFLM_RESNET8_ACTIVATION_BYTES)
        )
    }
}

/// One line of the table: spec and language left-aligned, numbers right-aligned.
fn row(f: &mut fmt::Formatter<'_>, c: [String; 11]) -> fmt::Result {
    let line = format!(
        "{:<15} {:<4} {:>9} {:>11} {:>9} {:>7} {:>7} {:>6} {:>9} {:>13}  {}",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]
    );
    writeln!(f, "{}", line.trim_end())
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The repository's root, without `..` (the emitted C names the spec it came from).
pub fn repository() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    root.canonicalize().unwrap_or(root)
}

/// Runs `cmd`; its standard output, or [`Error::Command`] with everything it printed.
fn command_output(what: &str, cmd: &mut Command) -> Result<String, Error> {
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd.output().map_err(|e| Error::Command {
        what: what.to_owned(),
        command: line.clone(),
        status: e.to_string(),
        output: String::new(),
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            what: what.to_owned(),
            command: line,
            status: out.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `bytes` to `path` unless it already holds them (so that its time stamp, and
/// anything depending on it, stays).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).map_err(|e| Error::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_is_relative_to_the_largest_host_value() {
        let a = Agreement::new(&[1.0, 2.0], &[1.0, 4.0]);
        assert_eq!(a.relative(), 0.5);
        assert!(!a.bit_identical);
        assert_eq!(a.to_string(), "5.0e-1");
        assert_eq!(Agreement::new(&[1.0], &[1.0]).to_string(), "bit-identical");
        // -0.0 and 0.0 are equal but not the same bits.
        assert!(!Agreement::new(&[-0.0], &[0.0]).bit_identical);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(203_376), "203,376");
        assert_eq!(thousands(39_697_440), "39,697,440");
    }

    #[test]
    fn missing_tools_say_what_to_install() {
        let e = Error::MissingTools {
            missing: vec!["qemu-system-arm (Debian package qemu-system-arm)".into()],
        };
        let text = e.to_string();
        assert!(text.contains("  - qemu-system-arm"));
        assert!(text.contains("apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"));
        assert!(text.contains("rustup target add thumbv7em-none-eabihf"));
    }
}
