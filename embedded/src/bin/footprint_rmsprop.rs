//! Footprint: RMSprop (every option compiled in, centered and momentum included).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint("rmsprop", Some(fused_optim::RMSprop::default()))
}
#[cfg(not(target_os = "none"))]
fn main() {}
