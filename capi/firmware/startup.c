/* Start-up for a C program on QEMU's mps2-an386 (a Cortex-M4F) with newlib and ARM
 * semihosting (arm-none-eabi-gcc --specs=rdimon.specs): the vector table, and a reset handler
 * that turns the FPU on (the Rust library is built for thumbv7em-none-eabihf, hard-float) and
 * enters newlib's _start, which clears .bss, opens the semihosting streams, runs main and
 * passes its return value to exit (QEMU's exit status). A fault ends the run with status 1.
 * Linked with link.ld; see .ci/parts/53-c-firmware.sh. */
#include <stdint.h>
#include <stdlib.h>

extern void _start(void);
extern uint32_t __stack;

void fo_reset(void);
void fo_fault(void);

void fo_reset(void) {
    /* CPACR: full access to CP10 and CP11 (the FPU), then wait for the write to take effect. */
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    _start();
    exit(1);
}

void fo_fault(void) {
    /* SYS_EXIT with ADP_Stopped_RunTimeErrorUnknown: QEMU exits with status 1. */
    __asm__ volatile("mov r0, #0x18\n\tldr r1, =0x20023\n\tbkpt #0xab" ::: "r0", "r1", "memory");
    for (;;) {
    }
}

/* Initial stack pointer, reset, then NMI, HardFault, MemManage, BusFault, UsageFault. */
__attribute__((section(".vectors"), used)) static void (*const vectors[8])(void) = {
    (void (*)(void))&__stack, fo_reset, fo_fault, fo_fault, fo_fault, fo_fault, fo_fault, fo_fault,
};
