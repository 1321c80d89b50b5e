//! RMSprop (`torch.optim.RMSprop`).

use crate::dispatch::Backend;
use crate::error::{Error, non_negative_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane, Lerp};
use crate::optimizer::optimizer_traits;

/// RMSprop hyperparameters, with `torch.optim.RMSprop`'s names and defaults.
///
/// Per element, with `g` the gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:  g = g + weight_decay · p
/// v = α·v + (1 − α)·g·g
/// if centered:  ga = lerp(ga, g, 1 − α)        avg = √(v − ga·ga) + eps
/// else:                                        avg = √v + eps
/// if momentum > 0:  b = momentum · b + g / avg      p = p − lr · b
/// else:             p = p − lr · g / avg
/// ```
///
/// eps is outside the square root; there is no bias correction. As in torch, the momentum
/// buffer starts at zero (unlike SGD's, which copies the first gradient). When rounding makes
/// `v − ga²` negative, the centered square root is NaN, as in torch.
///
/// **State**: `n` values per plane, in torch's order: `square_avg`, then `momentum_buffer`
/// (only when `momentum > 0`), then `grad_avg` (only when `centered`): `n`, `2·n` or `3·n`
/// values. Zeros are a fresh state.
///
/// # Example
/// ```
/// use fused_optim::RMSprop;
///
/// let opt = RMSprop { lr: 0.1, alpha: 0.75, eps: 0.0, ..RMSprop::default() };
/// let mut params = [1.0f32];
/// let mut state = [0.0f32]; // square_avg
/// opt.step(1, &mut params, &[2.0], &mut state)?;
/// // v = 0.25·4 = 1, p = 1 − 0.1·2/√1
/// assert_eq!(state, [1.0]);
/// assert!((params[0] - 0.8).abs() < 1e-6);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[allow(clippy::upper_case_acronyms, reason = "torch's class name")]
pub struct RMSprop {
    /// Learning rate (default `1e-2`).
    pub lr: f64,
    /// Smoothing constant of the squared-gradient average (default `0.99`).
    pub alpha: f64,
    /// Added to the denominator, outside the square root (default `1e-8`).
    pub eps: f64,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: f64,
    /// Momentum factor; `> 0` adds a zero-initialised momentum buffer (default `0`).
    pub momentum: f64,
    /// Normalise by an estimate of the gradient's variance, keeping a gradient average
    /// (default `false`).
    pub centered: bool,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for RMSprop {
    #[inline]
    fn default() -> Self {
        RMSprop {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

impl RMSprop {
    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ eps`, `0 ≤ momentum`, `0 ≤ weight_decay`,
    /// `0 ≤ alpha` (NaN fails). Like torch, `alpha > 1` is accepted.
    ///
    /// ```
    /// use fused_optim::RMSprop;
    /// assert!(RMSprop::default().validate().is_ok());
    /// assert!(RMSprop { momentum: -0.5, ..RMSprop::default() }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        non_negative_f32("eps", self.eps)?;
        non_negative_f32("momentum", self.momentum)?;
        non_negative_f32("weight_decay", self.weight_decay)?;
        non_negative_f32("alpha", self.alpha)
    }

    /// State length for `n` parameters: `n`, plus `n` with momentum, plus `n` when centered.
    ///
    /// ```
    /// use fused_optim::RMSprop;
    /// assert_eq!(RMSprop::default().state_len(10), 10);
    /// assert_eq!(RMSprop { momentum: 0.9, centered: true, ..RMSprop::default() }.state_len(10), 30);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(self.planes())
    }

    #[inline]
    const fn planes(&self) -> usize {
        1 + (self.momentum > 0.0) as usize + self.centered as usize
    }

    /// Validates and prepares step `step` (starting at 1): `1 − α` and `−lr` in f64, rounded
    /// once to f32.
    ///
    /// ```
    /// use fused_optim::RMSprop;
    /// let plan = RMSprop { momentum: 0.9, ..RMSprop::default() }.plan(1)?;
    /// let mut p = [1.0f32; 3];
    /// plan.apply(&mut p, &[0.1; 3], &mut [0.0; 6])?; // square_avg, momentum_buffer
    /// assert!(p[0] < 1.0);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<RMSpropPlan, Error> {
        self.validate()?;
        step_number(step)?;
        Ok(RMSpropPlan {
            step,
            neg_lr: (-self.lr) as f32,
            alpha: self.alpha as f32,
            one_minus_alpha: (1.0 - self.alpha) as f32,
            ga_lerp: Lerp::new((1.0 - self.alpha) as f32),
            eps: self.eps as f32,
            momentum: (self.momentum > 0.0).then_some(self.momentum as f32),
            prep: GradPrep::l2(self.maximize, self.weight_decay),
            centered: self.centered,
        })
    }

    /// One step on one tensor: [`RMSprop::plan`] then [`RMSpropPlan::apply`].
    ///
    /// ```
    /// use fused_optim::RMSprop;
    /// let opt = RMSprop { centered: true, ..RMSprop::default() };
    /// let mut p = [0.5f32; 4];
    /// let mut s = [0.0f32; 8]; // square_avg, grad_avg
    /// for t in 1..=3 {
    ///     opt.step(t, &mut p, &[1.0; 4], &mut s)?;
    /// }
    /// assert!(p.iter().all(|&x| x < 0.5));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`RMSprop::plan`] and [`RMSpropPlan::apply`]; nothing is written on error.
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

/// RMSprop's precomputed step: build it with [`RMSprop::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RMSpropPlan {
    step: u64,
    neg_lr: f32,
    alpha: f32,
    one_minus_alpha: f32,
    ga_lerp: Lerp,
    eps: f32,
    momentum: Option<f32>,
    prep: GradPrep,
    centered: bool,
}

impl RMSpropPlan {
    /// Updates one tensor on [`Backend::best`]; `state` holds `square_avg`, then
    /// `momentum_buffer` (with momentum), then `grad_avg` (when centered), each `n` long.
    ///
    /// ```
    /// let plan = fused_optim::RMSprop { centered: true, ..Default::default() }.plan(1)?;
    /// let mut p = [1.0f32; 3];
    /// assert!(plan.apply(&mut p, &[1.0; 3], &mut [0.0; 3]).is_err()); // needs 6 values
    /// assert_eq!(p, [1.0; 3]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `grads.len() == n` and `state.len() == state_len(n)`.
    #[inline]
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// As [`RMSpropPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Backend, RMSprop};
    /// let plan = RMSprop { momentum: 0.5, centered: true, ..RMSprop::default() }.plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut [0.0; 57])?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut [0.0; 57])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`RMSpropPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        match (self.momentum.is_some(), self.centered) {
            (false, false) => format::run_f32::<_, 1>(backend, self, params, grads, state),
            (true, true) => format::run_f32::<_, 3>(backend, self, params, grads, state),
            _ => format::run_f32::<_, 2>(backend, self, params, grads, state),
        }
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
        match (self.momentum.is_some(), self.centered) {
            (false, false) => {
                format::run::<_, 1>(backend, self, self.step, offset, params, grads, state)
            }
            (true, true) => {
                format::run::<_, 3>(backend, self, self.step, offset, params, grads, state)
            }
            _ => format::run::<_, 2>(backend, self, self.step, offset, params, grads, state),
        }
    }

    /// The per-element update, in torch's order (see [`RMSprop`]).
    #[inline(always)]
    fn body<L: Lane>(&self, p: L, g: L, v: &mut L, buf: Option<&mut L>, ga: Option<&mut L>) -> L {
        let (p, g) = self.prep.apply(p, g);
        *v = *v * L::splat(self.alpha) + L::splat(self.one_minus_alpha) * g * g;
        let avg = match ga {
            Some(ga) => {
                *ga = self.ga_lerp.apply(*ga, g);
                (*v + -*ga * *ga).sqrt()
            }
            None => v.sqrt(),
        };
        let avg = avg + L::splat(self.eps);
        match (buf, self.momentum) {
            (Some(b), Some(mu)) => {
                *b = *b * L::splat(mu) + g / avg;
                p + *b * L::splat(self.neg_lr)
            }
            _ => p + L::splat(self.neg_lr) * g / avg,
        }
    }
}

