#![doc = include_str!("../README.md")]
#![no_std]
#![doc(test(attr(deny(warnings))))]

#[cfg(test)]
extern crate std;

mod adam;
mod dispatch;
mod error;
mod kernel;
mod lane;
mod optimizer;
mod sgd;

pub use adam::{Adam, AdamPlan};
pub use dispatch::Backend;
pub use error::Error;
pub use optimizer::{Optimizer, StepPlan};
pub use sgd::{Sgd, SgdPlan};

/// Internal pieces exposed for this crate's own tests, benchmarks and fuzzers. Not part of the
/// public API: no stability promise.
#[doc(hidden)]
pub mod __private {}
