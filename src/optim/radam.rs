//! RAdam (`torch.optim.RAdam`): Adam with a rectified adaptive learning rate.

use crate::dispatch::Backend;
use crate::error::{Error, beta, non_negative_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane, Lerp};
use crate::optimizer::optimizer_traits;

/// RAdam hyperparameters, with `torch.optim.RAdam`'s names and defaults.
///
/// Per step `t` (starting at 1), once, in f64:
///
/// ```text
/// bc1 = 1 − β1^t,   bc2 = 1 − β2^t
/// ρ∞ = 2/(1 − β2) − 1,   ρ_t = ρ∞ − 2·t·β2^t / bc2
/// r  = √((ρ_t − 4)(ρ_t − 2)ρ∞ / ((ρ∞ − 4)(ρ∞ − 2)ρ_t))      (only used when ρ_t > 5)
/// ```
///
/// Per element, with `g` the gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:
///     decoupled_weight_decay:  p = p · (1 − lr·weight_decay)
///     otherwise:               g = g + weight_decay · p
/// m = lerp(m, g, 1 − β1)
/// v = β2·v + (1 − β2)·g·g
/// m̂ = m / bc1
/// if ρ_t > 5:  p = p − ((m̂·lr) · ((1 / (√v + eps)) · √bc2)) · r
/// else:        p = p − m̂·lr                        (un-rectified: momentum SGD)
/// ```
///
/// The switch is decided once per step, in f64: with `β2 = 0.999` the first five steps are
/// un-rectified and rectification starts at step 6. As in torch, eps is added to the
/// un-corrected `√v`, and `√bc2 / (√v + eps)` is a reciprocal (an exact division `1/x`) times
/// `√bc2`, not one division.
///
/// **State**: `2·n` values (`exp_avg` `m`, then `exp_avg_sq` `v`); zeros are a fresh state.
///
/// # Example
/// ```
/// use fused_optim::RAdam;
///
/// let opt = RAdam { lr: 0.1, ..RAdam::default() };
/// let mut params = [1.0f32];
/// let mut state = [0.0f32; 2];
/// opt.step(1, &mut params, &[3.0], &mut state)?;
/// // Step 1 is un-rectified: m̂ = g, so p = 1 − 0.1·3.
/// assert!((params[0] - 0.7).abs() < 1e-6);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RAdam {
    /// Learning rate (default `1e-3`).
    pub lr: f64,
    /// `(β1, β2)`, decay rates of the moment estimates (default `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Added to `√v` in the adaptive learning rate (default `1e-8`).
    pub eps: f64,
    /// Weight decay (default `0`).
    pub weight_decay: f64,
    /// Decay the weights directly (as AdamW) instead of adding an L2 term to the gradient
    /// (default `false`).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for RAdam {
    #[inline]
    fn default() -> Self {
        RAdam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

impl RAdam {
    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ eps`, `0 ≤ β < 1`, `0 ≤ weight_decay` (NaN fails).
    ///
    /// ```
    /// use fused_optim::RAdam;
    /// assert!(RAdam::default().validate().is_ok());
    /// assert!(RAdam { eps: -1.0, ..RAdam::default() }.validate().is_err());
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
    /// assert_eq!(fused_optim::RAdam::default().state_len(10), 20);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(2)
    }

    /// Validates and computes step `step`'s scalars, deciding (in f64) whether the step is
    /// rectified.
    ///
    /// ```
    /// let plan = fused_optim::RAdam::default().plan(6)?; // the first rectified step
    /// let mut p = [1.0f32; 3];
    /// plan.apply(&mut p, &[0.1; 3], &mut [0.0; 6])?;
    /// assert!(p[0] < 1.0);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0. A per-step scalar beyond
    /// `f32` (`1 − lr·weight_decay`, computed in f64 as torch's Python floats) is
    /// [`Error::InvalidHyperparameter`] named after it, as torch's `value cannot be converted
    /// to type float without overflow`.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<RAdamPlan, Error> {
        self.validate()?;
        let t = step_number(step)?;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - libm::pow(b1, t);
        let b2_t = libm::pow(b2, t);
        let bc2 = 1.0 - b2_t;
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * b2_t / bc2;
        let rectified = if rho_t > 5.0 {
            let rect = libm::sqrt(
                (rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                    / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t),
            );
            Some(Rectified {
                bc2_sqrt: libm::sqrt(bc2) as f32,
                eps: self.eps as f32,
                rect: rect as f32,
            })
        } else {
            None
        };
        let prep = GradPrep::new(
            self.maximize,
            self.lr,
            self.weight_decay,
            self.decoupled_weight_decay,
        )?;
        Ok(RAdamPlan {
            step,
            lr: self.lr as f32,
            bc1: bc1 as f32,
            rectified,
            beta2: b2 as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            m_lerp: Lerp::new((1.0 - b1) as f32),
            prep,
        })
    }

    /// One step on one tensor: [`RAdam::plan`] then [`RAdamPlan::apply`].
    ///
    /// ```
    /// use fused_optim::RAdam;
    /// let mut p = [0.5f32; 4];
    /// let mut s = [0.0f32; 8];
    /// for t in 1..=8 {
    ///     RAdam::default().step(t, &mut p, &[1.0; 4], &mut s)?;
    /// }
    /// assert!(p.iter().all(|&x| x < 0.5));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`RAdam::plan`] and [`RAdamPlan::apply`]; nothing is written on error.
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

