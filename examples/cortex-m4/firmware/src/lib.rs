//! The harness of the Rust firmware: runs one inference on the MPS2 AN386 under QEMU and
//! prints, over semihosting, what the host needs to check and measure it. It mirrors
//! `../c/harness.c` line for line, so that both languages are measured the same way:
//!
//! ```text
//! resnetc-cm4 <model>
//! calibration <instructions> <ticks>
//! ticks <ticks of one inference>
//! stack <bytes>
//! arena <bytes>
//! io <bytes>
//! status 0
//! out <index> <bits>            (one per output element)
//! end
//! ```
//!
//! Every number is hexadecimal: exact for floats (their bit patterns), and without
//! `core::fmt`, so the harness adds almost nothing to the code being measured.
#![no_std]

use core::sync::atomic::{AtomicU32, Ordering, compiler_fence};

use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hio};

/// What one binary runs: a model's buffers, its test input and its `forward`.
#[derive(Debug)]
pub struct Run<'a, const IN: usize, const OUT: usize> {
    /// The spec's name, printed first.
    pub name: &'a str,
    /// The input as little-endian `f32` bytes (in flash).
    pub test_input: &'a [u8],
    /// Where the input goes: RAM, as an image from a sensor would.
    pub input: &'a mut [f32; IN],
    /// The output.
    pub output: &'a mut [f32; OUT],
    /// Bytes of the model's arena (the buffer `forward` owns).
    pub arena_bytes: usize,
}

/// Runs `forward` once on the test input, prints the report and ends the QEMU run.
pub fn run<const IN: usize, const OUT: usize>(
    r: Run<'_, IN, OUT>,
    forward: impl FnOnce(&[f32; IN], &mut [f32; OUT]),
) -> ! {
    // Painted first, so that printing (deeper than anything else here) is not measured.
    paint_stack();
    let mut syst = cortex_m::Peripherals::take()
        .map(|p| p.SYST)
        .unwrap_or_else(|| fail(b"error: the core peripherals were already taken\n"));
    systick_start(&mut syst);

    let calib_start = systick_ticks();
    calibrate();
    let calib_ticks = systick_ticks() - calib_start;

    for (x, b) in r.input.iter_mut().zip(r.test_input.chunks_exact(4)) {
        *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    // `forward` is inlined here: the fences keep its memory accesses between the two readings.
    let start = systick_ticks();
    compiler_fence(Ordering::SeqCst);
    forward(r.input, r.output);
    compiler_fence(Ordering::SeqCst);
    let ticks = systick_ticks() - start;
    let stack = stack_used();

    let mut out = Report::open();
    out.put(b"resnetc-cm4 ");
    out.put(r.name.as_bytes());
    out.put(b"\n");
    out.put(b"calibration");
    out.put_hex(2 * u64::from(CALIBRATION_LOOPS));
    out.put_hex(calib_ticks);
    out.put(b"\n");
    out.line(b"ticks", ticks);
    out.line(b"stack", u64::from(stack));
    out.line(b"arena", r.arena_bytes as u64);
    out.line(
        b"io",
        (core::mem::size_of_val(r.input) + core::mem::size_of_val(r.output)) as u64,
    );
    // `forward` returns nothing: its shapes are checked when it is compiled.
    out.line(b"status", 0);
    for (i, y) in r.output.iter().enumerate() {
        out.put(b"out");
        out.put_hex(i as u64);
        out.put_hex(u64::from(y.to_bits()));
        out.put(b"\n");
    }
    out.put(b"end\n");
    debug::exit(debug::EXIT_SUCCESS);
    // Only without a debugger or QEMU attached does `exit` return.
    loop {
        cortex_m::asm::wfi();
    }
}

// ---- instruction counting ----
// SysTick on the processor clock, which QEMU's AN386 runs at 25 MHz: under `-icount shift=0`
// one instruction is one nanosecond of virtual time, so one tick is 40 instructions. A known
// loop (`calibrate`) lets the host check that ratio instead of trusting it.

/// The counter is 24 bits.
const SYST_RELOAD: u32 = 0x00FF_FFFF;

static SYSTICK_WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    SYSTICK_WRAPS.fetch_add(1, Ordering::Relaxed);
}

