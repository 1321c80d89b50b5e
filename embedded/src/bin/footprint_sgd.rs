//! Footprint: SGD with momentum (every option compiled in).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint(
        "sgd",
        Some(fused_optim::Sgd {
            momentum: 0.9,
            ..Default::default()
        }),
    )
}
#[cfg(not(target_os = "none"))]
fn main() {}
