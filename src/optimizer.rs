//! The two traits every optimizer implements, for code that is generic over optimizers.

use crate::{Backend, Error, Grads, Params, State};

/// Hyperparameters of one optimizer: validation, state layout and per-step planning.
///
/// Each optimizer also has inherent methods of the same names, so the trait is only needed by
/// code that is generic over optimizers (benchmarks, framework adapters, the C ABI).
///
/// # Example
/// ```
/// use fused_optim::{Adam, Optimizer, Sgd, StepPlan};
///
/// fn train_step<O: Optimizer>(opt: &O, step: u64, p: &mut [f32], g: &[f32], s: &mut [f32])
///     -> Result<(), fused_optim::Error>
/// {
///     opt.plan(step, &O::Scalars::default())?.apply(p, g, s)
/// }
///
/// let (mut p, g) = ([1.0f32; 4], [0.5f32; 4]);
/// let adam = Adam::default();
/// let mut state = vec![0.0; adam.state_len(4)];
/// train_step(&adam, 1, &mut p, &g, &mut state)?;
/// train_step(&Sgd::default(), 1, &mut p, &g, &mut [])?;
/// # Ok::<(), fused_optim::Error>(())
/// ```
pub trait Optimizer: Copy + core::fmt::Debug {
    /// Scalar state carried from step to step, shared by every tensor at the same step
    /// (NAdam's `mu_product`); `()` for optimizers that have none.
    type Scalars: Copy + Default + core::fmt::Debug + PartialEq;
    /// The per-step plan: scalars computed once, applied to any number of tensors.
    type Plan: StepPlan<Scalars = Self::Scalars>;

    /// Checks every hyperparameter against torch's rules.
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] or [`Error::InvalidCombination`].
    fn validate(&self) -> Result<(), Error>;

    /// The state length for `n` parameters (saturating at `usize::MAX`).
    fn state_len(&self, n: usize) -> usize;

    /// Writes a fresh state (what torch starts from) into `state`: zeros, or Adagrad's
    /// `initial_accumulator_value`, or Rprop's step sizes at `lr`, after checking the
    /// hyperparameters.
    ///
    /// ```
    /// use fused_optim::{Adagrad, Optimizer};
    /// let mut s = [7.0f32; 3];
    /// let bad = Adagrad { initial_accumulator_value: -1.0, ..Adagrad::default() };
    /// assert!(bad.init_state(&mut s).is_err());
    /// assert_eq!(s, [7.0; 3]); // nothing written
    /// Adagrad { initial_accumulator_value: 0.5, ..Adagrad::default() }.init_state(&mut s)?;
    /// assert_eq!(s, [0.5; 3]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Optimizer::validate`]; nothing is written then.
    #[inline]
    fn init_state(&self, state: &mut [f32]) -> Result<(), Error> {
        self.validate()?;
        state.fill(self.initial_value());
        Ok(())
    }

    /// The value a fresh state holds in every element: `0`, or Adagrad's
    /// `initial_accumulator_value`.
    #[inline]
    fn initial_value(&self) -> f32 {
        0.0
    }

    /// Writes a fresh state into buffers of any [`StateFormat`](crate::StateFormat). Zeroed
    /// buffers are already a fresh state in every format, except for an Adagrad with a non-zero
    /// `initial_accumulator_value`, whose blocks get the scale and code of that value, and for
    /// Rprop, whose step-size plane starts at `lr`.
    ///
    /// ```
    /// use fused_optim::{Adagrad, Optimizer, State, bf16};
    /// let adagrad = Adagrad { initial_accumulator_value: 0.5, ..Adagrad::default() };
    /// let mut sum = [bf16::ZERO; 4];
    /// adagrad.init_state_in(State::Bf16(&mut sum))?;
    /// assert_eq!(sum[0].to_f32(), 0.5);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`Optimizer::validate`]; nothing is written then.
    #[inline]
    fn init_state_in(&self, state: State<'_>) -> Result<(), Error> {
        self.validate()?;
        let mut state = state;
        state.fill(self.initial_value());
        Ok(())
    }

    /// Validates and computes the per-step scalars for step number `step` (starting at 1),
    /// given the scalar state before this step.
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0.
    fn plan(&self, step: u64, scalars: &Self::Scalars) -> Result<Self::Plan, Error>;
}

/// A step's precomputed scalars, ready to update any number of tensors.
pub trait StepPlan: Copy + core::fmt::Debug + Send + Sync {
    /// See [`Optimizer::Scalars`].
    type Scalars: Copy;

