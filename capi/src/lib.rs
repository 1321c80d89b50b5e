//! C ABI for `fused-optim`: every optimizer's step on `float` pointers, with integer status
//! codes. The header is `include/fused_optim.h`.
//!
//! For each optimizer `X` (`sgd`, `adam`, `adagrad`, `adadelta`, `rmsprop`, `adamax`, `nadam`,
//! `radam`, `lion`):
//!
//! | function | does |
//! |---|---|
//! | `FoX fo_X_default(void)` | torch's defaults |
//! | `int fo_X_validate(const FoX *)` | torch's hyperparameter rules |
//! | `size_t fo_X_state_len(const FoX *, size_t n)` | state floats for `n` parameters |
//! | `int fo_X_init_state(const FoX *, float *state, size_t state_len)` | a fresh state |
//! | `int fo_X_step(const FoX *, uint64_t step, float *params, const float *grads, size_t n, float *state, size_t state_len)` | one step |
//!
//! NAdam's step also takes the scalar state (`mu_product`) before the step and returns it
//! after. Boolean options are `int32_t`, nonzero meaning true. Every function checks its
//! pointers (NULL is accepted only with a zero length), rejects overlapping buffers, and returns
//! a status before writing anything: see the `FO_*` constants. No function unwinds or panics
//! (the library is built with `panic = "abort"`, and the kernels have no panic path).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::ffi::c_int;

use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Error, Lion, NAdam, NAdamScalars, Optimizer, RAdam, RMSprop,
    Sgd, StepPlan,
};

/// Success.
pub const FO_OK: c_int = 0;
/// A pointer is NULL with a nonzero length (or the hyperparameter pointer is NULL), or is not
/// aligned for its type.
pub const FO_ERR_POINTER: c_int = -1;
/// A hyperparameter is outside the range torch accepts (or is NaN).
pub const FO_ERR_INVALID_HYPERPARAMETER: c_int = -2;
/// A combination torch rejects (e.g. Nesterov without momentum).
pub const FO_ERR_INVALID_COMBINATION: c_int = -3;
/// Step 0: steps are numbered from 1.
pub const FO_ERR_INVALID_STEP: c_int = -4;
/// `state_len` is not `fo_X_state_len(opt, n)`, or a length is too large for the address space.
pub const FO_ERR_LENGTH: c_int = -5;
/// Two of `params`, `grads` and `state` overlap.
pub const FO_ERR_OVERLAP: c_int = -6;
/// Any other error of the Rust crate (not produced by the current optimizers).
pub const FO_ERR_OTHER: c_int = -7;

/// The status code of a crate error.
fn status(e: Error) -> c_int {
    match e {
        Error::InvalidHyperparameter { .. } => FO_ERR_INVALID_HYPERPARAMETER,
        Error::InvalidCombination(_) => FO_ERR_INVALID_COMBINATION,
        Error::InvalidStep(_) => FO_ERR_INVALID_STEP,
        Error::LengthMismatch { .. } => FO_ERR_LENGTH,
        _ => FO_ERR_OTHER,
    }
}

/// A short English description of a status code (a static NUL-terminated string; never NULL).
#[unsafe(no_mangle)]
pub extern "C" fn fo_status_message(status: c_int) -> *const core::ffi::c_char {
    let s: &'static core::ffi::CStr = match status {
        FO_OK => c"ok",
        FO_ERR_POINTER => c"NULL or misaligned pointer",
        FO_ERR_INVALID_HYPERPARAMETER => c"invalid hyperparameter",
        FO_ERR_INVALID_COMBINATION => c"invalid combination of hyperparameters",
        FO_ERR_INVALID_STEP => c"invalid step (steps are numbered from 1)",
        FO_ERR_LENGTH => c"buffer length mismatch",
        FO_ERR_OVERLAP => c"overlapping buffers",
        FO_ERR_OTHER => c"other error",
        _ => c"unknown status",
    };
    s.as_ptr()
}

