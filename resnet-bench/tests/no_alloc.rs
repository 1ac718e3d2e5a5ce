//! `forward` allocates nothing: a counting global allocator around the system one
//! (`resnet_bench::alloc`), and forward passes on 1 and 2 threads, weights loaded and arena
//! allocated before counting, of small models that together make every kind of kernel call
//! the benchmarked ones make: resnet8_cifar (CIFAR stem, basic blocks, Winograd on 32x32),
//! `tests/specs/resnet_small.yaml` (ImageNet stem and max pool, projection shortcuts, Winograd
//! and direct 3x3 convs, batch 2) and `../tests/specs/resnext_tiny.yaml` (grouped and dilated
//! bottlenecks). Small, because this crate is built unoptimized for `cargo test`, where a
//! resnet18 forward pass takes seconds; `resnet-bench` itself counts the allocations of its
//! timed runs of the full-size models (the `allocs` column).
//!
//! Every forward pass must allocate nothing, with one exception: the runtime starts its worker
//! threads on first use (`resnet_runtime::threads`), so the first forward pass at a thread
//! count above any used before may allocate (what it allocates is printed).
//!
//! Its own process (`harness = false`), so that no test-harness thread allocates while it
//! counts; every allocation of any thread during a forward pass is counted. Before trusting
//! the counter, it must count one deliberate allocation.

use std::process::ExitCode;

use resnet_bench::alloc::{Counting, count, counter_works};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One model: `forward` runs it on its synthetic input with its synthetic weights.
trait Forward {
    fn forward(&mut self);
}

/// Defines a module compiled by `resnet!` from `$spec`, a loader with synthetic weights
/// (seed 0) and input, and its [`Forward`].
macro_rules! model {
    ($module:ident, $spec:literal) => {
        mod $module {
            resnet_macros::resnet! { #[allow(dead_code)] pub mod net { spec: $spec } }

            pub struct Loaded {
                weights: net::Weights,
                input: Box<[f32; net::INPUT_LEN]>,
                output: Box<[f32; net::OUTPUT_LEN]>,
                arena: Box<net::Arena>,
            }

            pub fn load() -> Result<Box<dyn super::Forward>, String> {
                let text = include_str!(concat!("../", $spec));
                let spec = resnet_compiler::spec::parse_yaml(text, $spec).map_err(|e| e.to_string())?;
                let c = resnet_compiler::compile(&spec, &Default::default()).map_err(|e| e.to_string())?;
                let bytes = resnet_compiler::weights::synthetic_safetensors(&c.graph, 0);
                let weights = net::Weights::from_safetensors(&bytes).map_err(|e| e.to_string())?;
                let input = resnet_compiler::synth::input(&spec.input, 0).into_boxed_slice();
                Ok(Box::new(Loaded {
                    weights,
                    input: input.try_into().map_err(|_| "input length")?,
                    output: vec![0.0; net::OUTPUT_LEN]
                        .into_boxed_slice()
                        .try_into()
                        .map_err(|_| "output length")?,
                    arena: resnet_runtime::zeroed_box(),
                }))
            }

            impl super::Forward for Loaded {
                fn forward(&mut self) {
                    net::forward(
                        &self.weights,
                        &self.input,
                        &mut self.output,
                        &mut self.arena,
                    );
                }
            }
        }
    };
}

model!(resnet8_cifar, "../specs/resnet8_cifar.yaml");
model!(resnet_small, "tests/specs/resnet_small.yaml");
model!(resnext_tiny, "../tests/specs/resnext_tiny.yaml");

/// Loads a model.
type Loader = fn() -> Result<Box<dyn Forward>, String>;

fn main() -> ExitCode {
    if !counter_works() {
        eprintln!("error: the counting allocator did not count one Box as one allocation");
        return ExitCode::FAILURE;
    }
    let mut failed = false;
    // The most threads any forward pass has used so far: workers start when it grows.
    let mut most_threads = 1;
    let models: [(&str, Loader); 3] = [
        ("resnet8_cifar", resnet8_cifar::load),
        ("resnet_small", resnet_small::load),
        ("resnext_tiny", resnext_tiny::load),
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
            let ((), first) = count(|| net.forward());
            let ((), second) = count(|| net.forward());
            println!(
                "{name}, {threads} thread(s): first forward {} allocations ({} bytes){}, second {} ({} bytes)",
                first.count,
                first.bytes,
                if may_start_workers {
                    ", starting the workers"
                } else {
                    ""
                },
                second.count,
                second.bytes
            );
            if (first.count != 0 && !may_start_workers) || second.count != 0 {
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
