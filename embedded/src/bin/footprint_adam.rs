//! Footprint: Adam (every option compiled in, AMSGrad and AdamW included).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint("adam", Some(fused_optim::Adam::default()))
}
#[cfg(not(target_os = "none"))]
fn main() {}
