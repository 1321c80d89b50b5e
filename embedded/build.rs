//! Puts the linker script of the target's board where the link finds it: `memory.x` for
//! cortex-m-rt's `link.x` (mps2-an386 by default, mps2-an505 for the Cortex-M33, the
//! micro:bit with the feature `microbit`), `riscv.x` for RISC-V (QEMU virt). No file in this
//! directory is named `memory.x`: the linker looks in its working directory (this one) first.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
    let memory = if env::var_os("CARGO_FEATURE_MICROBIT").is_some() {
        "memory-microbit.x"
    } else if target.starts_with("thumbv8m.main") {
        "memory-an505.x"
    } else {
        "memory-an386.x"
    };
    fs::copy(memory, out.join("memory.x")).expect("copy the memory map");
    fs::copy("riscv.x", out.join("riscv.x")).expect("copy riscv.x");
    println!("cargo:rustc-link-search={}", out.display());
    for f in [
        "memory-an386.x",
        "memory-an505.x",
        "memory-microbit.x",
        "riscv.x",
        "build.rs",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
}
