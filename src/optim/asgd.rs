//! ASGD (`torch.optim.ASGD`): averaged SGD, with its scalar state `eta` and `mu`.

use crate::dispatch::Backend;
use crate::error::{Error, non_negative, non_negative_f32, not_nan, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane};
use crate::optimizer::{Optimizer, StepPlan};

/// torch's step counter is a float32 tensor incremented by 1: it stops at 2^24.
const F32_STEP_LIMIT: u64 = 1 << 24;

/// ASGD hyperparameters, with `torch.optim.ASGD`'s names and defaults.
///
/// Step `t` (starting at 1) uses the scalar state `η` (`eta`) and `μ` (`mu`) that the previous
/// step left (torch's fresh state at `t = 1`: `η = f32(lr)`, `μ = 1`). Per element, with `g` the
/// gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:  g = g + weight_decay · p
/// p = p · f32(1 − λ·η)                  (1 − λ·η in f64, from the f32 η, as torch's Python)
/// p = p + (−η) · g                       (two roundings of p, as torch)
/// ax = (μ != 1) ? ax + (p − ax) · μ     (the new p)
///               : p                      (torch copies p while μ is exactly 1)
/// ```
///
/// Then, once per step, in f64 with `t` the step just taken, rounded to f32 (torch keeps `eta`
/// and `mu` as float32 tensors and assigns these Python floats to them):
///
/// ```text
/// η = f32(lr / (1 + λ·lr·t)^α)
/// μ = f32(1 / max(1, t − t0))           (Python's max: a NaN t − t0 gives 1)
/// ```
///
/// **State**: `n` values, torch's `ax` (the averaged parameters); zeros are a fresh state.
/// **Scalar state**: one [`AsgdScalars`] shared by every tensor at the same step: build the
/// step's plan from it, apply the plan to every tensor, then keep
/// [`AsgdPlan::scalars_after`] for the next step. Carrying `η` rather than recomputing it
/// matters when `lr` changes between steps (a scheduler): torch's step `t` uses the `η` that
/// step `t − 1` computed with the `lr` of that time.
///
/// torch's quirks, reproduced:
/// - the decay `1 − λ·η` and the averaging weight are computed from the **f32** `η` and `μ`,
///   and `η`, `μ` are rounded to f32 each step (not carried in f64);
/// - `ax` copies `p` while `μ` is exactly `1.0` in f32: step `t` uses the `μ` of step `t − 1`,
///   which is below 1 once `t − 1 − t0 > 1`, so averaging starts at the first step
///   `t > t0 + 2` (with the default `t0 = 1e6`, after a million steps of copying);
/// - torch's `step` counter is a float32 tensor, so from step 2^24 on it stays at 2^24
///   (`η` and `μ` stop changing); the step number given here is capped the same way;
/// - `(1 + λ·lr·t)^α` is a Python float power: an overflow from finite values raises
///   `OverflowError` in torch and is [`Error::InvalidCombination`] here.
///
/// torch's `foreach=True` path (not the default on CPU) computes `p − η·(g + λ·p)` and always
/// averages (`ax + (p − ax)·μ`, even for `μ = 1`), so it differs in the last bits; `capturable`
/// computes `η` and `μ` with f32 tensor operations. This type follows the default
/// single-tensor path, without FMA (torch's `add_(grad, alpha=−η)` is one on CPU), so it
/// matches torch to about an f32 ulp, not to the bit.
///
/// bf16/f16 parameters: each element is computed in f32 and rounded once per store (as torch's
/// fused kernels do; ASGD has none), and `ax` averages that f32 value. torch's for-loop on bf16
/// tensors rounds after every operation and averages the rounded parameter: measured with
/// torch 2.15, its parameters and `ax` drift a few bf16 ulps (3 within two steps) from these.
///
/// # Example
/// ```
/// use fused_optim::{Asgd, AsgdScalars};
///
/// let opt = Asgd { lr: 0.1, t0: 1.0, ..Asgd::default() };
/// let mut scalars = AsgdScalars::default(); // not read at step 1 (torch's fresh state)
/// let mut params = [1.0f32, -1.0];
/// let mut ax = [0.0f32; 2]; // opt.state_len(2)
/// for t in 1..=4 {
///     opt.step(t, &mut params, &[0.5, -0.5], &mut ax, &mut scalars)?;
/// }
/// assert!(params[0] < 1.0 && params[1] > -1.0);
/// // Step 4 uses μ = 1/(3 − t0) = 0.5 (the first t > t0 + 2): ax averages and lags behind p.
/// assert!(ax[0] > params[0] && ax[0] < 1.0);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Asgd {
    /// Learning rate (default `1e-2`).
    pub lr: f64,
    /// Decay term λ (default `1e-4`).
    pub lambd: f64,
    /// Power α of the `η` schedule (default `0.75`).
    pub alpha: f64,
    /// The step after which averaging starts (default `1e6`).
    pub t0: f64,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: f64,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for Asgd {
    #[inline]
    fn default() -> Self {
        Asgd {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
            maximize: false,
        }
    }
}

