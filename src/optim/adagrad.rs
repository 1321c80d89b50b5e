//! Adagrad (`torch.optim.Adagrad`).

use crate::dispatch::Backend;
use crate::error::{Error, non_negative_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane};
use crate::optimizer::optimizer_traits;

/// Adagrad hyperparameters, with `torch.optim.Adagrad`'s names and defaults.
///
/// Per element, at step `t` (starting at 1), with `g` the gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:  g = g + weight_decay · p
/// clr = lr / (1 + (t − 1) · lr_decay)            (f64, once per step)
/// s = s + g · g
/// p = p − clr · g / (√s + eps)
/// ```
///
/// **State**: `n` values (the running sum of squares `s`). torch creates it filled with
/// `initial_accumulator_value`, not zeros: [`Optimizer::init_state`](crate::Optimizer::init_state) writes that value, and a
/// zero-filled buffer is a fresh state only when `initial_accumulator_value == 0` (the default).
///
/// # Example
/// ```
/// use fused_optim::Adagrad;
///
/// let adagrad = Adagrad { lr: 0.1, ..Adagrad::default() };
/// let mut params = [1.0f32, -1.0];
/// let mut state = [0.0f32; 2]; // adagrad.state_len(2)
/// adagrad.step(1, &mut params, &[2.0, -0.5], &mut state)?;
/// // First step: s = g², so p moves by lr · g/|g| = ±lr.
/// assert_eq!(state, [4.0, 0.25]);
/// assert!((params[0] - 0.9).abs() < 1e-6 && (params[1] + 0.9).abs() < 1e-6);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adagrad {
    /// Learning rate (default `1e-2`).
    pub lr: f64,
    /// Learning-rate decay: step `t` uses `lr / (1 + (t − 1)·lr_decay)` (default `0`).
    pub lr_decay: f64,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: f64,
    /// Initial value of the sum of squares (default `0`).
    pub initial_accumulator_value: f64,
    /// Added to the denominator, outside the square root (default `1e-10`).
    pub eps: f64,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for Adagrad {
    #[inline]
    fn default() -> Self {
        Adagrad {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

impl Adagrad {
    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ lr_decay`, `0 ≤ weight_decay`,
    /// `0 ≤ initial_accumulator_value`, `0 ≤ eps` (NaN fails).
    ///
    /// ```
    /// use fused_optim::Adagrad;
    /// assert!(Adagrad::default().validate().is_ok());
    /// assert!(Adagrad { lr_decay: -0.1, ..Adagrad::default() }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        non_negative_f32("lr_decay", self.lr_decay)?;
        non_negative_f32("weight_decay", self.weight_decay)?;
        non_negative_f32("initial_accumulator_value", self.initial_accumulator_value)?;
        non_negative_f32("eps", self.eps)
    }

    /// State length for `n` parameters: `n` (the sum of squares).
    ///
    /// ```
    /// assert_eq!(fused_optim::Adagrad::default().state_len(10), 10);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n
    }

    /// Validates and computes step `step`'s scalars: `clr = lr / (1 + (step − 1)·lr_decay)`
    /// in f64, rounded once to f32.
    ///
    /// ```
    /// use fused_optim::Adagrad;
    /// let plan = Adagrad { lr: 1.0, lr_decay: 0.5, eps: 0.0, ..Adagrad::default() }.plan(3)?;
    /// let (mut p, mut s) = ([0.0f32], [0.0f32]);
    /// plan.apply(&mut p, &[1.0], &mut s)?;
    /// assert_eq!(p, [-0.5]); // clr = 1 / (1 + 2·0.5)
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<AdagradPlan, Error> {
        self.validate()?;
        let t = step_number(step)?;
        let clr = self.lr / (1.0 + (t - 1.0) * self.lr_decay);
        Ok(AdagradPlan {
            step,
            neg_clr: (-clr) as f32,
            eps: self.eps as f32,
            prep: GradPrep::l2(self.maximize, self.weight_decay),
        })
    }

    /// One step on one tensor: [`Adagrad::plan`] then [`AdagradPlan::apply`].
    ///
    /// ```
    /// use fused_optim::{Adagrad, Optimizer};
    /// let opt = Adagrad { initial_accumulator_value: 0.1, ..Adagrad::default() };
    /// let mut p = [0.5f32; 4];
    /// let mut s = [0.0f32; 4];
    /// opt.init_state(&mut s)?; // torch's fresh state: filled with 0.1
    /// opt.step(1, &mut p, &[1.0; 4], &mut s)?;
    /// assert_eq!(s, [1.1; 4]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Adagrad::plan`] and [`AdagradPlan::apply`]; nothing is written on error.
    #[inline]
    pub fn step(
        &self,
        step: u64,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        self.plan(step)?.apply(params, grads, state)
    }
}

/// Adagrad's precomputed step: build it with [`Adagrad::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdagradPlan {
    step: u64,
    neg_clr: f32,
    eps: f32,
    prep: GradPrep,
}