/// RAdam's precomputed step: build it with [`RAdam::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RAdamPlan {
    step: u64,
    lr: f32,
    bc1: f32,
    rectified: Option<Rectified>,
    beta2: f32,
    one_minus_beta2: f32,
    m_lerp: Lerp,
    prep: GradPrep,
}

/// The scalars of a rectified step (`ρ_t > 5`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rectified {
    bc2_sqrt: f32,
    eps: f32,
    rect: f32,
}

impl RAdamPlan {
    /// Updates one tensor on [`Backend::best`]; `state` holds `exp_avg` then `exp_avg_sq`,
    /// each `n` long.
    ///
    /// ```
    /// let plan = fused_optim::RAdam::default().plan(1)?;
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

    /// As [`RAdamPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Backend, RAdam};
    /// let plan = RAdam::default().plan(9)?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut [0.5; 38])?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut [0.5; 38])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`RAdamPlan::apply`], and [`Error::BackendUnavailable`].
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

impl Kernel<2> for RAdamPlan {
    const SIGNED: [bool; 2] = [true, false];
    /// The per-element update, in torch's order (see [`RAdam`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m, v]: &mut [L; 2]) -> L {
        let (p, g) = self.prep.apply(p, g);
        *m = self.m_lerp.apply(*m, g);
        *v = *v * L::splat(self.beta2) + L::splat(self.one_minus_beta2) * g * g;
        let scaled = *m / L::splat(self.bc1) * L::splat(self.lr);
        let update = match self.rectified {
            Some(r) => {
                let adaptive = L::splat(1.0) / (v.sqrt() + L::splat(r.eps)) * L::splat(r.bc2_sqrt);
                scaled * adaptive * L::splat(r.rect)
            }
            None => scaled,
        };
        p - update
    }
}

