//! Adamax (`torch.optim.Adamax`).

use crate::dispatch::Backend;
use crate::error::{Error, beta, non_negative_f32, scalar_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane, Lerp, max_nan};
use crate::optimizer::optimizer_traits;

/// Adamax hyperparameters, with `torch.optim.Adamax`'s names and defaults.
///
/// Per element, at step `t` (starting at 1), with `g` the gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:  g = g + weight_decay · p
/// m = lerp(m, g, 1 − β1)                       = β1·m + (1 − β1)·g
/// u = max(β2·u, |g| + eps)                     (NaN-propagating, as torch.maximum)
/// p = p − lr/(1 − β1^t) · m / u
/// ```
///
/// As in torch, eps is added to `|g|` (so `u` is never 0 when `eps > 0`), and `lr/(1 − β1^t)`
/// is computed in f64 and rounded once to f32.
///
/// **State**: `2·n` values (`exp_avg` `m`, then `exp_inf` `u`); zeros are a fresh state.
///
/// # Example
/// ```
/// use fused_optim::Adamax;
///
/// let opt = Adamax { lr: 0.1, ..Adamax::default() };
/// let mut params = [1.0f32, -2.0];
/// let mut state = [0.0f32; 4]; // opt.state_len(2)
/// opt.step(1, &mut params, &[0.5, -2.0], &mut state)?;
/// // First step: m = 0.1·g, u ≈ |g|, lr/(1 − 0.9) · m / u ≈ lr · sign(g).
/// assert!((params[0] - 0.9).abs() < 1e-6 && (params[1] + 1.9).abs() < 1e-6);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adamax {
    /// Learning rate (default `2e-3`).
    pub lr: f64,
    /// `(β1, β2)`: decay of the first moment and of the infinity norm (default `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Added to `|g|` before the maximum (default `1e-8`).
    pub eps: f64,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for Adamax {
    #[inline]
    fn default() -> Self {
        Adamax {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl Adamax {
    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ eps`, `0 ≤ β < 1`, `0 ≤ weight_decay` (NaN fails).
    ///
    /// ```
    /// use fused_optim::Adamax;
    /// assert!(Adamax::default().validate().is_ok());
    /// assert!(Adamax { betas: (1.0, 0.999), ..Adamax::default() }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        non_negative_f32("eps", self.eps)?;
        beta("betas[0]", self.betas.0)?;
        beta("betas[1]", self.betas.1)?;
        non_negative_f32("weight_decay", self.weight_decay)
    }

    /// State length for `n` parameters: `2·n`.
    ///
    /// ```
    /// assert_eq!(fused_optim::Adamax::default().state_len(10), 20);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(2)
    }

    /// Validates and computes step `step`'s scalars (`lr/(1 − β1^t)` in f64, as torch).
    ///
    /// ```
    /// let plan = fused_optim::Adamax::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 3], [2.0f32; 5]);
    /// plan.apply(&mut a, &[0.1; 3], &mut [0.0; 6])?; // one plan, many tensors
    /// plan.apply(&mut b, &[0.1; 5], &mut [0.0; 10])?;
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0. A per-step scalar beyond
    /// `f32` (`lr/(1 − β1^t)`, computed in f64 as torch's Python floats) is
    /// [`Error::InvalidHyperparameter`] named after it, as torch's `value cannot be converted
    /// to type float without overflow`.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<AdamaxPlan, Error> {
        self.validate()?;
        let t = step_number(step)?;
        let (b1, b2) = self.betas;
        let clr = self.lr / (1.0 - libm::pow(b1, t));
        let neg_clr = scalar_f32("lr / (1 - beta1^t)", -clr)?;
        Ok(AdamaxPlan {
            step,
            neg_clr,
            eps: self.eps as f32,
            beta2: b2 as f32,
            m_lerp: Lerp::new((1.0 - b1) as f32),
            prep: GradPrep::l2(self.maximize, self.weight_decay),
        })
    }

    /// One step on one tensor: [`Adamax::plan`] then [`AdamaxPlan::apply`].
    ///
    /// ```
    /// use fused_optim::Adamax;
    /// let mut p = [0.5f32; 4];
    /// let mut s = [0.0f32; 8];
    /// for t in 1..=3 {
    ///     Adamax::default().step(t, &mut p, &[1.0; 4], &mut s)?;
    /// }
    /// assert!(p.iter().all(|&x| x < 0.5));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Adamax::plan`] and [`AdamaxPlan::apply`]; nothing is written on error.
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

/// Adamax's precomputed step: build it with [`Adamax::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamaxPlan {
    step: u64,
    neg_clr: f32,
    eps: f32,
    beta2: f32,
    m_lerp: Lerp,
    prep: GradPrep,
}

