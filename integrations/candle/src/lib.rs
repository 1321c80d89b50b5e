//! [`candle_nn::Optimizer`] for every optimizer of [`fused_optim`]: one fused kernel per
//! parameter, updating each [`Var`]'s storage **in place** (through candle's
//! [`InplaceOp2`](candle_core::InplaceOp2), no copy), with state buffers allocated once.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{Optimizer as _, VarBuilder, VarMap};
//! use fused_optim_candle::{Config, FusedOptimizer};
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let w = vb.get_with_hints((1, 1), "w", candle_nn::Init::Const(1.0))?;
//! // AdamW with torch's defaults, except the learning rate.
//! let adamw = fused_optim::Adam { lr: 0.1, ..fused_optim::Adam::adamw() };
//! let mut opt = FusedOptimizer::from_varmap(&varmap, Config::new(adamw))?;
//! for _ in 0..10 {
//!     let loss = w.sqr()?.sum_all()?; // minimum at w = 0
//!     opt.backward_step(&loss)?;
//! }
//! assert!(w.to_vec2::<f32>()?[0][0] < 0.1);
//! # Ok::<(), candle_core::Error>(())
//! ```
//!
//! # Semantics
//! - **Names and defaults** are torch's: the adapter is generic over the crate's optimizers
//!   (`FusedOptimizer<fused_optim::Adam>`, aliases such as [`Adam`] and [`AdamW`]), whose
//!   `Default` is torch's.
//! - **Parameters without a gradient** in the [`GradStore`] are skipped, as torch skips
//!   parameters whose `.grad` is `None`: their state and their step counter stay as they were.
//! - **Step counters and scalar state** (NAdam's `mu_product`) are kept per parameter, as in
//!   torch's `state[p]`, so a parameter that missed steps is bias-corrected by its own count. The
//!   per-step scalars are computed once per step for all parameters at the same count.
//! - **Learning rate**: [`candle_nn::Optimizer::set_learning_rate`] before a step; with the
//!   crate's schedules, `opt.set_learning_rate(sched.lr(epoch)?)`.
//! - **Dtypes**: f32, bf16 and f16 `Var`s, each updated at its own precision (no f32 master
//!   copy); gradients in any of the three. bf16 parameters may use stochastic rounding or a Kahan
//!   compensation buffer ([`Rounding`]). State in f32 (default), bf16, f16 or torchao's block
//!   formats ([`Config::state_format`]).
//! - **Errors** come before any write: a `Var` not on the CPU, of another dtype, or not
//!   contiguous fails at construction; a gradient of the wrong shape, dtype or device fails the
//!   step before any parameter is touched. The message is an [`Error`].
//! - **Checkpoints**: [`FusedOptimizer::save_state`] / [`FusedOptimizer::load_state`], in
//!   safetensors with torch's state names (see [`FusedOptimizer::state_tensors`]).

mod checkpoint;
mod op;
mod state;
mod torch;

use std::cell::Cell;
use std::fmt;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, TensorId, Var};
use fused_optim::{Backend, StateFormat, StepPlan as _, bf16};

pub use torch::TorchOptimizer;

use op::{Store, Update};
use state::StateBuf;

/// [`FusedOptimizer`] running `torch.optim.SGD`.
pub type Sgd = FusedOptimizer<fused_optim::Sgd>;
/// [`FusedOptimizer`] running `torch.optim.Adam` (and `AdamW`, with
/// [`fused_optim::Adam::adamw`]).
pub type Adam = FusedOptimizer<fused_optim::Adam>;
/// [`FusedOptimizer`] running `torch.optim.AdamW`: the same type as [`Adam`]; configure it with
/// [`fused_optim::Adam::adamw`] (torch's AdamW defaults: `weight_decay = 1e-2`).
pub type AdamW = FusedOptimizer<fused_optim::Adam>;
/// [`FusedOptimizer`] running `torch.optim.Adagrad`.
pub type Adagrad = FusedOptimizer<fused_optim::Adagrad>;
/// [`FusedOptimizer`] running `torch.optim.Adadelta`.
pub type Adadelta = FusedOptimizer<fused_optim::Adadelta>;
/// [`FusedOptimizer`] running `torch.optim.RMSprop`.
pub type RMSprop = FusedOptimizer<fused_optim::RMSprop>;
/// [`FusedOptimizer`] running `torch.optim.Adamax`.
pub type Adamax = FusedOptimizer<fused_optim::Adamax>;
/// [`FusedOptimizer`] running `torch.optim.NAdam`.
pub type NAdam = FusedOptimizer<fused_optim::NAdam>;
/// [`FusedOptimizer`] running `torch.optim.RAdam`.
pub type RAdam = FusedOptimizer<fused_optim::RAdam>;
/// [`FusedOptimizer`] running Lion (lion-pytorch).
pub type Lion = FusedOptimizer<fused_optim::Lion>;
/// [`FusedOptimizer`] running torchao's `AdamW8bit` and its siblings; see
/// [`Config::torchao`].
pub type TorchaoAdam = FusedOptimizer<fused_optim::TorchaoAdam>;

