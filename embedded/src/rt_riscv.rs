//! A minimal RISC-V (RV32) start-up for QEMU's `virt` machine with `-bios none`: the hart
//! starts in machine mode at `_start` (the first byte of RAM, where `riscv.x` puts it), which
//! sets the global and stack pointers, points the trap vector at a handler that ends the run
//! with a failure, turns the FPU on (the `F` extension: `riscv32imafc`; a no-op write
//! elsewhere), clears `.bss` and calls the firmware's entry point (see [`crate::entry`]).
//! QEMU loads every section of the ELF file into RAM itself, so there is no `.data` to copy.
#![allow(unsafe_code, reason = "start-up code is assembly")]

core::arch::global_asm!(
    r#"
    .section .init, "ax"
    .global _start
_start:
    .option push
    .option norelax
    la gp, __global_pointer$
    .option pop
    la sp, _stack_top
    la t0, fused_optim_firmware_trap
    csrw mtvec, t0
    li t0, 0x2000
    csrs mstatus, t0
    la t0, __bss_start
    la t1, __bss_end
1:
    bgeu t0, t1, 2f
    sw zero, 0(t0)
    addi t0, t0, 4
    j 1b
2:
    call fused_optim_firmware_entry
3:
    j 3b

    .section .text.fused_optim_firmware_trap, "ax"
    .balign 16
fused_optim_firmware_trap:
    li a0, 0x18
    li a1, 0x20023
    .option push
    .option norvc
    .balign 16
    slli x0, x0, 0x1f
    ebreak
    srai x0, x0, 7
    .option pop
4:
    j 4b
"#
);
