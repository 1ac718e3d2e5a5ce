//! A speed report, not an assertion: with `RESNET_RUNTIME_BENCH=1`, times the conv kernel on
//! resnet50 layer shapes and prints GFLOP/s (2 * MACs / s), single-threaded. Run it as
//! `RESNET_RUNTIME_BENCH=1 cargo test --release -p resnet-runtime bench -- --nocapture`.
//! `const` is [`conv2d`] (one instance per shape, on the process's engine), then every engine
//! this machine runs is timed on the shared instance ([`super::conv2d_dyn`]'s); `const` and the
//! process's engine must agree bit for bit. `RESNET_RUNTIME_BENCH_ONLY=text` keeps the shapes
//! whose label contains `text`; `RESNET_RUNTIME_PEAK=gflops` (the FMA peak of the process's
//! instruction set, say from `peak.c`) adds `const` as a percentage of it. Without the
//! variable the test only checks that the shapes run (in unoptimized builds, only the small
//! ones). Times are this thread's time on a CPU (Linux), so that other processes sharing
//! the cores do not skew them.
//!
//! `RESNET_RUNTIME_BENCH_COLD=1` times `const` as a forward pass runs it, with the layer's
//! weights in no cache (a forward pass reads each layer's weights from memory, its
//! activations mostly from L2): the median of 31 single calls, each after the weights were
//! flushed from every cache level (x86-64 only; elsewhere they stay cached), in wall time.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::reference::{ConvData, Rng, engines};
use super::{Dyn, Engine, Operands, Residual, conv_jobs, conv2d, job_count};
use crate::geom::{ConvGeom, ConvShape};
use crate::pack::{pack_conv, packed_conv_len};

macro_rules! shapes {
    ($($name:ident = $label:literal: $geom:expr;)*) => {
        $(
            #[derive(Debug)]
            struct $name;
            impl ConvShape for $name {
                const GEOM: ConvGeom = $geom;
            }
        )*
        /// `(label, geometry, run with the geometry as a constant)`.
        const SHAPES: &[(&str, ConvGeom, Runner)] = &[$(($label, $name::GEOM, conv2d::<$name>),)*];
    };
}

type Runner = fn(&[f32], &[f32], &[f32], Option<&[f32]>, Residual<'_>, &mut [f32]);

/// `conv_geom` as a `const fn`, for the shapes below (no shortcut, no residual, ReLU).
const fn geom(c: usize, hw: usize, o: usize, k: usize, s: usize, pad: usize) -> ConvGeom {
    let ohw = (hw + 2 * pad - k) / s + 1;
    ConvGeom {
        n: 1,
        c,
        h: hw,
        w: hw,
        o,
        oh: ohw,
        ow: ohw,
        k,
        stride: s,
        pad,
        dilation: 1,
        groups: 1,
        shortcut: None,
        residual: false,
        relu: true,
    }
}

/// A bottleneck's conv3: 1x1 `c -> o` on `hw`, plus a projection of `sc` channels with
/// stride `ss` (`None`: identity residual instead), then ReLU.
const fn conv3(c: usize, hw: usize, o: usize, sc: Option<(usize, usize)>) -> ConvGeom {
    let mut g = geom(c, hw, o, 1, 1, 0);
    match sc {
        Some((c, ss)) => {
            g.shortcut = Some(crate::geom::ShortcutGeom {
                c,
                h: hw * ss,
                w: hw * ss,
                stride: ss,
            })
        }
        None => g.residual = true,
    }
    g
}

shapes! {
    Stem = "conv1 3->64 7x7/2 224": geom(3, 224, 64, 7, 2, 3);
    L1c1 = "layer1.0.conv1 64->64 1x1 56": geom(64, 56, 64, 1, 1, 0);
    L1c2 = "layer1.0.conv2 64->64 3x3 56": geom(64, 56, 64, 3, 1, 1);
    L1c3 = "layer1.0.conv3+ds 64->256 1x1 56, sc 64": conv3(64, 56, 256, Some((64, 1)));
    L1b1 = "layer1.1.conv1 256->64 1x1 56": geom(256, 56, 64, 1, 1, 0);
    L1b3 = "layer1.1.conv3 64->256 1x1 56 +res": conv3(64, 56, 256, None);
    L2c2 = "layer2.0.conv2 128->128 3x3/2 56": geom(128, 56, 128, 3, 2, 1);
    L2b1 = "layer2.1.conv1 512->128 1x1 28": geom(512, 28, 128, 1, 1, 0);
    L2c3 = "layer2.1.conv3 128->512 1x1 28 +res": conv3(128, 28, 512, None);
    L3c1 = "layer3.0.conv1 512->256 1x1 28": geom(512, 28, 256, 1, 1, 0);
    L3b1 = "layer3.1.conv1 1024->256 1x1 14": geom(1024, 14, 256, 1, 1, 0);
    L3c2 = "layer3.1.conv2 256->256 3x3 14": geom(256, 14, 256, 3, 1, 1);
    L3d2 = "layer3.0.conv2 256->256 3x3/2 28": geom(256, 28, 256, 3, 2, 1);
    L2d3 = "layer2.0.conv3+ds 128->512 1x1 28, sc 256/2": conv3(128, 28, 512, Some((256, 2)));
    L3d3 = "layer3.0.conv3+ds 256->1024 1x1 14, sc 512/2": conv3(256, 14, 1024, Some((512, 2)));
    L3b3 = "layer3.1.conv3 256->1024 1x1 14 +res": conv3(256, 14, 1024, None);
    L4b1 = "layer4.1.conv1 2048->512 1x1 7": geom(2048, 7, 512, 1, 1, 0);
    L4c2 = "layer4.1.conv2 512->512 3x3 7": geom(512, 7, 512, 3, 1, 1);
    L4b3 = "layer4.1.conv3 512->2048 1x1 7 +res": conv3(512, 7, 2048, None);
    L4c3 = "layer4.0.conv3+ds 512->2048 1x1 7, sc 1024/2": conv3(512, 7, 2048, Some((1024, 2)));
}

/// This thread's time on a CPU so far, in seconds (Linux's `/proc/thread-self/schedstat`):
/// unlike the wall clock, it does not count the time other processes run on this core.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 * 1e-9)
}

