//! The C image: `resnetc emit c`, the harness of `../c/`, `arm-none-eabi-gcc`, newlib's
//! semihosting library (rdimon) and our own startup code and linker script.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Model, Tools, command_output, write_file};

/// The core: Cortex-M4 with its single-precision FPU, hard-float ABI.
pub const ARCH_FLAGS: [&str; 4] = [
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
];

/// Everything is compiled with exactly these, the generated model and the harness alike.
pub const WARNING_FLAGS: [&str; 5] = ["-O2", "-std=c99", "-Wall", "-Wextra", "-Werror"];

/// The directory of the harness sources, `examples/cortex-m4/c`.
pub fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../c")
}

/// A linked C image and what it is made of.
#[derive(Debug, Clone)]
pub struct Image {
    /// The ELF file.
    pub elf: PathBuf,
    /// The object holding the weights (`<name>_weights.c`).
    pub weights_object: PathBuf,
}

/// Emits `model` as C into `dir/emit`, writes the glue, compiles and links.
pub fn build(tools: &Tools, model: &Model, input: &[f32], dir: &Path) -> Result<Image, Error> {
    let emit = dir.join("emit");
    // Start clean, so that no file of an earlier emit (or an earlier compiler) is linked in.
    if emit.exists() {
        std::fs::remove_dir_all(&emit).map_err(|e| Error::io("remove", &emit, e))?;
    }
    std::fs::create_dir_all(&emit).map_err(|e| Error::io("create", &emit, e))?;
    emit_c(model, &emit)?;

    let header = emit.join(format!("{}.h", model.name));
    if !header.is_file() {
        return Err(Error::Emit {
            spec: model.spec_path(),
            message: format!("`resnetc emit c` wrote no {}", header.display()),
        });
    }
    write_file(&dir.join("model.h"), glue_header(model.name).as_bytes())?;
    write_file(&dir.join("test_input.c"), test_input(input).as_bytes())?;

    // Every C file the emitter wrote, in a fixed order, then the harness.
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&emit)
        .map_err(|e| Error::io("read", &emit, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    sources.sort();
    let harness = harness_dir();
    sources.extend([
        harness.join("startup.c"),
        harness.join("harness.c"),
        dir.join("test_input.c"),
    ]);

    let mut objects = Vec::new();
    for source in &sources {
        let object = dir
            .join(source.file_stem().unwrap_or_default())
            .with_extension("o");
        command_output(
            "arm-none-eabi-gcc",
            Command::new(&tools.gcc)
                .args(ARCH_FLAGS)
                .args(WARNING_FLAGS)
                .arg("-I")
                .arg(&emit)
                .arg("-I")
                .arg(dir)
                .arg("-c")
                .arg(source)
                .arg("-o")
                .arg(&object),
        )?;
        objects.push(object);
    }
    let weights_object = dir.join(format!("{}_weights.o", model.name));
    if !objects.contains(&weights_object) {
        return Err(Error::Emit {
            spec: model.spec_path(),
            message: format!("`resnetc emit c` wrote no {}_weights.c", model.name),
        });
    }

    let elf = dir.join(format!("{}.elf", model.name));
    command_output(
        "arm-none-eabi-gcc",
        Command::new(&tools.gcc)
            .args(ARCH_FLAGS)
            .args(WARNING_FLAGS)
            // Our own reset handler and vector table (startup.c) instead of newlib's crt0;
            // rdimon.specs still links newlib and its semihosting system calls.
            .args(["-nostartfiles", "--specs=rdimon.specs", "-Wl,--gc-sections", "-T"])
            .arg(harness.join("mps2-an386.ld"))
            .args(&objects)
            .arg("-o")
            .arg(&elf),
    )?;
    Ok(Image { elf, weights_object })
}

/// `resnetc emit c SPEC --synthetic-weights 0 -o DIR`, run in this process.
fn emit_c(model: &Model, dir: &Path) -> Result<(), Error> {
    let spec = model.spec_path();
    let args = [
        "resnetc".into(),
        "emit".into(),
        "c".into(),
        spec.clone().into_os_string(),
        "--synthetic-weights".into(),
        "0".into(),
        "-o".into(),
        dir.as_os_str().to_owned(),
    ];
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = resnet_compiler::cli::run(args, &mut out, &mut err);
    if code != std::process::ExitCode::SUCCESS {
        return Err(Error::Emit {
            spec,
            message: String::from_utf8_lossy(&err).trim().to_owned(),
        });
    }
    Ok(())
}

/// `model.h`: the names the harness uses, mapped to the emitted ones (`<NAME>_INPUT_LEN`,
/// `<name>_forward`, ...).
fn glue_header(name: &str) -> String {
    let upper = name.to_uppercase();
    format!(
        "/* Generated by cortex-m4-demo: the emitted model, under the names harness.c uses. */\n\
         #include \"{name}.h\"\n\
         #define MODEL_NAME \"{name}\"\n\
         #define MODEL_INPUT_LEN {upper}_INPUT_LEN\n\
         #define MODEL_OUTPUT_LEN {upper}_OUTPUT_LEN\n\
         #define MODEL_ARENA_BYTES {upper}_ARENA_BYTES\n\
         #define model_forward {name}_forward\n"
    )
}

/// `test_input.c`: the input as the bit patterns of its floats, exact by construction.
fn test_input(input: &[f32]) -> String {
    let mut s = String::from(
        "/* Generated by cortex-m4-demo: resnet_compiler::synth::input(shape, 0), as f32 bits. */\n\
         #include <stdint.h>\n\
         #include \"model.h\"\n\n\
         const uint32_t test_input_bits[MODEL_INPUT_LEN] = {\n",
    );
    for chunk in input.chunks(6) {
        s.push_str("   ");
        for v in chunk {
            let _ = write!(s, " 0x{:08x}u,", v.to_bits());
        }
        s.push('\n');
    }
    s.push_str("};\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glue_maps_the_emitted_names() {
        let h = glue_header("resnet8_cifar");
        assert!(h.contains("#include \"resnet8_cifar.h\""));
        assert!(h.contains("#define MODEL_ARENA_BYTES RESNET8_CIFAR_ARENA_BYTES"));
        assert!(h.contains("#define model_forward resnet8_cifar_forward"));
    }

    #[test]
    fn the_input_table_holds_exact_bits() {
        let c = test_input(&[1.0, -0.5, f32::MIN_POSITIVE]);
        assert!(c.contains("0x3f800000u, 0xbf000000u, 0x00800000u,"));
    }
}
