//! Rprop (`torch.optim.Rprop`): resilient backpropagation, with a per-element step size.

use crate::dispatch::Backend;
use crate::error::{Error, non_negative_f32, not_nan_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{Lane, sign_torch};
use crate::optimizer::{Optimizer, StepPlan};

/// Rprop hyperparameters, with `torch.optim.Rprop`'s names and defaults.
///
/// Per element, with `g` the gradient (negated if `maximize`), `η−, η+` the `etas` and
/// `[lo, hi]` the `step_sizes`, all rounded to f32, in torch's order (its single-tensor path):
///
/// ```text
/// s = sign(g · prev)                     (f32 product; sign(0) = sign(NaN) = 0, as torch on CPU)
/// s = (s > 0)  ? η+ : s                  three masked assignments, one after the other,
/// s = (s < 0)  ? η− : s                  exactly as torch's `sign[sign.gt(0)] = etaplus`, ...
/// s = (s == 0) ? 1  : s
/// step_size = clamp(step_size · s, lo, hi)     (NaN stays NaN; lo > hi gives hi, as torch)
/// g = (s == η−) ? 0 : g                  a sign change: this step's gradient counts as 0
/// p = p + (−sign(g)) · step_size         (torch: addcmul_(sign(g), step_size, value=−1))
/// prev = g
/// ```
///
/// **State**: `2·n` values, torch's `prev` then `step_size`. **A fresh state is not all
/// zeros**: torch starts `prev` at 0 and every `step_size` at `lr`. Write it with
/// [`Rprop::init_state`] (or [`Optimizer::init_state_in`] for other storage formats). `lr` is
/// read only there, as in torch: changing `lr` later (a scheduler) changes nothing. The first
/// step sees `prev = 0`, so `s = 1`, `step_size = clamp(lr, lo, hi)` and `p = p − sign(g)·
/// step_size`. (A zeroed state is a valid state too, with every step size 0: its first step
/// clamps them to `lo`.)
///
/// torch's quirks, reproduced:
/// - the sign test is on the rounded f32 product, so a product that underflows to 0 (tiny `g`
///   and `prev`) counts as no sign information (`s = 1`), not as a sign change;
/// - a NaN gradient gives `s = 0` (torch's CPU `sign(NaN)` is 0): the step size is kept, the
///   parameter does not move, and `prev` becomes NaN, so the next step also keeps its step size;
/// - the masks are applied in sequence on the f32 values: if `η−` rounds to 0 in f32 (below
///   about 7e-46) the `== 0` mask turns a sign change's 0 into 1, and no gradient is zeroed; if
///   `η−` rounds to 1 (`0.99999999`), the `== η−` test matches every element whose factor is 1,
///   so a first step (`prev = 0`) zeroes every gradient and moves nothing;
/// - `step_sizes` are not checked by torch: `lo ≤ 0` lets a step size reach 0 (and stay there),
///   `lo > hi` pins every step size to `hi`, and an infinite step size times a zero sign is NaN.
///
/// torch's `foreach=True` path computes the same per-element operations (the product's sign is
/// negated instead of the gradient for `maximize`, which gives the same sign): with torch 2.15
/// it gives the same bits as the default single-tensor path, and so does this type (no
/// operation here rounds differently; `tests/vectors/rprop.json`). `capturable` uses
/// `torch.where` for the masks, the same values.
///
/// bf16/f16 parameters: each element is computed in f32 and rounded once per store (as torch's
/// fused kernels do; Rprop has none). torch's for-loop on bf16 tensors rounds every operation,
/// and the etas, to bf16 (`bf16(1.2) = 1.203125`), so its step sizes drift a few bf16 ulps
/// from these.
///
/// # Example
/// ```
/// use fused_optim::Rprop;
///
/// let opt = Rprop::default(); // lr 1e-2, etas (0.5, 1.2), step_sizes (1e-6, 50)
/// let mut params = [1.0f32, -1.0];
/// let mut state = [0.0f32; 4]; // opt.state_len(2)
/// opt.init_state(&mut state)?; // prev = 0, step_size = lr
/// opt.step(1, &mut params, &[0.5, -2.0], &mut state)?;
/// assert_eq!(params, [0.99, -0.99]); // p − sign(g)·lr
/// opt.step(2, &mut params, &[0.25, 3.0], &mut state)?;
/// // Same sign: the step grows by 1.2. A sign change: the step shrinks by 0.5, and g counts as 0.
/// assert_eq!(state[2..], [0.01f32 * 1.2f32, 0.005]);
/// assert_eq!(params[1], -0.99);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rprop {
    /// Learning rate: the step size every element starts with (default `1e-2`). Read only by
    /// [`Rprop::init_state`].
    pub lr: f64,
    /// `(η−, η+)`: the factors that shrink and grow a step size (default `(0.5, 1.2)`).
    pub etas: (f64, f64),
    /// `(min, max)`: the range step sizes are clamped to (default `(1e-6, 50)`).
    pub step_sizes: (f64, f64),
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for Rprop {
    #[inline]
    fn default() -> Self {
        Rprop {
            lr: 1e-2,
            etas: (0.5, 1.2),
            step_sizes: (1e-6, 50.0),
            maximize: false,
        }
    }
}

impl Rprop {
    /// Checks torch's rules: `0 ≤ lr` and `0 < η− < 1 < η+` (NaN fails). torch does not check
    /// `step_sizes`; here they must not be NaN (torch would turn every step size into NaN).
    /// `lr`, `η+` and `step_sizes` must fit in f32 (torch raises when they are rounded to the
    /// tensor's dtype); infinities pass.
    ///
    /// ```
    /// use fused_optim::Rprop;
    /// assert!(Rprop::default().validate().is_ok());
    /// assert!(Rprop { etas: (0.5, 1.0), ..Rprop::default() }.validate().is_err());
    /// assert!(Rprop { step_sizes: (0.0, f64::INFINITY), ..Rprop::default() }.validate().is_ok());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        let (minus, plus) = self.etas;
        let minus_ok = minus > 0.0 && minus < 1.0;
        if !minus_ok {
            return Err(Error::InvalidHyperparameter {
                name: "etas[0]",
                value: minus,
                requirement: "must be in (0, 1)",
            });
        }
        let plus_ok = plus > 1.0;
        if !plus_ok {
            return Err(Error::InvalidHyperparameter {
                name: "etas[1]",
                value: plus,
                requirement: "must be > 1",
            });
        }
        not_nan_f32("etas[1]", plus)?;
        not_nan_f32("step_sizes[0]", self.step_sizes.0)?;
        not_nan_f32("step_sizes[1]", self.step_sizes.1)
    }

    /// State length for `n` parameters: `2·n` (`prev`, then `step_size`).
    ///
    /// ```
    /// assert_eq!(fused_optim::Rprop::default().state_len(10), 20);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(2)
    }

    /// Writes torch's fresh state into `f32` state of any length `2·n`: `prev = 0` (the first
    /// half) and `step_size = lr` (rounded to f32, the second half).
    ///
    /// ```
    /// use fused_optim::Rprop;
    /// let mut s = [9.0f32; 4];
    /// Rprop { lr: 0.25, ..Rprop::default() }.init_state(&mut s)?;
    /// assert_eq!(s, [0.0, 0.0, 0.25, 0.25]);
    /// assert!(Rprop::default().init_state(&mut [0.0; 3]).is_err()); // not two planes
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Rprop::validate`], and [`Error::LengthMismatch`] for an odd length; nothing is
    /// written then.
    #[inline]
    pub fn init_state(&self, state: &mut [f32]) -> Result<(), Error> {
        self.validate()?;
        State::F32(state).fill_planes(&self.initial_planes())
    }

    /// Writes torch's fresh state (`prev = 0`, `step_size = lr`) into buffers of any
    /// [`StateFormat`](crate::StateFormat): the same as [`Optimizer::init_state_in`].
    ///
    /// ```
    /// use fused_optim::{Rprop, State, bf16};
    /// let mut s = [bf16::ZERO; 4];
    /// Rprop { lr: 0.5, ..Rprop::default() }.init_state_in(State::Bf16(&mut s))?;
    /// assert_eq!(s.map(bf16::to_f32), [0.0, 0.0, 0.5, 0.5]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Rprop::validate`], and [`Error::LengthMismatch`] when the buffers do not hold two
    /// planes; nothing is written then.
    #[inline]
    pub fn init_state_in(&self, state: State<'_>) -> Result<(), Error> {
        self.validate()?;
        let mut state = state;
        state.fill_planes(&self.initial_planes())
    }

    /// The values torch's fresh state holds in each plane.
    fn initial_planes(&self) -> [f32; 2] {
        [0.0, self.lr as f32]
    }

    /// Validates and computes step `step`'s scalars (the f32 `etas` and `step_sizes`; Rprop
    /// has no per-step schedule, the step number only keys stochastic rounding).
    ///
    /// ```
    /// let opt = fused_optim::Rprop::default();
    /// let plan = opt.plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 3], [2.0f32; 5]);
    /// let (mut sa, mut sb) = ([0.0f32; 6], [0.0f32; 10]);
    /// opt.init_state(&mut sa)?;
    /// opt.init_state(&mut sb)?;
    /// plan.apply(&mut a, &[0.1; 3], &mut sa)?; // one plan, many tensors
    /// plan.apply(&mut b, &[0.1; 5], &mut sb)?;
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<RpropPlan, Error> {
        self.validate()?;
        step_number(step)?;
        Ok(RpropPlan {
            step,
            eta_minus: self.etas.0 as f32,
            eta_plus: self.etas.1 as f32,
            min: self.step_sizes.0 as f32,
            max: self.step_sizes.1 as f32,
            maximize: self.maximize,
        })
    }

    /// One step on one tensor: [`Rprop::plan`] then [`RpropPlan::apply`].
    ///
    /// ```
    /// use fused_optim::Rprop;
    /// let opt = Rprop::default();
    /// let mut p = [0.5f32; 4];
    /// let mut s = [0.0f32; 8];
    /// opt.init_state(&mut s)?;
    /// for t in 1..=3 {
    ///     opt.step(t, &mut p, &[1.0; 4], &mut s)?;
    /// }
    /// // Steps of 0.01, 0.012 and 0.0144.
    /// assert!((p[0] - (0.5 - 0.0364)).abs() < 1e-6);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Rprop::plan`] and [`RpropPlan::apply`]; nothing is written on error.
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

