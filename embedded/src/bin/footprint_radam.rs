//! Footprint: RAdam (every option compiled in).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint("radam", Some(fused_optim::RAdam::default()))
}
#[cfg(not(target_os = "none"))]
fn main() {}