optimizer_traits!(RAdam, RAdamPlan);

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_torchs() {
        let r = RAdam::default();
        assert_eq!(
            (r.lr, r.betas, r.eps, r.weight_decay),
            (1e-3, (0.9, 0.999), 1e-8, 0.0)
        );
        assert!(!r.decoupled_weight_decay && !r.maximize);
    }

    #[test]
    fn validation_follows_torch() {
        let d = RAdam::default();
        assert!(
            RAdam {
                lr: 0.0,
                eps: 0.0,
                betas: (0.0, 0.0),
                ..d
            }
            .validate()
            .is_ok()
        );
        for (name, bad) in [
            ("lr", RAdam { lr: -1.0, ..d }),
            ("eps", RAdam { eps: f64::NAN, ..d }),
            (
                "betas[0]",
                RAdam {
                    betas: (-0.1, 0.9),
                    ..d
                },
            ),
            (
                "betas[1]",
                RAdam {
                    betas: (0.9, 1.0),
                    ..d
                },
            ),
            (
                "weight_decay",
                RAdam {
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
        assert_eq!(RAdam::default().state_len(3), 6);
        assert_eq!(RAdam::default().state_len(usize::MAX), usize::MAX);
    }

    #[test]
    fn rectification_starts_at_step_six_with_default_betas() {
        // ρ∞ = 1999; ρ_t = 1.0, 2.0, 2.999, 3.997, 4.996, 5.994 for t = 1..6.
        let opt = RAdam::default();
        for t in 1..=5 {
            assert!(opt.plan(t).unwrap().rectified.is_none(), "step {t}");
        }
        for t in [6, 7, 100, 1 << 30] {
            assert!(opt.plan(t).unwrap().rectified.is_some(), "step {t}");
        }
        // β2 = 0: ρ∞ = 1, never rectified.
        let flat = RAdam {
            betas: (0.9, 0.0),
            ..opt
        };
        assert!(flat.plan(1000).unwrap().rectified.is_none());
    }

    #[test]
    fn unrectified_steps_ignore_v_and_rectified_ones_use_it() {
        let opt = RAdam {
            lr: 0.5,
            betas: (0.5, 0.999),
            ..RAdam::default()
        };
        let run = |t: u64, v0: f32| {
            let (mut p, mut s) = ([1.0f32], [0.25f32, v0]);
            opt.step(t, &mut p, &[1.0], &mut s).unwrap();
            p[0]
        };
        // Step 5: m = 0.625, m̂ = 0.625/(1 − 0.5⁵) = 20/31, p = 1 − 0.5·20/31, whatever v is.
        assert_eq!(run(5, 0.0), run(5, 100.0));
        assert!((f64::from(run(5, 0.0)) - (1.0 - 10.0 / 31.0)).abs() < 1e-6);
        assert_ne!(run(6, 0.0), run(6, 100.0));
    }

    #[test]
    fn first_rectified_step_by_hand() {
        // Step 6, β = (0.5, 0.999), lr = 0.5, eps = 0.25, m0 = 0.25, v0 = 0.75, g = 1.
        let (b1, b2, lr, eps) = (0.5f64, 0.999f64, 0.5f64, 0.25f64);
        let opt = RAdam {
            lr,
            betas: (b1, b2),
            eps,
            ..RAdam::default()
        };
        let (mut p, mut s) = ([1.0f32], [0.25f32, 0.75]);
        opt.step(6, &mut p, &[1.0], &mut s).unwrap();
        let m = 0.5 * 0.25 + 0.5;
        let v = b2 * 0.75 + (1.0 - b2);
        let (bc1, bc2) = (1.0 - b1.powi(6), 1.0 - b2.powi(6));
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho = rho_inf - 12.0 * b2.powi(6) / bc2;
        assert!(rho > 5.0 && rho < 6.0);
        let r = ((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
            .sqrt();
        let expected = 1.0 - m / bc1 * lr * bc2.sqrt() / (v.sqrt() + eps) * r;
        assert!(
            (f64::from(p[0]) - expected).abs() < 1e-6,
            "{} vs {expected}",
            p[0]
        );
        assert!((f64::from(s[1]) - v).abs() < 1e-7);
    }

    #[test]
    fn decoupled_decay_scales_p_first() {
        // Zero gradient and zero state: only the decay acts, p · (1 − 0.5·0.5).
        let opt = RAdam {
            lr: 0.5,
            weight_decay: 0.5,
            decoupled_weight_decay: true,
            ..RAdam::default()
        };
        let (mut p, mut s) = ([2.0f32], [0.0f32; 2]);
        opt.step(1, &mut p, &[0.0], &mut s).unwrap();
        assert_eq!(p, [1.5]);
        let l2 = RAdam {
            decoupled_weight_decay: false,
            maximize: true,
            ..opt
        };
        // L2 with maximize: g = −0 + 0.5·1.5 = 0.75, m = 0.075, m̂ = 0.75 at step 1, p = 1.5 − 0.375.
        let (mut p, mut s) = ([1.5f32], [0.0f32; 2]);
        l2.step(1, &mut p, &[0.0], &mut s).unwrap();
        assert!((p[0] - 1.125).abs() < 1e-6, "{}", p[0]);
    }
}
