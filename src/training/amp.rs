//! Mixed-precision support: fused gradient unscaling with a non-finite check, a dynamic loss
//! scale with `torch.amp.GradScaler`'s semantics, and multi-tensor steps that skip themselves
//! when a gradient is not finite.
//!
//! By default nothing in this crate looks for NaN or ±Inf: a non-finite gradient propagates
//! through an optimizer step exactly as it does in torch (into the parameters and, for most
//! optimizers, permanently into the state). Use [`step_if_finite`] or [`GradScaler::step`] to
//! skip such a step instead; a skipped step writes nothing.

use crate::dispatch::{run_fold, run_fold_mut};
use crate::error::{Error, step_number};
use crate::kernel::Fold;
use crate::lane::Lane;
use crate::{Backend, Optimizer, StepPlan};

/// `x · 0`: ±0 for a finite `x`, NaN for NaN and ±Inf. Summed into an accumulator that starts
/// at 0, it leaves 0 exactly when every value was finite, in any order.
#[inline(always)]
fn probe<L: Lane>(x: L) -> L {
    x * L::splat(0.0)
}

/// `x · inv_scale` in place, accumulating [`probe`] of the product: the check sees the value
/// the step will use, so a finite gradient that overflows once unscaled (a scale backed off
/// to 0 gives `inv_scale = inf`) is found too. Every non-finite input still gives a non-finite
/// product (`inv_scale` is positive), so nothing torch's check finds is missed.
#[derive(Clone, Copy, Debug)]
struct Unscale(f32);

impl Fold for Unscale {
    const INIT: f32 = 0.0;
    #[inline(always)]
    fn fold<L: Lane>(&self, x: L, acc: L) -> (L, L) {
        let y = x * L::splat(self.0);
        (y, acc + probe(y))
    }
    #[inline(always)]
    fn combine(a: f32, b: f32) -> f32 {
        a + b
    }
}

/// The check alone: accumulates [`probe`]`(x)`, writes nothing.
#[derive(Clone, Copy, Debug)]
struct Check;

impl Fold for Check {
    const INIT: f32 = 0.0;
    #[inline(always)]
    fn fold<L: Lane>(&self, x: L, acc: L) -> (L, L) {
        (x, acc + probe(x))
    }
    #[inline(always)]
    fn combine(a: f32, b: f32) -> f32 {
        a + b
    }
}

/// torch's `_amp_foreach_non_finite_check_and_unscale_`: multiplies every gradient by
/// `inv_scale` in place and returns `true` when any value **before** the multiply was NaN or
/// ±Inf (torch's `found_inf`).
///
/// ```text
/// g = (inv_scale == 1) ? g : g · inv_scale    always, even when found_inf
/// found_inf = any(!isfinite(g))          over every unscaled value of every slice
/// ```
///
/// torch checks each value before multiplying it, so a finite gradient that the multiply
/// turns into ±inf (possible once a [`GradScaler`] has backed off to a scale of 0, where
/// `inv_scale` is inf) passes its check and reaches the optimizer. Here the check sees the
/// product, what the step will use: such a step is skipped. For every other input the two
/// checks agree.
///
/// As in torch, every gradient is unscaled even when a non-finite value is found (non-finite
/// values stay non-finite), and with `inv_scale == 1` the pass only checks, writing nothing.
/// One fused pass per slice on [`Backend::best`]; the result and the bits written are the same
/// on every backend.
///
/// # Example
/// ```
/// use fused_optim::amp::unscale_and_check;
///
/// let (mut a, mut b) = ([2.0f32, 4.0], [8.0f32; 3]);
/// let found_inf = unscale_and_check(&mut [&mut a[..], &mut b[..]], 0.5);
/// assert!(!found_inf);
/// assert_eq!((a, b), ([1.0, 2.0], [4.0; 3]));
///
/// let mut c = [1.0f32, f32::INFINITY];
/// assert!(unscale_and_check(&mut [&mut c], 0.5));
/// assert_eq!(c, [0.5, f32::INFINITY]); // unscaled anyway, as torch does
/// ```
#[inline]
#[must_use = "the return value says whether a gradient was not finite"]
pub fn unscale_and_check<G: AsMut<[f32]>>(grads: &mut [G], inv_scale: f32) -> bool {
    unscale_and_check_on(Backend::best(), grads, inv_scale).unwrap_or(true)
}

