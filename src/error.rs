//! The crate's one error type.

use core::fmt;

use crate::Backend;

/// Why a plan could not be built or a step could not run.
///
/// Every error is returned **before anything is written**: parameters, gradients and state are
/// exactly as they were.
///
/// # Example
/// ```
/// use fused_optim::{Adam, Error};
/// let bad = Adam { lr: -1.0, ..Adam::default() };
/// let err = bad.plan(1).unwrap_err();
/// assert!(matches!(err, Error::InvalidHyperparameter { name: "lr", .. }));
/// assert_eq!(err.to_string(), "invalid lr: -1 (must be >= 0)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A hyperparameter is outside the range torch accepts (or is NaN).
    InvalidHyperparameter {
        /// The hyperparameter's torch name, e.g. `"lr"` or `"betas[1]"`.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// The rule it broke, e.g. `"must be >= 0"`.
        requirement: &'static str,
    },
    /// A combination of hyperparameters torch rejects, e.g. nesterov without momentum.
    InvalidCombination(&'static str),
    /// Step numbers start at 1 (torch increments its counter before the first update).
    InvalidStep(u64),
    /// A buffer has the wrong length.
    LengthMismatch {
        /// Which buffer: `"grads"` or `"state"`.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        actual: usize,
    },
    /// The backend was forced but this CPU cannot run it.
    BackendUnavailable(Backend),
    /// A value that must be finite is NaN or ±Inf, e.g. the total gradient norm when
    /// clipping with `error_if_nonfinite`.
    NonFinite {
        /// What was measured, e.g. `"total_norm"`.
        what: &'static str,
        /// The value found.
        value: f64,
    },
    /// A piece of a tensor with block-quantized state starts inside a block: pieces must start
    /// at a multiple of the block size (see [`StateFormat::block`](crate::StateFormat::block)).
    Misaligned {
        /// The piece's first element within the whole tensor.
        offset: usize,
        /// The block size it must be a multiple of.
        block: usize,
    },
    /// A schedule was asked for a step past its end (`OneCycleLR` beyond `total_steps`).
    StepOutOfRange {
        /// The step asked for.
        step: u64,
        /// The last valid step.
        last: u64,
    },
    /// A row index of a sparse gradient ([`SparseGrad`](crate::SparseGrad)) is negative or not
    /// below the table's number of rows.
    IndexOutOfRange {
        /// Its position in the gradient's `indices`.
        position: usize,
        /// The table's number of rows.
        rows: usize,
    },
    /// The row indices of a sparse gradient ([`SparseGrad`](crate::SparseGrad)) are not
    /// strictly increasing (unsorted, or a row repeated): coalesce them first.
    IndicesNotSorted {
        /// The first position whose index is not greater than the one before it.
        position: usize,
    },
}

impl fmt::Display for Error {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidHyperparameter {
                name,
                value,
                requirement,
            } => {
                write!(f, "invalid {name}: {value} ({requirement})")
            }
            Error::InvalidCombination(why) => f.write_str(why),
            Error::InvalidStep(step) => write!(f, "invalid step {step}: steps are numbered from 1"),
            Error::LengthMismatch {
                what,
                expected,
                actual,
            } => {
                write!(f, "{what} has length {actual}, expected {expected}")
            }
            Error::BackendUnavailable(b) => write!(f, "backend {b} is not available on this CPU"),
            Error::NonFinite { what, value } => write!(f, "{what} is non-finite: {value}"),
            Error::Misaligned { offset, block } => write!(
                f,
                "a piece starting at element {offset} is not aligned to the state's blocks of {block}"
            ),
            Error::StepOutOfRange { step, last } => {
                write!(f, "step {step} is past the schedule's last step {last}")
            }
            Error::IndexOutOfRange { position, rows } => write!(
                f,
                "indices[{position}] is not a row of a table of {rows} rows"
            ),
            Error::IndicesNotSorted { position } => write!(
                f,
                "indices[{position}] is not greater than indices[{}]: row indices must be \
                 sorted and unique",
                position.saturating_sub(1)
            ),
        }
    }
}