/// ASGD's scalar state, carried from step to step and shared by every tensor of a step.
///
/// torch keeps `eta` and `mu` as 0-d **float32** tensors, so they are `f32` here too.
/// Step 1 does not read them (torch's state is fresh then: `η = f32(lr)`, `μ = 1`), so the
/// default, the fresh state of [`Asgd::default`], suits any `lr`.
///
/// ```
/// use fused_optim::AsgdScalars;
/// assert_eq!(AsgdScalars::default(), AsgdScalars { eta: 0.01, mu: 1.0 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AsgdScalars {
    /// The step size `η` the next step uses.
    pub eta: f32,
    /// The averaging weight `μ` the next step uses (`1`: `ax` copies `p`).
    pub mu: f32,
}

impl Default for AsgdScalars {
    #[inline]
    fn default() -> Self {
        AsgdScalars { eta: 1e-2, mu: 1.0 }
    }
}

impl Asgd {
    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ lambd`, `0 ≤ alpha`, `0 ≤ weight_decay` (NaN
    /// fails). torch does not check `t0`; here it must not be NaN (torch would never average).
    /// `lr` and `weight_decay` must fit in f32 (they are rounded to the tensors' dtype; for
    /// `lr` torch would silently make `η` infinite instead).
    ///
    /// ```
    /// use fused_optim::Asgd;
    /// assert!(Asgd::default().validate().is_ok());
    /// assert!(Asgd { lambd: -1e-4, ..Asgd::default() }.validate().is_err());
    /// assert!(Asgd { t0: f64::INFINITY, ..Asgd::default() }.validate().is_ok()); // never average
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        non_negative("lambd", self.lambd)?;
        non_negative("alpha", self.alpha)?;
        non_negative_f32("weight_decay", self.weight_decay)?;
        not_nan("t0", self.t0)
    }

    /// State length for `n` parameters: `n` (`ax`; the scalar state is separate).
    ///
    /// ```
    /// assert_eq!(fused_optim::Asgd::default().state_len(10), 10);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n
    }

    /// Validates and computes step `step`'s scalars from the scalar state before the step
    /// (ignored at step 1, where torch's state is fresh). Nothing is mutated: the plan
    /// carries the next `η` and `μ` ([`AsgdPlan::scalars_after`]) for the caller to keep once
    /// the step has been applied.
    ///
    /// ```
    /// use fused_optim::{Asgd, AsgdScalars};
    /// let opt = Asgd::default();
    /// let mut scalars = AsgdScalars::default();
    /// let (mut a, mut b) = ([1.0f32; 3], [2.0f32; 5]);
    /// let (mut sa, mut sb) = ([0.0f32; 3], [0.0f32; 5]);
    /// let plan = opt.plan(1, &scalars)?;
    /// plan.apply(&mut a, &[0.1; 3], &mut sa)?; // one plan, many tensors
    /// plan.apply(&mut b, &[0.1; 5], &mut sb)?;
    /// scalars = plan.scalars_after();
    /// assert!(scalars.eta < 0.01 && scalars.mu == 1.0);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, [`Error::InvalidStep`] for step 0, a scalar state torch cannot
    /// reach ([`Error::InvalidHyperparameter`] `eta` below 0, `mu` outside `[0, 1]`), or
    /// [`Error::InvalidCombination`] when the `η` schedule overflows (torch: `OverflowError`).
    #[inline]
    pub fn plan(&self, step: u64, scalars: &AsgdScalars) -> Result<AsgdPlan, Error> {
        self.validate()?;
        step_number(step)?;
        let (eta, mu) = if step == 1 {
            (self.lr as f32, 1.0)
        } else {
            // What torch's formulas can leave: η ≥ 0 (or NaN, from an infinite lr), μ in [0, 1].
            if scalars.eta < 0.0 {
                return Err(Error::InvalidHyperparameter {
                    name: "eta",
                    value: f64::from(scalars.eta),
                    requirement: "must be >= 0 (ASGD's scalar state)",
                });
            }
            if !(0.0..=1.0).contains(&scalars.mu) {
                return Err(Error::InvalidHyperparameter {
                    name: "mu",
                    value: f64::from(scalars.mu),
                    requirement: "must be in [0, 1] (ASGD's scalar state)",
                });
            }
            (scalars.eta, scalars.mu)
        };
        let t = step.min(F32_STEP_LIMIT) as f64;
        let base = 1.0 + self.lambd * self.lr * t;
        let power = libm::pow(base, self.alpha);
        if power.is_infinite() && base.is_finite() && self.alpha.is_finite() {
            return Err(Error::InvalidCombination(
                "lambd, lr and alpha overflow (1 + lambd*lr*step)^alpha (torch: OverflowError)",
            ));
        }
        let since = t - self.t0;
        let next = AsgdScalars {
            eta: (self.lr / power) as f32,
            mu: (1.0 / if since > 1.0 { since } else { 1.0 }) as f32,
        };
        Ok(AsgdPlan {
            step,
            kernel: AsgdKernel {
                decay: (1.0 - self.lambd * f64::from(eta)) as f32,
                neg_eta: -eta,
                mu,
                average: mu != 1.0,
                prep: GradPrep::l2(self.maximize, self.weight_decay),
            },
            after: next,
        })
    }

    /// One step on one tensor: [`Asgd::plan`], [`AsgdPlan::apply`], then `*scalars =
    /// plan.scalars_after()` (only when the apply succeeded).
    ///
    /// For several tensors at the same step, use [`Asgd::plan`] once instead.
    ///
    /// ```
    /// use fused_optim::{Asgd, AsgdScalars};
    /// let mut scalars = AsgdScalars::default();
    /// let mut p = [1.0f32; 2];
    /// let bad = Asgd::default().step(1, &mut p, &[0.1; 2], &mut [0.0; 3], &mut scalars);
    /// assert!(bad.is_err());
    /// assert_eq!(scalars, AsgdScalars::default()); // untouched by the failed step
    /// Asgd::default().step(1, &mut p, &[0.1; 2], &mut [0.0; 2], &mut scalars)?;
    /// assert_ne!(scalars, AsgdScalars::default());
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Asgd::plan`] and [`AsgdPlan::apply`]; nothing is written on error.
    #[inline]
    pub fn step(
        &self,
        step: u64,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
        scalars: &mut AsgdScalars,
    ) -> Result<(), Error> {
        let plan = self.plan(step, scalars)?;
        plan.apply(params, grads, state)?;
        *scalars = plan.scalars_after();
        Ok(())
    }
}

/// ASGD's precomputed step: build it with [`Asgd::plan`], apply it to each tensor, then keep
/// [`AsgdPlan::scalars_after`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AsgdPlan {
    step: u64,
    kernel: AsgdKernel,
    after: AsgdScalars,
}

impl AsgdPlan {
    /// The scalar state after this step (the next `η` and `μ`, in f32), for the next plan.
    ///
    /// ```
    /// use fused_optim::{Asgd, AsgdScalars};
    /// let opt = Asgd { lr: 0.5, lambd: 2.0, alpha: 1.0, t0: 0.0, ..Asgd::default() };
    /// let plan = opt.plan(3, &AsgdScalars::default())?;
    /// // η = 0.5 / (1 + 2·0.5·3) = 0.125, μ = 1 / max(1, 3 − 0) = 1/3.
    /// assert_eq!(plan.scalars_after(), AsgdScalars { eta: 0.125, mu: (1.0f64 / 3.0) as f32 });
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    #[inline]
    pub const fn scalars_after(&self) -> AsgdScalars {
        self.after
    }

    /// Updates one tensor on [`Backend::best`]; `state` holds `ax`, `n` long.
    ///
    /// ```
    /// use fused_optim::{Asgd, AsgdScalars};
    /// let plan = Asgd::default().plan(1, &AsgdScalars::default())?;
    /// let mut p = [1.0f32; 2];
    /// assert!(plan.apply(&mut p, &[0.1; 2], &mut [0.0; 3]).is_err());
    /// assert_eq!(p, [1.0; 2]); // nothing written
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `grads.len() == n` and `state.len() == n`.
    #[inline]
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// As [`AsgdPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Asgd, AsgdScalars, Backend};
    /// let opt = Asgd { t0: 0.0, ..Asgd::default() };
    /// let plan = opt.plan(5, &AsgdScalars { eta: 0.01, mu: 0.25 })?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// let (mut sa, mut sb) = ([0.5f32; 19], [0.5f32; 19]);
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut sa)?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut sb)?;
    /// assert_eq!((a, sa), (b, sb));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`AsgdPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        format::run_f32::<_, 1>(backend, &self.kernel, params, grads, state)
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
        format::run::<_, 1>(
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
struct AsgdKernel {
    /// `f32(1 − λ·η)`.
    decay: f32,
    /// `−η`.
    neg_eta: f32,
    mu: f32,
    /// `μ != 1`: average; otherwise copy.
    average: bool,
    prep: GradPrep,
}

impl Kernel<1> for AsgdKernel {
    const SIGNED: [bool; 1] = [true];
    /// The per-element update, in torch's order (see [`Asgd`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [ax]: &mut [L; 1]) -> L {
        let (p, g) = self.prep.apply(p, g);
        let p = p * L::splat(self.decay);
        let p = p + L::splat(self.neg_eta) * g;
        *ax = if self.average {
            *ax + (p - *ax) * L::splat(self.mu)
        } else {
            p
        };
        p
    }
}

