//! [burn](https://burn.dev) optimizers backed by `fused-optim`'s fused kernels.
//!
//! [`Fused`] wraps any of the crate's optimizers (with torch.optim's names and defaults) and
//! implements burn's per-tensor [`burn::optim::Optimizer`] trait, so it plugs into burn's
//! [`ModuleOptimizer`] like burn's own optimizers do:
//!
//! ```
//! use burn::module::Module;
//! use burn::nn::{Linear, LinearConfig};
//! use burn::optim::GradientsParams;
//! use burn::tensor::{Device, Tensor};
//!
//! let device = Device::default().autodiff();
//! let model: Linear = LinearConfig::new(3, 1).init(&device);
//! let adamw = fused_optim_burn::adamw(); // torch.optim.AdamW's defaults
//! let mut optim = adamw.init(); // burn's ModuleOptimizer
//!
//! let before = model.weight.val().into_data();
//! let x = Tensor::<2>::ones([4, 3], &device);
//! let loss = model.forward(x).powi_scalar(2).mean();
//! let grads = GradientsParams::from_grads(loss.backward(), &model);
//! let model = optim.step(1e-3, model, grads);
//! assert_ne!(model.weight.val().into_data(), before);
//! assert_eq!(adamw.diagnostics().skipped(), 0);
//! ```
//!
//! Each parameter tensor is read out with `into_data()` (no copy when burn owns the buffer
//! alone), updated in place by one fused pass and handed back with `from_data()`. Its state is a
//! host `Vec<f32>` kept in burn's optimizer record together with the step counter and the
//! optimizer's carried scalars (NAdam's `mu_product`), so checkpoints go through burn's own
//! record (`ModuleOptimizer::to_record` / `into_bytes` / `save`).
//!
//! burn's `step` cannot return an error. The configuration is therefore validated when a
//! [`Fused`] is built ([`Fused::new`]); whatever can still go wrong at a step — a state of the
//! wrong length (a record from another model), an invalid learning rate from a schedule, a dtype
//! the kernels do not have (f64) — leaves that parameter **and** its state unchanged and is
//! counted in [`Fused::diagnostics`]. The adapter itself has no panic path.
//!
//! [`Fused::lean`] gives [`LeanModuleOptimizer`], a whole-module driver with less per-parameter
//! bookkeeping than [`ModuleOptimizer`] (same bits; no burn record).

use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::Arc;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer, RecordState, StateSink, StateSource};
use burn::tensor::{DType, Device, Tensor, TensorCreationOptions, TensorData};
use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Error, Grads, Lion, NAdam, NAdamScalars, Optimizer, Params,
    RAdam, RMSprop, Sgd, State, StepPlan, bf16, f16,
};

/// Names of the record leaves under each parameter's prefix.
const STATE_LEAF: &str = "fused_state";
const STEP_LEAF: &str = "fused_step";
const MU_PRODUCT_LEAF: &str = "fused_mu_product";

/// The scalar state an optimizer carries from step to step, written into and read back from
/// burn's optimizer record.
pub trait RecordScalars: Copy + Default + Send + Sync + 'static {
    /// Writes the scalars under `prefix`.
    fn save(&self, prefix: &str, out: &mut StateSink);
    /// Reads them back; `None` when a leaf is missing or of the wrong type.
    fn load(prefix: &str, src: &mut StateSource) -> Option<Self>;
}

impl RecordScalars for () {
    #[inline]
    fn save(&self, _prefix: &str, _out: &mut StateSink) {}
    #[inline]
    fn load(_prefix: &str, _src: &mut StateSource) -> Option<Self> {
        Some(())
    }
}

impl RecordScalars for NAdamScalars {
    #[inline]
    fn save(&self, prefix: &str, out: &mut StateSink) {
        // f32 -> f64 is exact, and so is the way back.
        out.push_scalar(
            prefix,
            MU_PRODUCT_LEAF,
            burn_pack::Scalar::from(self.mu_product),
        );
    }
    #[inline]
    fn load(prefix: &str, src: &mut StateSource) -> Option<Self> {
        let mu_product = f32::try_from(src.take_scalar(prefix, MU_PRODUCT_LEAF)?).ok()?;
        Some(NAdamScalars { mu_product })
    }
}

