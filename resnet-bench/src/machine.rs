//! What the numbers were measured on: they mean little without the CPU, the core count and
//! the compiler.

use serde::Serialize;

/// The machine and the build.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// `model name` from `/proc/cpuinfo` (or "unknown").
    pub cpu: String,
    /// CPUs this process may use.
    pub cpus: usize,
    /// SIMD extensions the CPU has, of those the kernels can use.
    pub simd: Vec<&'static str>,
    /// The instruction set the conv kernels run on (`resnet_runtime::isa`), e.g. `Avx512`.
    pub isa: String,
    /// `rustc -V` of the build.
    pub rustc: &'static str,
    /// This crate's version.
    pub resnet_bench: &'static str,
    /// The 1-minute load average when the benchmark started (Linux): above about 0.5, other
    /// processes compete for the cores and the timings are noisier.
    pub load_average: Option<f64>,
}

impl Machine {
    /// Reads the machine's description.
    pub fn current() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            simd: simd(),
            isa: format!("{:?}", resnet_runtime::isa()),
            rustc: env!("RESNET_BENCH_RUSTC"),
            resnet_bench: env!("CARGO_PKG_VERSION"),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse().ok()),
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn simd() -> Vec<&'static str> {
    let mut found = Vec::new();
    if std::is_x86_feature_detected!("avx2") {
        found.push("avx2");
    }
    if std::is_x86_feature_detected!("fma") {
        found.push("fma");
    }
    if std::is_x86_feature_detected!("avx512f") {
        found.push("avx512f");
    }
    found
}

#[cfg(target_arch = "aarch64")]
fn simd() -> Vec<&'static str> {
    if std::arch::is_aarch64_feature_detected!("neon") {
        vec!["neon"]
    } else {
        Vec::new()
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd() -> Vec<&'static str> {
    Vec::new()
}
