//! Properties over the space of valid specs: block type, stage count, blocks, widths, groups,
//! width per group, dilation, stem, head, and small inputs including odd and non-square ones.
//! For every generated spec: the compiler accepts it; the fused Program, run on the runtime's
//! kernels in the planned arena, agrees with the unfused graph interpreted in f64 (which checks
//! fusion, folding, packing and the memory plan together); and the emitted C gives the same
//! bits as the Program on the runtime's portable kernels (compiled without Winograd, as the C
//! always is).

use std::collections::BTreeMap;
use std::process::Command;

use proptest::prelude::*;
use resnet_compiler::interp::{Kernels, run_graph, run_program, run_program_on};
use resnet_compiler::spec::{Block, HeadKind, RawSpec, Stem};
use resnet_compiler::{Options, compile, synth, weights};

/// A valid spec (by torchvision's rules), small enough to run in milliseconds.
fn spec() -> impl Strategy<Value = RawSpec> {
    let stages = 1usize..=4;
    (stages, any::<bool>(), any::<bool>(), any::<bool>()).prop_flat_map(
        |(stages, bottleneck, cifar, features)| {
            let layers = prop::collection::vec(1u64..=2, stages);
            let widths = prop::collection::vec(prop::sample::select(vec![4u64, 8, 12, 16]), stages);
            let dilation = prop::collection::vec(any::<bool>(), stages - 1);
            let groups = if bottleneck {
                prop::sample::select(vec![1u64, 2, 4]).boxed()
            } else {
                Just(1).boxed()
            };
            let wpg = if bottleneck {
                prop::sample::select(vec![16u64, 32, 64]).boxed()
            } else {
                Just(64).boxed()
            };
            let input = (1u64..=2, 1u64..=3, 1u64..=40, 1u64..=40).prop_map(|(n, c, h, w)| vec![n, c, h, w]);
            let feats = prop::collection::vec(0..stages, 1..=stages);
            (layers, widths, dilation, groups, wpg, input, feats, 1u64..=7).prop_map(
                move |(layers, widths, dilation, groups, wpg, input, feats, classes)| {
                    let mut feats: Vec<String> =
                        feats.into_iter().map(|s| format!("layer{}", s + 1)).collect();
                    feats.dedup();
                    feats.sort();
                    feats.dedup();
                    RawSpec {
                        name: Some("prop".into()),
                        block: Some(if bottleneck {
                            Block::Bottleneck
                        } else {
                            Block::Basic
                        }),
                        layers: Some(layers),
                        groups: Some(groups),
                        width_per_group: Some(wpg),
                        // BasicBlock cannot be dilated (torchvision's rule); bottlenecks can.
                        replace_stride_with_dilation: Some(if bottleneck {
                            dilation
                        } else {
                            vec![false; stages - 1]
                        }),
                        num_classes: Some(classes),
                        input: Some(input),
                        widths: Some(widths),
                        stem: Some(if cifar { Stem::Cifar } else { Stem::Imagenet }),
                        head: Some(if features {
                            HeadKind::Features
                        } else {
                            HeadKind::Classifier
                        }),
                        features: features.then_some(feats),
                    }
                },
            )
        },
    )
}

/// max |a - b| / max |b|.
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - y).abs())
        .fold(0.0, f64::max)
        / scale
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fused_program_agrees_with_the_unfused_graph(raw in spec()) {
        // Some generated specs are invalid on purpose-free grounds (a bottleneck width that
        // rounds to 0); those must be rejected with an error, never accepted or panicked on.
        let Ok(s) = raw.validate() else { return Ok(()) };
        let c = compile(&s, &Options::default()).expect("a valid spec compiles");
        let params: BTreeMap<String, Vec<f32>> = synth::state_dict(&c.graph.state_dict(), 0)
            .into_iter()
            .filter_map(|(p, v)| v.map(|v| (p.name, v)))
            .collect();
        let x = synth::input(&s.input, 0);
        let reference = run_graph(&c.graph, &c.shapes, &params, &x);
        let blob = weights::pack(&c.program, &weights::synthetic_safetensors(&c.graph, 0)).unwrap();
        let ours = run_program(&c.program, &blob, &x);
        prop_assert_eq!(ours.len(), reference.len());
        let err = rel_err(&ours, &reference);
        prop_assert!(err < 1e-4, "{:?}: relative error {}", s, err);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn emitted_c_agrees_with_the_program(raw in spec()) {
        let Ok(s) = raw.validate() else { return Ok(()) };
        let direct = Options {
            winograd: false,
            ..Options::default()
        };
        let c = compile(&s, &direct).unwrap();
        let blob = weights::pack(&c.program, &weights::synthetic_safetensors(&c.graph, 0)).unwrap();
        let x = synth::input(&s.input, 0);
        let expected = run_program_on(&c.program, &blob, &x, Kernels::Portable);
        let files = resnet_compiler::back::c::emit(&c.program, &blob, "a property test");
        let dir = std::env::temp_dir().join(format!("resnetc-prop-{}-{:x}", std::process::id(), rand_suffix(&x)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("prop.h"), &files.header).unwrap();
        std::fs::write(dir.join("prop.c"), &files.source).unwrap();
        std::fs::write(dir.join("prop_weights.c"), &files.weights).unwrap();
        std::fs::write(dir.join("main.c"), MAIN).unwrap();
        let out = Command::new("cc")
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "main.c", "prop.c", "prop_weights.c", "-o", "prop"])
            .current_dir(&dir)
            .output()
            .unwrap();
        prop_assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(dir.join("in.bin"), x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        let status = Command::new(dir.join("prop")).current_dir(&dir).status().unwrap();
        prop_assert!(status.success());
        let y: Vec<f32> = std::fs::read(dir.join("out.bin")).unwrap()
            .chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        std::fs::remove_dir_all(&dir).unwrap();
        prop_assert_eq!(y.len(), expected.len());
        prop_assert!(y.iter().zip(&expected).all(|(a, b)| a.to_bits() == b.to_bits()), "{:?}", s);
    }
}

/// Tells apart the directories of concurrent cases.
fn rand_suffix(x: &[f32]) -> u32 {
    x.iter()
        .fold(x.len() as u32, |h, v| h.rotate_left(5) ^ v.to_bits())
}

const MAIN: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include "prop.h"
int main(void)
{
    static float input[PROP_INPUT_LEN], output[PROP_OUTPUT_LEN];
    void *arena = malloc(PROP_ARENA_BYTES + 16);
    FILE *f = fopen("in.bin", "rb");
    if (arena == NULL || f == NULL || fread(input, sizeof(float), PROP_INPUT_LEN, f) != PROP_INPUT_LEN)
        return 1;
    fclose(f);
    if (prop_forward(input, output, arena) != 0)
        return 2;
    f = fopen("out.bin", "wb");
    if (f == NULL || fwrite(output, sizeof(float), PROP_OUTPUT_LEN, f) != PROP_OUTPUT_LEN)
        return 3;
    fclose(f);
    free(arena);
    return 0;
}
"#;