/// A `fused-optim` optimizer that [`Fused`] can drive: burn passes the learning rate at every
/// step, so the adapter needs to set it.
pub trait FusedOptimizer: Optimizer<Scalars: RecordScalars> + Send + Sync + 'static {
    /// The same hyperparameters with learning rate `lr`.
    fn with_lr(self, lr: f64) -> Self;
}

macro_rules! fused_optimizer {
    ($($opt:ty),*) => {$(
        impl FusedOptimizer for $opt {
            #[inline]
            fn with_lr(self, lr: f64) -> Self {
                Self { lr, ..self }
            }
        }
    )*};
}
fused_optimizer!(
    Sgd, Adam, Adagrad, Adadelta, RMSprop, Adamax, NAdam, RAdam, Lion
);

/// Why a parameter was left unchanged at a step (see [`Diagnostics`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The state does not fit the tensor (for example a record from another model), or a
    /// fresh one could not be allocated.
    StateMismatch,
    /// The step's plan was refused: an invalid learning rate (negative or NaN, from a
    /// schedule) or a step counter at `u64::MAX`.
    InvalidStep,
    /// The parameter's dtype has no kernel (only f32, bf16 and f16 have), or the gradient's
    /// dtype or length does not fit it.
    UnsupportedTensor,
}

/// Counts of the parameter updates a [`Fused`] skipped, shared by every clone of it (also the
/// one inside a [`ModuleOptimizer`]).
#[derive(Debug, Default)]
pub struct Diagnostics {
    state_mismatch: AtomicU64,
    invalid_step: AtomicU64,
    unsupported_tensor: AtomicU64,
}

impl Diagnostics {
    fn record(&self, skip: Skip) {
        let counter = match skip {
            Skip::StateMismatch => &self.state_mismatch,
            Skip::InvalidStep => &self.invalid_step,
            Skip::UnsupportedTensor => &self.unsupported_tensor,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// How many parameter updates were skipped for `reason`.
    #[inline]
    pub fn count(&self, reason: Skip) -> u64 {
        match reason {
            Skip::StateMismatch => &self.state_mismatch,
            Skip::InvalidStep => &self.invalid_step,
            Skip::UnsupportedTensor => &self.unsupported_tensor,
        }
        .load(Ordering::Relaxed)
    }

    /// How many parameter updates were skipped for any reason; `0` in a healthy run.
    #[inline]
    pub fn skipped(&self) -> u64 {
        self.count(Skip::StateMismatch)
            .saturating_add(self.count(Skip::InvalidStep))
            .saturating_add(self.count(Skip::UnsupportedTensor))
    }
}

/// One parameter's state: the optimizer's `f32` state buffer, the number of steps taken and the
/// carried scalars.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedState<S> {
    /// `state_len(n)` values, in the crate's layout for the optimizer.
    pub buffer: Vec<f32>,
    /// Steps taken so far (`0` before the first).
    pub step: u64,
    /// The scalars after the last step ([`Optimizer::Scalars`]).
    pub scalars: S,
}

impl<S: RecordScalars> RecordState for FusedState<S> {
    #[inline]
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        let len = self.buffer.len();
        out.push_tensor(
            prefix,
            STATE_LEAF,
            TensorData::new(self.buffer.clone(), [len]),
        );
        out.push_scalar(prefix, STEP_LEAF, burn_pack::Scalar::from(self.step));
        self.scalars.save(prefix, out);
    }

    #[inline]
    fn state_unflatten(prefix: &str, src: &mut StateSource, _device: &Device) -> Option<Self> {
        let buffer = src
            .take_tensor(prefix, STATE_LEAF)?
            .try_into_vec::<f32>()
            .ok()?;
        let step = u64::try_from(src.take_scalar(prefix, STEP_LEAF)?).ok()?;
        let scalars = S::load(prefix, src)?;
        Some(FusedState {
            buffer,
            step,
            scalars,
        })
    }
}