/// Why the adapter refused a `Var`, a gradient, a configuration or a checkpoint. Returned
/// wrapped in a [`candle_core::Error`] (its message is this error's).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A `Var` is not on the CPU (the kernels run on the CPU only).
    NonCpuDevice {
        /// The parameter's name.
        name: String,
        /// Where it is, e.g. `Cuda(0)`.
        device: String,
    },
    /// A `Var`'s dtype is not f32, bf16 or f16.
    UnsupportedDtype(DType),
    /// A `Var` (named) whose dtype is not f32, bf16 or f16.
    UnsupportedVarDtype {
        /// The parameter's name.
        name: String,
        /// Its dtype.
        dtype: DType,
    },
    /// A gradient's dtype is not f32, bf16 or f16.
    UnsupportedGradDtype(DType),
    /// A `Var` whose layout is not contiguous (candle's `Var`s always are).
    NonContiguousVar,
    /// A gradient that does not fit its parameter.
    GradMismatch {
        /// The parameter's name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Stochastic rounding or Kahan compensation asked for a parameter that is not bf16.
    RoundingNeedsBf16 {
        /// The parameter's name.
        name: String,
        /// Its dtype.
        dtype: DType,
    },
    /// A state format this adapter does not know.
    UnsupportedStateFormat(StateFormat),
    /// Two parameters with the same name.
    DuplicateName(String),
    /// The same `Var` twice (it would be stepped twice per step).
    DuplicateVar(String),
    /// A checkpoint that does not fit this optimizer and its parameters.
    Checkpoint(String),
    /// The crate refused the step (invalid hyperparameter, length mismatch, …).
    Optim(fused_optim::Error),
    /// A broken invariant of this adapter (a bug: please report it).
    Internal(&'static str),
}

impl fmt::Display for Error {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NonCpuDevice { name, device } => write!(
                f,
                "fused-optim: parameter '{name}' is on {device}; only CPU Vars are supported"
            ),
            Error::UnsupportedDtype(d) => write!(
                f,
                "fused-optim: parameter dtype {d:?} is not supported (f32, bf16 or f16)"
            ),
            Error::UnsupportedVarDtype { name, dtype } => write!(
                f,
                "fused-optim: parameter '{name}' has dtype {dtype:?}; only f32, bf16 and f16 are supported"
            ),
            Error::UnsupportedGradDtype(d) => write!(
                f,
                "fused-optim: gradient dtype {d:?} is not supported (f32, bf16 or f16)"
            ),
            Error::NonContiguousVar => f.write_str("fused-optim: the Var is not contiguous"),
            Error::GradMismatch { name, why } => {
                write!(f, "fused-optim: gradient of parameter '{name}': {why}")
            }
            Error::RoundingNeedsBf16 { name, dtype } => write!(
                f,
                "fused-optim: stochastic rounding and Kahan compensation need bf16 parameters; '{name}' is {dtype:?}"
            ),
            Error::UnsupportedStateFormat(s) => {
                write!(f, "fused-optim: state format {s:?} is not supported")
            }
            Error::DuplicateName(n) => write!(f, "fused-optim: two parameters are named '{n}'"),
            Error::DuplicateVar(n) => write!(
                f,
                "fused-optim: parameter '{n}' is a Var already given under another name"
            ),
            Error::Checkpoint(why) => write!(f, "fused-optim checkpoint: {why}"),
            Error::Optim(e) => write!(f, "fused-optim: {e}"),
            Error::Internal(why) => write!(f, "fused-optim internal error: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for candle_core::Error {
    #[inline]
    fn from(e: Error) -> Self {
        candle_core::Error::wrap(e)
    }
}

/// How bf16 parameters are rounded when stored (f32 and f16 parameters always round to
/// nearest even).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Rounding {
    /// Round to nearest even, as torch's fused CPU kernels do (default).
    #[default]
    Nearest,
    /// Stochastic rounding ([`fused_optim::Params::Bf16Stochastic`]). Parameter `i` (in the
    /// adapter's order) uses the seed `seed + i`, so a run is reproducible from `seed`.
    Stochastic {
        /// The run's seed.
        seed: u64,
    },
    /// Kahan-compensated bf16 ([`fused_optim::Params::Bf16Kahan`]): the adapter allocates a
    /// bf16 compensation buffer per parameter (saved as `{name}.kahan_comp`).
    Kahan,
}

/// The adapter's configuration: the optimizer's hyperparameters and the storage choices.
///
/// ```
/// use fused_optim::StateFormat;
/// use fused_optim_candle::{Config, Rounding};
/// let config = Config::new(fused_optim::Adam::adamw())
///     .state_format(StateFormat::Bf16)
///     .rounding(Rounding::Kahan);
/// assert_eq!(config.optimizer.weight_decay, 1e-2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Config<O> {
    /// The optimizer and its hyperparameters.
    pub optimizer: O,
    /// The state format of every parameter (default `F32`).
    pub state_format: StateFormat,
    /// With a block format: use it only where torchao 0.18 does (tensors of at least 4096
    /// values filling whole blocks, [`StateFormat::torchao_for`]), and plain state (f32, or
    /// bf16 for bf16 parameters) elsewhere. Default `false`: the format everywhere.
    pub torchao_small_tensors: bool,
    /// How bf16 parameters are rounded (default to nearest even).
    pub rounding: Rounding,
    /// The kernel backend (default [`Backend::best`]; every backend gives the same bits).
    pub backend: Backend,
}

