//! `set_isa` changes the kernel of every later conv in the process. Alone in its binary:
//! the choice is process-wide, and the library's tests run in parallel.

use resnet_runtime::conv::{conv2d_dyn, conv2d_dyn_portable};
use resnet_runtime::pack::{pack_conv, packed_conv_len};
use resnet_runtime::{ConvGeom, Isa, Residual, isa, set_isa};

/// `conv2d_dyn` or `conv2d_dyn_portable`.
type Conv = fn(&ConvGeom, &[f32], &[f32], &[f32], Option<&[f32]>, Residual<'_>, &mut [f32]);

fn run(f: Conv) -> Vec<f32> {
    let g = ConvGeom {
        n: 1,
        c: 37,
        h: 11,
        w: 13,
        o: 19,
        oh: 11,
        ow: 13,
        k: 3,
        stride: 1,
        pad: 1,
        dilation: 1,
        groups: 1,
        shortcut: None,
        residual: false,
        relu: false,
    };
    // Values whose products and sums round: FMA and multiply-then-add give other bits.
    let mut state = 0x9e37_79b9_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state as f32 / u32::MAX as f32) * 2.0 - 1.0
    };
    let w: Vec<f32> = (0..g.o * g.c * 9).map(|_| next() * 0.1).collect();
    let x: Vec<f32> = (0..g.c * g.h * g.w).map(|_| next()).collect();
    let bias: Vec<f32> = (0..g.o).map(|_| next()).collect();
    let mut packed = vec![0.0; packed_conv_len(&g)];
    pack_conv(&g, &w, None, &mut packed);
    let mut out = vec![f32::NAN; g.output_len()];
    f(&g, &packed, &bias, &x, None, Residual::None, &mut out);
    out
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn set_isa_switches_every_later_conv() {
    let best = isa();
    let portable = bits(&run(conv2d_dyn_portable));
    let chosen = bits(&run(conv2d_dyn));
    if best == Isa::Portable {
        assert_eq!(chosen, portable);
    }
    assert!(set_isa(Isa::Portable));
    assert_eq!(isa(), Isa::Portable);
    assert_eq!(bits(&run(conv2d_dyn)), portable);
    assert!(set_isa(best));
    assert_eq!(isa(), best);
    assert_eq!(bits(&run(conv2d_dyn)), chosen);
    // An instruction set this CPU lacks is refused and changes nothing.
    if let Some(&missing) = Isa::ALL.iter().find(|i| !i.is_available()) {
        assert!(!set_isa(missing));
        assert_eq!(isa(), best);
    }
    if best != Isa::Portable {
        // Fused multiply-adds round once: on this data, some outputs differ.
        assert_ne!(chosen, portable, "{best:?} gave the portable bits");
    }
}
