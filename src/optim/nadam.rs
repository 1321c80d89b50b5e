//! NAdam (`torch.optim.NAdam`), with its scalar state `mu_product`.

use crate::dispatch::Backend;
use crate::error::{Error, beta, non_negative_f32, scalar_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane, Lerp};
use crate::optimizer::{Optimizer, StepPlan};

/// NAdam hyperparameters, with `torch.optim.NAdam`'s names and defaults.
///
/// Per step `t` (starting at 1), once, in f64 except where noted:
///
/// ```text
/// μ_t      = β1 · (1 − 0.5 · 0.96^(t · momentum_decay))
/// μ_{t+1}  = β1 · (1 − 0.5 · 0.96^((t + 1) · momentum_decay))
/// Π_t      = Π_{t−1} · f32(μ_t)                   (in f32, as torch's mu_product tensor)
/// c1 = −lr · (1 − μ_t) / (1 − Π_t)
/// c2 = −lr · μ_{t+1} / (1 − Π_t · μ_{t+1})
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
/// denom = √(v / (1 − β2^t)) + eps              (divide, then square root)
/// p = p + c1 · g / denom
/// p = p + c2 · m / denom                        (two roundings of p, as torch)
/// ```
///
/// **State**: `2·n` values (`exp_avg` `m`, then `exp_avg_sq` `v`); zeros are a fresh state.
/// **Scalar state**: one [`NAdamScalars`] (`mu_product`, `1.0` when fresh) shared by every
/// tensor at the same step: build the step's plan from it, apply the plan to every tensor,
/// then keep [`NAdamPlan::scalars_after`] for the next step.
///
/// # Example
/// ```
/// use fused_optim::{NAdam, NAdamScalars};
///
/// let opt = NAdam::default();
/// let mut scalars = NAdamScalars::default(); // mu_product = 1
/// let mut params = [1.0f32, -1.0];
/// let mut state = [0.0f32; 4]; // opt.state_len(2)
/// for t in 1..=3 {
///     opt.step(t, &mut params, &[0.5, -0.5], &mut state, &mut scalars)?;
/// }
/// assert!(params[0] < 1.0 && params[1] > -1.0);
/// assert!(scalars.mu_product < 0.1); // about 0.45³
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NAdam {
    /// Learning rate (default `2e-3`).
    pub lr: f64,
    /// `(β1, β2)`, decay rates of the moment estimates (default `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Added to the denominator, outside the square root (default `1e-8`).
    pub eps: f64,
    /// Weight decay (default `0`).
    pub weight_decay: f64,
    /// Momentum decay ψ of the μ schedule (default `4e-3`).
    pub momentum_decay: f64,
    /// Decay the weights directly (as AdamW) instead of adding an L2 term to the gradient
    /// (default `false`).
    pub decoupled_weight_decay: bool,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for NAdam {
    #[inline]
    fn default() -> Self {
        NAdam {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
        }
    }
}

/// NAdam's scalar state, carried from step to step and shared by every tensor of a step.
///
/// torch keeps `mu_product` (the running product `Π μ_i`) as a 0-d **float32** tensor, so it
/// is an `f32` here too: each step multiplies it by `f32(μ_t)` in f32.
///
/// ```
/// use fused_optim::NAdamScalars;
/// assert_eq!(NAdamScalars::default().mu_product, 1.0); // torch's fresh state
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NAdamScalars {
    /// `Π_{i ≤ t} μ_i` after the last completed step (`1.0` before the first).
    pub mu_product: f32,
}

impl Default for NAdamScalars {
    #[inline]
    fn default() -> Self {
        NAdamScalars { mu_product: 1.0 }
    }
}

impl NAdam {
    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ eps`, `0 ≤ β < 1`, `0 ≤ weight_decay`,
    /// `0 ≤ momentum_decay` (NaN fails).
    ///
    /// ```
    /// use fused_optim::NAdam;
    /// assert!(NAdam::default().validate().is_ok());
    /// assert!(NAdam { momentum_decay: -1e-3, ..NAdam::default() }.validate().is_err());
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
        non_negative_f32("weight_decay", self.weight_decay)?;
        non_negative_f32("momentum_decay", self.momentum_decay)
    }

    /// State length for `n` parameters: `2·n` (the scalar state is separate).
    ///
    /// ```
    /// assert_eq!(fused_optim::NAdam::default().state_len(10), 20);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(2)
    }

    /// Validates and computes step `step`'s scalars from the scalar state before the step.
    /// Nothing is mutated: the plan carries the updated `mu_product`
    /// ([`NAdamPlan::scalars_after`]) for the caller to keep once the step has been applied.
    ///
    /// ```
    /// use fused_optim::{NAdam, NAdamScalars};
    /// let opt = NAdam::default();
    /// let mut scalars = NAdamScalars::default();
    /// let (mut a, mut b) = ([1.0f32; 3], [2.0f32; 5]);
    /// let (mut sa, mut sb) = ([0.0f32; 6], [0.0f32; 10]);
    /// let plan = opt.plan(1, &scalars)?;
    /// plan.apply(&mut a, &[0.1; 3], &mut sa)?; // one plan, many tensors
    /// plan.apply(&mut b, &[0.1; 5], &mut sb)?;
    /// scalars = plan.scalars_after();
    /// assert!(scalars.mu_product < 1.0);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0. A per-step scalar beyond
    /// `f32` (NAdam's two step coefficients, or `1 − lr·weight_decay`, computed in f64 as torch's Python floats) is
    /// [`Error::InvalidHyperparameter`] named after it, as torch's `value cannot be converted
    /// to type float without overflow`.
    #[inline]
    pub fn plan(&self, step: u64, scalars: &NAdamScalars) -> Result<NAdamPlan, Error> {
        self.validate()?;
        let t = step_number(step)?;
        // The caller's scalar state: torch's starts at 1 and is multiplied by `mu` in (0, 1)
        // each step, reaching 0 in f32 after a few hundred steps (a state torch steps on).
        if !(0.0..=1.0).contains(&scalars.mu_product) {
            return Err(Error::InvalidHyperparameter {
                name: "mu_product",
                value: f64::from(scalars.mu_product),
                requirement: "must be in [0, 1] (NAdam's scalar state)",
            });
        }
        let (b1, b2) = self.betas;
        let bc2 = 1.0 - libm::pow(b2, t);
        let mu = b1 * (1.0 - 0.5 * libm::pow(0.96, t * self.momentum_decay));
        let mu_next = b1 * (1.0 - 0.5 * libm::pow(0.96, (t + 1.0) * self.momentum_decay));
        // torch: `mu_product *= mu` on a float32 0-d tensor: the Python float is rounded to
        // f32 and the product is taken in f32.
        let mu_product = scalars.mu_product * mu as f32;
        let mu_product_f64 = f64::from(mu_product);
        let mu_product_next = mu_product_f64 * mu_next;
        // torch divides by these as Python floats and raises ZeroDivisionError at 0 (a β1
        // that rounds `mu` to 1 in f32, e.g. betas[0] = 0.99999999 with momentum_decay = 1e6).
        if 1.0 - mu_product_f64 == 0.0 || 1.0 - mu_product_next == 0.0 {
            return Err(Error::InvalidCombination(
                "betas[0] and momentum_decay make 1 - mu_product zero (torch: ZeroDivisionError)",
            ));
        }
        let prep = GradPrep::new(
            self.maximize,
            self.lr,
            self.weight_decay,
            self.decoupled_weight_decay,
        )?;
        let grad_coeff = scalar_f32(
            "lr * (1 - mu) / (1 - mu_product)",
            -self.lr * (1.0 - mu) / (1.0 - mu_product_f64),
        )?;
        let avg_coeff = scalar_f32(
            "lr * mu_next / (1 - mu_product_next)",
            (-self.lr * mu_next) / (1.0 - mu_product_next),
        )?;
        Ok(NAdamPlan {
            step,
            kernel: NAdamKernel {
                grad_coeff,
                avg_coeff,
                bc2: bc2 as f32,
                eps: self.eps as f32,
                beta2: b2 as f32,
                one_minus_beta2: (1.0 - b2) as f32,
                m_lerp: Lerp::new((1.0 - b1) as f32),
                prep,
            },
            after: NAdamScalars { mu_product },
        })
    }

    /// One step on one tensor: [`NAdam::plan`], [`NAdamPlan::apply`], then `*scalars =
    /// plan.scalars_after()` (only when the apply succeeded).
    ///
    /// For several tensors at the same step, use [`NAdam::plan`] once instead: calling `step`
    /// per tensor would advance `mu_product` once per tensor.
    ///
    /// ```
    /// use fused_optim::{NAdam, NAdamScalars};
    /// let mut scalars = NAdamScalars::default();
    /// let mut p = [1.0f32; 2];
    /// let bad = NAdam::default().step(1, &mut p, &[0.1; 2], &mut [0.0; 3], &mut scalars);
    /// assert!(bad.is_err());
    /// assert_eq!(scalars, NAdamScalars::default()); // untouched by the failed step
    /// NAdam::default().step(1, &mut p, &[0.1; 2], &mut [0.0; 4], &mut scalars)?;
    /// assert_ne!(scalars, NAdamScalars::default());
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`NAdam::plan`] and [`NAdamPlan::apply`]; nothing is written on error.
    #[inline]
    pub fn step(
        &self,
        step: u64,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
        scalars: &mut NAdamScalars,
    ) -> Result<(), Error> {
        let plan = self.plan(step, scalars)?;
        plan.apply(params, grads, state)?;
        *scalars = plan.scalars_after();
        Ok(())
    }
}