    /// Updates one piece of a tensor in any storage format, on the backend named: see each
    /// plan's inherent `apply_piece` (for example [`AdamPlan::apply_piece`](crate::AdamPlan::apply_piece)).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`], [`Error::Misaligned`] or [`Error::BackendUnavailable`];
    /// nothing is written then.
    fn apply_piece(
        &self,
        backend: Backend,
        offset: usize,
        params: Params<'_>,
        grads: Grads<'_>,
        state: State<'_>,
    ) -> Result<(), Error>;

    /// Updates one whole tensor in any storage format on [`Backend::best`].
    ///
    /// ```
    /// use fused_optim::{Adam, Grads, Params, State, StepPlan, bf16};
    /// // bf16 parameters, gradients and state, as torch's fused kernels keep them.
    /// let mut p = [bf16::from_f32(1.0); 8];
    /// let g = [bf16::from_f32(0.5); 8];
    /// let mut s = [bf16::ZERO; 16];
    /// let plan = Adam { lr: 0.1, ..Adam::default() }.plan(1)?;
    /// StepPlan::apply_to(&plan, Params::Bf16(&mut p), Grads::Bf16(&g), State::Bf16(&mut s))?;
    /// assert_eq!(p[0].to_f32(), 0.8984375); // 0.9 rounded to bf16
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`StepPlan::apply_piece`].
    #[inline]
    fn apply_to(
        &self,
        params: Params<'_>,
        grads: Grads<'_>,
        state: State<'_>,
    ) -> Result<(), Error> {
        self.apply_piece(Backend::best(), 0, params, grads, state)
    }

    /// Updates one `f32` tensor on the backend named.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `grads` or `state` do not fit `params`, and
    /// [`Error::BackendUnavailable`]; in both cases nothing is written.
    #[inline]
    fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        self.apply_piece(
            backend,
            0,
            Params::F32(params),
            Grads::F32(grads),
            State::F32(state),
        )
    }

    /// Updates one tensor on [`Backend::best`].
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `grads` or `state` do not fit `params`; nothing is
    /// written then.
    #[inline]
    fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// The scalar state after this step, to pass to the next step's plan.
    fn scalars_after(&self) -> Self::Scalars;
}

/// Implements [`Optimizer`] and [`StepPlan`] for an optimizer without scalar state, by
/// delegating to its inherent `validate`, `state_len`, `plan` and its plan's `apply_on`.
/// `fill` gives the value a fresh state holds (zero unless stated).
macro_rules! optimizer_traits {
    ($opt:ident, $plan:ident) => {
        $crate::optimizer::optimizer_traits!($opt, $plan, fill = |_| 0.0);
    };
    ($opt:ident, $plan:ident, fill = $fill:expr) => {
        impl $crate::optimizer::Optimizer for $opt {
            type Scalars = ();
            type Plan = $plan;

            #[inline]
            fn validate(&self) -> Result<(), $crate::Error> {
                $opt::validate(self)
            }
            #[inline]
            fn state_len(&self, n: usize) -> usize {
                $opt::state_len(self, n)
            }
            #[inline]
            fn initial_value(&self) -> f32 {
                let fill: fn(&$opt) -> f32 = $fill;
                fill(self)
            }
            #[inline]
            fn plan(&self, step: u64, _: &()) -> Result<$plan, $crate::Error> {
                $opt::plan(self, step)
            }
        }

        $crate::optimizer::inherent_apply_to!($plan);

        impl $crate::optimizer::StepPlan for $plan {
            type Scalars = ();

            #[inline]
            fn apply_piece(
                &self,
                backend: $crate::Backend,
                offset: usize,
                params: $crate::Params<'_>,
                grads: $crate::Grads<'_>,
                state: $crate::State<'_>,
            ) -> Result<(), $crate::Error> {
                $plan::apply_piece(self, backend, offset, params, grads, state)
            }
            #[inline]
            fn apply_on(
                &self,
                backend: $crate::Backend,
                params: &mut [f32],
                grads: &[f32],
                state: &mut [f32],
            ) -> Result<(), $crate::Error> {
                $plan::apply_on(self, backend, params, grads, state)
            }
            #[inline]
            fn scalars_after(&self) {}
        }
    };
}
pub(crate) use optimizer_traits;

/// The inherent `apply_to` of a plan (so callers need not import [`StepPlan`]).
macro_rules! inherent_apply_to {
    ($plan:ident) => {
        impl $plan {
            /// Updates one whole tensor in any storage format on
            /// [`Backend::best`](crate::Backend::best): [`Self::apply_piece`] with offset 0.
            ///
            /// # Errors
            /// As [`Self::apply_piece`].
            #[inline]
            pub fn apply_to(
                &self,
                params: $crate::Params<'_>,
                grads: $crate::Grads<'_>,
                state: $crate::State<'_>,
            ) -> Result<(), $crate::Error> {
                self.apply_piece($crate::Backend::best(), 0, params, grads, state)
            }
        }
    };
}
pub(crate) use inherent_apply_to;
