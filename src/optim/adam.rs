//! Adam and AdamW (`torch.optim.Adam`, `torch.optim.AdamW`).

use crate::dispatch::Backend;
use crate::error::{Error, beta, non_negative_f32, scalar_f32, step_number};
use crate::format::{self, Grads, Params, State};
use crate::kernel::Kernel;
use crate::lane::{GradPrep, Lane, Lerp, max_nan};
use crate::optimizer::optimizer_traits;

/// Adam / AdamW hyperparameters, with `torch.optim.Adam`'s names and defaults.
///
/// Per element, at step `t` (starting at 1), with `g` the gradient (negated if `maximize`):
///
/// ```text
/// if weight_decay != 0:
///     decoupled_weight_decay:  p = p · (1 − lr·weight_decay)        (AdamW)
///     otherwise:               g = g + weight_decay · p              (L2)
/// m = lerp(m, g, 1 − β1)                         = β1·m + (1 − β1)·g
/// v = β2·v + (1 − β2)·g·g
/// v̂ = amsgrad ? (vmax = max(vmax, v)) : v
/// p = p − lr/(1 − β1^t) · m / (√v̂ / √(1 − β2^t) + eps)
/// ```
///
/// The per-step scalars are computed in f64 and rounded once to f32, as torch does.
///
/// **State**: `2·n` values (`m` then `v`), `3·n` with `amsgrad` (then `vmax`); zeros are a
/// fresh state.
///
/// # Example
/// ```
/// use fused_optim::Adam;
///
/// let adam = Adam { lr: 0.1, ..Adam::default() };
/// let mut params = [1.0f32, -2.0, 3.0];
/// let grads = [0.5f32, -0.5, 0.0];
/// let mut state = [0.0f32; 6]; // adam.state_len(3)
/// adam.step(1, &mut params, &grads, &mut state)?;
/// // The first Adam step moves each parameter by about lr against the gradient's sign.
/// assert!((params[0] - 0.9).abs() < 1e-6);
/// assert!((params[1] + 1.9).abs() < 1e-6);
/// assert_eq!(params[2], 3.0);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate (default `1e-3`).
    pub lr: f64,
    /// `(β1, β2)`, decay rates of the moment estimates (default `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Added to the denominator (default `1e-8`).
    pub eps: f64,
    /// Weight decay (default `0`; [`Adam::adamw`] uses `1e-2`).
    pub weight_decay: f64,
    /// Use the running maximum of `v` (AMSGrad; default `false`).
    pub amsgrad: bool,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
    /// Decay the weights directly (AdamW) instead of adding an L2 term to the gradient
    /// (default `false`).
    pub decoupled_weight_decay: bool,
}

impl Default for Adam {
    #[inline]
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            decoupled_weight_decay: false,
        }
    }
}

impl Adam {
    /// `torch.optim.AdamW`'s defaults: Adam with `decoupled_weight_decay = true` and
    /// `weight_decay = 1e-2`.
    ///
    /// ```
    /// let w = fused_optim::Adam::adamw();
    /// assert!(w.decoupled_weight_decay && w.weight_decay == 1e-2);
    /// ```
    #[inline]
    pub fn adamw() -> Self {
        Adam {
            weight_decay: 1e-2,
            decoupled_weight_decay: true,
            ..Adam::default()
        }
    }

    /// Checks torch's rules: `0 ≤ lr`, `0 ≤ eps`, `0 ≤ β < 1`, `0 ≤ weight_decay` (NaN fails).
    ///
    /// ```
    /// use fused_optim::Adam;
    /// assert!(Adam::default().validate().is_ok());
    /// assert!(Adam { betas: (0.9, 1.0), ..Adam::default() }.validate().is_err());
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

    /// State length for `n` parameters: `2·n`, or `3·n` with `amsgrad`.
    ///
    /// ```
    /// use fused_optim::Adam;
    /// assert_eq!(Adam::default().state_len(10), 20);
    /// assert_eq!(Adam { amsgrad: true, ..Adam::default() }.state_len(10), 30);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(if self.amsgrad { 3 } else { 2 })
    }

    /// Validates and computes step `step`'s scalars (bias corrections in f64, as torch).
    ///
    /// ```
    /// use fused_optim::Adam;
    /// let plan = Adam::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 3], [2.0f32; 5]);
    /// let (mut sa, mut sb) = ([0.0f32; 6], [0.0f32; 10]);
    /// plan.apply(&mut a, &[0.1; 3], &mut sa)?; // one plan, many tensors
    /// plan.apply(&mut b, &[0.1; 5], &mut sb)?;
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0. A per-step scalar beyond
    /// `f32` (`lr/(1 − β1^t)` or AdamW's `1 − lr·weight_decay`, computed in f64 as torch's Python floats) is
    /// [`Error::InvalidHyperparameter`] named after it, as torch's `value cannot be converted
    /// to type float without overflow`.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<AdamPlan, Error> {
        self.validate()?;
        let t = step_number(step)?;
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - libm::pow(b1, t);
        let bc2 = 1.0 - libm::pow(b2, t);
        let prep = GradPrep::new(
            self.maximize,
            self.lr,
            self.weight_decay,
            self.decoupled_weight_decay,
        )?;
        let neg_step_size = scalar_f32("lr / (1 - beta1^t)", -(self.lr / bc1))?;
        Ok(AdamPlan {
            step,
            kernel: AdamKernel {
                neg_step_size,
                bc2_sqrt: libm::sqrt(bc2) as f32,
                eps: self.eps as f32,
                beta2: b2 as f32,
                one_minus_beta2: (1.0 - b2) as f32,
                m_lerp: Lerp::new((1.0 - b1) as f32),
                prep,
            },
            amsgrad: self.amsgrad,
        })
    }

    /// One step on one tensor: [`Adam::plan`] then [`AdamPlan::apply`].
    ///
    /// ```
    /// use fused_optim::Adam;
    /// let mut p = [0.5f32; 4];
    /// let mut s = [0.0f32; 8];
    /// for t in 1..=3 {
    ///     Adam::default().step(t, &mut p, &[1.0; 4], &mut s)?;
    /// }
    /// assert!(p.iter().all(|&x| x < 0.5));
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Adam::plan`] and [`AdamPlan::apply`]; nothing is written on error.
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

/// Adam's precomputed step: build it with [`Adam::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamPlan {
    step: u64,
    kernel: AdamKernel,
    amsgrad: bool,
}

