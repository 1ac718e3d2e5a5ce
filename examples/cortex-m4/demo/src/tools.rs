//! Finding the cross toolchain, newlib, QEMU and the Rust target, or saying how to install
//! what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The Rust target of the firmware: Cortex-M4F, hard-float ABI.
pub const RUST_TARGET: &str = "thumbv7em-none-eabihf";

/// The Debian packages that provide the external tools.
pub const APT_PACKAGES: &str = "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm";

/// The external programs the demo runs, found on `PATH`.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `arm-none-eabi-gcc`.
    pub gcc: PathBuf,
    /// `arm-none-eabi-size`.
    pub size: PathBuf,
    /// `arm-none-eabi-nm`.
    pub nm: PathBuf,
    /// `qemu-system-arm`.
    pub qemu: PathBuf,
    /// Cargo, to build the Rust firmware (the one running this program when there is one).
    pub cargo: PathBuf,
}

impl Tools {
    /// Finds every tool, or returns [`Error::MissingTools`] listing all that are missing and
    /// the commands that install them.
    pub fn find() -> Result<Tools, Error> {
        let mut missing = Vec::new();
        let mut find = |program: &str, package: &str| {
            let found = on_path(program);
            if found.is_none() {
                missing.push(format!("{program} (Debian package {package})"));
            }
            found.unwrap_or_default()
        };
        let gcc = find("arm-none-eabi-gcc", "gcc-arm-none-eabi");
        let size = find(
            "arm-none-eabi-size",
            "binutils-arm-none-eabi, a dependency of gcc-arm-none-eabi",
        );
        let nm = find(
            "arm-none-eabi-nm",
            "binutils-arm-none-eabi, a dependency of gcc-arm-none-eabi",
        );
        let qemu = find("qemu-system-arm", "qemu-system-arm");
        // The compiler alone does not bring newlib; without it the link fails much later.
        if !gcc.as_os_str().is_empty() && !has_rdimon(&gcc) {
            missing.push(
                "newlib with semihosting (librdimon.a, Debian package libnewlib-arm-none-eabi)".to_owned(),
            );
        }
        if !has_rust_target() {
            missing.push(format!(
                "the Rust target {RUST_TARGET} (rustup target add {RUST_TARGET})"
            ));
        }
        if !missing.is_empty() {
            return Err(Error::MissingTools { missing });
        }
        let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
        Ok(Tools {
            gcc,
            size,
            nm,
            qemu,
            cargo,
        })
    }
}

/// The first `program` in `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the multilib the firmware is compiled for has newlib's semihosting library: GCC
/// prints the bare name back when it cannot find the file.
fn has_rdimon(gcc: &Path) -> bool {
    Command::new(gcc)
        .args(crate::c::ARCH_FLAGS)
        .arg("-print-file-name=librdimon.a")
        .output()
        .is_ok_and(|o| {
            o.status.success() && Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_absolute()
        })
}

/// Whether the Rust standard library (`core`) is installed for the firmware's target.
fn has_rust_target() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", RUST_TARGET])
        .output()
    else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success()
        && std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
        })
}

/// Installs the missing tools the way `.ci/run` does, when this process may: the Debian
/// packages with `apt-get` as root, the Rust target with `rustup`. Returns whether it ran
/// anything; the caller then looks for the tools again.
pub fn install(say: &mut dyn FnMut(&str)) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let mut ran = false;
    if root && on_path("apt-get").is_some() {
        say(&format!(
            "installing {APT_PACKAGES} with apt-get (running as root)"
        ));
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        let mut install = vec!["install", "-y", "-qq"];
        install.extend(APT_PACKAGES.split(' '));
        ran |= apt(&["update", "-qq"]) && apt(&install);
    }
    if !has_rust_target() && on_path("rustup").is_some() {
        say(&format!("installing the Rust target {RUST_TARGET} with rustup"));
        ran |= Command::new("rustup")
            .args(["target", "add", RUST_TARGET])
            .status()
            .is_ok_and(|s| s.success());
    }
    ran
}
