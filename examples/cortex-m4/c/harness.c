/* Runs one inference of a model emitted by `resnetc emit c` on the MPS2 AN386 under QEMU and
 * prints, over semihosting, what the host needs to check and measure it.
 *
 * The model comes in through "model.h", which the host writes (`MODEL_*` and `model_forward`
 * naming the emitted `<NAME>_*` and `<name>_forward`), and the test input through
 * `test_input_bits`, the bit patterns of `resnet_compiler::synth::input(shape, 0)`.
 *
 * Everything is printed as hexadecimal integers: exact for floats (their bit patterns), and no
 * division or printf, so the harness adds almost nothing to the code it measures. Lines:
 *
 *     resnetc-cm4 <model>
 *     calibration <instructions> <ticks>
 *     ticks <ticks of one inference>
 *     stack <bytes>
 *     arena <bytes>
 *     io <bytes>
 *     status <forward's return value>
 *     out <index> <bits>            (one per output element)
 *     end
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "model.h"

void initialise_monitor_handles(void); /* newlib rdimon: opens stdout over semihosting */
void SysTick_Handler(void);

extern const uint32_t test_input_bits[MODEL_INPUT_LEN];
extern uint32_t __stack_limit[], __stack_top[];

/* The input lives in RAM, as an image from a sensor would; the table above is in flash. */
static float harness_input[MODEL_INPUT_LEN];
static float harness_output[MODEL_OUTPUT_LEN];
/* The contract of the emitted code: an arena of ARENA_BYTES, aligned to 16 bytes. */
static float harness_arena[(MODEL_ARENA_BYTES + sizeof(float) - 1) / sizeof(float)]
    __attribute__((aligned(16)));

/* ---- instruction counting ----
 * SysTick on the processor clock, which QEMU's AN386 runs at 25 MHz: under `-icount shift=0`
 * one instruction is one nanosecond of virtual time, so one tick is 40 instructions. A known
 * loop (`calibrate`) lets the host check that ratio instead of trusting it. */

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_RELOAD 0xFFFFFFu /* the counter is 24 bits */

static volatile uint32_t systick_wraps;

void SysTick_Handler(void)
{
    systick_wraps++;
}

static void systick_start(void)
{
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* ENABLE | TICKINT | CLKSOURCE (processor clock) */
}

/* A tick count, meaningful as a difference of two. Reads again if the counter wrapped between
 * the two loads, and while it reads 0: that is the one tick in which the wrap interrupt may or
 * may not have been taken yet (and, right after `systick_start`, the tick before the first
 * reload), so the count would be off by a whole period. Waiting costs at most one tick. */
static uint64_t systick_ticks(void)
{
    uint32_t wraps, value;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
    } while (value == 0 || wraps != systick_wraps);
    return (uint64_t)wraps * (SYST_RELOAD + 1u) + (SYST_RELOAD - value);
}

#ifndef CALIBRATION_LOOPS
#define CALIBRATION_LOOPS 1000000u
#endif

/* Exactly 2 * CALIBRATION_LOOPS instructions: `subs` and `bne`, once per iteration. */
static void __attribute__((noinline)) calibrate(void)
{
    uint32_t n = CALIBRATION_LOOPS;
    __asm__ volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

/* ---- stack high-water mark ----
 * Everything below the current stack pointer is painted before the inference; afterwards the
 * lowest word no longer holding the paint is as deep as the stack went. */

#define PAINT 0xC5C5C5C5u

/* In assembly, so that the stack pointer is read where the painting starts: a prologue the
 * compiler placed after a read in C could push a return address into the painted area, and
 * a loop in C could become a call to memset, whose frame would sit there too. Writes the words
 * from the bottom of the stack up to, not including, the stack pointer. */
static void paint_stack(void)
{
    uint32_t *p = __stack_limit;
    uint32_t *sp;
    uint32_t paint = PAINT;
    __asm__ volatile("mov %1, sp\n"
                     "1:\n\t"
                     "cmp %0, %1\n\t"
                     "bhs 2f\n\t"
                     "str %2, [%0], #4\n\t"
                     "b 1b\n"
                     "2:"
                     : "+r"(p), "=&r"(sp)
                     : "r"(paint)
                     : "cc", "memory");
}

static uint32_t stack_used(void)
{
    const volatile uint32_t *p = __stack_limit;
    while (p < __stack_top && *p == PAINT) {
        p++;
    }
    return (uint32_t)((uintptr_t)__stack_top - (uintptr_t)p);
}

/* ---- output ---- */

static void put(const char *text)
{
    (void)write(1, text, strlen(text));
}

static void put_hex(uint64_t value)
{
    char digits[17];
    size_t n = sizeof digits - 1;
    digits[n] = '\0';
    do {
        digits[--n] = "0123456789abcdef"[value & 0xFu];
        value >>= 4;
    } while (value != 0);
    put(" ");
    put(&digits[n]);
}

static void line(const char *key, uint64_t value)
{
    put(key);
    put_hex(value);
    put("\n");
}

int main(void)
{
    uint64_t calib_start, calib_ticks, start, ticks;
    uint32_t stack, bits;
    int status;
    size_t i;

    initialise_monitor_handles();
    /* Painted first, so that printing (deeper than anything else here) is not measured. */
    paint_stack();
    systick_start();

    calib_start = systick_ticks();
    calibrate();
    calib_ticks = systick_ticks() - calib_start;

    memcpy(harness_input, test_input_bits, sizeof harness_input);
    start = systick_ticks();
    status = model_forward(harness_input, harness_output, harness_arena);
    ticks = systick_ticks() - start;
    stack = stack_used();

    put("resnetc-cm4 " MODEL_NAME "\n");
    put("calibration");
    put_hex(2u * CALIBRATION_LOOPS);
    put_hex(calib_ticks);
    put("\n");
    line("ticks", ticks);
    line("stack", stack);
    line("arena", sizeof harness_arena);
    line("io", sizeof harness_input + sizeof harness_output);
    line("status", (uint32_t)status);
    for (i = 0; i < MODEL_OUTPUT_LEN; i++) {
        memcpy(&bits, &harness_output[i], sizeof bits);
        put("out");
        put_hex(i);
        put_hex(bits);
        put("\n");
    }
    put("end\n");
    return status == 0 ? 0 : 1;
}