/// Best time of a few repetitions, each repeating `f` for at least `min` in total: time on a
/// CPU where the system reports it, else wall-clock time.
fn time(min: Duration, mut f: impl FnMut()) -> f64 {
    let clock = || cpu_seconds().unwrap_or_else(|| START.with(|s| s.elapsed().as_secs_f64()));
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let (mut reps, start) = (0u32, clock());
        while clock() - start < min.as_secs_f64() || reps == 0 {
            f();
            reps += 1;
        }
        best = best.min((clock() - start) / f64::from(reps));
    }
    best
}

/// The median of 31 single calls of `f`, each after `weights` were flushed from every cache
/// level (the rest of the operands stay where the call before left them): a forward pass
/// reads each layer's weights from memory, the activations from L2.
fn time_cold(weights: &[f32], mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..31)
        .map(|_| {
            flush(weights);
            // Wall time: the thread's CPU time advances by scheduler ticks.
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Evicts `data`'s lines from every cache level.
fn flush(data: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks(16) {
        // SAFETY: SSE2 is part of x86-64; the address is inside `data`.
        unsafe { core::arch::x86_64::_mm_clflush(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

std::thread_local! {
    /// The origin of the wall clock [`time`] falls back to.
    static START: Instant = Instant::now();
}

#[test]
fn bench_resnet50_layers() {
    if cfg!(miri) {
        return; // the smallest shape is millions of MACs
    }
    let report = std::env::var_os("RESNET_RUNTIME_BENCH").is_some_and(|v| v == "1");
    let min = if report {
        Duration::from_millis(200)
    } else {
        Duration::ZERO
    };
    let peak: Option<f64> = std::env::var("RESNET_RUNTIME_PEAK")
        .ok()
        .and_then(|v| v.parse().ok());
    if report {
        println!(
            "GFLOP/s = 2 * MACs / s, one thread; const: conv2d::<S> on {:?}; then conv2d_dyn's instance per engine",
            crate::isa::isa()
        );
    }
    // `RESNET_RUNTIME_BENCH_ONLY=text` times only the shapes whose label contains `text`.
    let only = std::env::var("RESNET_RUNTIME_BENCH_ONLY").unwrap_or_default();
    let cold = std::env::var_os("RESNET_RUNTIME_BENCH_COLD").is_some_and(|v| v == "1");
    let mut rng = Rng::new(1);
    for &(label, g, run) in SHAPES.iter().filter(|s| s.0.contains(only.as_str())) {
        if !report && g.macs() > 20_000_000 && cfg!(debug_assertions) {
            continue; // unoptimized test builds only smoke-test the small shapes
        }
        let d = ConvData::random(g, &mut rng);
        let mut packed = vec![0.0; packed_conv_len(&g)];
        pack_conv(&g, &d.w, g.shortcut.map(|_| &d.ws[..]), &mut packed);
        let sc = g.shortcut.map(|_| &d.shortcut[..]);
        let res = if g.residual {
            Residual::Separate(&d.residual)
        } else {
            Residual::None
        };
        let mut out = vec![0.0; g.output_len()];
        let t_const = if cold {
            time_cold(&packed, || {
                run(&packed, &d.bias, &d.input, sc, res, black_box(&mut out))
            })
        } else {
            time(min, || {
                run(&packed, &d.bias, &d.input, sc, res, black_box(&mut out))
            })
        };
        let flop = 2.0 * g.macs() as f64;
        let mut line = format!(
            "{label:46} {:7.1} MMAC  const {:6.1}",
            g.macs() as f64 / 1e6,
            flop / t_const / 1e9
        );
        if let Some(peak) = peak {
            line += &format!(" ({:3.0}%)", 100.0 * flop / t_const / 1e9 / peak);
        }
        for engine in engines() {
            let mut out_dyn = vec![0.0; g.output_len()];
            let gd = black_box(g);
            let ops = Operands {
                engine,
                ..Operands::new(&packed, &d.bias, &d.input, sc, res)
            };
            let t = time(min, || {
                conv_jobs(Dyn(&gd), &ops, 0..job_count(&gd), black_box(&mut out_dyn))
            });
            if engine.isa() == Engine::chosen().isa() {
                assert!(out.iter().zip(&out_dyn).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
            line += &format!("  {:?} {:6.1}", engine.isa(), flop / t / 1e9);
        }
        if report {
            println!("{line}");
        }
    }
}