/// Rprop's precomputed step: build it with [`Rprop::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RpropPlan {
    step: u64,
    eta_minus: f32,
    eta_plus: f32,
    min: f32,
    max: f32,
    maximize: bool,
}

impl RpropPlan {
    /// Updates one tensor on [`Backend::best`]; `state` holds `prev` then `step_size`, each
    /// `n` long.
    ///
    /// ```
    /// let plan = fused_optim::Rprop::default().plan(1)?;
    /// let mut p = [1.0f32; 2];
    /// assert!(plan.apply(&mut p, &[0.1; 2], &mut [0.01; 3]).is_err());
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

    /// As [`RpropPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Backend, Rprop};
    /// let plan = Rprop::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// let (mut sa, mut sb) = ([0.01f32; 38], [0.01f32; 38]);
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut sa)?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut sb)?;
    /// assert_eq!((a, sa), (b, sb));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`RpropPlan::apply`], and [`Error::BackendUnavailable`].
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
    /// The step sizes are a non-negative plane (the unsigned code table of the block formats).
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

/// `if a == b { t } else { f }` for a `b` that is not NaN (a NaN `a` is unequal).
#[inline(always)]
fn select_eq<L: Lane>(a: L, b: L, t: L, f: L) -> L {
    let eq = L::select(a.is_nan(), f, t);
    L::select(a.lt(b), f, L::select(b.lt(a), f, eq))
}

