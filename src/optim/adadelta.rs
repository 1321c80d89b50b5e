//! Adadelta (`torch.optim.Adadelta`).

use crate::dispatch::Backend;
use crate::error::{Error, non_negative_f32, step_number, unit_interval};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane};
use crate::optimizer::optimizer_traits;

/// Adadelta hyperparameters, with `torch.optim.Adadelta`'s names and defaults.
///
/// Per element, with `g` the gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:  g = g + weight_decay · p
/// v = ρ·v + (1 − ρ)·g·g
/// d = √(a + eps) / √(v + eps) · g          (a: the previous acc_delta)
/// a = ρ·a + (1 − ρ)·d·d
/// p = p − lr · d
/// ```
///
/// eps sits inside both square roots, as in torch. The step number does not enter the
/// arithmetic (it is still checked to be at least 1).
///
/// **State**: `2·n` values (`square_avg` `v`, then `acc_delta` `a`); zeros are a fresh state.
///
/// # Example
/// ```
/// use fused_optim::Adadelta;
///
/// let opt = Adadelta { eps: 0.0, rho: 0.5, ..Adadelta::default() };
/// let mut params = [1.0f32];
/// let mut state = [0.0f32, 4.0]; // v = 0, a = 4
/// opt.step(1, &mut params, &[2.0], &mut state)?;
/// // v = 0.5·4 = 2, d = √4/√2 · 2 = 2√2, a = 0.5·4 + 0.5·8 = 6, p = 1 − 2√2
/// assert!((params[0] - (1.0 - 2.0 * 2f32.sqrt())).abs() < 1e-6);
/// assert!((state[1] - 6.0).abs() < 1e-5);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adadelta {
    /// Coefficient scaling the delta before it is applied (default `1.0`).
    pub lr: f64,
    /// Decay rate of both running averages (default `0.9`).
    pub rho: f64,
    /// Added inside both square roots (default `1e-6`).
    pub eps: f64,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for Adadelta {
    #[inline]
    fn default() -> Self {
        Adadelta {
            lr: 1.0,
            rho: 0.9,
            eps: 1e-6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

impl Adadelta {
    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ rho ≤ 1`, `0 ≤ eps`, `0 ≤ weight_decay` (NaN fails).
    ///
    /// ```
    /// use fused_optim::Adadelta;
    /// assert!(Adadelta { rho: 1.0, ..Adadelta::default() }.validate().is_ok());
    /// assert!(Adadelta { rho: 1.5, ..Adadelta::default() }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        unit_interval("rho", self.rho)?;
        non_negative_f32("eps", self.eps)?;
        non_negative_f32("weight_decay", self.weight_decay)
    }

    /// State length for `n` parameters: `2·n`.
    ///
    /// ```
    /// assert_eq!(fused_optim::Adadelta::default().state_len(10), 20);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(2)
    }

    /// Validates and prepares step `step` (starting at 1): `1 − ρ` and `−lr` in f64, rounded
    /// once to f32.
    ///
    /// ```
    /// let plan = fused_optim::Adadelta::default().plan(1)?;
    /// let mut p = [1.0f32; 2];
    /// plan.apply(&mut p, &[0.5; 2], &mut [0.0; 4])?;
    /// assert!(p[0] < 1.0);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<AdadeltaPlan, Error> {
        self.validate()?;
        step_number(step)?;
        Ok(AdadeltaPlan {
            step,
            neg_lr: (-self.lr) as f32,
            rho: self.rho as f32,
            one_minus_rho: (1.0 - self.rho) as f32,
            eps: self.eps as f32,
            prep: GradPrep::l2(self.maximize, self.weight_decay),
        })
    }

    /// One step on one tensor: [`Adadelta::plan`] then [`AdadeltaPlan::apply`].
    ///
    /// ```
    /// use fused_optim::Adadelta;
    /// let mut p = [0.5f32; 4];
    /// let mut s = [0.0f32; 8];
    /// for t in 1..=3 {
    ///     Adadelta::default().step(t, &mut p, &[1.0; 4], &mut s)?;
    /// }
    /// assert!(p.iter().all(|&x| x < 0.5));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Adadelta::plan`] and [`AdadeltaPlan::apply`]; nothing is written on error.
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

/// Adadelta's precomputed step: build it with [`Adadelta::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdadeltaPlan {
    step: u64,
    neg_lr: f32,
    rho: f32,
    one_minus_rho: f32,
    eps: f32,
    prep: GradPrep,
}

