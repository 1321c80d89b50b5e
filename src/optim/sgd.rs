//! Stochastic gradient descent with momentum and Nesterov (`torch.optim.SGD`).

use crate::dispatch::Backend;
use crate::error::{Error, finite_f32, non_negative_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane};
use crate::optimizer::optimizer_traits;

/// SGD hyperparameters, with `torch.optim.SGD`'s names and defaults.
///
/// Per element, with `g` the gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:  g = g + weight_decay · p
/// if momentum != 0:
///     b = (step == 1) ? g : momentum · b + (1 − dampening) · g
///     g = nesterov ? g + momentum · b : b
/// p = p − lr · g
/// ```
///
/// As in torch, the first step copies the gradient into the momentum buffer (no dampening),
/// so the buffer's previous contents do not matter at step 1.
///
/// **State**: `n` values (the momentum buffer) when `momentum != 0`, otherwise none.
///
/// # Example
/// ```
/// use fused_optim::Sgd;
///
/// let sgd = Sgd { lr: 0.1, momentum: 0.9, ..Sgd::default() };
/// let mut params = [1.0f32, 2.0];
/// let mut state = [0.0f32; 2]; // sgd.state_len(2)
/// sgd.step(1, &mut params, &[1.0, -1.0], &mut state)?;
/// assert_eq!(params, [0.9, 2.1]);
/// sgd.step(2, &mut params, &[1.0, -1.0], &mut state)?; // b = 0.9·1 + 1 = 1.9
/// assert!((params[0] - 0.71).abs() < 1e-6);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate (default `1e-3`).
    pub lr: f64,
    /// Momentum factor (default `0`: no momentum, no state).
    pub momentum: f64,
    /// Dampening of the gradient added to the momentum buffer (default `0`).
    pub dampening: f64,
    /// L2 penalty added to the gradient (default `0`).
    pub weight_decay: f64,
    /// Nesterov momentum; needs `momentum > 0` and `dampening == 0` (default `false`).
    pub nesterov: bool,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for Sgd {
    #[inline]
    fn default() -> Self {
        Sgd {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

impl Sgd {
    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ momentum`, `0 ≤ weight_decay`, finite dampening,
    /// and Nesterov only with `momentum > 0` and `dampening == 0`.
    ///
    /// ```
    /// use fused_optim::{Error, Sgd};
    /// let bad = Sgd { nesterov: true, ..Sgd::default() };
    /// assert!(matches!(bad.validate(), Err(Error::InvalidCombination(_))));
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] or [`Error::InvalidCombination`].
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        non_negative_f32("momentum", self.momentum)?;
        non_negative_f32("weight_decay", self.weight_decay)?;
        finite_f32("dampening", self.dampening)?;
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err(Error::InvalidCombination(
                "Nesterov momentum requires a momentum and zero dampening",
            ));
        }
        Ok(())
    }

    /// State length for `n` parameters: `n` with momentum, else `0`.
    ///
    /// ```
    /// use fused_optim::Sgd;
    /// assert_eq!(Sgd::default().state_len(10), 0);
    /// assert_eq!(Sgd { momentum: 0.9, ..Sgd::default() }.state_len(10), 10);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        if self.momentum != 0.0 { n } else { 0 }
    }

    /// Validates and prepares step `step` (starting at 1; step 1 initialises the momentum
    /// buffer).
    ///
    /// ```
    /// let plan = fused_optim::Sgd { lr: 0.5, ..Default::default() }.plan(1)?;
    /// let mut p = [1.0f32];
    /// plan.apply(&mut p, &[1.0], &mut [])?;
    /// assert_eq!(p, [0.5]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<SgdPlan, Error> {
        self.validate()?;
        step_number(step)?;
        Ok(SgdPlan {
            step,
            neg_lr: (-self.lr) as f32,
            prep: GradPrep::l2(self.maximize, self.weight_decay),
            momentum: self.momentum as f32,
            one_minus_dampening: (1.0 - self.dampening) as f32,
            has_momentum: self.momentum != 0.0,
            first: step == 1,
            nesterov: self.nesterov,
        })
    }

    /// One step on one tensor: [`Sgd::plan`] then [`SgdPlan::apply`].
    ///
    /// ```
    /// let mut p = [1.0f32, 1.0];
    /// fused_optim::Sgd { lr: 0.1, ..Default::default() }.step(1, &mut p, &[1.0, 2.0], &mut [])?;
    /// assert_eq!(p, [0.9, 0.8]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Sgd::plan`] and [`SgdPlan::apply`]; nothing is written on error.
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

/// SGD's prepared step: build it with [`Sgd::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdPlan {
    step: u64,
    neg_lr: f32,
    prep: GradPrep,
    momentum: f32,
    one_minus_dampening: f32,
    has_momentum: bool,
    first: bool,
    nesterov: bool,
}

impl SgdPlan {
    /// Updates one tensor on [`Backend::best`]; `state` is the momentum buffer (`n` values)
    /// or empty without momentum.
    ///
    /// ```
    /// let plan = fused_optim::Sgd { momentum: 0.9, ..Default::default() }.plan(1)?;
    /// let mut p = [1.0f32; 3];
    /// assert!(plan.apply(&mut p, &[1.0; 3], &mut []).is_err()); // needs 3 state values
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

    /// As [`SgdPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Backend, Sgd};
    /// let plan = Sgd { lr: 0.1, ..Sgd::default() }.plan(1)?;
    /// let mut p = [1.0f32; 9];
    /// plan.apply_on(Backend::Scalar, &mut p, &[1.0; 9], &mut [])?;
    /// assert_eq!(p, [0.9; 9]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`SgdPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        if self.has_momentum {
            format::run_f32::<_, 1>(backend, self, params, grads, state)
        } else {
            format::run_f32::<_, 0>(backend, self, params, grads, state)
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
        if self.has_momentum {
            format::run::<_, 1>(backend, self, self.step, offset, params, grads, state)
        } else {
            format::run::<_, 0>(backend, self, self.step, offset, params, grads, state)
        }
    }

    #[inline(always)]
    fn grad<L: Lane>(&self, p: L, g: L) -> L {
        self.prep.apply(p, g).1
    }
}

impl Kernel<0> for SgdPlan {
    const SIGNED: [bool; 0] = [];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, _: &mut [L; 0]) -> L {
        p + self.grad(p, g) * L::splat(self.neg_lr)
    }
}

impl Kernel<1> for SgdPlan {
    const SIGNED: [bool; 1] = [true];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [b]: &mut [L; 1]) -> L {
        let g = self.grad(p, g);
        let mu = L::splat(self.momentum);
        *b = if self.first {
            g
        } else {
            *b * mu + L::splat(self.one_minus_dampening) * g
        };
        let u = if self.nesterov { g + *b * mu } else { *b };
        p + u * L::splat(self.neg_lr)
    }
}

optimizer_traits!(Sgd, SgdPlan);