impl AdamaxPlan {
    /// Updates one tensor on [`Backend::best`]; `state` holds `exp_avg` then `exp_inf`, each
    /// `n` long.
    ///
    /// ```
    /// let plan = fused_optim::Adamax::default().plan(1)?;
    /// let mut p = [1.0f32; 2];
    /// assert!(plan.apply(&mut p, &[0.1; 2], &mut [0.0; 3]).is_err());
    /// assert_eq!(p, [1.0; 2]); // nothing written
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `grads.len() == n` and `state.len() == 2·n`.
    #[inline]
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// As [`AdamaxPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Adamax, Backend};
    /// let plan = Adamax::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut [0.0; 38])?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut [0.0; 38])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`AdamaxPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        format::run_f32::<_, 2>(backend, self, params, grads, state)
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
        format::run::<_, 2>(backend, self, self.step, offset, params, grads, state)
    }
}

impl Kernel<2> for AdamaxPlan {
    const SIGNED: [bool; 2] = [true, false];
    /// The per-element update, in torch's order (see [`Adamax`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m, u]: &mut [L; 2]) -> L {
        let (p, g) = self.prep.apply(p, g);
        *m = self.m_lerp.apply(*m, g);
        *u = max_nan(*u * L::splat(self.beta2), g.abs() + L::splat(self.eps));
        p + L::splat(self.neg_clr) * *m / *u
    }
}

optimizer_traits!(Adamax, AdamaxPlan);

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_torchs() {
        let a = Adamax::default();
        assert_eq!(
            (a.lr, a.betas, a.eps, a.weight_decay, a.maximize),
            (2e-3, (0.9, 0.999), 1e-8, 0.0, false)
        );
    }

    #[test]
    fn validation_follows_torch() {
        let d = Adamax::default();
        assert!(
            Adamax {
                lr: 0.0,
                eps: 0.0,
                betas: (0.0, 0.0),
                ..d
            }
            .validate()
            .is_ok()
        );
        for (name, bad) in [
            ("lr", Adamax { lr: f64::NAN, ..d }),
            ("eps", Adamax { eps: -1e-8, ..d }),
            (
                "betas[0]",
                Adamax {
                    betas: (1.0, 0.9),
                    ..d
                },
            ),
            (
                "betas[1]",
                Adamax {
                    betas: (0.9, -0.1),
                    ..d
                },
            ),
            (
                "weight_decay",
                Adamax {
                    weight_decay: -1.0,
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
    fn state_len_is_two_planes() {
        assert_eq!(Adamax::default().state_len(3), 6);
        assert_eq!(Adamax::default().state_len(usize::MAX), usize::MAX);
    }

    #[test]
    fn infinity_norm_takes_the_larger_of_decayed_u_and_abs_g_plus_eps() {
        // β = (0.5, 0.5), lr = 0.25, eps = 0.5, state m = 0, u = 8; step 1 (clr = 0.5):
        // g = −2: m = −1, u = max(4, 2.5) = 4, p = 1 + 0.5·1/4.
        let opt = Adamax {
            lr: 0.25,
            betas: (0.5, 0.5),
            eps: 0.5,
            ..Adamax::default()
        };
        let (mut p, mut s) = ([1.0f32], [0.0f32, 8.0]);
        opt.step(1, &mut p, &[-2.0], &mut s).unwrap();
        assert_eq!((p, s), ([1.125], [-1.0, 4.0]));
        // Step 2 (clr = 0.25/0.75 = 1/3), g = 7.5: m = 3.25, u = max(2, 8) = 8,
        // p = 1.125 − (1/3)·3.25/8.
        opt.step(2, &mut p, &[7.5], &mut s).unwrap();
        assert_eq!(s, [3.25, 8.0]);
        assert!(
            (f64::from(p[0]) - (1.125 - 3.25 / 24.0)).abs() < 1e-6,
            "{}",
            p[0]
        );
    }

    #[test]
    fn nan_gradient_propagates_into_u() {
        let opt = Adamax::default();
        let (mut p, mut s) = ([1.0f32, 1.0], [0.0f32, 0.0, 5.0, 5.0]);
        opt.step(1, &mut p, &[f32::NAN, 1.0], &mut s).unwrap();
        assert!(s[2].is_nan() && p[0].is_nan());
        assert!(!s[3].is_nan() && !p[1].is_nan());
    }
}
