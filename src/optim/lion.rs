//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), in the authors'
//! PyTorch form.

use crate::dispatch::Backend;
use crate::error::{Error, beta, non_negative_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane, sign_torch};
use crate::optimizer::optimizer_traits;

/// Lion hyperparameters, with the names and defaults of the authors' PyTorch code (Lion is not
/// in `torch.optim`).
///
/// Per element, with `g` the gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:  p = p · (1 − lr·weight_decay)        (decay first, scaled by lr)
/// c = β1·m + (1 − β1)·g
/// p = p − lr · sign(c)
/// m = β2·m + (1 − β2)·g
/// ```
///
/// `sign` is torch's CPU `sign`: `+1` for positive, `−1` for negative, and **`0` for ±0 and
/// for NaN**. So an element whose `c` is zero, or NaN (e.g. from a NaN gradient), is not moved
/// by that step (apart from weight decay) while its `m` may become NaN, exactly as the
/// reference code on CPU. There is no bias correction and no eps.
///
/// **State**: `n` values (the momentum `m`); zeros are a fresh state.
///
/// # Example
/// ```
/// use fused_optim::Lion;
///
/// let lion = Lion { lr: 0.25, ..Lion::default() };
/// let mut params = [1.0f32, 1.0, 1.0];
/// let mut state = [0.0f32; 3]; // lion.state_len(3)
/// lion.step(1, &mut params, &[0.3, -7.0, 0.0], &mut state)?;
/// assert_eq!(params, [0.75, 1.25, 1.0]); // ±lr by the sign, 0 for a zero gradient
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lion {
    /// Learning rate (default `1e-4`; the authors advise 3–10× smaller than AdamW's).
    pub lr: f64,
    /// `(β1, β2)`: interpolation for the update's sign, and decay of the momentum
    /// (default `(0.9, 0.99)`).
    pub betas: (f64, f64),
    /// Decoupled weight decay, multiplied by `lr` (default `0`).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for Lion {
    #[inline]
    fn default() -> Self {
        Lion {
            lr: 1e-4,
            betas: (0.9, 0.99),
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl Lion {
    /// Checks `0 ≤ lr`, `0 ≤ β < 1`, `0 ≤ weight_decay` (NaN fails), the rules this crate
    /// applies to every torch optimizer with betas.
    ///
    /// ```
    /// use fused_optim::Lion;
    /// assert!(Lion::default().validate().is_ok());
    /// assert!(Lion { weight_decay: -1.0, ..Lion::default() }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        beta("betas[0]", self.betas.0)?;
        beta("betas[1]", self.betas.1)?;
        non_negative_f32("weight_decay", self.weight_decay)
    }

    /// State length for `n` parameters: `n`.
    ///
    /// ```
    /// assert_eq!(fused_optim::Lion::default().state_len(10), 10);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n
    }

    /// Validates and prepares step `step` (starting at 1; the step number does not enter the
    /// arithmetic): `1 − lr·weight_decay` and `1 − β` in f64, rounded once to f32.
    ///
    /// ```
    /// let plan = fused_optim::Lion { lr: 0.5, ..Default::default() }.plan(1)?;
    /// let mut p = [1.0f32, 1.0];
    /// plan.apply(&mut p, &[-1.0, 1.0], &mut [0.0; 2])?;
    /// assert_eq!(p, [1.5, 0.5]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0. A per-step scalar beyond
    /// `f32` (`1 − lr·weight_decay`, computed in f64 as torch's Python floats) is
    /// [`Error::InvalidHyperparameter`] named after it, as torch's `value cannot be converted
    /// to type float without overflow`.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<LionPlan, Error> {
        self.validate()?;
        step_number(step)?;
        let (b1, b2) = self.betas;
        Ok(LionPlan {
            step,
            neg_lr: (-self.lr) as f32,
            prep: GradPrep::new(self.maximize, self.lr, self.weight_decay, true)?,
            beta1: b1 as f32,
            one_minus_beta1: (1.0 - b1) as f32,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
        })
    }

    /// One step on one tensor: [`Lion::plan`] then [`LionPlan::apply`].
    ///
    /// ```
    /// use fused_optim::Lion;
    /// let mut p = [0.5f32; 4];
    /// let mut s = [0.0f32; 4];
    /// for t in 1..=3 {
    ///     Lion::default().step(t, &mut p, &[1.0; 4], &mut s)?;
    /// }
    /// assert!(p.iter().all(|&x| x < 0.5));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Lion::plan`] and [`LionPlan::apply`]; nothing is written on error.
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

/// Lion's precomputed step: build it with [`Lion::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LionPlan {
    step: u64,
    neg_lr: f32,
    prep: GradPrep,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
}

