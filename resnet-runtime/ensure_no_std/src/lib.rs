//! A `no_std` consumer of resnet-runtime and of generated code.
#![no_std]

pub mod resnet8_cifar {
    include!(concat!(env!("OUT_DIR"), "/resnet8_cifar.rs"));
}

static mut ARENA: resnet8_cifar::Arena = resnet8_cifar::Arena::new();

/// Runs resnet8_cifar from C: `input` holds `INPUT_LEN` floats, `output` `OUTPUT_LEN`.
///
/// # Safety
/// `input` and `output` must be valid for those lengths, and calls must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn probe_forward(input: *const f32, output: *mut f32) {
    // SAFETY: the caller's contract.
    let input = unsafe { &*input.cast::<[f32; resnet8_cifar::INPUT_LEN]>() };
    // SAFETY: the caller's contract.
    let output = unsafe { &mut *output.cast::<[f32; resnet8_cifar::OUTPUT_LEN]>() };
    // SAFETY: calls do not overlap (the caller's contract), so this is the only reference.
    let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    resnet8_cifar::forward(input, output, arena);
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}