fn systick_start(syst: &mut SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYST_RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// A tick count, meaningful as a difference of two. Reads again if the counter wrapped
/// between the two loads, and while it reads 0: that is the one tick in which the wrap
/// interrupt may or may not have been taken yet (and, right after `systick_start`, the tick
/// before the first reload), so the count would be off by a whole period. Waiting costs at
/// most one tick.
fn systick_ticks() -> u64 {
    loop {
        let wraps = SYSTICK_WRAPS.load(Ordering::Relaxed);
        let value = SYST::get_current();
        if value != 0 && wraps == SYSTICK_WRAPS.load(Ordering::Relaxed) {
            return u64::from(wraps) * u64::from(SYST_RELOAD + 1) + u64::from(SYST_RELOAD - value);
        }
    }
}

const CALIBRATION_LOOPS: u32 = 1_000_000;

/// Exactly `2 * CALIBRATION_LOOPS` instructions: `subs` and `bne`, once per iteration.
#[inline(never)]
fn calibrate() {
    // SAFETY: the loop only decrements a register it owns and sets the flags.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) CALIBRATION_LOOPS => _,
            options(nomem, nostack),
        );
    }
}

// ---- stack high-water mark ----
// Everything below the current stack pointer is painted before the inference; afterwards the
// lowest word no longer holding the paint is as deep as the stack went.

const PAINT: u32 = 0xC5C5_C5C5;

unsafe extern "C" {
    /// The lowest address of the stack (cortex-m-rt's link.x: the end of `.bss`/`.uninit`).
    static mut _stack_end: u32;
    /// The initial stack pointer, the top of RAM.
    static mut _stack_start: u32;
}

fn paint_stack() {
    // In assembly, so that the stack pointer is read where the painting starts: a function
    // prologue placed after a read in Rust could push a return address into the painted area.
    // SAFETY: only the words from the bottom of the stack up to (not including) the stack
    // pointer are written: memory that no live frame uses, and nothing else runs (SysTick is
    // not started yet).
    unsafe {
        core::arch::asm!(
            "mov {sp}, sp",
            "2:",
            "cmp {p}, {sp}",
            "bhs 3f",
            "str {paint}, [{p}], #4",
            "b 2b",
            "3:",
            p = inout(reg) &raw mut _stack_end => _,
            sp = out(reg) _,
            paint = in(reg) PAINT,
            options(nostack),
        );
    }
}

fn stack_used() -> u32 {
    let top = &raw const _stack_start;
    let mut p = &raw const _stack_end;
    // SAFETY: `p` stays within the stack region, which is RAM.
    while p < top && unsafe { p.read_volatile() } == PAINT {
        // SAFETY: as above; `p < top`.
        p = unsafe { p.add(1) };
    }
    (top as usize - p as usize) as u32
}

// ---- output ----

/// Standard output over semihosting, opened once.
struct Report(Option<hio::HostStream>);

impl Report {
    fn open() -> Report {
        Report(hio::hstdout().ok())
    }

    fn put(&mut self, bytes: &[u8]) {
        if let Some(out) = &mut self.0 {
            let _ = out.write_all(bytes);
        }
    }

    fn put_hex(&mut self, mut value: u64) {
        let mut digits = [0u8; 17];
        let mut n = digits.len();
        loop {
            n -= 1;
            digits[n] = b"0123456789abcdef"[(value & 0xF) as usize];
            value >>= 4;
            if value == 0 {
                break;
            }
        }
        n -= 1;
        digits[n] = b' ';
        self.put(&digits[n..]);
    }

    fn line(&mut self, key: &[u8], value: u64) {
        self.put(key);
        self.put_hex(value);
        self.put(b"\n");
    }
}

/// Prints `message` and ends the QEMU run with a failure status.
fn fail(message: &[u8]) -> ! {
    Report::open().put(message);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Ends the run with a message instead of hanging QEMU. The message does not format the
/// panic's payload: that would pull `core::fmt` into the image whose size is measured.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    fail(b"error: panic\n")
}

#[exception]
unsafe fn HardFault(_: &ExceptionFrame) -> ! {
    fail(b"error: HardFault\n")
}
