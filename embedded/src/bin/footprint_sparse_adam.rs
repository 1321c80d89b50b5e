//! Footprint: SparseAdam (every option compiled in).
#![cfg_attr(target_os = "none", no_std, no_main)]
#[cfg(target_os = "none")]
firmware::entry!(main);
#[cfg(target_os = "none")]
fn main() -> ! {
    firmware::rt::footprint_sparse("sparse_adam", Some(fused_optim::SparseAdam::default()))
}
#[cfg(not(target_os = "none"))]
fn main() {}