impl Kernel<2> for RpropPlan {
    const SIGNED: [bool; 2] = [true, false];
    /// The per-element update, in torch's order (see [`Rprop`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [prev, step_size]: &mut [L; 2]) -> L {
        let g = if self.maximize { -g } else { g };
        let zero = L::splat(0.0);
        let eta_minus = L::splat(self.eta_minus);
        let s = sign_torch(g * *prev);
        let s = L::select(zero.lt(s), L::splat(self.eta_plus), s);
        let s = L::select(s.lt(zero), eta_minus, s);
        let s = select_eq(s, zero, L::splat(1.0), s);
        // torch's clamp: max then min (so lo > hi gives hi), NaN kept.
        let size = *step_size * s;
        let size = L::select(size.lt(L::splat(self.min)), L::splat(self.min), size);
        let size = L::select(L::splat(self.max).lt(size), L::splat(self.max), size);
        *step_size = size;
        let g = select_eq(s, eta_minus, zero, g);
        *prev = g;
        p + -sign_torch(g) * size
    }
}

impl Optimizer for Rprop {
    type Scalars = ();
    type Plan = RpropPlan;

    #[inline]
    fn validate(&self) -> Result<(), Error> {
        Rprop::validate(self)
    }
    #[inline]
    fn state_len(&self, n: usize) -> usize {
        Rprop::state_len(self, n)
    }
    /// torch's fresh state: `prev = 0`, `step_size = lr` (see [`Rprop::init_state`]).
    #[inline]
    fn init_state(&self, state: &mut [f32]) -> Result<(), Error> {
        Rprop::init_state(self, state)
    }
    /// `prev` starts at 0; the `step_size` plane starts at `lr` (see [`Rprop::init_state_in`]).
    #[inline]
    fn initial_value(&self) -> f32 {
        0.0
    }
    #[inline]
    fn init_state_in(&self, state: State<'_>) -> Result<(), Error> {
        Rprop::init_state_in(self, state)
    }
    #[inline]
    fn plan(&self, step: u64, _: &()) -> Result<RpropPlan, Error> {
        Rprop::plan(self, step)
    }
}