impl AdadeltaPlan {
    /// Updates one tensor on [`Backend::best`]; `state` holds `square_avg` then `acc_delta`,
    /// each `n` long.
    ///
    /// ```
    /// let plan = fused_optim::Adadelta::default().plan(1)?;
    /// let mut p = [1.0f32; 3];
    /// assert!(plan.apply(&mut p, &[1.0; 3], &mut [0.0; 3]).is_err()); // needs 6 values
    /// assert_eq!(p, [1.0; 3]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `grads.len() == n` and `state.len() == 2·n`.
    #[inline]
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// As [`AdadeltaPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Adadelta, Backend};
    /// let plan = Adadelta::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut [0.0; 38])?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut [0.0; 38])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`AdadeltaPlan::apply`], and [`Error::BackendUnavailable`].
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

impl Kernel<2> for AdadeltaPlan {
    const SIGNED: [bool; 2] = [false, false];
    /// The per-element update, in torch's order (see [`Adadelta`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [v, a]: &mut [L; 2]) -> L {
        let (p, g) = self.prep.apply(p, g);
        let rho = L::splat(self.rho);
        let omr = L::splat(self.one_minus_rho);
        let eps = L::splat(self.eps);
        *v = *v * rho + omr * g * g;
        let std = (*v + eps).sqrt();
        let delta = (*a + eps).sqrt() / std * g;
        *a = *a * rho + omr * delta * delta;
        p + delta * L::splat(self.neg_lr)
    }
}

optimizer_traits!(Adadelta, AdadeltaPlan);

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_torchs() {
        let d = Adadelta::default();
        assert_eq!(
            (d.lr, d.rho, d.eps, d.weight_decay, d.maximize),
            (1.0, 0.9, 1e-6, 0.0, false)
        );
    }

    #[test]
    fn validation_follows_torch() {
        let d = Adadelta::default();
        // torch accepts both ends of rho's interval.
        assert!(Adadelta { rho: 0.0, ..d }.validate().is_ok());
        assert!(
            Adadelta {
                rho: 1.0,
                lr: 0.0,
                eps: 0.0,
                ..d
            }
            .validate()
            .is_ok()
        );
        for (name, bad) in [
            ("lr", Adadelta { lr: -1.0, ..d }),
            (
                "rho",
                Adadelta {
                    rho: 1.0 + 1e-12,
                    ..d
                },
            ),
            ("rho", Adadelta { rho: -0.1, ..d }),
            ("rho", Adadelta { rho: f64::NAN, ..d }),
            ("eps", Adadelta { eps: -1e-6, ..d }),
            (
                "weight_decay",
                Adadelta {
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
    fn state_len_is_two_planes() {
        assert_eq!(Adadelta::default().state_len(5), 10);
        assert_eq!(Adadelta::default().state_len(usize::MAX), usize::MAX);
    }

    #[test]
    fn first_step_uses_sqrt_eps_over_sqrt_v_plus_eps() {
        // Fresh state, eps = 1, ρ = 0.75, g = 2: v = 0.25·4 = 1, d = √1/√2 · 2 = √2,
        // a = 0.25·2 = 0.5, p = 3 − 0.5·√2.
        let opt = Adadelta {
            lr: 0.5,
            rho: 0.75,
            eps: 1.0,
            ..Adadelta::default()
        };
        let (mut p, mut s) = ([3.0f32], [0.0f32; 2]);
        opt.step(1, &mut p, &[2.0], &mut s).unwrap();
        assert_eq!(s[0], 1.0);
        assert!((s[1] - 0.5).abs() < 1e-7, "{}", s[1]);
        assert!(
            (f64::from(p[0]) - (3.0 - 0.5 * 2f64.sqrt())).abs() < 1e-6,
            "{}",
            p[0]
        );
    }

    #[test]
    fn rho_one_freezes_the_averages() {
        // ρ = 1: 1 − ρ = 0, so v and a never change, and d = √(a+eps)/√(v+eps)·g.
        let opt = Adadelta {
            lr: 1.0,
            rho: 1.0,
            eps: 0.0,
            weight_decay: 1.0,
            maximize: true,
        };
        let (mut p, mut s) = ([1.0f32], [4.0f32, 1.0]);
        opt.step(7, &mut p, &[3.0], &mut s).unwrap();
        // g = −3 + 1·1 = −2, d = 1/2 · (−2) = −1, p = 1 + 1.
        assert_eq!((p, s), ([2.0], [4.0, 1.0]));
    }
}