impl AdagradPlan {
    /// Updates one tensor on [`Backend::best`]; `state` is the sum of squares (`n` values).
    ///
    /// ```
    /// let plan = fused_optim::Adagrad::default().plan(1)?;
    /// let mut p = [1.0f32; 3];
    /// assert!(plan.apply(&mut p, &[1.0; 3], &mut [0.0; 2]).is_err()); // needs 3 values
    /// assert_eq!(p, [1.0; 3]); // nothing written
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `grads.len() == n` and `state.len() == n`.
    #[inline]
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// As [`AdagradPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Adagrad, Backend};
    /// let plan = Adagrad::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut [0.0; 19])?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut [0.0; 19])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`AdagradPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        format::run_f32::<_, 1>(backend, self, params, grads, state)
    }

    /// Updates one piece of a tensor in any storage format; see
    /// [`AdamPlan::apply_piece`](crate::AdamPlan::apply_piece) for `offset` and the formats.
    ///
    /// # Errors
    /// As [`AdamPlan::apply_piece`](crate::AdamPlan::apply_piece); nothing is written on error.
    #[inline]
    pub fn apply_piece(
        &self,
        backend: Backend,
        offset: usize,
        params: Params<'_>,
        grads: Grads<'_>,
        state: State<'_>,
    ) -> Result<(), Error> {
        format::run::<_, 1>(backend, self, self.step, offset, params, grads, state)
    }
}

impl Kernel<1> for AdagradPlan {
    const SIGNED: [bool; 1] = [false];
    /// The per-element update, in torch's order (see [`Adagrad`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [s]: &mut [L; 1]) -> L {
        let (p, g) = self.prep.apply(p, g);
        *s = *s + g * g;
        let std = s.sqrt() + L::splat(self.eps);
        p + L::splat(self.neg_clr) * g / std
    }
}