/// As [`unscale_and_check`], on a named backend (identical results, different speed).
///
/// ```
/// use fused_optim::{Backend, amp::unscale_and_check_on};
/// let mut g = [4.0f32; 21];
/// assert_eq!(unscale_and_check_on(Backend::Scalar, &mut [&mut g], 0.25), Ok(false));
/// assert_eq!(g, [1.0; 21]);
/// ```
///
/// # Errors
/// [`Error::BackendUnavailable`], before anything is written.
#[inline]
pub fn unscale_and_check_on<G: AsMut<[f32]>>(
    backend: Backend,
    grads: &mut [G],
    inv_scale: f32,
) -> Result<bool, Error> {
    if !backend.is_available() {
        return Err(Error::BackendUnavailable(backend));
    }
    if inv_scale == 1.0 {
        let mut acc = 0.0;
        for g in grads.iter_mut() {
            acc = run_fold(backend, &Check, g.as_mut(), acc)?;
        }
        return Ok(acc.is_nan());
    }
    let mut acc = 0.0;
    for g in grads.iter_mut() {
        acc = run_fold_mut(backend, &Unscale(inv_scale), g.as_mut(), acc)?;
    }
    Ok(acc.is_nan())
}

/// Whether every value of every slice is finite (no NaN, no ±Inf). Reads only.
///
/// ```text
/// all_finite = !any(!isfinite(g))
/// ```
///
/// # Example
/// ```
/// use fused_optim::amp::all_finite;
/// assert!(all_finite(&[&[1.0f32, -2.0][..], &[3.0e38][..]]));
/// assert!(!all_finite(&[[0.0f32, f32::NAN]]));
/// assert!(all_finite::<&[f32]>(&[])); // nothing to check
/// ```
#[inline]
#[must_use]
pub fn all_finite<G: AsRef<[f32]>>(grads: &[G]) -> bool {
    all_finite_on(Backend::best(), grads).unwrap_or(false)
}

