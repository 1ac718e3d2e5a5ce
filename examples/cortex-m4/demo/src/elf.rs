//! Sizes of linked images and objects, as `arm-none-eabi-size` and `arm-none-eabi-nm` give
//! them.

use std::path::Path;
use std::process::Command;

use crate::{Error, Tools, command_output};

/// `arm-none-eabi-size` in its Berkeley format: `text` is everything read-only that is loaded
/// (vector table, code, constants: flash), `data` is initialized data (stored in flash, copied
/// to RAM), `bss` is zeroed data (RAM only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Read-only, loaded: flash.
    pub text: u64,
    /// Initialized data: flash and RAM.
    pub data: u64,
    /// Zeroed data: RAM.
    pub bss: u64,
}

impl Sizes {
    /// Bytes of flash.
    pub fn flash(&self) -> u64 {
        self.text + self.data
    }

    /// Bytes of RAM taken by static data.
    pub fn ram(&self) -> u64 {
        self.data + self.bss
    }
}

/// The sizes of an ELF file or object.
pub fn sizes(tools: &Tools, file: &Path) -> Result<Sizes, Error> {
    let out = command_output(
        "arm-none-eabi-size",
        Command::new(&tools.size).arg("-B").arg("-d").arg(file),
    )?;
    // "   text    data     bss     dec     hex filename", then one line of numbers.
    let numbers: Vec<u64> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [text, data, bss] => Ok(Sizes { text, data, bss }),
        _ => Err(Error::Tool {
            tool: "arm-none-eabi-size",
            message: format!("unexpected output for {}:\n{out}", file.display()),
        }),
    }
}

/// The size of the one symbol of `elf` whose demangled name ends with `suffix`.
pub fn symbol_size(tools: &Tools, elf: &Path, suffix: &str) -> Result<u64, Error> {
    let out = command_output(
        "arm-none-eabi-nm",
        Command::new(&tools.nm)
            .args(["--print-size", "--demangle"])
            .arg(elf),
    )?;
    // "address size type name", the name possibly with spaces.
    let found: Vec<u64> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            let (_, size, _, name) = (f.next()?, f.next()?, f.next()?, f.next()?);
            name.ends_with(suffix)
                .then(|| u64::from_str_radix(size, 16).ok())?
        })
        .collect();
    match found[..] {
        [size] => Ok(size),
        _ => Err(Error::Tool {
            tool: "arm-none-eabi-nm",
            message: format!(
                "expected one symbol named `*{suffix}` in {}, found {}",
                elf.display(),
                found.len()
            ),
        }),
    }
}