impl<O> Config<O> {
    /// `optimizer` with f32 state and round-to-nearest.
    #[inline]
    pub fn new(optimizer: O) -> Self {
        Config {
            optimizer,
            state_format: StateFormat::F32,
            torchao_small_tensors: false,
            rounding: Rounding::Nearest,
            backend: Backend::best(),
        }
    }

    /// Sets the state format.
    #[inline]
    #[must_use]
    pub fn state_format(mut self, format: StateFormat) -> Self {
        self.state_format = format;
        self
    }

    /// Sets the rounding of bf16 parameters.
    #[inline]
    #[must_use]
    pub fn rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }

    /// Sets the backend.
    #[inline]
    #[must_use]
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }
}

impl Config<fused_optim::TorchaoAdam> {
    /// torchao's choice of state: the optimizer's block format (`Int8`, `Int4` or `Fp8`) on
    /// tensors of at least 4096 values filling whole blocks, plain state on the others.
    ///
    /// ```
    /// let config = fused_optim_candle::Config::torchao(fused_optim::TorchaoAdam::adamw8bit());
    /// assert_eq!(config.state_format, fused_optim::StateFormat::Int8);
    /// ```
    #[inline]
    pub fn torchao(optimizer: fused_optim::TorchaoAdam) -> Self {
        Config {
            state_format: optimizer.format,
            torchao_small_tensors: true,
            ..Config::new(optimizer)
        }
    }
}

impl<O> From<O> for Config<O> {
    #[inline]
    fn from(optimizer: O) -> Self {
        Config::new(optimizer)
    }
}

/// One parameter: its `Var`, its state, and its step counter.
#[derive(Debug)]
struct Entry<S> {
    name: String,
    var: Var,
    id: TensorId,
    n: usize,
    format: StateFormat,
    state: StateBuf,
    /// Kahan compensation (empty unless [`Rounding::Kahan`] and bf16).
    comp: Vec<bf16>,
    /// The stochastic-rounding seed, for bf16 under [`Rounding::Stochastic`].
    seed: Option<u64>,
    step: u64,
    scalars: S,
}