/// A `fused-optim` optimizer as a burn optimizer (see the [crate docs](crate)).
///
/// Build it with [`Fused::new`] (validates) or a constructor named after torch's optimizer
/// ([`adamw`], [`sgd`], ...), then turn it into burn's [`ModuleOptimizer`] with [`Fused::init`].
#[derive(Clone, Debug)]
pub struct Fused<O> {
    optimizer: O,
    diagnostics: Arc<Diagnostics>,
}

impl<O: FusedOptimizer> Fused<O> {
    /// Validates `optimizer` against torch's rules (and plans its first step, which checks the
    /// combinations too) and wraps it.
    ///
    /// ```
    /// use fused_optim::Adam;
    /// assert!(fused_optim_burn::Fused::new(Adam { eps: -1.0, ..Adam::adamw() }).is_err());
    /// ```
    ///
    /// # Errors
    /// The optimizer's [`Optimizer::validate`] or [`Optimizer::plan`] error.
    #[inline]
    pub fn new(optimizer: O) -> Result<Self, Error> {
        optimizer.validate()?;
        optimizer.plan(1, &O::Scalars::default())?;
        Ok(Fused {
            optimizer,
            diagnostics: Arc::new(Diagnostics::default()),
        })
    }

    /// The wrapped hyperparameters (the learning rate is the one burn passes at each step).
    #[inline]
    pub fn optimizer(&self) -> &O {
        &self.optimizer
    }

    /// The skipped-update counters, shared with every clone (also the one inside the
    /// [`ModuleOptimizer`] that [`Fused::init`] returns).
    #[inline]
    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// burn's whole-module optimizer driving this one.
    #[inline]
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.clone())
    }

    /// The lean whole-module driver (see [`LeanModuleOptimizer`]): less per-parameter
    /// bookkeeping than burn's [`ModuleOptimizer`], but no burn optimizer record.
    #[inline]
    pub fn lean(&self) -> LeanModuleOptimizer<O> {
        LeanModuleOptimizer {
            fused: self.clone(),
            states: HashMap::new(),
        }
    }

    /// A fresh state for a tensor of `n` elements; `None` if it cannot be allocated.
    #[inline]
    pub fn fresh_state(&self, n: usize) -> Option<FusedState<O::Scalars>> {
        let len = self.optimizer.state_len(n);
        let mut buffer = Vec::new();
        buffer.try_reserve_exact(len).ok()?;
        buffer.resize(len, 0.0);
        // The configuration was validated when the optimizer was built.
        self.optimizer.init_state(&mut buffer).ok()?;
        Some(FusedState {
            buffer,
            step: 0,
            scalars: O::Scalars::default(),
        })
    }

    /// Updates one tensor given as host data, the core of [`burn::optim::Optimizer::step`]:
    /// `Ok` with the state advanced, or the reason nothing was written.
    ///
    /// # Errors
    /// The [`Skip`] reason; `params` and `state` are unchanged then.
    #[inline]
    pub fn update_data(
        &self,
        lr: f64,
        params: &mut TensorData,
        grads: &TensorData,
        state: &mut FusedState<O::Scalars>,
    ) -> Result<(), Skip> {
        let n = params.num_elements();
        if grads.num_elements() != n {
            return Err(Skip::UnsupportedTensor);
        }
        if state.buffer.len() != self.optimizer.state_len(n) {
            return Err(Skip::StateMismatch);
        }
        let step = state.step.checked_add(1).ok_or(Skip::InvalidStep)?;
        let plan = self
            .optimizer
            .with_lr(lr)
            .plan(step, &state.scalars)
            .map_err(|_| Skip::InvalidStep)?;
        let g = match grads.dtype() {
            DType::F32 => grads.as_slice::<f32>().map(Grads::F32),
            DType::BF16 => grads.as_slice::<bf16>().map(Grads::Bf16),
            DType::F16 => grads.as_slice::<f16>().map(Grads::F16),
            _ => return Err(Skip::UnsupportedTensor),
        }
        .map_err(|_| Skip::UnsupportedTensor)?;
        let p = match params.dtype() {
            DType::F32 => params.as_mut_slice::<f32>().map(Params::F32),
            DType::BF16 => params.as_mut_slice::<bf16>().map(Params::Bf16),
            DType::F16 => params.as_mut_slice::<f16>().map(Params::F16),
            _ => return Err(Skip::UnsupportedTensor),
        }
        .map_err(|_| Skip::UnsupportedTensor)?;
        plan.apply_to(p, g, State::F32(&mut state.buffer))
            .map_err(|_| Skip::UnsupportedTensor)?;
        state.step = step;
        state.scalars = plan.scalars_after();
        Ok(())
    }
}