crate::optimizer::inherent_apply_to!(RpropPlan);

impl StepPlan for RpropPlan {
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
        RpropPlan::apply_piece(self, backend, offset, params, grads, state)
    }
    #[inline]
    fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        RpropPlan::apply_on(self, backend, params, grads, state)
    }
    #[inline]
    fn scalars_after(&self) {}
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_torchs() {
        let r = Rprop::default();
        assert_eq!(
            (r.lr, r.etas, r.step_sizes, r.maximize),
            (1e-2, (0.5, 1.2), (1e-6, 50.0), false)
        );
    }

    #[test]
    fn validation_follows_torch() {
        let d = Rprop::default();
        for ok in [
            Rprop { lr: 0.0, ..d },
            Rprop {
                etas: (1e-30, 1e30),
                ..d
            },
            Rprop {
                etas: (0.5, f64::INFINITY),
                ..d
            },
            // torch does not check step_sizes: any order, any sign, infinities.
            Rprop {
                step_sizes: (5.0, -1.0),
                ..d
            },
            Rprop {
                step_sizes: (f64::NEG_INFINITY, f64::INFINITY),
                ..d
            },
        ] {
            assert!(ok.validate().is_ok(), "{ok:?}");
        }
        for (name, bad) in [
            ("lr", Rprop { lr: -1e-3, ..d }),
            ("lr", Rprop { lr: f64::NAN, ..d }),
            ("lr", Rprop { lr: 1e39, ..d }),
            (
                "etas[0]",
                Rprop {
                    etas: (0.0, 1.2),
                    ..d
                },
            ),
            (
                "etas[0]",
                Rprop {
                    etas: (1.0, 1.2),
                    ..d
                },
            ),
            (
                "etas[0]",
                Rprop {
                    etas: (f64::NAN, 1.2),
                    ..d
                },
            ),
            (
                "etas[1]",
                Rprop {
                    etas: (0.5, 1.0),
                    ..d
                },
            ),
            (
                "etas[1]",
                Rprop {
                    etas: (0.5, f64::NAN),
                    ..d
                },
            ),
            (
                "etas[1]",
                Rprop {
                    etas: (0.5, 1e39),
                    ..d
                },
            ),
            (
                "step_sizes[0]",
                Rprop {
                    step_sizes: (f64::NAN, 50.0),
                    ..d
                },
            ),
            (
                "step_sizes[0]",
                Rprop {
                    step_sizes: (-1e39, 50.0),
                    ..d
                },
            ),
            (
                "step_sizes[1]",
                Rprop {
                    step_sizes: (1e-6, 1e40),
                    ..d
                },
            ),
            (
                "step_sizes[1]",
                Rprop {
                    step_sizes: (1e-6, f64::NAN),
                    ..d
                },
            ),
        ] {
            match bad.plan(1) {
                Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
            let mut s = [7.0f32; 4];
            assert!(bad.init_state(&mut s).is_err());
            assert_eq!(s, [7.0; 4]);
        }
        assert_eq!(d.plan(0), Err(Error::InvalidStep(0)));
    }

    #[test]
    fn init_state_writes_prev_zero_and_step_size_lr() {
        let opt = Rprop {
            lr: 0.1,
            ..Rprop::default()
        };
        let mut s = [5.0f32; 6];
        Optimizer::init_state(&opt, &mut s).unwrap();
        assert_eq!(s, [0.0, 0.0, 0.0, 0.1, 0.1, 0.1]);
        let mut odd = [5.0f32; 5];
        assert!(matches!(
            opt.init_state(&mut odd),
            Err(Error::LengthMismatch { what: "state", .. })
        ));
        assert_eq!(odd, [5.0; 5]);
        opt.init_state(&mut []).unwrap();
    }

    #[test]
    fn first_step_moves_by_lr_clamped() {
        // lr above the maximum: the first step clamps it.
        let opt = Rprop {
            lr: 2.0,
            step_sizes: (0.0, 0.5),
            ..Rprop::default()
        };
        let mut s = [0.0f32; 6];
        opt.init_state(&mut s).unwrap();
        let mut p = [1.0f32, 1.0, 1.0];
        opt.step(1, &mut p, &[3.0, -0.25, 0.0], &mut s).unwrap();
        assert_eq!(p, [0.5, 1.5, 1.0]);
        assert_eq!(s, [3.0, -0.25, 0.0, 0.5, 0.5, 0.5]);
    }

    #[test]
    fn sign_change_shrinks_and_zeroes_the_gradient() {
        let opt = Rprop::default();
        // prev = [1, 1, 0, 1], step sizes 0.5; g = [2, −2, 5, 0].
        let mut s = [1.0f32, 1.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5];
        let mut p = [0.0f32; 4];
        opt.step(2, &mut p, &[2.0, -2.0, 5.0, 0.0], &mut s).unwrap();
        let grown = 0.5f32 * 1.2f32;
        assert_eq!(s[4..], [grown, 0.25, 0.5, 0.5]);
        assert_eq!(s[..4], [2.0, 0.0, 5.0, 0.0]); // the sign change stored as 0
        assert_eq!(p, [-grown, 0.0, -0.5, 0.0]);
        // Next step after the sign change: prev = 0, so no shrink, a plain step.
        opt.step(3, &mut p, &[0.0, -1.0, 0.0, 0.0], &mut s).unwrap();
        assert_eq!(s[5], 0.25);
        assert_eq!(p[1], 0.25);
    }

    #[test]
    fn maximize_negates_the_gradient_and_prev() {
        let opt = Rprop {
            maximize: true,
            ..Rprop::default()
        };
        let mut s = [0.0f32; 2];
        opt.init_state(&mut s).unwrap();
        let mut p = [1.0f32];
        opt.step(1, &mut p, &[2.0], &mut s).unwrap();
        assert_eq!((p, s), ([1.01], [-2.0, 0.01]));
    }

    #[test]
    fn clamp_follows_torch() {
        // lo > hi: every step size becomes hi.
        let opt = Rprop {
            step_sizes: (3.0, 2.0),
            ..Rprop::default()
        };
        let mut s = [0.0f32, 0.0, 0.01, 100.0];
        let mut p = [0.0f32; 2];
        opt.step(1, &mut p, &[1.0, 1.0], &mut s).unwrap();
        assert_eq!(s[2..], [2.0, 2.0]);
        // An infinite step size times a zero sign: NaN (torch's addcmul), step size kept.
        let inf = Rprop {
            step_sizes: (0.0, f64::INFINITY),
            ..Rprop::default()
        };
        let mut s = [0.0f32, f32::INFINITY];
        let mut p = [1.0f32];
        inf.step(1, &mut p, &[0.0], &mut s).unwrap();
        assert!(p[0].is_nan());
        assert_eq!(s[1], f32::INFINITY);
    }

    #[test]
    fn nan_gradient_keeps_the_parameter_and_the_step_size() {
        let opt = Rprop::default();
        let mut s = [1.0f32, 0.5];
        let mut p = [2.0f32];
        opt.step(2, &mut p, &[f32::NAN], &mut s).unwrap();
        assert_eq!((p[0], s[1]), (2.0, 0.5));
        assert!(s[0].is_nan());
        // prev = NaN: the next product is NaN again, sign 0, a plain step of the kept size.
        opt.step(3, &mut p, &[1.0], &mut s).unwrap();
        assert_eq!((p, s), ([1.5], [1.0, 0.5]));
    }

    #[test]
    fn underflowing_product_is_no_sign_information() {
        let opt = Rprop::default();
        let tiny = 1e-30f32; // tiny · tiny underflows to 0 in f32
        let mut s = [-tiny, 0.5];
        let mut p = [0.0f32];
        opt.step(2, &mut p, &[tiny], &mut s).unwrap();
        assert_eq!((p, s), ([-0.5], [tiny, 0.5]));
    }

    #[test]
    fn eta_minus_rounding_quirks() {
        // η− rounds to 1 in f32: every factor-1 element (here, all on a first step) is zeroed.
        let one = Rprop {
            etas: (0.999_999_99, 1.2),
            ..Rprop::default()
        };
        let mut s = [0.0f32; 4];
        one.init_state(&mut s).unwrap();
        let mut p = [1.0f32; 2];
        one.step(1, &mut p, &[1.0, -1.0], &mut s).unwrap();
        assert_eq!((p, s), ([1.0; 2], [0.0, 0.0, 0.01, 0.01]));
        // η− rounds to 0: the sign change's factor 0 is turned into 1 by the `== 0` mask, and
        // the gradient is kept.
        let zero = Rprop {
            etas: (1e-50, 1.2),
            ..Rprop::default()
        };
        let mut s = [1.0f32, 0.5];
        let mut p = [0.0f32];
        zero.step(2, &mut p, &[-1.0], &mut s).unwrap();
        assert_eq!((p, s), ([0.5], [-1.0, 0.5]));
    }
}
