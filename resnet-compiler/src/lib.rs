//! `resnetc`: an architecture compiler for ResNets.
//!
//! A YAML spec ([`spec`]) becomes a graph of torchvision modules ([`ir`]); shape inference
//! ([`shape`]) and the fusion passes ([`passes`]) turn it into a flat [`program`] whose
//! every tensor has a place in one statically planned arena ([`plan`]).

pub mod back;
pub mod build;
pub mod cli;
pub mod interp;
pub mod ir;
pub mod passes;
pub mod plan;
pub mod program;
pub mod shape;
pub mod spec;
pub mod summary;
pub mod synth;
pub mod valid;
pub mod weights;

use ir::Graph;
use plan::MemoryPlan;
use program::Program;
use shape::ShapeInfo;
use spec::Spec;

/// How to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Alignment of every arena offset, in bytes (a power of two, at least 4). 64 suits a
    /// cache line and any SIMD width; 4 saves a few bytes per tensor on a microcontroller.
    pub align_bytes: usize,
    /// Whether the 3x3 stride-1 convs on large enough planes run as Winograd F(4x4, 3x3) or,
    /// with 129-256 channels per group, F(2x2, 3x3) ([`program::winograd_pays`]): 4x (2.25x)
    /// fewer multiplies, weights of those layers 4x (1.8x) larger (36 or 16 transformed taps
    /// instead of 9), an error of a few 1e-6 per layer with F(4x4) (about 1e-6 direct, below
    /// with F(2x2)). The C back end always runs direct convolutions.
    pub winograd: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            align_bytes: 64,
            winograd: true,
        }
    }
}

/// Everything the compiler knows about a spec, from the graph as built to the Program.
#[derive(Debug, Clone)]
pub struct Compilation {
    /// The spec.
    pub spec: Spec,
    /// The graph as built, one node per torchvision module call.
    pub graph: Graph,
    /// Its shapes.
    pub shapes: ShapeInfo,
    /// The graph after the passes.
    pub fused: Graph,
    /// Its shapes.
    pub fused_shapes: ShapeInfo,
    /// The memory plan of the fused graph.
    pub plan: MemoryPlan,
    /// The lowered program.
    pub program: Program,
}

/// A compiler failure on a validated spec: always a bug in the compiler, never in the spec.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The graph as built is invalid.
    #[error("internal error: {0}")]
    Pass(#[from] passes::PassError),
}

/// Compiles a validated spec: build, passes, plan, lower. Pure: no file is read or written.
pub fn compile(spec: &Spec, options: &Options) -> Result<Compilation, Error> {
    let graph = Graph::from_spec(spec);
    let passes::Fused {
        input_shapes: shapes,
        graph: fused,
        shapes: fused_shapes,
    } = passes::run(&graph)?;
    let plan = plan::plan(&fused, &fused_shapes, options.align_bytes);
    let program = Program::lower(spec, &fused, &fused_shapes, &plan, options.winograd);
    Ok(Compilation {
        spec: spec.clone(),
        graph,
        shapes,
        fused,
        fused_shapes,
        plan,
        program,
    })
}
