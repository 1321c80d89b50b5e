//! Footprint: the harness without an optimizer step (baseline).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint("none", None::<fused_optim::Sgd>)
}
#[cfg(not(target_os = "none"))]
fn main() {}