/// A [`candle_nn::Optimizer`] running a `fused-optim` optimizer on candle `Var`s.
///
/// Build it with [`candle_nn::Optimizer::new`] (parameters named `"0"`, `"1"`, …, as torch's
/// `state_dict` numbers them), [`FusedOptimizer::from_varmap`] (named by the `VarMap`, in name
/// order) or [`FusedOptimizer::from_named`].
pub struct FusedOptimizer<O: TorchOptimizer> {
    config: Config<O>,
    entries: Vec<Entry<O::Scalars>>,
    /// This step's gradients, looked up once: allocated at construction, reused every step.
    grads: Vec<Option<Tensor>>,
}

impl<O: TorchOptimizer> fmt::Debug for FusedOptimizer<O> {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FusedOptimizer")
            .field("config", &self.config)
            .field("parameters", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl<O: TorchOptimizer> FusedOptimizer<O> {
    /// An optimizer over named parameters, in the order given.
    ///
    /// # Errors
    /// Invalid hyperparameters, a `Var` not on the CPU, not f32/bf16/f16, or not contiguous, an
    /// f16 `Var` with stochastic or Kahan rounding, or a repeated name or `Var`.
    #[inline]
    pub fn from_named(vars: Vec<(String, Var)>, config: Config<O>) -> candle_core::Result<Self> {
        config.optimizer.validate().map_err(Error::Optim)?;
        let planes = config.optimizer.plane_names().len();
        let mut entries = Vec::with_capacity(vars.len());
        let mut seen = std::collections::HashSet::with_capacity(vars.len());
        let mut seen_ids = std::collections::HashSet::with_capacity(vars.len());
        for (i, (name, var)) in vars.into_iter().enumerate() {
            if !seen.insert(name.clone()) {
                return Err(Error::DuplicateName(name).into());
            }
            if !seen_ids.insert(var.id()) {
                return Err(Error::DuplicateVar(name).into());
            }
            if !matches!(var.device(), Device::Cpu) {
                let device = format!("{:?}", var.device().location());
                return Err(Error::NonCpuDevice { name, device }.into());
            }
            let dtype = var.dtype();
            if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
                return Err(Error::UnsupportedVarDtype { name, dtype }.into());
            }
            if !var.is_contiguous() {
                return Err(Error::NonContiguousVar.into());
            }
            let bf16_param = dtype == DType::BF16;
            if !bf16_param && config.rounding != Rounding::Nearest && dtype != DType::F32 {
                return Err(Error::RoundingNeedsBf16 { name, dtype }.into());
            }
            let n = var.elem_count();
            let format = if config.torchao_small_tensors {
                let small = if bf16_param {
                    StateFormat::Bf16
                } else {
                    StateFormat::F32
                };
                config.state_format.torchao_for(n, small)
            } else {
                config.state_format
            };
            let mut state = StateBuf::zeros(format, planes, n)?;
            config
                .optimizer
                .init_state_in(state.as_state())
                .map_err(Error::Optim)?;
            let (comp, seed) = match (bf16_param, config.rounding) {
                (true, Rounding::Kahan) => (vec![bf16::ZERO; n], None),
                (true, Rounding::Stochastic { seed }) => {
                    (Vec::new(), Some(seed.wrapping_add(i as u64)))
                }
                _ => (Vec::new(), None),
            };
            entries.push(Entry {
                id: var.id(),
                name,
                var,
                n,
                format,
                state,
                comp,
                seed,
                step: 0,
                scalars: O::Scalars::default(),
            });
        }
        let grads = vec![None; entries.len()];
        Ok(FusedOptimizer {
            config,
            entries,
            grads,
        })
    }

    /// An optimizer over every `Var` of `varmap`, named as in the map and ordered by name (so a
    /// checkpoint and the stochastic-rounding seeds do not depend on the map's hash order).
    ///
    /// # Errors
    /// As [`FusedOptimizer::from_named`], or a poisoned `VarMap` lock.
    #[inline]
    pub fn from_varmap(varmap: &candle_nn::VarMap, config: Config<O>) -> candle_core::Result<Self> {
        let mut vars: Vec<(String, Var)> = {
            let data = varmap.data().lock().map_err(|_| {
                candle_core::Error::msg("fused-optim: the VarMap's lock is poisoned")
            })?;
            data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Self::from_named(vars, config)
    }

    /// The configuration.
    #[inline]
    pub fn config(&self) -> &Config<O> {
        &self.config
    }

    /// The optimizer's hyperparameters, to change between steps (the learning rate, or
    /// `OneCycleLR`'s momentum). Changes take effect at the next step.
    #[inline]
    pub fn optimizer_mut(&mut self) -> &mut O {
        &mut self.config.optimizer
    }

    /// The parameters' names, in the adapter's order.
    #[inline]
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// The number of steps parameter `name` has taken (torch's `state[p]["step"]`).
    #[inline]
    pub fn step_count(&self, name: &str) -> Option<u64> {
        self.entries.iter().find(|e| e.name == name).map(|e| e.step)
    }

    /// Looks up every gradient once and checks it: all or nothing.
    fn gather(&mut self, grads: &GradStore) -> Result<(), Error> {
        for (slot, e) in self.grads.iter_mut().zip(&self.entries) {
            *slot = None;
            let Some(g) = grads.get_id(e.id) else {
                continue;
            };
            let mismatch = |why: String| Error::GradMismatch {
                name: e.name.clone(),
                why,
            };
            if g.dims() != e.var.dims() {
                return Err(mismatch(format!(
                    "shape {:?}, expected {:?}",
                    g.dims(),
                    e.var.dims()
                )));
            }
            if !matches!(g.device(), Device::Cpu) {
                return Err(mismatch(format!("on {:?}", g.device().location())));
            }
            if !matches!(g.dtype(), DType::F32 | DType::BF16 | DType::F16) {
                return Err(mismatch(format!(
                    "dtype {:?} (f32, bf16 or f16 only)",
                    g.dtype()
                )));
            }
            // A non-contiguous gradient is copied once; a contiguous one is shared.
            *slot = Some(if g.is_contiguous() {
                g.clone()
            } else {
                g.contiguous()
                    .map_err(|e| mismatch(format!("copying to contiguous: {e}")))?
            });
        }
        Ok(())
    }

    /// One step on every parameter that has a gradient.
    fn step_impl(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.config.optimizer.validate().map_err(Error::Optim)?;
        self.gather(grads)?;
        let opt = self.config.optimizer;
        let backend = self.config.backend;
        let mut cached: Option<(u64, O::Scalars, O::Plan)> = None;
        for (slot, e) in self.grads.iter_mut().zip(&mut self.entries) {
            let Some(g) = slot.take() else {
                continue;
            };
            let step = e.step.saturating_add(1);
            let plan = match cached {
                Some((s, sc, plan)) if s == step && sc == e.scalars => plan,
                _ => {
                    let plan = opt.plan(step, &e.scalars).map_err(Error::Optim)?;
                    cached = Some((step, e.scalars, plan));
                    plan
                }
            };
            let store = if !e.comp.is_empty() {
                Store::Kahan(&mut e.comp)
            } else if let Some(seed) = e.seed {
                Store::Stochastic(seed)
            } else {
                Store::Nearest
            };
            let update = Update {
                plan: &plan,
                backend,
                parts: Cell::new(Some((e.state.as_state(), store))),
            };
            e.var.inplace_op2(&g, &update)?;
            e.step = step;
            e.scalars = plan.scalars_after();
        }
        Ok(())
    }
}

impl<O: TorchOptimizer> candle_nn::Optimizer for FusedOptimizer<O> {
    type Config = Config<O>;

    /// Parameters named `"0"`, `"1"`, … in the order given (torch's `state_dict` indices).
    #[inline]
    fn new(vars: Vec<Var>, config: Config<O>) -> candle_core::Result<Self> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect();
        Self::from_named(named, config)
    }

    /// One step on every parameter with a gradient in `grads`; the others are skipped.
    #[inline]
    fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step_impl(grads)
    }

    #[inline]
    fn learning_rate(&self) -> f64 {
        self.config.optimizer.lr()
    }

    #[inline]
    fn set_learning_rate(&mut self, lr: f64) {
        self.config.optimizer.set_lr(lr);
    }
}