// ---------------------------------------------------------------------------------------------
// Buffers

/// The byte range of `len` floats at `ptr` (empty when `len` is 0).
fn range(ptr: *const f32, len: usize) -> (usize, usize) {
    let start = ptr as usize;
    (
        start,
        start.saturating_add(len.saturating_mul(size_of::<f32>())),
    )
}

/// Whether two non-empty byte ranges share a byte.
fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < a.1 && b.0 < b.1 && a.0 < b.1 && b.0 < a.1
}

/// Checks a buffer pointer: NULL only with length 0, aligned, and a length the address space
/// can hold.
fn check(ptr: *const f32, len: usize) -> Result<(), c_int> {
    if len == 0 {
        return Ok(());
    }
    if len > isize::MAX as usize / size_of::<f32>() {
        return Err(FO_ERR_LENGTH);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(FO_ERR_POINTER);
    }
    Ok(())
}

/// A mutable slice over a checked buffer.
///
/// # Safety
/// `check(ptr, len)` passed, `ptr` points to `len` floats the caller may write, and nothing
/// else refers to them for `'a`.
unsafe fn slice_mut<'a>(ptr: *mut f32, len: usize) -> &'a mut [f32] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: non-NULL, aligned, `len` valid floats, not aliased (the caller's contract and
    // the overlap check).
    unsafe { core::slice::from_raw_parts_mut(ptr, len) }
}

/// A shared slice over a checked buffer.
///
/// # Safety
/// `check(ptr, len)` passed and `ptr` points to `len` floats that nothing writes for `'a`.
unsafe fn slice<'a>(ptr: *const f32, len: usize) -> &'a [f32] {
    if len == 0 {
        return &[];
    }
    // SAFETY: non-NULL, aligned, `len` valid floats, not written meanwhile.
    unsafe { core::slice::from_raw_parts(ptr, len) }
}

/// Reads the hyperparameters behind `opt`.
///
/// # Safety
/// `opt` is NULL or points to a valid `C`.
unsafe fn read<C: CConfig>(opt: *const C) -> Result<C::Rust, c_int> {
    if opt.is_null() || !opt.is_aligned() {
        return Err(FO_ERR_POINTER);
    }
    // SAFETY: non-NULL and aligned; the caller vouches that it points to a valid `C` (every
    // bit pattern of its `f64` and `i32` fields is a valid value).
    Ok(unsafe { &*opt }.to_rust())
}

/// The shared body of every step function.
///
/// # Safety
/// The pointers satisfy the contract in the header: each is NULL only with a zero length and
/// otherwise points to that many floats (`params` and `state` writable).
#[allow(clippy::too_many_arguments)]
unsafe fn step_impl<O: Optimizer>(
    opt: O,
    step: u64,
    scalars: &O::Scalars,
    params: *mut f32,
    grads: *const f32,
    n: usize,
    state: *mut f32,
    state_len: usize,
) -> Result<O::Scalars, c_int> {
    check(params, n)?;
    check(grads, n)?;
    check(state, state_len)?;
    let (p, g, s) = (range(params, n), range(grads, n), range(state, state_len));
    if overlap(p, g) || overlap(p, s) || overlap(g, s) {
        return Err(FO_ERR_OVERLAP);
    }
    // SAFETY: checked above; distinct buffers, by the overlap check.
    let (p, g, s) = unsafe {
        (
            slice_mut(params, n),
            slice(grads, n),
            slice_mut(state, state_len),
        )
    };
    let plan = opt.plan(step, scalars).map_err(status)?;
    plan.apply(p, g, s).map_err(status)?;
    Ok(plan.scalars_after())
}

/// The shared body of every `init_state` function.
///
/// # Safety
/// `state` is NULL with `state_len` 0, or points to `state_len` writable floats.
unsafe fn init_impl<O: Optimizer>(opt: O, state: *mut f32, state_len: usize) -> c_int {
    if let Err(e) = check(state, state_len) {
        return e;
    }
    // SAFETY: checked above.
    opt.init_state(unsafe { slice_mut(state, state_len) });
    FO_OK
}