impl Optimizer for Asgd {
    type Scalars = AsgdScalars;
    type Plan = AsgdPlan;

    #[inline]
    fn validate(&self) -> Result<(), Error> {
        Asgd::validate(self)
    }
    #[inline]
    fn state_len(&self, n: usize) -> usize {
        Asgd::state_len(self, n)
    }
    #[inline]
    fn plan(&self, step: u64, scalars: &AsgdScalars) -> Result<AsgdPlan, Error> {
        Asgd::plan(self, step, scalars)
    }
}

crate::optimizer::inherent_apply_to!(AsgdPlan);

impl StepPlan for AsgdPlan {
    type Scalars = AsgdScalars;

    #[inline]
    fn apply_piece(
        &self,
        backend: Backend,
        offset: usize,
        params: Params<'_>,
        grads: Grads<'_>,
        state: State<'_>,
    ) -> Result<(), Error> {
        AsgdPlan::apply_piece(self, backend, offset, params, grads, state)
    }
    #[inline]
    fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        AsgdPlan::apply_on(self, backend, params, grads, state)
    }
    #[inline]
    fn scalars_after(&self) -> AsgdScalars {
        AsgdPlan::scalars_after(self)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_torchs() {
        let a = Asgd::default();
        assert_eq!(
            (a.lr, a.lambd, a.alpha, a.t0, a.weight_decay, a.maximize),
            (1e-2, 1e-4, 0.75, 1e6, 0.0, false)
        );
        assert_eq!(AsgdScalars::default(), AsgdScalars { eta: 0.01, mu: 1.0 });
    }

    #[test]
    fn validation_follows_torch() {
        let d = Asgd::default();
        let s = AsgdScalars::default();
        for ok in [
            Asgd {
                lr: 0.0,
                lambd: 0.0,
                alpha: 0.0,
                weight_decay: 0.0,
                ..d
            },
            Asgd {
                t0: f64::NEG_INFINITY,
                ..d
            },
            Asgd { t0: -5.0, ..d },
            Asgd {
                alpha: f64::INFINITY,
                ..d
            },
        ] {
            assert!(ok.plan(2, &s).is_ok(), "{ok:?}");
        }
        for (name, bad) in [
            ("lr", Asgd { lr: -1.0, ..d }),
            ("lr", Asgd { lr: 1e39, ..d }),
            ("lambd", Asgd { lambd: -1e-4, ..d }),
            (
                "lambd",
                Asgd {
                    lambd: f64::NAN,
                    ..d
                },
            ),
            ("alpha", Asgd { alpha: -0.5, ..d }),
            (
                "weight_decay",
                Asgd {
                    weight_decay: -1.0,
                    ..d
                },
            ),
            (
                "weight_decay",
                Asgd {
                    weight_decay: 1e39,
                    ..d
                },
            ),
            ("t0", Asgd { t0: f64::NAN, ..d }),
        ] {
            match bad.plan(1, &s) {
                Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(d.plan(0, &s), Err(Error::InvalidStep(0)));
    }

    #[test]
    fn bad_scalar_state_is_an_error_except_at_step_one() {
        let d = Asgd::default();
        for (name, bad) in [
            ("eta", AsgdScalars { eta: -1.0, mu: 1.0 }),
            ("mu", AsgdScalars { eta: 0.01, mu: 1.5 }),
            (
                "mu",
                AsgdScalars {
                    eta: 0.01,
                    mu: f32::NAN,
                },
            ),
        ] {
            match d.plan(2, &bad) {
                Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
            assert!(d.plan(1, &bad).is_ok());
        }
    }

    #[test]
    fn overflowing_schedule_is_an_error() {
        let opt = Asgd {
            lambd: 1e30,
            lr: 1.0,
            alpha: 20.0,
            ..Asgd::default()
        };
        assert!(matches!(
            opt.plan(1, &AsgdScalars::default()),
            Err(Error::InvalidCombination(_))
        ));
        // An infinite base (λ·lr·t overflows in f64) is no error in Python: η = 0.
        let inf = Asgd {
            lambd: 1e300,
            lr: 1e30,
            ..Asgd::default()
        };
        assert_eq!(
            inf.plan(1, &AsgdScalars::default())
                .unwrap()
                .scalars_after()
                .eta,
            0.0
        );
    }

    #[test]
    fn scalars_follow_torchs_formulas_in_f32() {
        let opt = Asgd {
            t0: 2.0,
            ..Asgd::default()
        };
        let mut s = AsgdScalars::default();
        for t in 1..=6u64 {
            let plan = opt.plan(t, &s).unwrap();
            s = plan.scalars_after();
            let tf = t as f64;
            let eta = (1e-2 / libm::pow(1.0 + 1e-4 * 1e-2 * tf, 0.75)) as f32;
            let mu = (1.0 / (tf - 2.0).max(1.0)) as f32;
            assert_eq!(s, AsgdScalars { eta, mu }, "step {t}");
        }
        // The f32 step counter stops at 2^24.
        let a = opt.plan(1 << 24, &s).unwrap().scalars_after();
        let b = opt.plan((1 << 24) + 1000, &s).unwrap().scalars_after();
        assert_eq!(a, b);
    }

    #[test]
    fn copy_until_mu_leaves_one_then_average() {
        // lr = 0.5, λ = 0: decay 1, η = 0.5 every step; t0 = 0 so μ after step t is 1/t.
        let opt = Asgd {
            lr: 0.5,
            lambd: 0.0,
            t0: 0.0,
            ..Asgd::default()
        };
        let mut s = AsgdScalars::default();
        let (mut p, mut ax) = ([1.0f32], [7.0f32]);
        opt.step(1, &mut p, &[1.0], &mut ax, &mut s).unwrap();
        assert_eq!((p, ax), ([0.5], [0.5])); // μ = 1: copy
        assert_eq!(s, AsgdScalars { eta: 0.5, mu: 1.0 });
        opt.step(2, &mut p, &[1.0], &mut ax, &mut s).unwrap();
        assert_eq!((p, ax), ([0.0], [0.0])); // μ = 1/max(1, 1) = 1: copy
        assert_eq!(s.mu, 0.5);
        opt.step(3, &mut p, &[1.0], &mut ax, &mut s).unwrap();
        // μ = 0.5: ax = 0 + (−0.5 − 0)·0.5.
        assert_eq!((p, ax), ([-0.5], [-0.25]));
    }

    #[test]
    fn decay_and_weight_decay_by_hand() {
        // Step 1: η = lr = 0.5, λ = 0.5: decay f32(1 − 0.25) = 0.75; wd = 1, maximize:
        // g = −2 + 1·4 = 2, p = 4·0.75 − 0.5·2 = 2.
        let opt = Asgd {
            lr: 0.5,
            lambd: 0.5,
            weight_decay: 1.0,
            maximize: true,
            ..Asgd::default()
        };
        let mut s = AsgdScalars::default();
        let (mut p, mut ax) = ([4.0f32], [0.0f32]);
        opt.step(1, &mut p, &[2.0], &mut ax, &mut s).unwrap();
        assert_eq!((p, ax), ([2.0], [2.0]));
    }
}