impl AdamPlan {
    /// Updates one tensor on [`Backend::best`]. `state` holds `m`, `v` (and `vmax`), each `n`
    /// long.
    ///
    /// ```
    /// let plan = fused_optim::Adam::default().plan(1)?;
    /// let mut p = [1.0f32; 2];
    /// let err = plan.apply(&mut p, &[0.1; 2], &mut [0.0; 3]).unwrap_err();
    /// assert_eq!(p, [1.0; 2]); // nothing written
    /// # let _ = err;
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `grads.len() == n` and `state.len() == state_len(n)`.
    #[inline]
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// As [`AdamPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Adam, Backend};
    /// let plan = Adam::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 19], [1.0f32; 19]);
    /// let g = [0.25f32; 19];
    /// plan.apply_on(Backend::Scalar, &mut a, &g, &mut [0.0; 38])?;
    /// plan.apply_on(Backend::best(), &mut b, &g, &mut [0.0; 38])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`AdamPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        if self.amsgrad {
            format::run_f32::<_, 3>(backend, &self.kernel, params, grads, state)
        } else {
            format::run_f32::<_, 2>(backend, &self.kernel, params, grads, state)
        }
    }

    /// Updates one piece of a tensor whose parameters, gradients and state may be in any
    /// storage format ([`Params`], [`Grads`], [`State`]): bf16/f16 values, block-quantized
    /// state, stochastic rounding or Kahan compensation. Each element is computed in `f32` by
    /// the same kernel as [`Self::apply`] and rounded once per store.
    ///
    /// `offset` is the piece's first element within the whole tensor (0 for a whole tensor):
    /// block-quantized state needs it on a block boundary, and stochastic rounding indexes its
    /// random stream with it, so any split gives the bits of the whole.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless the gradients (and a Kahan compensation) have one value
    /// per parameter and the state has [`StateFormat::layout`](crate::StateFormat::layout)'s
    /// sizes; [`Error::Misaligned`] for a piece that starts inside a block;
    /// [`Error::BackendUnavailable`]. Nothing is written on error.
    #[inline]
    pub fn apply_piece(
        &self,
        backend: Backend,
        offset: usize,
        params: Params<'_>,
        grads: Grads<'_>,
        state: State<'_>,
    ) -> Result<(), Error> {
        if self.amsgrad {
            format::run::<_, 3>(
                backend,
                &self.kernel,
                self.step,
                offset,
                params,
                grads,
                state,
            )
        } else {
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
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct AdamKernel {
    neg_step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
    beta2: f32,
    one_minus_beta2: f32,
    m_lerp: Lerp,
    prep: GradPrep,
}

impl AdamKernel {
    /// The per-element update, in torch's order (see [`Adam`]).
    #[inline(always)]
    fn body<L: Lane>(&self, p: L, g: L, m: &mut L, v: &mut L, vmax: Option<&mut L>) -> L {
        let (p, g) = self.prep.apply(p, g);
        *m = self.m_lerp.apply(*m, g);
        *v = *v * L::splat(self.beta2) + L::splat(self.one_minus_beta2) * g * g;
        let vhat = match vmax {
            Some(vmax) => {
                *vmax = max_nan(*vmax, *v);
                *vmax
            }
            None => *v,
        };
        let denom = vhat.sqrt() / L::splat(self.bc2_sqrt) + L::splat(self.eps);
        p + L::splat(self.neg_step_size) * *m / denom
    }
}

impl Kernel<2> for AdamKernel {
    const SIGNED: [bool; 2] = [true, false];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m, v]: &mut [L; 2]) -> L {
        self.body(p, g, m, v, None)
    }
}

impl Kernel<3> for AdamKernel {
    const SIGNED: [bool; 3] = [true, false, false];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m, v, vmax]: &mut [L; 3]) -> L {
        self.body(p, g, m, v, Some(vmax))
    }
}

optimizer_traits!(Adam, AdamPlan);