fn code(r: Result<(), c_int>) -> c_int {
    r.err().unwrap_or(FO_OK)
}

fn flag(x: i32) -> bool {
    x != 0
}

fn int(b: bool) -> i32 {
    i32::from(b)
}

/// A `#[repr(C)]` hyperparameter struct and the optimizer it stands for.
trait CConfig: Copy {
    type Rust: Optimizer;
    fn to_rust(&self) -> Self::Rust;
    fn from_rust(r: &Self::Rust) -> Self;
}

/// Generates `default`, `validate`, `state_len`, `init_state` (and, for optimizers without
/// scalar state, `step`) for one hyperparameter struct.
macro_rules! c_functions {
    ($c:ty, $rust:ty, $name:literal, $default:ident, $validate:ident, $state_len:ident, $init:ident $(, $step:ident)?) => {
        #[doc = concat!("torch's default hyperparameters for ", $name, ".")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $default() -> $c {
            <$c>::from_rust(&<$rust>::default())
        }

        #[doc = concat!("Checks ", $name, "'s hyperparameters: `FO_OK` or the first error.")]
        ///
        /// # Safety
        /// `opt` is NULL (`FO_ERR_POINTER`) or points to a valid struct.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $validate(opt: *const $c) -> c_int {
            // SAFETY: the caller's contract.
            match unsafe { read(opt) } {
                Ok(o) => code(Optimizer::validate(&o).map_err(status)),
                Err(e) => e,
            }
        }

        #[doc = concat!("State floats ", $name, " needs for `n` parameters (0 when `opt` is NULL).")]
        ///
        /// # Safety
        /// `opt` is NULL or points to a valid struct.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $state_len(opt: *const $c, n: usize) -> usize {
            // SAFETY: the caller's contract.
            match unsafe { read(opt) } {
                Ok(o) => Optimizer::state_len(&o, n),
                Err(_) => 0,
            }
        }

        #[doc = concat!("Writes a fresh ", $name, " state (what torch starts from).")]
        ///
        /// # Safety
        /// `opt` points to a valid struct; `state` is NULL with `state_len` 0 or points to
        /// `state_len` writable floats.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $init(opt: *const $c, state: *mut f32, state_len: usize) -> c_int {
            // SAFETY: the caller's contract.
            match unsafe { read(opt) } {
                // SAFETY: the caller's contract.
                Ok(o) => unsafe { init_impl(o, state, state_len) },
                Err(e) => e,
            }
        }

        $(
        #[doc = concat!("One ", $name, " step (number `step`, from 1) on one tensor of `n` parameters, on the best backend.")]
        ///
        /// Returns `FO_OK`, or an error status with nothing written.
        ///
        /// # Safety
        /// `opt` points to a valid struct; `params` and `grads` point to `n` floats and
        /// `state` to `state_len` floats (each may be NULL when its length is 0); `params`
        /// and `state` are writable; no other thread accesses them during the call.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $step(
            opt: *const $c,
            step: u64,
            params: *mut f32,
            grads: *const f32,
            n: usize,
            state: *mut f32,
            state_len: usize,
        ) -> c_int {
            // SAFETY: the caller's contract.
            let r = unsafe { read(opt) }.and_then(|o| {
                // SAFETY: the caller's contract.
                unsafe { step_impl(o, step, &(), params, grads, n, state, state_len) }
            });
            code(r.map(|()| ()))
        }
        )?
    };
}

// ---------------------------------------------------------------------------------------------
// Hyperparameter structs

