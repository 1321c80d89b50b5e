#![doc = include_str!("../README.md")]
#![no_std]
#![doc(test(attr(deny(warnings))))]

#[cfg(test)]
extern crate std;

// Layout of the source tree (public paths stay flat, through the re-exports below):
// optim/     one file per optimizer: formula, per-step scalars, kernel body, tests
// format/    storage formats: bf16/f16, block-quantized state, stochastic rounding, Kahan
// training/  loss scaling, clipping and schedules
// parallel.rs  multi-core steps (feature `rayon`), over format/split.rs's pieces
// kernel.rs  the driver that owns loads and stores; lane.rs the lane abstraction;
// dispatch/  backend selection, and the only module allowed to opt out of the crate-wide
//            ban on unchecked code (CPU feature detection, intrinsics).
mod dispatch;
mod error;
mod format;
mod kernel;
mod lane;
mod optim;
mod optimizer;
#[cfg(feature = "rayon")]
pub mod parallel;
mod training;

pub use dispatch::Backend;
pub use error::Error;
pub use format::{
    Grads, Params, Pieces, State, StateFormat, StateLayout, StatePlanes, TensorStep, bf16, f16,
};
pub use optim::*;
pub use optimizer::{Optimizer, StepPlan};
#[doc(inline)]
pub use training::{amp, clip, schedule};

/// The guide in `docs/formats.md`, whose Rust example runs with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/formats.md")]
struct FormatsGuide;

/// The guide in `docs/threads.md`, whose Rust example runs with the doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/threads.md")]
struct ThreadsGuide;

/// Internal pieces exposed for this crate's own tests, benchmarks and fuzzers. Not part of the
/// public API: no stability promise.
#[doc(hidden)]
pub mod __private {
    use crate::{Backend, Error, Grads, Params, State, StepPlan};

    /// [`memory_floor`] as a plan for `planes` state planes, so that split and multi-core steps
    /// ([`TensorStep`](crate::TensorStep), `parallel::apply`) can stream the same bytes with no
    /// arithmetic. With `f32` buffers it is the direct driver's pure floor.
    #[derive(Clone, Copy, Debug)]
    pub struct FloorPlan {
        /// State planes (`0..=3`).
        pub planes: usize,
    }

    impl StepPlan for FloorPlan {
        type Scalars = ();

        #[inline]
        fn apply_piece(
            &self,
            backend: Backend,
            offset: usize,
            params: Params<'_>,
            grads: Grads<'_>,
            state: State<'_>,
        ) -> Result<(), Error> {
            use crate::format::run;
            use crate::kernel::Floor;
            match self.planes {
                0 => run::<_, 0>(backend, &Floor, 0, offset, params, grads, state),
                1 => run::<_, 1>(backend, &Floor, 0, offset, params, grads, state),
                2 => run::<_, 2>(backend, &Floor, 0, offset, params, grads, state),
                3 => run::<_, 3>(backend, &Floor, 0, offset, params, grads, state),
                _ => Err(Error::LengthMismatch {
                    what: "state planes",
                    expected: 3,
                    actual: self.planes,
                }),
            }
        }

        #[inline]
        fn scalars_after(&self) {}
    }

    /// Streams a tensor and `planes` state planes (`0..=3`) through the same driver as the
    /// kernels, with no arithmetic: the memory floor for benchmarks.
    ///
    /// # Errors
    /// Lengths that do not fit, an unavailable backend, or more than 3 planes.
    #[inline]
    pub fn memory_floor(
        backend: Backend,
        planes: usize,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        use crate::dispatch::run;
        use crate::kernel::{Floor, split_state};
        let n = params.len();
        match planes {
            0 => run(
                backend,
                &Floor,
                params,
                grads,
                split_state::<0>(n, grads.len(), state)?,
            ),
            1 => run(
                backend,
                &Floor,
                params,
                grads,
                split_state::<1>(n, grads.len(), state)?,
            ),
            2 => run(
                backend,
                &Floor,
                params,
                grads,
                split_state::<2>(n, grads.len(), state)?,
            ),
            3 => run(
                backend,
                &Floor,
                params,
                grads,
                split_state::<3>(n, grads.len(), state)?,
            ),
            _ => Err(Error::InvalidCombination(
                "memory_floor supports 0 to 3 state planes",
            )),
        }
    }
}