impl core::error::Error for Error {}

/// `0 <= x` (NaN rejected), torch's rule for lr, eps, weight_decay and momentum.
#[inline]
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<(), Error> {
    if value >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            requirement: "must be >= 0",
        })
    }
}

/// torch converts a hyperparameter to the tensors' `float` for its operations and raises
/// (`value cannot be converted to type float without overflow`) when a finite value lies beyond
/// `f32`'s range; infinities convert.
#[inline]
fn fits_f32(name: &'static str, value: f64) -> Result<(), Error> {
    if value.is_finite() && libm::fabs(value) > f64::from(f32::MAX) {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            requirement: "must fit in f32 (|value| <= 3.4028235e38)",
        })
    } else {
        Ok(())
    }
}

/// A per-step scalar that torch computes in f64 (Python floats) and converts to `f32` where it
/// meets a tensor, rounded to `f32`; torch raises `value cannot be converted to type float
/// without overflow` when it is finite but beyond `f32`'s range (for example `lr/(1 − β1^t)`
/// with a huge `lr` and `β1` close to 1), and so does the crate, before anything is written.
#[inline]
pub(crate) fn scalar_f32(name: &'static str, value: f64) -> Result<f32, Error> {
    fits_f32(name, value).map(|()| value as f32)
}

/// An optimizer's `0 <= x` hyperparameter, also within `f32`'s range ([`fits_f32`]).
#[inline]
pub(crate) fn non_negative_f32(name: &'static str, value: f64) -> Result<(), Error> {
    non_negative(name, value)?;
    fits_f32(name, value)
}

/// `0 < x` (NaN rejected), torch's rule for SparseAdam's lr and eps, also within `f32`'s range
/// ([`fits_f32`]).
#[inline]
pub(crate) fn positive_f32(name: &'static str, value: f64) -> Result<(), Error> {
    if value > 0.0 {
        fits_f32(name, value)
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            requirement: "must be > 0",
        })
    }
}

/// An optimizer's finite hyperparameter, also within `f32`'s range ([`fits_f32`]).
#[inline]
pub(crate) fn finite_f32(name: &'static str, value: f64) -> Result<(), Error> {
    finite(name, value)?;
    fits_f32(name, value)
}

/// Not NaN, for values torch leaves unchecked and uses only in f64 (ASGD's `t0`): ±Inf pass.
#[inline]
pub(crate) fn not_nan(name: &'static str, value: f64) -> Result<(), Error> {
    if value.is_nan() {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            requirement: "must not be NaN",
        })
    } else {
        Ok(())
    }
}

/// Not NaN and within `f32`'s range ([`fits_f32`]; ±Inf pass), for values torch leaves
/// unchecked but rounds to f32 (Rprop's `step_sizes`).
#[inline]
pub(crate) fn not_nan_f32(name: &'static str, value: f64) -> Result<(), Error> {
    not_nan(name, value)?;
    fits_f32(name, value)
}

/// `0 <= beta < 1` (NaN rejected), torch's rule for betas.
#[inline]
pub(crate) fn beta(name: &'static str, value: f64) -> Result<(), Error> {
    if (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            requirement: "must be in [0, 1)",
        })
    }
}

/// `0 <= x <= 1` (NaN rejected), torch's rule for Adadelta's `rho`.
#[inline]
pub(crate) fn unit_interval(name: &'static str, value: f64) -> Result<(), Error> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            requirement: "must be in [0, 1]",
        })
    }
}

/// Finite (NaN and ±Inf rejected), for values torch leaves unchecked such as dampening.
#[inline]
pub(crate) fn finite(name: &'static str, value: f64) -> Result<(), Error> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            requirement: "must be finite",
        })
    }
}

/// Step numbers start at 1.
#[inline]
pub(crate) fn step_number(step: u64) -> Result<f64, Error> {
    if step == 0 {
        Err(Error::InvalidStep(step))
    } else {
        Ok(step as f64)
    }
}