/// `torch.optim.SGD`'s hyperparameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoSgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor (0: no momentum, no state).
    pub momentum: f64,
    /// Dampening.
    pub dampening: f64,
    /// L2 penalty.
    pub weight_decay: f64,
    /// Nesterov momentum (nonzero: true).
    pub nesterov: i32,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl CConfig for FoSgd {
    type Rust = Sgd;
    fn to_rust(&self) -> Sgd {
        Sgd {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay: self.weight_decay,
            nesterov: flag(self.nesterov),
            maximize: flag(self.maximize),
        }
    }
    fn from_rust(r: &Sgd) -> Self {
        FoSgd {
            lr: r.lr,
            momentum: r.momentum,
            dampening: r.dampening,
            weight_decay: r.weight_decay,
            nesterov: int(r.nesterov),
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoSgd,
    Sgd,
    "SGD",
    fo_sgd_default,
    fo_sgd_validate,
    fo_sgd_state_len,
    fo_sgd_init_state,
    fo_sgd_step
);

/// `torch.optim.Adam` / `AdamW` hyperparameters (AdamW: `decoupled_weight_decay` set and
/// `weight_decay` 1e-2).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoAdam {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// AMSGrad (nonzero: true; the state is then `3·n`).
    pub amsgrad: i32,
    /// Maximize (nonzero: true).
    pub maximize: i32,
    /// AdamW's decoupled weight decay (nonzero: true).
    pub decoupled_weight_decay: i32,
}

impl CConfig for FoAdam {
    type Rust = Adam;
    fn to_rust(&self) -> Adam {
        Adam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            amsgrad: flag(self.amsgrad),
            maximize: flag(self.maximize),
            decoupled_weight_decay: flag(self.decoupled_weight_decay),
        }
    }
    fn from_rust(r: &Adam) -> Self {
        FoAdam {
            lr: r.lr,
            beta1: r.betas.0,
            beta2: r.betas.1,
            eps: r.eps,
            weight_decay: r.weight_decay,
            amsgrad: int(r.amsgrad),
            maximize: int(r.maximize),
            decoupled_weight_decay: int(r.decoupled_weight_decay),
        }
    }
}
c_functions!(
    FoAdam,
    Adam,
    "Adam",
    fo_adam_default,
    fo_adam_validate,
    fo_adam_state_len,
    fo_adam_init_state,
    fo_adam_step
);

/// `torch.optim.AdamW`'s defaults: Adam with decoupled weight decay 1e-2.
#[unsafe(no_mangle)]
pub extern "C" fn fo_adamw_default() -> FoAdam {
    FoAdam::from_rust(&Adam::adamw())
}

