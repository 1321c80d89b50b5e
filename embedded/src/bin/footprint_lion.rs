//! Footprint: Lion (every option compiled in).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint("lion", Some(fused_optim::Lion::default()))
}
#[cfg(not(target_os = "none"))]
fn main() {}
