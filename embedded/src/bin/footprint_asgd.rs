//! Footprint: ASGD (every option compiled in).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint("asgd", Some(fused_optim::Asgd::default()))
}
#[cfg(not(target_os = "none"))]
fn main() {}