/// NAdam's precomputed step: build it with [`NAdam::plan`], apply it to each tensor, then keep
/// [`NAdamPlan::scalars_after`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NAdamPlan {
    step: u64,
    kernel: NAdamKernel,
    after: NAdamScalars,
}

impl NAdamPlan {
    /// The scalar state after this step (`mu_product · μ_t`, in f32), for the next plan.
    ///
    /// ```
    /// use fused_optim::{NAdam, NAdamScalars};
    /// let plan = NAdam { betas: (0.0, 0.999), ..NAdam::default() }.plan(1, &NAdamScalars::default())?;
    /// assert_eq!(plan.scalars_after().mu_product, 0.0); // β1 = 0 makes every μ zero
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    #[inline]
    pub const fn scalars_after(&self) -> NAdamScalars {
        self.after
    }

    /// Updates one tensor on [`Backend::best`]; `state` holds `exp_avg` then `exp_avg_sq`,
    /// each `n` long.
    ///
    /// ```
    /// use fused_optim::{NAdam, NAdamScalars};
    /// let plan = NAdam::default().plan(1, &NAdamScalars::default())?;
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

    /// As [`NAdamPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Backend, NAdam, NAdamScalars};
    /// let plan = NAdam::default().plan(1, &NAdamScalars::default())?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut [0.0; 38])?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut [0.0; 38])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`NAdamPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        format::run_f32::<_, 2>(backend, &self.kernel, params, grads, state)
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
        format::run::<_, 2>(
            backend,
            &self.kernel,
            self.step,
            offset,
            params,
            grads,
            state,
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct NAdamKernel {
    /// `−lr·(1 − μ_t)/(1 − Π_t)`.
    grad_coeff: f32,
    /// `−lr·μ_{t+1}/(1 − Π_t·μ_{t+1})`.
    avg_coeff: f32,
    bc2: f32,
    eps: f32,
    beta2: f32,
    one_minus_beta2: f32,
    m_lerp: Lerp,
    prep: GradPrep,
}

impl Kernel<2> for NAdamKernel {
    const SIGNED: [bool; 2] = [true, false];
    /// The per-element update, in torch's order (see [`NAdam`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m, v]: &mut [L; 2]) -> L {
        let (p, g) = self.prep.apply(p, g);
        *m = self.m_lerp.apply(*m, g);
        *v = *v * L::splat(self.beta2) + L::splat(self.one_minus_beta2) * g * g;
        let denom = (*v / L::splat(self.bc2)).sqrt() + L::splat(self.eps);
        let p = p + L::splat(self.grad_coeff) * g / denom;
        p + L::splat(self.avg_coeff) * *m / denom
    }
}

impl Optimizer for NAdam {
    type Scalars = NAdamScalars;
    type Plan = NAdamPlan;