/// As [`all_finite`], on a named backend.
///
/// ```
/// use fused_optim::{Backend, amp::all_finite_on};
/// assert_eq!(all_finite_on(Backend::Scalar, &[[f32::NEG_INFINITY]]), Ok(false));
/// ```
///
/// # Errors
/// [`Error::BackendUnavailable`].
#[inline]
pub fn all_finite_on<G: AsRef<[f32]>>(backend: Backend, grads: &[G]) -> Result<bool, Error> {
    if !backend.is_available() {
        return Err(Error::BackendUnavailable(backend));
    }
    for g in grads {
        if run_fold(backend, &Check, g.as_ref(), 0.0)?.is_nan() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether [`step_if_finite`] updated the tensors or skipped the step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a skipped step should usually not advance the learning-rate schedule"]
pub enum StepOutcome {
    /// Every gradient was finite: the step ran and the step counter advanced.
    Stepped,
    /// A gradient was NaN or ±Inf: nothing was written.
    Skipped,
}

/// One optimizer step over many tensors, **only if every gradient is finite**.
///
/// `step` counts the steps taken so far (torch's `state["step"]`, 0 for a fresh optimizer);
/// this function runs step `*step + 1`. `scalars` is the optimizer's scalar state
/// ([`Optimizer::Scalars`], e.g. NAdam's `mu_product`). Tensor `i` is `params[i]`, `grads[i]`
/// and `states[i]`.
///
/// ```text
/// validate hyperparameters, every length, the step number    (Err: nothing written)
/// if any gradient is NaN or ±Inf:  return Skipped            (nothing written)
/// plan = opt.plan(*step + 1, scalars)
/// for each tensor: plan.apply(params[i], grads[i], states[i])
/// *scalars = plan.scalars_after();  *step += 1;  return Stepped
/// ```
///
/// On [`StepOutcome::Skipped`] parameters, states, `step` and `scalars` are bit for bit what
/// they were, which is what `GradScaler.step` does in torch for a non-fused optimizer. The
/// check is one extra read-only pass over the gradients.
///
/// # Example
/// ```
/// use fused_optim::{Adam, amp::{StepOutcome, step_if_finite}};
///
/// let adam = Adam::default();
/// let (mut w, mut b) = ([1.0f32; 4], [0.0f32; 2]);
/// let (mut sw, mut sb) = ([0.0f32; 8], [0.0f32; 4]);
/// let (mut step, mut scalars) = (0u64, ());
///
/// let grads = [&[0.1f32; 4][..], &[0.2f32; 2][..]];
/// let r = step_if_finite(&adam, &mut step, &mut scalars,
///     &mut [&mut w[..], &mut b[..]], &grads, &mut [&mut sw[..], &mut sb[..]])?;
/// assert_eq!((r, step), (StepOutcome::Stepped, 1));
///
/// let before = (w, b, sw, sb);
/// let bad = [&[0.1f32; 4][..], &[f32::NAN, 0.2][..]];
/// let r = step_if_finite(&adam, &mut step, &mut scalars,
///     &mut [&mut w[..], &mut b[..]], &bad, &mut [&mut sw[..], &mut sb[..]])?;
/// assert_eq!((r, step), (StepOutcome::Skipped, 1));
/// assert_eq!((w, b, sw, sb), before); // nothing written
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// Invalid hyperparameters; [`Error::LengthMismatch`] when the three lists differ in length or
/// a tensor's gradient or state does not fit its parameters; [`Error::InvalidStep`] when the
/// counter is `u64::MAX`. Nothing is written on error.
#[inline]
pub fn step_if_finite<O, P, G, S>(
    opt: &O,
    step: &mut u64,
    scalars: &mut O::Scalars,
    params: &mut [P],
    grads: &[G],
    states: &mut [S],
) -> Result<StepOutcome, Error>
where
    O: Optimizer,
    P: AsMut<[f32]>,
    G: AsRef<[f32]>,
    S: AsMut<[f32]>,
{
    step_if_finite_on(Backend::best(), opt, step, scalars, params, grads, states)
}

/// As [`step_if_finite`], on a named backend (identical results, different speed).
///
/// ```
/// use fused_optim::{Backend, Sgd, amp::{StepOutcome, step_if_finite_on}};
/// let sgd = Sgd { lr: 0.5, ..Sgd::default() };
/// let mut p = [1.0f32; 3];
/// let mut step = 0;
/// let r = step_if_finite_on(Backend::Scalar, &sgd, &mut step, &mut (),
///     &mut [&mut p], &[[1.0f32; 3]], &mut [[0.0f32; 0]])?;
/// assert_eq!((r, p, step), (StepOutcome::Stepped, [0.5; 3], 1));
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// As [`step_if_finite`], and [`Error::BackendUnavailable`].
#[inline]
pub fn step_if_finite_on<O, P, G, S>(
    backend: Backend,
    opt: &O,
    step: &mut u64,
    scalars: &mut O::Scalars,
    params: &mut [P],
    grads: &[G],
    states: &mut [S],
) -> Result<StepOutcome, Error>
where
    O: Optimizer,
    P: AsMut<[f32]>,
    G: AsRef<[f32]>,
    S: AsMut<[f32]>,
{
    let plan = prepare(backend, opt, *step, scalars, params, grads, states)?;
    if !all_finite_on(backend, grads)? {
        return Ok(StepOutcome::Skipped);
    }
    apply_all(backend, &plan, params, grads, states)?;
    *scalars = plan.scalars_after();
    *step += 1;
    Ok(StepOutcome::Stepped)
}

/// Every check of a multi-tensor step, before anything is written: the backend, the plan
/// (hyperparameters and step number) and every length.
fn prepare<O, P, G, S>(
    backend: Backend,
    opt: &O,
    step: u64,
    scalars: &O::Scalars,
    params: &mut [P],
    grads: &[G],
    states: &mut [S],
) -> Result<O::Plan, Error>
where
    O: Optimizer,
    P: AsMut<[f32]>,
    G: AsRef<[f32]>,
    S: AsMut<[f32]>,
{
    if !backend.is_available() {
        return Err(Error::BackendUnavailable(backend));
    }
    let next = step.checked_add(1).ok_or(Error::InvalidStep(step))?;
    step_number(next)?;
    let plan = opt.plan(next, scalars)?;
    let count = params.len();
    if grads.len() != count {
        return Err(Error::LengthMismatch {
            what: "grads",
            expected: count,
            actual: grads.len(),
        });
    }
    if states.len() != count {
        return Err(Error::LengthMismatch {
            what: "states",
            expected: count,
            actual: states.len(),
        });
    }
    for ((p, g), s) in params.iter_mut().zip(grads).zip(states.iter_mut()) {
        let n = p.as_mut().len();
        let (g, s) = (g.as_ref().len(), s.as_mut().len());
        if g != n {
            return Err(Error::LengthMismatch {
                what: "grads",
                expected: n,
                actual: g,
            });
        }
        if s != opt.state_len(n) {
            return Err(Error::LengthMismatch {
                what: "state",
                expected: opt.state_len(n),
                actual: s,
            });
        }
    }
    Ok(plan)
}

/// Applies a checked plan to every tensor.
fn apply_all<T, P, G, S>(
    backend: Backend,
    plan: &T,
    params: &mut [P],
    grads: &[G],
    states: &mut [S],
) -> Result<(), Error>
where
    T: StepPlan,
    P: AsMut<[f32]>,
    G: AsRef<[f32]>,
    S: AsMut<[f32]>,
{
    for ((p, g), s) in params.iter_mut().zip(grads).zip(states.iter_mut()) {
        plan.apply_on(backend, p.as_mut(), g.as_ref(), s.as_mut())?;
    }
    Ok(())
}

/// A dynamic loss scale with `torch.amp.GradScaler`'s defaults and update rule
/// (`torch._amp_update_scale_`).
///
/// Multiply the loss by [`scale`](GradScaler::scale) before the backward pass, unscale the
/// gradients with [`unscale`](GradScaler::unscale) (which reports non-finite values), step only
/// if they are finite, then [`update`](GradScaler::update) the scale:
///
/// ```text
/// inv_scale = f32(1 / f64(scale))                       (fp64 reciprocal, as torch)
/// update(found_inf):
///     if found_inf:  scale = f32(scale · backoff_factor);  tracker = 0
///     else:          tracker += 1
///                    if tracker == growth_interval:
///                        if f32(scale · growth_factor) is finite: scale = that   (never Inf)
///                        tracker = 0
/// ```
///
/// The products are computed in f64 and rounded once to f32, as torch's CPU kernel does.
/// [`GradScaler::step`] does unscale, conditional step and update in one call.
///
/// # Example
/// ```
/// use fused_optim::{Adam, amp::{GradScaler, StepOutcome}};
///
/// let mut scaler = GradScaler::default();             // init_scale = 65536
/// assert_eq!(scaler.scale(), 65536.0);
/// let adam = Adam::default();
/// let (mut p, mut s) = ([1.0f32; 3], [0.0f32; 6]);
/// let (mut step, mut scalars) = (0, ());
///
/// let mut g = [65536.0f32 * 0.5; 3];                    // gradients of the scaled loss
/// let r = scaler.step(&adam, &mut step, &mut scalars, &mut [&mut p], &mut [&mut g], &mut [&mut s])?;
/// assert_eq!((r, g), (StepOutcome::Stepped, [0.5; 3])); // unscaled in place
///
/// let mut g = [f32::INFINITY, 1.0, 1.0];                // an overflow: skipped, scale halved
/// let before = (p, s);
/// let r = scaler.step(&adam, &mut step, &mut scalars, &mut [&mut p], &mut [&mut g], &mut [&mut s])?;
/// assert_eq!((r, step, scaler.scale()), (StepOutcome::Skipped, 1, 32768.0));
/// assert_eq!((p, s), before);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradScaler {
    scale: f32,
    growth_tracker: u32,
    growth_factor: f64,
    backoff_factor: f64,
    growth_interval: u32,
}

impl Default for GradScaler {
    /// torch's defaults: `init_scale = 65536`, `growth_factor = 2`, `backoff_factor = 0.5`,
    /// `growth_interval = 2000`.
    #[inline]
    fn default() -> Self {
        GradScaler {
            scale: 65536.0,
            growth_tracker: 0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

impl GradScaler {
    /// A scaler with the given settings and a fresh growth tracker.
    ///
    /// torch requires `growth_factor > 1` and `backoff_factor < 1`; this crate also rejects
    /// NaN, a `backoff_factor <= 0` and an `init_scale` that is not finite and positive (each
    /// would make the scale meaningless), and `growth_interval == 0` (torch would then never
    /// grow the scale).
    ///
    /// ```
    /// use fused_optim::{Error, amp::GradScaler};
    /// let s = GradScaler::new(1024.0, 2.0, 0.5, 100)?;
    /// assert_eq!(s.scale(), 1024.0);
    /// assert!(matches!(GradScaler::new(1024.0, 1.0, 0.5, 100),
    ///     Err(Error::InvalidHyperparameter { name: "growth_factor", .. })));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn new(
        init_scale: f32,
        growth_factor: f64,
        backoff_factor: f64,
        growth_interval: u32,
    ) -> Result<Self, Error> {
        if !(init_scale.is_finite() && init_scale > 0.0) {
            return Err(Error::InvalidHyperparameter {
                name: "init_scale",
                value: f64::from(init_scale),
                requirement: "must be finite and > 0",
            });
        }
        if growth_factor.is_nan() || growth_factor <= 1.0 {
            return Err(Error::InvalidHyperparameter {
                name: "growth_factor",
                value: growth_factor,
                requirement: "must be > 1",
            });
        }
        if !(backoff_factor > 0.0 && backoff_factor < 1.0) {
            return Err(Error::InvalidHyperparameter {
                name: "backoff_factor",
                value: backoff_factor,
                requirement: "must be in (0, 1)",
            });
        }
        if growth_interval == 0 {
            return Err(Error::InvalidHyperparameter {
                name: "growth_interval",
                value: 0.0,
                requirement: "must be >= 1",
            });
        }
        Ok(GradScaler {
            scale: init_scale,
            growth_tracker: 0,
            growth_factor,
            backoff_factor,
            growth_interval,
        })
    }

    /// The current scale.
    ///
    /// ```
    /// assert_eq!(fused_optim::amp::GradScaler::default().scale(), 65536.0);
    /// ```
    #[inline]
    pub const fn scale(&self) -> f32 {
        self.scale
    }

    /// Consecutive finite steps since the last change of scale (torch's `_growth_tracker`).
    ///
    /// ```
    /// let mut s = fused_optim::amp::GradScaler::default();
    /// s.update(false);
    /// assert_eq!(s.growth_tracker(), 1);
    /// ```
    #[inline]
    pub const fn growth_tracker(&self) -> u32 {
        self.growth_tracker
    }

    /// `f32(1 / f64(scale))`, the factor that unscales gradients (torch computes it in fp64).
    ///
    /// ```
    /// assert_eq!(fused_optim::amp::GradScaler::default().inv_scale(), 1.0 / 65536.0);
    /// ```
    #[inline]
    pub fn inv_scale(&self) -> f32 {
        (1.0 / f64::from(self.scale)) as f32
    }

    /// `loss · scale` in f32: the loss to differentiate.
    ///
    /// ```
    /// assert_eq!(fused_optim::amp::GradScaler::default().scale_loss(0.5), 32768.0);
    /// ```
    #[inline]
    pub fn scale_loss(&self, loss: f32) -> f32 {
        loss * self.scale
    }

    /// Unscales the gradients in place ([`unscale_and_check`] with
    /// [`inv_scale`](GradScaler::inv_scale)) and returns `found_inf`.
    ///
    /// ```
    /// let s = fused_optim::amp::GradScaler::default();
    /// let mut g = [65536.0f32, -131072.0];
    /// assert!(!s.unscale(&mut [&mut g]));
    /// assert_eq!(g, [1.0, -2.0]);
    /// ```
    #[inline]
    #[must_use = "the return value says whether a gradient was not finite"]
    pub fn unscale<G: AsMut<[f32]>>(&self, grads: &mut [G]) -> bool {
        unscale_and_check(grads, self.inv_scale())
    }

    /// torch's `_amp_update_scale_`: backs off after a non-finite step, grows after
    /// `growth_interval` finite steps in a row, never to infinity (see [`GradScaler`]).
    ///
    /// ```
    /// use fused_optim::amp::GradScaler;
    /// let mut s = GradScaler::new(8.0, 2.0, 0.5, 2)?;
    /// s.update(false);
    /// assert_eq!(s.scale(), 8.0);
    /// s.update(false);
    /// assert_eq!(s.scale(), 16.0); // two finite steps: grown
    /// s.update(true);
    /// assert_eq!((s.scale(), s.growth_tracker()), (8.0, 0));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    #[inline]
    pub fn update(&mut self, found_inf: bool) {
        if found_inf {
            self.scale = (f64::from(self.scale) * self.backoff_factor) as f32;
            self.growth_tracker = 0;
        } else {
            let successful = self.growth_tracker.saturating_add(1);
            if successful == self.growth_interval {
                let grown = (f64::from(self.scale) * self.growth_factor) as f32;
                if grown.is_finite() {
                    self.scale = grown;
                }
                self.growth_tracker = 0;
            } else {
                self.growth_tracker = successful;
            }
        }
    }

    /// Unscale, step if finite, update: the whole of torch's `scaler.unscale_(opt);
    /// scaler.step(opt); scaler.update()` for one step over many tensors.
    ///
    /// ```text
    /// check every length and hyperparameter                  (Err: nothing written)
    /// found_inf = unscale(grads)                             (grads always unscaled, as torch)
    /// outcome = found_inf ? Skipped : step_if_finite(...)    (Skipped: params, states,
    /// update(found_inf)                                       step and scalars untouched)
    /// ```
    ///
    /// To clip between unscaling and stepping, call [`unscale`](GradScaler::unscale), clip,
    /// [`step_if_finite`] and [`update`](GradScaler::update) yourself.
    ///
    /// ```
    /// use fused_optim::{Sgd, amp::{GradScaler, StepOutcome}};
    /// let mut scaler = GradScaler::new(4.0, 2.0, 0.5, 2000)?;
    /// let sgd = Sgd { lr: 0.5, ..Sgd::default() };
    /// let mut p = [1.0f32; 2];
    /// let mut g = [4.0f32, 8.0]; // 4 × [1, 2]
    /// let mut step = 0;
    /// let r = scaler.step(&sgd, &mut step, &mut (), &mut [&mut p], &mut [&mut g], &mut [[0.0f32; 0]])?;
    /// assert_eq!((r, p), (StepOutcome::Stepped, [0.5, 0.0]));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`step_if_finite`]; on error nothing is written (gradients and scale included).
    #[inline]
    pub fn step<O, P, G, S>(
        &mut self,
        opt: &O,
        step: &mut u64,
        scalars: &mut O::Scalars,
        params: &mut [P],
        grads: &mut [G],
        states: &mut [S],
    ) -> Result<StepOutcome, Error>
    where
        O: Optimizer,
        P: AsMut<[f32]>,
        G: AsMut<[f32]> + AsRef<[f32]>,
        S: AsMut<[f32]>,
    {
        let backend = Backend::best();
        let plan = prepare(backend, opt, *step, scalars, params, grads, states)?;
        let found_inf = unscale_and_check_on(backend, grads, self.inv_scale())?;
        let outcome = if found_inf {
            StepOutcome::Skipped
        } else {
            apply_all(backend, &plan, params, grads, states)?;
            *scalars = plan.scalars_after();
            *step += 1;
            StepOutcome::Stepped
        };
        self.update(found_inf);
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_never_grows_to_infinity() {
        let mut s = GradScaler::new(2.0e38, 2.0, 0.5, 1).unwrap();
        s.update(false);
        assert_eq!(s.scale(), 2.0e38);
        assert_eq!(s.growth_tracker(), 0);
    }

    #[test]
    fn a_scale_backed_off_to_zero_skips_instead_of_stepping_on_infinities() {
        let mut scaler = GradScaler::new(1.0e-45, 2.0, 0.5, 2000).unwrap();
        scaler.update(true); // 1e-45 · 0.5 rounds to 0
        assert_eq!(scaler.scale(), 0.0);
        assert_eq!(scaler.inv_scale(), f32::INFINITY);
        let sgd = crate::Sgd::default();
        let (mut p, mut g) = ([1.0f32; 3], [0.5f32, -2.0, 3.0]);
        let mut step = 0;
        let r = scaler.step(
            &sgd,
            &mut step,
            &mut (),
            &mut [&mut p],
            &mut [&mut g],
            &mut [[0.0f32; 0]],
        );
        assert_eq!(r, Ok(StepOutcome::Skipped));
        assert_eq!((p, step), ([1.0; 3], 0));
        // A finite gradient that overflows only when unscaled is found too.
        let mut big = [3.0e38f32, 1.0];
        assert!(unscale_and_check(&mut [&mut big], 2.0));
        assert_eq!(big, [f32::INFINITY, 2.0]);
    }

    #[test]
    fn check_kernel_flags_nan_and_both_infinities() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut v = [1.0f32; 37];
            v[36] = bad;
            assert!(!all_finite(&[v]));
            v[36] = f32::MAX;
            assert!(all_finite(&[v]));
        }
    }
}

#[cfg(test)]
mod backend_tests {
    #![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::vec::Vec;

    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                match (s >> 33) % 50 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => f32::MAX,
                    _ => f32::from_bits(
                        ((s >> 20) as u32 & 0x3fff_ffff) | (((s >> 60) as u32 & 1) << 31),
                    ),
                }
            })
            .collect()
    }

    #[test]
    fn unscale_is_identical_everywhere_and_matches_torch_per_element() {
        for seed in 0..300u64 {
            let lens: Vec<usize> = (0..(seed % 4) as usize)
                .map(|k| ((seed * 37 + k as u64 * 101) % 700) as usize)
                .collect();
            let g0: Vec<Vec<f32>> = lens
                .iter()
                .enumerate()
                .map(|(k, &n)| values(seed * 8 + k as u64, n))
                .collect();
            // make some cases all-finite
            let g0: Vec<Vec<f32>> = if seed % 2 == 0 {
                g0.into_iter()
                    .map(|v| {
                        v.into_iter()
                            .map(|x| if x.is_finite() { x } else { 1.5 })
                            .collect()
                    })
                    .collect()
            } else {
                g0
            };
            let any_input = g0.iter().flatten().any(|x| !x.is_finite());
            for inv in [1.0f32 / 65536.0, 1.0, 3.0, 0.1] {
                // The check sees the unscaled values (f32::MAX · 3 overflows).
                let want_found = g0.iter().flatten().any(|x| !(x * inv).is_finite());
                for backend in Backend::available() {
                    let mut g = g0.clone();
                    let found = unscale_and_check_on(backend, &mut g, inv).unwrap();
                    assert_eq!(found, want_found, "{backend} seed {seed}");
                    assert_eq!(all_finite_on(backend, &g0).unwrap(), !any_input);
                    for (a, b) in g.iter().flatten().zip(g0.iter().flatten()) {
                        let want = if inv == 1.0 { *b } else { b * inv };
                        assert!(
                            a.to_bits() == want.to_bits() || a.is_nan() && want.is_nan(),
                            "{backend}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn scaler_follows_amp_update_scale() {
        // torch's asserts
        assert!(GradScaler::new(65536.0, 1.0, 0.5, 2000).is_err());
        assert!(GradScaler::new(65536.0, f64::NAN, 0.5, 2000).is_err());
        assert!(GradScaler::new(65536.0, 2.0, 1.0, 2000).is_err());
        // and this crate's extra ones
        assert!(GradScaler::new(65536.0, 2.0, 0.0, 2000).is_err());
        assert!(GradScaler::new(f32::INFINITY, 2.0, 0.5, 2000).is_err());
        assert!(GradScaler::new(65536.0, 2.0, 0.5, 0).is_err());
        let mut s = GradScaler::default();
        for k in 1..2000 {
            s.update(false);
            assert_eq!((s.scale(), s.growth_tracker()), (65536.0, k));
        }
        s.update(false);
        assert_eq!((s.scale(), s.growth_tracker()), (131072.0, 0));
        s.update(false);
        s.update(true);
        assert_eq!((s.scale(), s.growth_tracker()), (65536.0, 0));
        // products are rounded once from f64
        let mut odd = GradScaler::new(3.0, 1.1, 0.3, 1).unwrap();
        odd.update(false);
        assert_eq!(odd.scale(), (3.0f64 * 1.1) as f32);
        odd.update(true);
        assert_eq!(odd.scale(), (f64::from((3.0f64 * 1.1) as f32) * 0.3) as f32);
    }
}
