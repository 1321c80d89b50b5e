//! Footprint: torchao's 8-bit AdamW (every option compiled in) with 8-bit state and bf16
//! parameters with stochastic rounding (bf16 gradients), on 512 values.
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint_bf16_sr_int8("adamw8bit_bf16_sr", fused_optim::TorchaoAdam::adamw8bit())
}
#[cfg(not(target_os = "none"))]
fn main() {}
