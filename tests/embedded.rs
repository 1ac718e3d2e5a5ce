//! The Cortex-M4 example end to end (`examples/cortex-m4`): both CIFAR specs, in C (`resnetc
//! emit c`, `arm-none-eabi-gcc`) and in Rust (`resnet!` in a `no_std` firmware), run under
//! QEMU's MPS2 AN386; outputs must match the host reference (the program on the runtime's
//! portable kernels) to 1e-5 of its largest value, and the footprint must be consistent with
//! the compiler's plan.
//!
//! Needs the Debian packages gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm
//! and the Rust target thumbv7em-none-eabihf, which `.ci/run` installs. Without them the test
//! fails under `CI=true` and otherwise says loudly that it did not run.

use std::io::Write as _;

use cortex_m4_demo::{Error, Options, Report};

/// The tolerance the issue sets: max |Cortex-M4 - host| / max |host|.
const TOLERANCE: f64 = 1e-5;

#[test]
fn c_and_rust_on_cortex_m4_agree_with_the_host() {
    let Some(report) = run() else { return };
    eprintln!("{report}");
    assert_eq!(report.measurements.len(), 2 * cortex_m4_demo::MODELS.len());
    for m in &report.measurements {
        let what = format!("{} ({})", m.model, m.lang);
        let host = report.hosts.iter().find(|h| h.model.name == m.model).unwrap();
        let s = &host.summary;

        let rel = m.agreement.relative();
        assert!(
            rel <= TOLERANCE,
            "{what}: max |Cortex-M4 - host| / max |host| = {rel:e} (tolerance {TOLERANCE:e})"
        );
        assert!(
            m.output.iter().all(|v| v.is_finite()),
            "{what}: non-finite outputs"
        );

        // The arena each image links is the one the compiler planned (the C harness sizes it
        // by <NAME>_ARENA_BYTES, the firmware by size_of::<Arena>()).
        assert_eq!(m.ram_arena, s.arena_bytes as u64, "{what}: arena");
        let floats = host.input.len() + host.output.len();
        assert_eq!(m.ram_io, (floats * 4) as u64, "{what}: input and output buffers");
        // The packed weights: every folded weight, plus at most a little padding.
        let weights = s.weight_bytes as u64;
        assert!(
            (weights..=weights + weights / 100).contains(&m.flash_weights),
            "{what}: {} bytes of weights in flash, {weights} after folding",
            m.flash_weights
        );
        // Loose bounds, to catch a broken measurement rather than to pin the numbers.
        assert!(
            (64..16 * 1024).contains(&m.ram_stack),
            "{what}: stack {}",
            m.ram_stack
        );
        assert!(
            (1024..128 * 1024).contains(&m.flash_code),
            "{what}: code {}",
            m.flash_code
        );
        assert!(m.ram_other < 8 * 1024, "{what}: other RAM {}", m.ram_other);
        // A Cortex-M4 does at most one f32 multiply-accumulate per instruction.
        let macs = s.macs as u64;
        assert!(
            (macs..100 * macs).contains(&m.instructions),
            "{what}: {} instructions for {macs} MACs",
            m.instructions
        );
        assert_eq!(m.instructions_per_tick, 40, "{what}: SysTick calibration");
    }
}

/// The demo's report, or `None` (after a loud note) when the tools are missing outside CI.
fn run() -> Option<Report> {
    match cortex_m4_demo::run(&Options::default(), &mut |step| eprintln!("cortex-m4: {step}")) {
        Ok(report) => Some(report),
        Err(e @ Error::MissingTools { .. }) if std::env::var("CI").as_deref() != Ok("true") => {
            // Straight to stderr: the test harness captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "\n========== NOTE: embedded::c_and_rust_on_cortex_m4_agree_with_the_host DID NOT \
                 RUN ==========\n{e}\n(CI installs them: see .ci/run)\n"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}