impl LionPlan {
    /// Updates one tensor on [`Backend::best`]; `state` is the momentum (`n` values).
    ///
    /// ```
    /// let plan = fused_optim::Lion::default().plan(1)?;
    /// let mut p = [1.0f32; 3];
    /// assert!(plan.apply(&mut p, &[1.0; 3], &mut []).is_err()); // needs 3 state values
    /// assert_eq!(p, [1.0; 3]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `grads.len() == n` and `state.len() == n`.
    #[inline]
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// As [`LionPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Backend, Lion};
    /// let plan = Lion { weight_decay: 0.1, ..Lion::default() }.plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut [0.0; 19])?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut [0.0; 19])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`LionPlan::apply`], and [`Error::BackendUnavailable`].
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

impl Kernel<1> for LionPlan {
    const SIGNED: [bool; 1] = [true];
    /// The per-element update, in the reference code's order (see [`Lion`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m]: &mut [L; 1]) -> L {
        let (p, g) = self.prep.apply(p, g);
        let c = *m * L::splat(self.beta1) + g * L::splat(self.one_minus_beta1);
        let p = p + sign_torch(c) * L::splat(self.neg_lr);
        *m = *m * L::splat(self.beta2) + g * L::splat(self.one_minus_beta2);
        p
    }
}

optimizer_traits!(Lion, LionPlan);

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_authors() {
        let l = Lion::default();
        assert_eq!(
            (l.lr, l.betas, l.weight_decay, l.maximize),
            (1e-4, (0.9, 0.99), 0.0, false)
        );
    }

    #[test]
    fn validation() {
        let d = Lion::default();
        assert!(
            Lion {
                lr: 0.0,
                betas: (0.0, 0.0),
                ..d
            }
            .validate()
            .is_ok()
        );
        for (name, bad) in [
            ("lr", Lion { lr: f64::NAN, ..d }),
            ("lr", Lion { lr: -1e-4, ..d }),
            (
                "betas[0]",
                Lion {
                    betas: (1.0, 0.99),
                    ..d
                },
            ),
            (
                "betas[1]",
                Lion {
                    betas: (0.9, -0.5),
                    ..d
                },
            ),
            (
                "weight_decay",
                Lion {
                    weight_decay: f64::NAN,
                    ..d
                },
            ),
        ] {
            match bad.plan(1) {
                Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(d.plan(0), Err(Error::InvalidStep(0)));
    }

    #[test]
    fn state_len_is_one_plane() {
        assert_eq!(Lion::default().state_len(9), 9);
    }

    #[test]
    fn zero_and_nan_interpolations_do_not_move_p() {
        // β1 = 0.5 and m = −g make c exactly 0; a NaN g makes c NaN; m = 0, g = −0 give c = 0.
        let lion = Lion {
            lr: 0.5,
            betas: (0.5, 0.5),
            ..Lion::default()
        };
        let (mut p, mut m) = ([1.0f32, 2.0, 3.0], [-1.0f32, 0.0, 0.0]);
        lion.step(1, &mut p, &[1.0, f32::NAN, -0.0], &mut m)
            .unwrap();
        assert_eq!(p, [1.0, 2.0, 3.0]);
        assert_eq!(m[0], 0.0);
        assert!(m[1].is_nan());
        assert_eq!(m[2], 0.0);
    }

    #[test]
    fn decay_comes_first_and_uses_the_old_momentum_for_the_sign() {
        // lr = 0.5, wd = 0.5 → p·0.75; β = (0.5, 0.75); m = 1, g = −3:
        // c = 0.5 − 1.5 = −1 → p = 4·0.75 + 0.5 = 3.5; m = 0.75 − 0.75 = 0.
        let lion = Lion {
            lr: 0.5,
            betas: (0.5, 0.75),
            weight_decay: 0.5,
            maximize: false,
        };
        let (mut p, mut m) = ([4.0f32], [1.0f32]);
        lion.step(1, &mut p, &[-3.0], &mut m).unwrap();
        assert_eq!((p, m), ([3.5], [0.0]));
        // maximize negates g: g = 3, c = 0·0.5 + 1.5 > 0 → p = 3.5·0.75 − 0.5; m = 0 + 0.75.
        let max = Lion {
            maximize: true,
            ..lion
        };
        max.step(2, &mut p, &[-3.0], &mut m).unwrap();
        assert_eq!((p, m), ([2.125], [0.75]));
    }
}
