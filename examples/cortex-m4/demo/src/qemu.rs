//! Running an image under QEMU and reading the report its harness prints.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Tools};

/// The machine: an MPS2 board with the AN386 FPGA image (Cortex-M4F). `-icount shift=0` makes
/// virtual time advance exactly 1 ns per instruction, so SysTick (25 MHz) counts one tick
/// per 40 instructions, the same on every run and every host. Semihosting writes go to
/// QEMU's standard output.
pub const QEMU_ARGS: [&str; 10] = [
    "-machine",
    "mps2-an386",
    "-cpu",
    "cortex-m4",
    "-semihosting-config",
    "enable=on,target=native",
    "-icount",
    "shift=0",
    "-display",
    "none",
];

/// Far more than any image here needs (about a second): only a hung image reaches it.
const TIMEOUT: Duration = Duration::from_secs(300);

/// The instructions the harness's calibration loop executes.
const CALIBRATION_INSTRUCTIONS: u64 = 2_000_000;

/// What the harness printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The model's name.
    pub model: String,
    /// Instructions per SysTick tick, from the calibration loop.
    pub instructions_per_tick: u64,
    /// SysTick ticks of one inference.
    pub ticks: u64,
    /// Stack high-water mark, bytes.
    pub stack: u64,
    /// The arena, bytes.
    pub arena: u64,
    /// The input and output buffers, bytes.
    pub io: u64,
    /// The output.
    pub output: Vec<f32>,
}

/// Runs `image` and parses its report.
pub fn run(tools: &Tools, image: &Path) -> Result<Report, Error> {
    let mut child = Command::new(&tools.qemu)
        .args(QEMU_ARGS)
        .args(["-monitor", "none", "-serial", "none", "-kernel"])
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Tool {
            tool: "qemu-system-arm",
            message: format!("cannot start {}: {e}", tools.qemu.display()),
        })?;
    // The reports are a few hundred bytes, far below a pipe's buffer: reading after the exit
    // cannot deadlock.
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Qemu {
                    image: image.to_owned(),
                    message: format!("still running after {} s; killed", TIMEOUT.as_secs()),
                    output: String::new(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(Error::Tool {
                    tool: "qemu-system-arm",
                    message: format!("waiting for QEMU: {e}"),
                });
            }
        }
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    let output = format!("{stdout}{stderr}");
    if !status.success() {
        return Err(Error::Qemu {
            image: image.to_owned(),
            message: format!("QEMU exited with {status}"),
            output,
        });
    }
    parse(&stdout).map_err(|message| Error::Qemu {
        image: image.to_owned(),
        message,
        output,
    })
}

/// Parses the lines `../c/harness.c` and the firmware's `lib.rs` print.
pub fn parse(text: &str) -> Result<Report, String> {
    let mut model = None;
    let mut calibration = None;
    let mut fields = std::collections::BTreeMap::new();
    let mut output = Vec::new();
    let mut ended = false;
    let hex = |s: &str| u64::from_str_radix(s, 16).map_err(|e| format!("`{s}` is not a hex number: {e}"));
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["resnetc-cm4", name] => model = Some(name.to_owned()),
            ["calibration", instructions, ticks] => calibration = Some((hex(instructions)?, hex(ticks)?)),
            ["out", index, bits] => {
                if hex(index)? != output.len() as u64 {
                    return Err(format!("output element {index} out of order"));
                }
                let bits = u32::try_from(hex(bits)?).map_err(|_| format!("`{bits}` is not an f32"))?;
                output.push(f32::from_bits(bits));
            }
            ["end"] => ended = true,
            [key @ ("ticks" | "stack" | "arena" | "io" | "status"), value] => {
                fields.insert(key, hex(value)?);
            }
            _ => return Err(format!("unexpected line `{line}`")),
        }
    }
    if !ended {
        return Err("the report has no `end` line".into());
    }
    let field = |key: &str| fields.get(key).copied().ok_or(format!("no `{key}` line"));
    if field("status")? != 0 {
        return Err(format!("forward returned {}", field("status")?));
    }
    let (instructions, ticks) = calibration.ok_or("no `calibration` line")?;
    if instructions != CALIBRATION_INSTRUCTIONS {
        return Err(format!("the calibration loop ran {instructions} instructions"));
    }
    Ok(Report {
        model: model.ok_or("no `resnetc-cm4` line")?,
        instructions_per_tick: instructions_per_tick(instructions, ticks)?,
        ticks: field("ticks")?,
        stack: field("stack")?,
        arena: field("arena")?,
        io: field("io")?,
        output,
    })
}

/// The whole number of instructions per tick the calibration shows; an error unless it is
/// one (to within the one tick a reading can be off by), since the counts rely on it.
fn instructions_per_tick(instructions: u64, ticks: u64) -> Result<u64, String> {
    let per_tick = (instructions as f64 / ticks.max(1) as f64).round() as u64;
    if per_tick == 0 || ticks.abs_diff(instructions / per_tick) > 1 {
        return Err(format!(
            "SysTick does not count a whole number of instructions per tick ({instructions} \
             instructions took {ticks} ticks): run QEMU with `-icount shift=0`"
        ));
    }
    Ok(per_tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "resnetc-cm4 tiny\ncalibration 1e8480 c350\nticks 10\nstack 6c0\narena 20000\n\
                          io 3028\nstatus 0\nout 0 3f800000\nout 1 bf000000\nend\n";

    #[test]
    fn parses_the_harness_report() {
        let r = parse(REPORT).unwrap();
        assert_eq!(r.model, "tiny");
        assert_eq!(r.instructions_per_tick, 40);
        assert_eq!((r.ticks, r.stack, r.arena, r.io), (16, 0x6c0, 0x20000, 0x3028));
        assert_eq!(r.output, [1.0, -0.5]);
    }

    #[test]
    fn refuses_truncated_or_failed_runs() {
        assert!(
            parse(&REPORT.replace("end\n", ""))
                .unwrap_err()
                .contains("no `end`")
        );
        assert!(
            parse(&REPORT.replace("status 0", "status 1"))
                .unwrap_err()
                .contains("returned 1")
        );
        let uncalibrated = REPORT.replace("c350", "c000");
        assert!(parse(&uncalibrated).unwrap_err().contains("whole number"));
    }
}
