//! `forward` allocates nothing: a counting global allocator around the system one, and
//! forward passes of resnet8_cifar, resnet18 and resnext50_32x4d (grouped convolutions), weights
//! loaded and arena allocated before counting, on 1 and 2 threads. Every forward pass must
//! allocate nothing, with one exception: the runtime starts its worker threads on first use
//! (`resnet_runtime::threads`), so the first forward pass at a thread count above any used
//! before may allocate (what it allocates is printed). After that, nothing, at any thread count.
//!
//! Its own process (`harness = false`), so that no test-harness thread allocates while it
//! counts; every allocation of any thread during a forward pass is counted. Before trusting
//! the counter, it must count one deliberate allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use resnet_bench::models::Net;

/// The system allocator, counting allocations (and bytes) while `COUNTING` is set.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

impl Counting {
    fn record(size: usize) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(size as u64, Ordering::Relaxed);
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; counting
// touches only atomics, never the heap.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::record(layout.size());
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::record(layout.size());
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::record(new_size);
        // SAFETY: the caller's contract for `realloc`, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes requested while `f` runs.
fn count(f: impl FnOnce()) -> (u64, u64) {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    (ALLOCATIONS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst))
}

resnet_macros::resnet! { #[allow(dead_code)] mod resnet8_cifar { spec: "../specs/resnet8_cifar.yaml" } }

/// resnet8_cifar (not among the benchmarked models) behind [`Net`].
struct Cifar {
    weights: resnet8_cifar::Weights,
    input: Box<[f32; resnet8_cifar::INPUT_LEN]>,
    output: Box<[f32; resnet8_cifar::OUTPUT_LEN]>,
    arena: Box<resnet8_cifar::Arena>,
}

impl Net for Cifar {
    fn forward(&mut self) {
        resnet8_cifar::forward(&self.weights, &self.input, &mut self.output, &mut self.arena);
    }
    fn forward_with_hook(&mut self, hook: &mut dyn FnMut(usize)) {
        resnet8_cifar::forward_with_hook(
            &self.weights,
            &self.input,
            &mut self.output,
            &mut self.arena,
            hook,
        );
    }
    fn steps(&self) -> &'static [&'static str] {
        &resnet8_cifar::STEPS
    }
    fn step_macs(&self) -> &'static [u64] {
        &resnet8_cifar::STEP_MACS
    }
    fn output(&self) -> &[f32] {
        &self.output[..]
    }
}

fn cifar() -> Result<Box<dyn Net>, String> {
    let text = include_str!("../../specs/resnet8_cifar.yaml");
    let spec = resnet_compiler::spec::parse_yaml(text, "resnet8_cifar.yaml").map_err(|e| e.to_string())?;
    let c = resnet_compiler::compile(&spec, &Default::default()).map_err(|e| e.to_string())?;
    let bytes = resnet_compiler::weights::synthetic_safetensors(&c.graph, 0);
    let weights = resnet8_cifar::Weights::from_safetensors(&bytes).map_err(|e| e.to_string())?;
    let input = resnet_compiler::synth::input(&spec.input, 0).into_boxed_slice();
    Ok(Box::new(Cifar {
        weights,
        input: input.try_into().map_err(|_| "input length")?,
        output: Box::new([0.0; resnet8_cifar::OUTPUT_LEN]),
        arena: resnet_runtime::zeroed_box(),
    }))
}

/// Loads a model: weights, arena, input and output.
type Loader = fn() -> Result<Box<dyn Net>, String>;

/// A benchmarked model at batch 1, with its synthetic weights.
fn bench_model(name: &str) -> Result<Box<dyn Net>, String> {
    let model = resnet_bench::models::find(name, 1).ok_or_else(|| format!("{name} is not compiled in"))?;
    let prepared = model.prepare().map_err(|e| format!("{e:#}"))?;
    let bytes = resnet_compiler::weights::synthetic_safetensors(&prepared.compilation.graph, 0);
    model.load(&bytes, &prepared.input).map_err(|e| format!("{e:#}"))
}

fn main() -> ExitCode {
    // Without this check a broken counter would pass every assertion below.
    let (n, _) = count(|| drop(std::hint::black_box(Box::new(1u64))));
    if n != 1 {
        eprintln!("error: the counting allocator saw {n} allocations of one Box, not 1");
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    // The most threads any forward pass has used so far: workers start when it grows.
    let mut most_threads = 1;
    let models: [(&str, Loader); 3] = [
        ("resnet8_cifar", cifar),
        ("resnet18", || bench_model("resnet18")),
        ("resnext50_32x4d", || bench_model("resnext50_32x4d")),
    ];
    for (name, load) in models {
        let mut net = match load() {
            Ok(net) => net,
            Err(e) => {
                eprintln!("error: {name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for threads in [1, 2] {
            resnet_runtime::threads::set_threads(threads);
            let may_start_workers = threads > most_threads;
            most_threads = most_threads.max(threads);
            let first = count(|| net.forward());
            let second = count(|| net.forward());
            println!(
                "{name}, {threads} thread(s): first forward {} allocations ({} bytes){}, second {} ({} bytes)",
                first.0,
                first.1,
                if may_start_workers {
                    ", starting the workers"
                } else {
                    ""
                },
                second.0,
                second.1
            );
            if (first.0 != 0 && !may_start_workers) || second.0 != 0 {
                eprintln!("error: {name} allocated during forward on {threads} thread(s)");
                failed = true;
            }
        }
        resnet_runtime::threads::set_threads(1);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        println!("no_alloc: ok");
        ExitCode::SUCCESS
    }
}