impl Kernel<1> for RMSpropPlan {
    const SIGNED: [bool; 1] = [false];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [v]: &mut [L; 1]) -> L {
        self.body(p, g, v, None, None)
    }
}

impl Kernel<2> for RMSpropPlan {
    const SIGNED: [bool; 2] = [false, true];
    /// Two planes: `square_avg` and either `momentum_buffer` or `grad_avg`.
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [v, x]: &mut [L; 2]) -> L {
        if self.centered {
            self.body(p, g, v, None, Some(x))
        } else {
            self.body(p, g, v, Some(x), None)
        }
    }
}

impl Kernel<3> for RMSpropPlan {
    const SIGNED: [bool; 3] = [false, true, true];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [v, b, ga]: &mut [L; 3]) -> L {
        self.body(p, g, v, Some(b), Some(ga))
    }
}

optimizer_traits!(RMSprop, RMSpropPlan);

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_torchs() {
        let r = RMSprop::default();
        assert_eq!(
            (r.lr, r.alpha, r.eps, r.weight_decay, r.momentum),
            (1e-2, 0.99, 1e-8, 0.0, 0.0)
        );
        assert!(!r.centered && !r.maximize);
    }

    #[test]
    fn validation_follows_torch() {
        let d = RMSprop::default();
        // torch only asks alpha >= 0.
        assert!(RMSprop { alpha: 0.0, ..d }.validate().is_ok());
        assert!(RMSprop { alpha: 1.5, ..d }.validate().is_ok());
        for (name, bad) in [
            ("lr", RMSprop { lr: -1.0, ..d }),
            ("eps", RMSprop { eps: f64::NAN, ..d }),
            (
                "momentum",
                RMSprop {
                    momentum: -0.1,
                    ..d
                },
            ),
            (
                "weight_decay",
                RMSprop {
                    weight_decay: -1.0,
                    ..d
                },
            ),
            ("alpha", RMSprop { alpha: -0.01, ..d }),
            (
                "alpha",
                RMSprop {
                    alpha: f64::NAN,
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
    fn state_len_counts_planes() {
        let d = RMSprop::default();
        assert_eq!(d.state_len(4), 4);
        assert_eq!(RMSprop { momentum: 0.9, ..d }.state_len(4), 8);
        assert_eq!(
            RMSprop {
                centered: true,
                ..d
            }
            .state_len(4),
            8
        );
        assert_eq!(
            RMSprop {
                momentum: 0.9,
                centered: true,
                ..d
            }
            .state_len(4),
            12
        );
        assert_eq!(
            RMSprop { momentum: 0.9, ..d }.state_len(usize::MAX),
            usize::MAX
        );
    }

    #[test]
    fn momentum_buffer_starts_at_zero_not_at_the_gradient() {
        // α = 0.75, eps = 0, g = 2: v = 1, avg = 1, b = 0.5·0 + 2/1 = 2 (SGD would also give
        // g here; the difference shows at the next step) and p = 1 − 0.25·2.
        let opt = RMSprop {
            lr: 0.25,
            alpha: 0.75,
            eps: 0.0,
            momentum: 0.5,
            ..RMSprop::default()
        };
        let (mut p, mut s) = ([1.0f32], [0.0f32; 2]);
        opt.step(1, &mut p, &[2.0], &mut s).unwrap();
        assert_eq!((p, s), ([0.5], [1.0, 2.0]));
        // Whatever the buffer holds before step 1 is used: torch never resets it to g.
        let (mut p, mut s) = ([1.0f32], [0.0f32, 4.0]);
        opt.step(1, &mut p, &[2.0], &mut s).unwrap();
        assert_eq!((p, s), ([0.0], [1.0, 4.0])); // b = 0.5·4 + 2 = 4, p = 1 − 0.25·4
    }

    #[test]
    fn centered_with_momentum() {
        // α = 0.5, eps = 0.5, momentum = 0.5, centered, g = 4, fresh state:
        // v = 0.5·16 = 8, ga = lerp(0, 4, 0.5) = 2, avg = √(8 − 4) + 0.5 = 2.5,
        // b = 0 + 4/2.5 = 1.6, p = 1 − 0.5·1.6 = 0.2.
        let opt = RMSprop {
            lr: 0.5,
            alpha: 0.5,
            eps: 0.5,
            momentum: 0.5,
            centered: true,
            ..RMSprop::default()
        };
        let (mut p, mut s) = ([1.0f32], [0.0f32; 3]);
        opt.step(1, &mut p, &[4.0], &mut s).unwrap();
        assert_eq!(s[0], 8.0);
        assert_eq!(s[2], 2.0); // grad_avg is the third plane
        assert!((s[1] - 1.6).abs() < 1e-6, "{}", s[1]);
        assert!((p[0] - 0.2).abs() < 1e-6, "{}", p[0]);
        // Centered without momentum: planes are square_avg then grad_avg.
        let c = RMSprop {
            momentum: 0.0,
            ..opt
        };
        let (mut p, mut s) = ([1.0f32], [0.0f32; 2]);
        c.step(1, &mut p, &[4.0], &mut s).unwrap();
        assert_eq!(s, [8.0, 2.0]);
        assert!((p[0] - 0.2).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    fn centered_variance_rounding_below_zero_is_nan() {
        // A state with ga² > v (only rounding can produce it from a fresh start) gives NaN.
        let opt = RMSprop {
            alpha: 1.0,
            centered: true,
            ..RMSprop::default()
        };
        let (mut p, mut s) = ([1.0f32], [1.0f32, 2.0]);
        opt.step(1, &mut p, &[1.0], &mut s).unwrap();
        assert!(p[0].is_nan());
    }
}
