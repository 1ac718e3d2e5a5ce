/* Reset, vector table and fault handlers for the MPS2 AN386 (Cortex-M4F) under QEMU.
 *
 * No vendor startup file or CMSIS: the harness needs only the reset vector, SysTick (to count
 * instructions) and faults that end the run with a message instead of hanging QEMU. */
#include <stdint.h>

extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_top[];

int main(void);
void _exit(int status); /* newlib rdimon: SYS_EXIT */
void SysTick_Handler(void); /* harness.c */

/* Semihosting without newlib, for faults, when newlib's state cannot be trusted. */
static void semihost_write0(const char *text)
{
    register uint32_t op __asm__("r0") = 0x04; /* SYS_WRITE0 */
    register const char *arg __asm__("r1") = text;
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(arg) : "memory");
}

static void semihost_fail(void)
{
    /* SYS_EXIT with ADP_Stopped_RunTimeError: QEMU exits with status 1. */
    register uint32_t op __asm__("r0") = 0x18;
    register uint32_t arg __asm__("r1") = 0x20023;
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(arg) : "memory");
    for (;;) {
    }
}

static void fault(const char *text)
{
    semihost_write0(text);
    semihost_fail();
}

void HardFault_Handler(void)
{
    fault("error: HardFault\n");
}

void MemManage_Handler(void)
{
    fault("error: MemManage fault\n");
}

void BusFault_Handler(void)
{
    fault("error: BusFault\n");
}

void UsageFault_Handler(void)
{
    fault("error: UsageFault\n");
}

void Default_Handler(void)
{
    fault("error: unexpected interrupt\n");
}

/* Everything before main must not touch the FPU: with -mfloat-abi=hard, GCC may use FPU
 * registers in any function, and the FPU is off until CPACR grants access. */
static void __attribute__((noinline)) init_and_run(void)
{
    const uint32_t *src = __data_load;
    uint32_t *dst;
    for (dst = __data_start; dst < __data_end; dst++) {
        *dst = *src++;
    }
    for (dst = __bss_start; dst < __bss_end; dst++) {
        *dst = 0;
    }
    _exit(main());
}

void Reset_Handler(void)
{
    /* CPACR: full access to the coprocessors CP10 and CP11, the FPU. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    init_and_run();
}

typedef void (*vector)(void);

/* The initial stack pointer, then the 15 system exceptions. The AN386's interrupts would
 * follow; none is enabled in the NVIC, so none can be taken. */
__attribute__((section(".vector_table"), used)) static const vector vector_table[16] = {
    (vector)(uintptr_t)__stack_top,
    Reset_Handler,
    Default_Handler, /* NMI */
    HardFault_Handler,
    MemManage_Handler,
    BusFault_Handler,
    UsageFault_Handler,
    0,
    0,
    0,
    0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
};