/// `torch.optim.Adagrad`'s hyperparameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoAdagrad {
    /// Learning rate.
    pub lr: f64,
    /// Learning-rate decay.
    pub lr_decay: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Initial value of the accumulator (`fo_adagrad_init_state` writes it).
    pub initial_accumulator_value: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl CConfig for FoAdagrad {
    type Rust = Adagrad;
    fn to_rust(&self) -> Adagrad {
        Adagrad {
            lr: self.lr,
            lr_decay: self.lr_decay,
            weight_decay: self.weight_decay,
            initial_accumulator_value: self.initial_accumulator_value,
            eps: self.eps,
            maximize: flag(self.maximize),
        }
    }
    fn from_rust(r: &Adagrad) -> Self {
        FoAdagrad {
            lr: r.lr,
            lr_decay: r.lr_decay,
            weight_decay: r.weight_decay,
            initial_accumulator_value: r.initial_accumulator_value,
            eps: r.eps,
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoAdagrad,
    Adagrad,
    "Adagrad",
    fo_adagrad_default,
    fo_adagrad_validate,
    fo_adagrad_state_len,
    fo_adagrad_init_state,
    fo_adagrad_step
);

/// `torch.optim.Adadelta`'s hyperparameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoAdadelta {
    /// Learning rate.
    pub lr: f64,
    /// Decay rate of the running averages.
    pub rho: f64,
    /// Added inside the square roots.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl CConfig for FoAdadelta {
    type Rust = Adadelta;
    fn to_rust(&self) -> Adadelta {
        Adadelta {
            lr: self.lr,
            rho: self.rho,
            eps: self.eps,
            weight_decay: self.weight_decay,
            maximize: flag(self.maximize),
        }
    }
    fn from_rust(r: &Adadelta) -> Self {
        FoAdadelta {
            lr: r.lr,
            rho: r.rho,
            eps: r.eps,
            weight_decay: r.weight_decay,
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoAdadelta,
    Adadelta,
    "Adadelta",
    fo_adadelta_default,
    fo_adadelta_validate,
    fo_adadelta_state_len,
    fo_adadelta_init_state,
    fo_adadelta_step
);

/// `torch.optim.RMSprop`'s hyperparameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoRmsprop {
    /// Learning rate.
    pub lr: f64,
    /// Smoothing constant.
    pub alpha: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// Centered RMSprop (nonzero: true).
    pub centered: i32,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl CConfig for FoRmsprop {
    type Rust = RMSprop;
    fn to_rust(&self) -> RMSprop {
        RMSprop {
            lr: self.lr,
            alpha: self.alpha,
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            centered: flag(self.centered),
            maximize: flag(self.maximize),
        }
    }
    fn from_rust(r: &RMSprop) -> Self {
        FoRmsprop {
            lr: r.lr,
            alpha: r.alpha,
            eps: r.eps,
            weight_decay: r.weight_decay,
            momentum: r.momentum,
            centered: int(r.centered),
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoRmsprop,
    RMSprop,
    "RMSprop",
    fo_rmsprop_default,
    fo_rmsprop_validate,
    fo_rmsprop_state_len,
    fo_rmsprop_init_state,
    fo_rmsprop_step
);

/// `torch.optim.Adamax`'s hyperparameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoAdamax {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl CConfig for FoAdamax {
    type Rust = Adamax;
    fn to_rust(&self) -> Adamax {
        Adamax {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            maximize: flag(self.maximize),
        }
    }
    fn from_rust(r: &Adamax) -> Self {
        FoAdamax {
            lr: r.lr,
            beta1: r.betas.0,
            beta2: r.betas.1,
            eps: r.eps,
            weight_decay: r.weight_decay,
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoAdamax,
    Adamax,
    "Adamax",
    fo_adamax_default,
    fo_adamax_validate,
    fo_adamax_state_len,
    fo_adamax_init_state,
    fo_adamax_step
);

/// `torch.optim.NAdam`'s hyperparameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoNadam {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Momentum decay (ψ).
    pub momentum_decay: f64,
    /// Decoupled weight decay, NAdamW (nonzero: true).
    pub decoupled_weight_decay: i32,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

/// NAdam's scalar state, shared by every tensor at the same step.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoNadamScalars {
    /// The product of the momentum coefficients so far (1 before the first step).
    pub mu_product: f32,
}

impl CConfig for FoNadam {
    type Rust = NAdam;
    fn to_rust(&self) -> NAdam {
        NAdam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum_decay: self.momentum_decay,
            decoupled_weight_decay: flag(self.decoupled_weight_decay),
            maximize: flag(self.maximize),
        }
    }
    fn from_rust(r: &NAdam) -> Self {
        FoNadam {
            lr: r.lr,
            beta1: r.betas.0,
            beta2: r.betas.1,
            eps: r.eps,
            weight_decay: r.weight_decay,
            momentum_decay: r.momentum_decay,
            decoupled_weight_decay: int(r.decoupled_weight_decay),
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoNadam,
    NAdam,
    "NAdam",
    fo_nadam_default,
    fo_nadam_validate,
    fo_nadam_state_len,
    fo_nadam_init_state
);

/// NAdam's scalar state before the first step (`mu_product = 1`).
#[unsafe(no_mangle)]
pub extern "C" fn fo_nadam_scalars_default() -> FoNadamScalars {
    FoNadamScalars {
        mu_product: NAdamScalars::default().mu_product,
    }
}

/// One NAdam step on one tensor. `scalars` is the scalar state before step `step` (the same
/// for every tensor of that step); on success `scalars_after` (may be NULL) receives the state
/// for the next step.
///
/// Returns `FO_OK`, or an error status with nothing written.
///
/// # Safety
/// As `fo_adam_step`; `scalars` points to a valid struct, `scalars_after` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn fo_nadam_step(
    opt: *const FoNadam,
    step: u64,
    scalars: *const FoNadamScalars,
    scalars_after: *mut FoNadamScalars,
    params: *mut f32,
    grads: *const f32,
    n: usize,
    state: *mut f32,
    state_len: usize,
) -> c_int {
    if scalars.is_null() || !scalars.is_aligned() {
        return FO_ERR_POINTER;
    }
    if !scalars_after.is_null() && !scalars_after.is_aligned() {
        return FO_ERR_POINTER;
    }
    // SAFETY: non-NULL, aligned, valid by the caller's contract.
    let before = NAdamScalars {
        mu_product: unsafe { *scalars }.mu_product,
    };
    // SAFETY: the caller's contract.
    let r = unsafe { read(opt) }.and_then(|o| {
        // SAFETY: the caller's contract.
        unsafe { step_impl(o, step, &before, params, grads, n, state, state_len) }
    });
    match r {
        Ok(after) => {
            if !scalars_after.is_null() {
                // SAFETY: non-NULL, aligned, writable by the caller's contract.
                unsafe {
                    *scalars_after = FoNadamScalars {
                        mu_product: after.mu_product,
                    }
                };
            }
            FO_OK
        }
        Err(e) => e,
    }
}

/// `torch.optim.RAdam`'s hyperparameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoRadam {
    /// Learning rate.
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Decoupled weight decay (nonzero: true).
    pub decoupled_weight_decay: i32,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl CConfig for FoRadam {
    type Rust = RAdam;
    fn to_rust(&self) -> RAdam {
        RAdam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled_weight_decay: flag(self.decoupled_weight_decay),
            maximize: flag(self.maximize),
        }
    }
    fn from_rust(r: &RAdam) -> Self {
        FoRadam {
            lr: r.lr,
            beta1: r.betas.0,
            beta2: r.betas.1,
            eps: r.eps,
            weight_decay: r.weight_decay,
            decoupled_weight_decay: int(r.decoupled_weight_decay),
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoRadam,
    RAdam,
    "RAdam",
    fo_radam_default,
    fo_radam_validate,
    fo_radam_state_len,
    fo_radam_init_state,
    fo_radam_step
);

/// Lion's hyperparameters (Chen et al. 2023).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoLion {
    /// Learning rate.
    pub lr: f64,
    /// β1 (interpolation for the update).
    pub beta1: f64,
    /// β2 (decay of the momentum).
    pub beta2: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl CConfig for FoLion {
    type Rust = Lion;
    fn to_rust(&self) -> Lion {
        Lion {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            weight_decay: self.weight_decay,
            maximize: flag(self.maximize),
        }
    }
    fn from_rust(r: &Lion) -> Self {
        FoLion {
            lr: r.lr,
            beta1: r.betas.0,
            beta2: r.betas.1,
            weight_decay: r.weight_decay,
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoLion,
    Lion,
    "Lion",
    fo_lion_default,
    fo_lion_validate,
    fo_lion_state_len,
    fo_lion_init_state,
    fo_lion_step
);

// ---------------------------------------------------------------------------------------------
// no_std glue

/// The kernels have no panic path (proved at link time by `embedded/`); this handler only
/// exists because a `no_std` library must name one. It aborts through the C library where
/// there is one, and halts otherwise.
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    #[cfg(not(target_os = "none"))]
    {
        unsafe extern "C" {
            fn abort() -> !;
        }
        // SAFETY: the C library's abort takes no arguments and never returns.
        unsafe { abort() }
    }
    #[cfg(target_os = "none")]
    #[allow(clippy::empty_loop)]
    loop {}
}

#[cfg(test)]
mod tests;