impl<O: FusedOptimizer> burn::optim::Optimizer for Fused<O> {
    type State<const D: usize> = FusedState<O::Scalars>;

    #[inline]
    fn step<const D: usize>(
        &self,
        lr: burn::optim::LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let n = tensor.shape().num_elements();
        let Some(mut state) = state.or_else(|| self.fresh_state(n)) else {
            // No memory for the state: nothing is updated.
            self.diagnostics.record(Skip::StateMismatch);
            return (tensor, None);
        };
        // Checks that need no data first, so a refused step costs no read-back.
        if state.buffer.len() != self.optimizer.state_len(n) {
            self.diagnostics.record(Skip::StateMismatch);
            return (tensor, Some(state));
        }
        let dtype = tensor.dtype();
        if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
            self.diagnostics.record(Skip::UnsupportedTensor);
            return (tensor, Some(state));
        }
        let device = tensor.device();
        let grads = grad.into_data();
        let mut params = tensor.into_data();
        if let Err(skip) = self.update_data(lr, &mut params, &grads, &mut state) {
            self.diagnostics.record(skip);
        }
        let options = TensorCreationOptions::new(device).with_dtype(dtype);
        (Tensor::from_data(params, options), Some(state))
    }

    #[inline]
    fn to_device<const D: usize>(state: Self::State<D>, _device: &Device) -> Self::State<D> {
        // The state lives in host memory, next to the CPU backends' buffers.
        state
    }
}

/// Validated wrapper of an optimizer whose configuration is known to be valid.
fn valid<O: FusedOptimizer>(optimizer: O) -> Fused<O> {
    Fused {
        optimizer,
        diagnostics: Arc::new(Diagnostics::default()),
    }
}

/// `torch.optim.SGD`'s defaults (`lr = 1e-3`, no momentum).
#[inline]
pub fn sgd() -> Fused<Sgd> {
    valid(Sgd::default())
}

/// `torch.optim.Adam`'s defaults.
#[inline]
pub fn adam() -> Fused<Adam> {
    valid(Adam::default())
}

/// `torch.optim.AdamW`'s defaults (`weight_decay = 1e-2`, decoupled).
#[inline]
pub fn adamw() -> Fused<Adam> {
    valid(Adam::adamw())
}

/// `torch.optim.Adagrad`'s defaults.
#[inline]
pub fn adagrad() -> Fused<Adagrad> {
    valid(Adagrad::default())
}

/// `torch.optim.Adadelta`'s defaults.
#[inline]
pub fn adadelta() -> Fused<Adadelta> {
    valid(Adadelta::default())
}

/// `torch.optim.RMSprop`'s defaults.
#[inline]
pub fn rmsprop() -> Fused<RMSprop> {
    valid(RMSprop::default())
}

/// `torch.optim.Adamax`'s defaults.
#[inline]
pub fn adamax() -> Fused<Adamax> {
    valid(Adamax::default())
}

/// `torch.optim.NAdam`'s defaults.
#[inline]
pub fn nadam() -> Fused<NAdam> {
    valid(NAdam::default())
}

/// `torch.optim.RAdam`'s defaults.
#[inline]
pub fn radam() -> Fused<RAdam> {
    valid(RAdam::default())
}