    #[inline]
    fn validate(&self) -> Result<(), Error> {
        NAdam::validate(self)
    }
    #[inline]
    fn state_len(&self, n: usize) -> usize {
        NAdam::state_len(self, n)
    }
    #[inline]
    fn plan(&self, step: u64, scalars: &NAdamScalars) -> Result<NAdamPlan, Error> {
        NAdam::plan(self, step, scalars)
    }
}

crate::optimizer::inherent_apply_to!(NAdamPlan);

impl StepPlan for NAdamPlan {
    type Scalars = NAdamScalars;

    #[inline]
    fn apply_piece(
        &self,
        backend: Backend,
        offset: usize,
        params: Params<'_>,
        grads: Grads<'_>,
        state: State<'_>,
    ) -> Result<(), Error> {
        NAdamPlan::apply_piece(self, backend, offset, params, grads, state)
    }
    #[inline]
    fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        NAdamPlan::apply_on(self, backend, params, grads, state)
    }
    #[inline]
    fn scalars_after(&self) -> NAdamScalars {
        NAdamPlan::scalars_after(self)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn mu(b1: f64, psi: f64, t: f64) -> f64 {
        b1 * (1.0 - 0.5 * libm::pow(0.96, t * psi))
    }

    #[test]
    fn a_zero_denominator_or_a_bad_mu_product_is_an_error() {
        let opt = NAdam {
            betas: (0.999_999_99, 0.999),
            momentum_decay: 1e6,
            ..NAdam::default()
        };
        assert!(matches!(
            opt.plan(1, &NAdamScalars::default()),
            Err(Error::InvalidCombination(_))
        ));
        for bad in [f32::NAN, f32::INFINITY, -0.5, 1.5] {
            assert!(matches!(
                NAdam::default().plan(1, &NAdamScalars { mu_product: bad }),
                Err(Error::InvalidHyperparameter {
                    name: "mu_product",
                    ..
                })
            ));
        }
        // 0 is a state torch reaches (f32 underflow after a few hundred steps) and steps on.
        let plan = NAdam::default()
            .plan(300, &NAdamScalars { mu_product: 0.0 })
            .unwrap();
        let mut p = [1.0f32; 3];
        plan.apply(&mut p, &[0.1; 3], &mut [0.0; 6]).unwrap();
        assert!(p.iter().all(|x| x.is_finite() && *x < 1.0));
    }

    #[test]
    fn defaults_are_torchs() {
        let n = NAdam::default();
        assert_eq!(
            (n.lr, n.betas, n.eps, n.weight_decay),
            (2e-3, (0.9, 0.999), 1e-8, 0.0)
        );
        assert_eq!(n.momentum_decay, 4e-3);
        assert!(!n.decoupled_weight_decay && !n.maximize);
        assert_eq!(NAdamScalars::default(), NAdamScalars { mu_product: 1.0 });
    }

    #[test]
    fn validation_follows_torch() {
        let d = NAdam::default();
        let s = NAdamScalars::default();
        assert!(
            NAdam {
                momentum_decay: 0.0,
                betas: (0.0, 0.0),
                lr: 0.0,
                eps: 0.0,
                ..d
            }
            .validate()
            .is_ok()
        );
        for (name, bad) in [
            ("lr", NAdam { lr: -1.0, ..d }),
            ("eps", NAdam { eps: f64::NAN, ..d }),
            (
                "betas[0]",
                NAdam {
                    betas: (1.0, 0.9),
                    ..d
                },
            ),
            (
                "betas[1]",
                NAdam {
                    betas: (0.9, f64::NAN),
                    ..d
                },
            ),
            (
                "weight_decay",
                NAdam {
                    weight_decay: -1e-2,
                    ..d
                },
            ),
            (
                "momentum_decay",
                NAdam {
                    momentum_decay: -4e-3,
                    ..d
                },
            ),
            (
                "momentum_decay",
                NAdam {
                    momentum_decay: f64::NAN,
                    ..d
                },
            ),
        ] {
            match bad.plan(1, &s) {
                Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(d.plan(0, &s), Err(Error::InvalidStep(0)));
    }

    #[test]
    fn state_len_is_two_planes() {
        assert_eq!(NAdam::default().state_len(3), 6);
        assert_eq!(NAdam::default().state_len(usize::MAX), usize::MAX);
    }

    #[test]
    fn mu_product_is_carried_in_f32() {
        // torch: mu_product (f32 tensor) *= mu (Python float) → f32 product of f32 values.
        let opt = NAdam::default();
        let mut scalars = NAdamScalars::default();
        let mut expected = 1.0f32;
        let mut exact = 1.0f64;
        for t in 1..=200u64 {
            let m = mu(0.9, 4e-3, t as f64);
            expected *= m as f32;
            exact *= m;
            let plan = opt.plan(t, &scalars).unwrap();
            scalars = plan.scalars_after();
            assert_eq!(scalars.mu_product.to_bits(), expected.to_bits(), "step {t}");
        }
        // The f32 product has been rounded at every step and has underflowed to zero; the f64
        // product (what a double-precision mu_product would hold) has not.
        assert_eq!(scalars.mu_product, 0.0);
        assert!(exact > 0.0);
    }

    #[test]
    fn mu_product_f32_differs_from_a_once_rounded_f64_product() {
        let opt = NAdam::default();
        let mut scalars = NAdamScalars::default();
        let mut exact = 1.0f64;
        let mut differs = 0;
        for t in 1..=40u64 {
            exact *= mu(0.9, 4e-3, t as f64);
            scalars = opt.plan(t, &scalars).unwrap().scalars_after();
            differs += usize::from(scalars.mu_product != exact as f32);
        }
        // Accumulating in f32 drifts from the f64 product: torch's quirk is reproduced.
        assert!(differs > 0);
    }

    #[test]
    fn plan_does_not_mutate_and_failed_step_keeps_scalars() {
        let opt = NAdam::default();
        let s0 = NAdamScalars { mu_product: 0.25 };
        let plan = opt.plan(3, &s0).unwrap();
        assert_eq!(s0.mu_product, 0.25);
        assert_eq!(
            plan.scalars_after().mu_product,
            0.25 * mu(0.9, 4e-3, 3.0) as f32
        );
        let mut s = s0;
        let mut p = [1.0f32; 2];
        assert!(
            opt.step(3, &mut p, &[1.0; 2], &mut [0.0; 3], &mut s)
                .is_err()
        );
        assert!(
            opt.step(0, &mut p, &[1.0; 2], &mut [0.0; 4], &mut s)
                .is_err()
        );
        assert_eq!((s, p), (s0, [1.0; 2]));
    }

    #[test]
    fn first_step_by_hand() {
        // β1 = 0.5, β2 = 0.5, ψ = 0 (μ_t = 0.25 for all t), lr = 1, eps = 0, g = 2, fresh:
        // Π_1 = 0.25, c1 = −0.75/0.75 = −1, c2 = −0.25/(1 − 0.0625) = −4/15.
        // m = 1, v = 2, bc2 = 0.5, denom = √(2/0.5) = 2,
        // p = 1 − 2/2 = 0, then p = 0 − (4/15)·1/2 = −2/15.
        let opt = NAdam {
            lr: 1.0,
            betas: (0.5, 0.5),
            eps: 0.0,
            momentum_decay: 0.0,
            ..NAdam::default()
        };
        let mut scalars = NAdamScalars::default();
        let (mut p, mut s) = ([1.0f32], [0.0f32; 2]);
        opt.step(1, &mut p, &[2.0], &mut s, &mut scalars).unwrap();
        assert_eq!(s, [1.0, 2.0]);
        assert_eq!(scalars.mu_product, 0.25);
        assert!((f64::from(p[0]) + 2.0 / 15.0).abs() < 1e-7, "{}", p[0]);
    }

    #[test]
    fn decoupled_decay_scales_p_before_the_update() {
        // With lr·wd = 0.5 and a zero gradient, only the decay acts: p = p · 0.5.
        let opt = NAdam {
            lr: 0.5,
            weight_decay: 1.0,
            decoupled_weight_decay: true,
            ..NAdam::default()
        };
        let mut scalars = NAdamScalars::default();
        let (mut p, mut s) = ([3.0f32], [0.0f32; 2]);
        opt.step(1, &mut p, &[0.0], &mut s, &mut scalars).unwrap();
        assert_eq!((p, s), ([1.5], [0.0, 0.0]));
        // L2 instead: g = 0 + 1·1.5 feeds both moments.
        let l2 = NAdam {
            decoupled_weight_decay: false,
            ..opt
        };
        l2.step(2, &mut p, &[0.0], &mut s, &mut scalars).unwrap();
        assert!(s[0] > 0.0 && s[1] > 0.0 && p[0] < 1.5);
    }
}