optimizer_traits!(
    Adagrad,
    AdagradPlan,
    fill = |o| o.initial_accumulator_value as f32
);

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::Optimizer;

    #[test]
    fn defaults_are_torchs() {
        let a = Adagrad::default();
        assert_eq!((a.lr, a.lr_decay, a.weight_decay), (1e-2, 0.0, 0.0));
        assert_eq!(
            (a.initial_accumulator_value, a.eps, a.maximize),
            (0.0, 1e-10, false)
        );
    }

    #[test]
    fn validation_follows_torch() {
        let d = Adagrad::default();
        assert!(
            Adagrad {
                lr: 0.0,
                eps: 0.0,
                lr_decay: 0.0,
                ..d
            }
            .validate()
            .is_ok()
        );
        for (name, bad) in [
            ("lr", Adagrad { lr: -1e-3, ..d }),
            (
                "lr_decay",
                Adagrad {
                    lr_decay: -1.0,
                    ..d
                },
            ),
            (
                "weight_decay",
                Adagrad {
                    weight_decay: f64::NAN,
                    ..d
                },
            ),
            (
                "initial_accumulator_value",
                Adagrad {
                    initial_accumulator_value: -0.1,
                    ..d
                },
            ),
            ("eps", Adagrad { eps: f64::NAN, ..d }),
        ] {
            match bad.plan(1) {
                Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(d.plan(0), Err(Error::InvalidStep(0)));
    }

    #[test]
    fn state_len_and_init_state() {
        let a = Adagrad {
            initial_accumulator_value: 0.25,
            ..Adagrad::default()
        };
        assert_eq!(a.state_len(7), 7);
        assert_eq!(a.state_len(usize::MAX), usize::MAX);
        let mut s = [9.0f32; 3];
        Optimizer::init_state(&a, &mut s).unwrap();
        assert_eq!(s, [0.25; 3]);
    }

    #[test]
    fn lr_decay_divides_lr_by_one_plus_decayed_steps() {
        // lr = 3, lr_decay = 0.25: clr(t) = 3 / (1 + (t − 1)/4) → t = 1: 3, t = 5: 1.5, t = 9: 1.
        let opt = Adagrad {
            lr: 3.0,
            lr_decay: 0.25,
            eps: 0.0,
            ..Adagrad::default()
        };
        for (t, clr) in [(1, 3.0f32), (5, 1.5), (9, 1.0)] {
            let (mut p, mut s) = ([0.0f32], [0.0f32]);
            opt.step(t, &mut p, &[2.0], &mut s).unwrap();
            // s = 4, √s = 2, p = −clr · 2/2.
            assert_eq!(p, [-clr], "step {t}");
        }
    }

    #[test]
    fn initial_accumulator_value_enters_the_first_denominator() {
        // s0 = 3 (torch fills the sum with it), g = 1 → s = 4, √s = 2, p = 1 − 0.5·1/2.
        let opt = Adagrad {
            lr: 0.5,
            eps: 0.0,
            initial_accumulator_value: 3.0,
            ..Adagrad::default()
        };
        let mut s = [0.0f32; 2];
        Optimizer::init_state(&opt, &mut s).unwrap();
        let mut p = [1.0f32, 1.0];
        opt.step(1, &mut p, &[1.0, -1.0], &mut s).unwrap();
        assert_eq!(s, [4.0, 4.0]);
        assert_eq!(p, [0.75, 1.25]);
    }

    #[test]
    fn eps_is_outside_the_square_root_and_decay_is_l2() {
        // g = 1 + 0.5·2 = 2, s = 4, denominator √4 + 2 = 4, p = 2 − 1·2/4.
        let opt = Adagrad {
            lr: 1.0,
            eps: 2.0,
            weight_decay: 0.5,
            ..Adagrad::default()
        };
        let (mut p, mut s) = ([2.0f32], [0.0f32]);
        opt.step(1, &mut p, &[1.0], &mut s).unwrap();
        assert_eq!((p, s), ([1.5], [4.0]));
        // maximize climbs: g = −1 + 0.5·1.5 = −0.25, s = 4.0625, p = 1.5 + 0.25/(√4.0625 + 2).
        let max = Adagrad {
            maximize: true,
            ..opt
        };
        max.step(2, &mut p, &[1.0], &mut s).unwrap();
        assert_eq!(s, [4.0625]);
        let expected = 1.5 + 0.25 / (4.0625f64.sqrt() + 2.0);
        assert!((f64::from(p[0]) - expected).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    fn mismatched_lengths_write_nothing() {
        let plan = Adagrad::default().plan(1).unwrap();
        let mut p = [1.0f32; 4];
        let mut s = [0.0f32; 4];
        assert!(plan.apply(&mut p, &[1.0; 3], &mut s).is_err());
        assert!(plan.apply(&mut p, &[1.0; 4], &mut s[..3]).is_err());
        assert_eq!((p, s), ([1.0; 4], [0.0; 4]));
    }
}