/// Lion's defaults (`lr = 1e-4`, `betas = (0.9, 0.99)`).
#[inline]
pub fn lion() -> Fused<Lion> {
    valid(Lion::default())
}

/// A whole-module driver for [`Fused`] built on burn's public `Module::map`, without
/// [`ModuleOptimizer`]'s per-parameter bookkeeping (type-erased state boxed twice per parameter,
/// the parameter's path string, optimizer groups): the same updates, bit for bit, in less time
/// per parameter tensor (see `docs/burn.md`).
///
/// Its states are plain [`FusedState`]s keyed by [`ParamId`] ([`Self::states`],
/// [`Self::with_states`]); it does not write burn's optimizer record, so use [`Fused::init`]
/// when checkpoints must go through burn's recorder. No gradient clipping, no parameter groups.
///
/// ```
/// use burn::nn::{Linear, LinearConfig};
/// use burn::optim::GradientsParams;
/// use burn::tensor::{Device, Tensor};
///
/// let device = Device::default().autodiff();
/// let model: Linear = LinearConfig::new(3, 1).init(&device);
/// let mut optim = fused_optim_burn::adamw().lean();
/// let loss = model.forward(Tensor::<2>::ones([4, 3], &device)).powi_scalar(2).mean();
/// let grads = GradientsParams::from_grads(loss.backward(), &model);
/// let model = optim.step(1e-3, model, grads);
/// assert_eq!(optim.states().len(), 2); // weight and bias
/// ```
#[derive(Debug)]
pub struct LeanModuleOptimizer<O: FusedOptimizer> {
    fused: Fused<O>,
    states: HashMap<ParamId, FusedState<O::Scalars>>,
}

impl<O: FusedOptimizer> LeanModuleOptimizer<O> {
    /// Updates every parameter of `module` that has a gradient in `grads`, as
    /// [`ModuleOptimizer::step`] does with a constant learning rate.
    #[inline]
    pub fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        module.map(&mut LeanMapper {
            fused: &self.fused,
            states: &mut self.states,
            grads: &mut grads,
            lr,
        })
    }

    /// The per-parameter states.
    #[inline]
    pub fn states(&self) -> &HashMap<ParamId, FusedState<O::Scalars>> {
        &self.states
    }

    /// Replaces the per-parameter states (for example saved from [`Self::states`]).
    #[inline]
    pub fn with_states(mut self, states: HashMap<ParamId, FusedState<O::Scalars>>) -> Self {
        self.states = states;
        self
    }

    /// The wrapped [`Fused`] (its [`Fused::diagnostics`] count this driver's skips too).
    #[inline]
    pub fn fused(&self) -> &Fused<O> {
        &self.fused
    }
}

struct LeanMapper<'a, O: FusedOptimizer> {
    fused: &'a Fused<O>,
    states: &'a mut HashMap<ParamId, FusedState<O::Scalars>>,
    grads: &'a mut GradientsParams,
    lr: f64,
}

impl<O: FusedOptimizer> ModuleMapper for LeanMapper<'_, O> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        // The autodiff flags the parameter carries, put back on the updated value (what burn's
        // ModuleOptimizer does too).
        let require_grad = tensor.is_require_grad();
        let distributed = tensor.is_distributed();
        let checkpointing = tensor.gradient_checkpointing_strategy();
        let inner = tensor.inner();
        let grad = if grad.device() == inner.device() {
            grad
        } else {
            grad.to_device(&inner.device())
        };
        let state = self.states.remove(&id);
        let (updated, state) =
            burn::optim::Optimizer::step(self.fused, self.lr, inner, grad, state);
        if let Some(state) = state {
            self.states.insert(id, state);
        }
        let mut updated = Tensor::from_inner(updated);
        if let Some(strategy) = checkpointing {
            updated = updated.with_gradient_checkpointing_strategy(strategy);
        }
        if require_grad {
            updated = updated.require_grad();
        }
        if distributed {
            updated = updated.set_distributed(id);
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}
