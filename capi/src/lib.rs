//! C ABI for `fused-optim`: every optimizer's step on `float` pointers, with integer status
//! codes. The header is `include/fused_optim.h`.
//!
//! For each optimizer `X` (`sgd`, `adam`, `adagrad`, `adadelta`, `rmsprop`, `adamax`, `nadam`,
//! `radam`, `lion`, `rprop`, `asgd`):
//!
//! | function | does |
//! |---|---|
//! | `FoX fo_X_default(void)` | torch's defaults |
//! | `int fo_X_validate(const FoX *)` | torch's hyperparameter rules |
//! | `size_t fo_X_state_len(const FoX *, size_t n)` | state floats for `n` parameters |
//! | `int fo_X_init_state(const FoX *, float *state, size_t state_len)` | a fresh state |
//! | `int fo_X_step(const FoX *, uint64_t step, float *params, const float *grads, size_t n, float *state, size_t state_len)` | one step |
//!
//! | `int fo_X_init_state_ex(const FoX *, const FoState *state)` | a fresh state in any format |
//! | `int fo_X_step_ex(const FoX *, uint64_t step, const FoPiece *piece)` | one step on a piece of a tensor in any storage format |
//!
//! `X` is also `torchao_adam` (torchao's low-bit Adam/AdamW, [`FoTorchaoAdam`]). Storage formats
//! (bf16/f16 parameters and gradients, stochastic rounding, Kahan compensation, bf16/f16 and
//! block-quantized state) are `int32_t` codes: `FO_PARAM_*`, `FO_GRAD_*`, `FO_STATE_*`; bf16
//! and f16 values travel as `uint16_t` bit patterns. `fo_state_layout` gives the state buffer
//! sizes for a format, a plane count (`fo_X_state_len(opt, 1)`) and `n`.
//!
//! `sparse_adam` (`torch.optim.SparseAdam`, [`FoSparseAdam`]) has `default`, `validate`,
//! `state_len` and `init_state` as above, and a step over the rows of an embedding table that
//! a sparse gradient touches: `fo_sparse_adam_step`.
//!
//! NAdam's and ASGD's steps also take the scalar state (`mu_product`; `eta` and `mu`) before
//! the step and return it after. Rprop's fresh state is not zeros (its step sizes start at
//! `lr`): write it with `fo_rprop_init_state` / `fo_rprop_init_state_ex`. Boolean options are `int32_t`, nonzero meaning true. Every function checks its
//! pointers (NULL is accepted only with a zero length), rejects overlapping buffers, and returns
//! a status before writing anything: see the `FO_*` constants. No function unwinds or panics
//! (the library is built with `panic = "abort"`, and the kernels have no panic path).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

use core::ffi::{c_int, c_void};

use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Backend, Error, Grads, Lion, NAdam, NAdamScalars, Optimizer, Params, RAdam, RMSprop, Sgd, SparseAdam, SparseGrad, State, StateFormat, StepPlan, TorchaoAdam, bf16, f16, Asgd, AsgdScalars, Rprop,
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
/// A piece of a tensor with block-quantized state starts inside a block: `offset` must be a
/// multiple of the format's block (`FoStateLayout::block`).
pub const FO_ERR_MISALIGNED: c_int = -8;
/// A format code that is not one of the `FO_PARAM_*`, `FO_GRAD_*` or `FO_STATE_*` values
/// (or, for `FoTorchaoAdam::format`, not a state format).
pub const FO_ERR_FORMAT: c_int = -9;
/// A sparse gradient's row index is negative or past the last row, or the indices are not
/// strictly increasing (unsorted or repeated).
pub const FO_ERR_INDEX: c_int = -10;

/// Parameters stored as `float`.
pub const FO_PARAM_F32: i32 = 0;
/// bf16 parameters (`uint16_t` bits), rounded to nearest even.
pub const FO_PARAM_BF16: i32 = 1;
/// f16 parameters (`uint16_t` bits), rounded to nearest even.
pub const FO_PARAM_F16: i32 = 2;
/// bf16 parameters with stochastic rounding keyed by `FoPiece::seed`.
pub const FO_PARAM_BF16_SR: i32 = 3;
/// bf16 parameters with a bf16 Kahan compensation buffer (`FoPiece::compensation`).
pub const FO_PARAM_BF16_KAHAN: i32 = 4;
/// Gradients stored as `float`.
pub const FO_GRAD_F32: i32 = 0;
/// bf16 gradients (`uint16_t` bits).
pub const FO_GRAD_BF16: i32 = 1;
/// f16 gradients (`uint16_t` bits).
pub const FO_GRAD_F16: i32 = 2;
/// `float` state values.
pub const FO_STATE_F32: i32 = 0;
/// bf16 state values (`uint16_t` bits).
pub const FO_STATE_BF16: i32 = 1;
/// f16 state values (`uint16_t` bits).
pub const FO_STATE_F16: i32 = 2;
/// torchao's 8-bit codes, one `float` scale per 256 values.
pub const FO_STATE_INT8: i32 = 3;
/// torchao's 4-bit codes (two per byte), one `float` scale per 128 values.
pub const FO_STATE_INT4: i32 = 4;
/// float8 e4m3fn codes, one `float` scale per 256 values.
pub const FO_STATE_FP8: i32 = 5;

/// The state format of a `FO_STATE_*` code.
fn state_format(code: i32) -> Result<StateFormat, c_int> {
    Ok(match code {
        FO_STATE_F32 => StateFormat::F32,
        FO_STATE_BF16 => StateFormat::Bf16,
        FO_STATE_F16 => StateFormat::F16,
        FO_STATE_INT8 => StateFormat::Int8,
        FO_STATE_INT4 => StateFormat::Int4,
        FO_STATE_FP8 => StateFormat::Fp8,
        _ => return Err(FO_ERR_FORMAT),
    })
}

/// The `FO_STATE_*` code of a state format (`FO_ERR_FORMAT` for one this ABI does not know).
fn state_format_code(f: StateFormat) -> i32 {
    match f {
        StateFormat::F32 => FO_STATE_F32,
        StateFormat::Bf16 => FO_STATE_BF16,
        StateFormat::F16 => FO_STATE_F16,
        StateFormat::Int8 => FO_STATE_INT8,
        StateFormat::Int4 => FO_STATE_INT4,
        StateFormat::Fp8 => FO_STATE_FP8,
        _ => FO_ERR_FORMAT,
    }
}

/// The status code of a crate error.
fn status(e: Error) -> c_int {
    match e {
        Error::InvalidHyperparameter { .. } => FO_ERR_INVALID_HYPERPARAMETER,
        Error::InvalidCombination(_) => FO_ERR_INVALID_COMBINATION,
        Error::InvalidStep(_) => FO_ERR_INVALID_STEP,
        Error::LengthMismatch { .. } => FO_ERR_LENGTH,
        Error::Misaligned { .. } => FO_ERR_MISALIGNED,
        Error::IndexOutOfRange { .. } | Error::IndicesNotSorted { .. } => FO_ERR_INDEX,
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
        FO_ERR_MISALIGNED => c"piece not aligned to the state's blocks",
        FO_ERR_FORMAT => c"unknown storage format",
        FO_ERR_INDEX => c"row index out of range, or indices not sorted and unique",
        _ => c"unknown status",
    };
    s.as_ptr()
}

// ---------------------------------------------------------------------------------------------
// Buffers

/// The byte range of `len` elements at `ptr` (empty when `len` is 0).
fn range<T>(ptr: *const T, len: usize) -> (usize, usize) {
    let start = ptr as usize;
    (
        start,
        start.saturating_add(len.saturating_mul(size_of::<T>())),
    )
}

/// Whether two non-empty byte ranges share a byte.
fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < a.1 && b.0 < b.1 && a.0 < b.1 && b.0 < a.1
}

/// Checks a buffer pointer: NULL only with length 0, aligned, and a length the address space
/// can hold.
fn check<T>(ptr: *const T, len: usize) -> Result<(), c_int> {
    if len == 0 {
        return Ok(());
    }
    if len > isize::MAX as usize / size_of::<T>() {
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
/// `check(ptr, len)` passed, `ptr` points to `len` elements the caller may write (every bit
/// pattern of `T` is a valid value: `T` is `f32`, `u8`, or a 16-bit float), and nothing else
/// refers to them for `'a`.
unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize) -> &'a mut [T] {
    if len == 0 {
        return &mut [];
    }
    // SAFETY: non-NULL, aligned, `len` valid elements, not aliased (the caller's contract and
    // the overlap check).
    unsafe { core::slice::from_raw_parts_mut(ptr, len) }
}

/// A shared slice over a checked buffer.
///
/// # Safety
/// `check(ptr, len)` passed and `ptr` points to `len` elements (of a type valid for every bit
/// pattern) that nothing writes for `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        return &[];
    }
    // SAFETY: non-NULL, aligned, `len` valid elements, not written meanwhile.
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
    unsafe { &*opt }.to_rust()
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
    scalars_out: (usize, usize),
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
    if any_overlap(&[p, g, s, scalars_out]) {
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
    // SAFETY: checked above. Invalid hyperparameters (Adagrad's initial value -1 or NaN)
    // are an error with nothing written.
    match opt.init_state(unsafe { slice_mut(state, state_len) }) {
        Ok(()) => FO_OK,
        Err(e) => status(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Storage formats

/// The buffer sizes of one tensor's state in one format (`fo_state_layout`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FoStateLayout {
    /// Elements of `FoState::values` (`float` or `uint16_t`), for the element formats.
    pub values: usize,
    /// Bytes of `FoState::codes`, for the block formats.
    pub codes: usize,
    /// `float` elements of `FoState::scales`, for the block formats.
    pub scales: usize,
    /// Values per block (1 for the element formats): a piece's `offset` must be a multiple.
    pub block: usize,
}

/// The buffer sizes for `planes` state planes of `n` values in `FO_STATE_*` format
/// `state_format` (an optimizer's plane count is `fo_X_state_len(opt, 1)`). Planes are stored
/// one after another in each buffer.
///
/// Returns `FO_OK`, `FO_ERR_FORMAT`, or `FO_ERR_POINTER` when `layout` is NULL or misaligned;
/// nothing is written on error.
///
/// # Safety
/// `layout` is NULL or points to a writable `FoStateLayout`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fo_state_layout(
    state_format: i32,
    planes: usize,
    n: usize,
    layout: *mut FoStateLayout,
) -> c_int {
    if layout.is_null() || !layout.is_aligned() {
        return FO_ERR_POINTER;
    }
    let f = match self::state_format(state_format) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let l = f.layout(planes, n);
    // SAFETY: non-NULL, aligned, writable by the caller's contract.
    unsafe {
        *layout = FoStateLayout {
            values: l.values,
            codes: l.codes,
            scales: l.scales,
            block: f.block(),
        }
    };
    FO_OK
}

/// One tensor's optimizer state in any format: the buffers a format does not use must have
/// length 0 (their pointers are then ignored).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoState {
    /// `FO_STATE_F32`: `float`; `FO_STATE_BF16`, `FO_STATE_F16`: `uint16_t` bits.
    pub values: *mut c_void,
    /// Elements of `values`.
    pub values_len: usize,
    /// Block formats: the codes.
    pub codes: *mut u8,
    /// Bytes of `codes`.
    pub codes_len: usize,
    /// Block formats: one scale per block.
    pub scales: *mut f32,
    /// Elements of `scales`.
    pub scales_len: usize,
    /// A `FO_STATE_*` code.
    pub format: i32,
}

/// One piece of one tensor in any storage format: `n` parameters starting at element `offset`
/// of the whole tensor, their gradients and their state.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoPiece {
    /// `FO_PARAM_BF16_SR`: keys the random stream (keep it across steps); otherwise ignored.
    pub seed: u64,
    /// `n` parameters: `float` for `FO_PARAM_F32`, `uint16_t` bits otherwise.
    pub params: *mut c_void,
    /// `FO_PARAM_BF16_KAHAN`: `n` bf16 compensation values (zeros to start); otherwise ignored.
    pub compensation: *mut u16,
    /// `n` gradients: `float` for `FO_GRAD_F32`, `uint16_t` bits otherwise.
    pub grads: *const c_void,
    /// Parameters in this piece.
    pub n: usize,
    /// The piece's first element within the whole tensor (a multiple of the state's block;
    /// the element index of stochastic rounding's random stream). 0 for a whole tensor.
    pub offset: usize,
    /// The piece's state (`fo_state_layout` of the piece's `n`).
    pub state: FoState,
    /// A `FO_PARAM_*` code.
    pub param_format: i32,
    /// A `FO_GRAD_*` code.
    pub grad_format: i32,
}

/// A state checked by [`check_state`]: its format and byte ranges.
struct CheckedState {
    format: StateFormat,
    ranges: [(usize, usize); 3],
}

/// Checks a state's format code, pointers and unused lengths.
fn check_state(s: &FoState) -> Result<CheckedState, c_int> {
    let format = state_format(s.format)?;
    let values = match format {
        StateFormat::F32 => {
            check(s.values as *const f32, s.values_len)?;
            range(s.values as *const f32, s.values_len)
        }
        StateFormat::Bf16 | StateFormat::F16 => {
            check(s.values as *const u16, s.values_len)?;
            range(s.values as *const u16, s.values_len)
        }
        _ if s.values_len != 0 => return Err(FO_ERR_LENGTH),
        _ => (0, 0),
    };
    let (codes, scales) = if format.block() > 1 {
        check(s.codes, s.codes_len)?;
        check(s.scales, s.scales_len)?;
        (range(s.codes, s.codes_len), range(s.scales, s.scales_len))
    } else if s.codes_len != 0 || s.scales_len != 0 {
        return Err(FO_ERR_LENGTH);
    } else {
        ((0, 0), (0, 0))
    };
    Ok(CheckedState {
        format,
        ranges: [values, codes, scales],
    })
}

/// The state's slices.
///
/// # Safety
/// `check_state(s)` gave `format`; the buffers are valid, writable and not aliased for `'a`.
unsafe fn state_of<'a>(s: &FoState, format: StateFormat) -> State<'a> {
    // SAFETY: every arm's buffers were checked by `check_state` (NULL only when empty,
    // aligned, a length the address space holds); the caller vouches for the memory.
    unsafe {
        match format {
            StateFormat::F32 => State::F32(slice_mut(s.values.cast::<f32>(), s.values_len)),
            StateFormat::Bf16 => State::Bf16(slice_mut(s.values.cast::<bf16>(), s.values_len)),
            StateFormat::F16 => State::F16(slice_mut(s.values.cast::<f16>(), s.values_len)),
            StateFormat::Int8 => State::Int8 {
                codes: slice_mut(s.codes, s.codes_len),
                scales: slice_mut(s.scales, s.scales_len),
            },
            StateFormat::Int4 => State::Int4 {
                codes: slice_mut(s.codes, s.codes_len),
                scales: slice_mut(s.scales, s.scales_len),
            },
            _ => State::Fp8 {
                codes: slice_mut(s.codes, s.codes_len),
                scales: slice_mut(s.scales, s.scales_len),
            },
        }
    }
}

/// Whether any two of the byte ranges share a byte.
fn any_overlap(ranges: &[(usize, usize)]) -> bool {
    ranges.iter().enumerate().any(|(i, a)| {
        ranges
            .get(i + 1..)
            .unwrap_or_default()
            .iter()
            .any(|b| overlap(*a, *b))
    })
}

/// The shared body of every `step_ex` function.
///
/// # Safety
/// `piece` is NULL or points to a valid `FoPiece` whose buffers satisfy the header's contract.
unsafe fn step_ex_impl<O: Optimizer>(
    opt: O,
    step: u64,
    scalars: &O::Scalars,
    scalars_out: (usize, usize),
    piece: *const FoPiece,
) -> Result<O::Scalars, c_int> {
    if piece.is_null() || !piece.is_aligned() {
        return Err(FO_ERR_POINTER);
    }
    // SAFETY: non-NULL and aligned; the caller vouches that it points to a valid `FoPiece`
    // (integers and raw pointers: every bit pattern is a valid value).
    let d = unsafe { *piece };
    let n = d.n;
    let wide_params = match d.param_format {
        FO_PARAM_F32 => true,
        FO_PARAM_BF16 | FO_PARAM_F16 | FO_PARAM_BF16_SR | FO_PARAM_BF16_KAHAN => false,
        _ => return Err(FO_ERR_FORMAT),
    };
    let wide_grads = match d.grad_format {
        FO_GRAD_F32 => true,
        FO_GRAD_BF16 | FO_GRAD_F16 => false,
        _ => return Err(FO_ERR_FORMAT),
    };
    let state = check_state(&d.state)?;
    let p = if wide_params {
        check(d.params as *const f32, n)?;
        range(d.params as *const f32, n)
    } else {
        check(d.params as *const u16, n)?;
        range(d.params as *const u16, n)
    };
    let c = if d.param_format == FO_PARAM_BF16_KAHAN {
        check(d.compensation, n)?;
        range(d.compensation, n)
    } else {
        (0, 0)
    };
    let g = if wide_grads {
        check(d.grads as *const f32, n)?;
        range(d.grads as *const f32, n)
    } else {
        check(d.grads as *const u16, n)?;
        range(d.grads as *const u16, n)
    };
    let [v, k, s] = state.ranges;
    if any_overlap(&[p, c, g, v, k, s, scalars_out]) {
        return Err(FO_ERR_OVERLAP);
    }
    // SAFETY: every buffer checked above (NULL only when empty, aligned, a length the address
    // space holds), distinct by the overlap check, valid and writable by the caller's contract.
    let (params, grads, state) = unsafe {
        let params = match d.param_format {
            FO_PARAM_F32 => Params::F32(slice_mut(d.params.cast::<f32>(), n)),
            FO_PARAM_BF16 => Params::Bf16(slice_mut(d.params.cast::<bf16>(), n)),
            FO_PARAM_F16 => Params::F16(slice_mut(d.params.cast::<f16>(), n)),
            FO_PARAM_BF16_SR => Params::Bf16Stochastic {
                params: slice_mut(d.params.cast::<bf16>(), n),
                seed: d.seed,
            },
            _ => Params::Bf16Kahan {
                params: slice_mut(d.params.cast::<bf16>(), n),
                compensation: slice_mut(d.compensation.cast::<bf16>(), n),
            },
        };
        let grads = match d.grad_format {
            FO_GRAD_F32 => Grads::F32(slice(d.grads.cast::<f32>(), n)),
            FO_GRAD_BF16 => Grads::Bf16(slice(d.grads.cast::<bf16>(), n)),
            _ => Grads::F16(slice(d.grads.cast::<f16>(), n)),
        };
        (params, grads, state_of(&d.state, state.format))
    };
    let plan = opt.plan(step, scalars).map_err(status)?;
    plan.apply_piece(Backend::best(), d.offset, params, grads, state)
        .map_err(status)?;
    Ok(plan.scalars_after())
}

/// The shared body of every `init_state_ex` function.
///
/// # Safety
/// `state` is NULL or points to a valid `FoState` whose buffers are writable.
unsafe fn init_ex_impl<O: Optimizer>(opt: O, state: *const FoState) -> c_int {
    if state.is_null() || !state.is_aligned() {
        return FO_ERR_POINTER;
    }
    // SAFETY: non-NULL and aligned; valid by the caller's contract (integers and raw
    // pointers).
    let s = unsafe { *state };
    let checked = match check_state(&s) {
        Ok(c) => c,
        Err(e) => return e,
    };
    if any_overlap(&checked.ranges) {
        return FO_ERR_OVERLAP;
    }
    // SAFETY: checked above, distinct, writable by the caller's contract.
    match opt.init_state_in(unsafe { state_of(&s, checked.format) }) {
        Ok(()) => FO_OK,
        Err(e) => status(e),
    }
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
    /// The optimizer (`FO_ERR_FORMAT` for a field that names no format).
    fn to_rust(&self) -> Result<Self::Rust, c_int>;
    fn from_rust(r: &Self::Rust) -> Self;
}

/// Generates `validate`, `state_len`, `init_state`, `init_state_ex` (and, for optimizers
/// without scalar state, `step` and `step_ex`) for one hyperparameter struct, and `default`
/// unless the optimizer has several (TorchaoAdam).
macro_rules! c_functions {
    (@rest $c:ty, $name:literal, $validate:ident, $state_len:ident, $init:ident, $init_ex:ident $(, $step:ident, $step_ex:ident)?) => {
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

        #[doc = concat!("Writes a fresh ", $name, " state in any format (zeroed buffers already are one, except for an Adagrad with a nonzero `initial_accumulator_value` and for Rprop, whose step sizes start at `lr`).")]
        ///
        /// Returns `FO_OK`, or an error status with nothing written.
        ///
        /// # Safety
        /// `opt` and `state` point to valid structs; the state's buffers are writable.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $init_ex(opt: *const $c, state: *const FoState) -> c_int {
            // SAFETY: the caller's contract.
            match unsafe { read(opt) } {
                // SAFETY: the caller's contract.
                Ok(o) => unsafe { init_ex_impl(o, state) },
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
                unsafe { step_impl(o, step, &(), (0, 0), params, grads, n, state, state_len) }
            });
            code(r.map(|()| ()))
        }

        #[doc = concat!("One ", $name, " step (number `step`, from 1) on one piece of a tensor in any storage format (see `FoPiece`), on the best backend.")]
        ///
        /// Returns `FO_OK`, or an error status with nothing written.
        ///
        /// # Safety
        /// `opt` and `piece` point to valid structs; each buffer of the piece is NULL only
        /// when its length is 0 and otherwise holds that many elements (parameters,
        /// compensation and state writable); no other thread accesses them during the call.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $step_ex(opt: *const $c, step: u64, piece: *const FoPiece) -> c_int {
            // SAFETY: the caller's contract.
            let r = unsafe { read(opt) }.and_then(|o| {
                // SAFETY: the caller's contract.
                unsafe { step_ex_impl(o, step, &(), (0, 0), piece) }
            });
            code(r.map(|()| ()))
        }
        )?
    };
    ($c:ty, $rust:ty, $name:literal, $default:ident, $($rest:tt)*) => {
        #[doc = concat!("torch's default hyperparameters for ", $name, ".")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $default() -> $c {
            <$c>::from_rust(&<$rust>::default())
        }

        c_functions!(@rest $c, $name, $($rest)*);
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
    fn to_rust(&self) -> Result<Sgd, c_int> {
        Ok(Sgd {
            lr: self.lr,
            momentum: self.momentum,
            dampening: self.dampening,
            weight_decay: self.weight_decay,
            nesterov: flag(self.nesterov),
            maximize: flag(self.maximize),
        })
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
    fo_sgd_init_state_ex,
    fo_sgd_step,
    fo_sgd_step_ex
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
    fn to_rust(&self) -> Result<Adam, c_int> {
        Ok(Adam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            amsgrad: flag(self.amsgrad),
            maximize: flag(self.maximize),
            decoupled_weight_decay: flag(self.decoupled_weight_decay),
        })
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
    fo_adam_init_state_ex,
    fo_adam_step,
    fo_adam_step_ex
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
    fn to_rust(&self) -> Result<Adagrad, c_int> {
        Ok(Adagrad {
            lr: self.lr,
            lr_decay: self.lr_decay,
            weight_decay: self.weight_decay,
            initial_accumulator_value: self.initial_accumulator_value,
            eps: self.eps,
            maximize: flag(self.maximize),
        })
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
    fo_adagrad_init_state_ex,
    fo_adagrad_step,
    fo_adagrad_step_ex
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
    fn to_rust(&self) -> Result<Adadelta, c_int> {
        Ok(Adadelta {
            lr: self.lr,
            rho: self.rho,
            eps: self.eps,
            weight_decay: self.weight_decay,
            maximize: flag(self.maximize),
        })
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
    fo_adadelta_init_state_ex,
    fo_adadelta_step,
    fo_adadelta_step_ex
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
    fn to_rust(&self) -> Result<RMSprop, c_int> {
        Ok(RMSprop {
            lr: self.lr,
            alpha: self.alpha,
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            centered: flag(self.centered),
            maximize: flag(self.maximize),
        })
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
    fo_rmsprop_init_state_ex,
    fo_rmsprop_step,
    fo_rmsprop_step_ex
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
    fn to_rust(&self) -> Result<Adamax, c_int> {
        Ok(Adamax {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            maximize: flag(self.maximize),
        })
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
    fo_adamax_init_state_ex,
    fo_adamax_step,
    fo_adamax_step_ex
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
    fn to_rust(&self) -> Result<NAdam, c_int> {
        Ok(NAdam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum_decay: self.momentum_decay,
            decoupled_weight_decay: flag(self.decoupled_weight_decay),
            maximize: flag(self.maximize),
        })
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
    fo_nadam_init_state,
    fo_nadam_init_state_ex
);

/// NAdam's scalar state before the first step (`mu_product = 1`).
#[unsafe(no_mangle)]
pub extern "C" fn fo_nadam_scalars_default() -> FoNadamScalars {
    FoNadamScalars {
        mu_product: NAdamScalars::default().mu_product,
    }
}

/// Reads NAdam's scalar state before the step, runs `f`, and writes the state after it to
/// `scalars_after` (when not NULL) on success.
///
/// # Safety
/// `scalars` is NULL or points to a valid struct, `scalars_after` is NULL or writable.
unsafe fn with_nadam_scalars(
    scalars: *const FoNadamScalars,
    scalars_after: *mut FoNadamScalars,
    f: impl FnOnce(&NAdamScalars, (usize, usize)) -> Result<NAdamScalars, c_int>,
) -> c_int {
    if scalars.is_null() || !scalars.is_aligned() {
        return FO_ERR_POINTER;
    }
    if !scalars_after.is_null() && !scalars_after.is_aligned() {
        return FO_ERR_POINTER;
    }
    // SAFETY: non-NULL, aligned, valid by the caller's contract.
    let mu_product = unsafe { *scalars }.mu_product;
    let before = NAdamScalars { mu_product };
    // Written after the step: it must not overlap any buffer the step reads or writes.
    let out = range(
        scalars_after.cast_const(),
        usize::from(!scalars_after.is_null()),
    );
    match f(&before, out) {
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
    // SAFETY: the caller's contract.
    unsafe {
        with_nadam_scalars(scalars, scalars_after, |before, out| {
            read(opt)
                .and_then(|o| step_impl(o, step, before, out, params, grads, n, state, state_len))
        })
    }
}

/// One NAdam step on one piece of a tensor in any storage format (see `FoPiece`), with the
/// scalar state as in `fo_nadam_step`.
///
/// Returns `FO_OK`, or an error status with nothing written.
///
/// # Safety
/// As `fo_adam_step_ex`; `scalars` points to a valid struct, `scalars_after` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fo_nadam_step_ex(
    opt: *const FoNadam,
    step: u64,
    scalars: *const FoNadamScalars,
    scalars_after: *mut FoNadamScalars,
    piece: *const FoPiece,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        with_nadam_scalars(scalars, scalars_after, |before, out| {
            read(opt).and_then(|o| step_ex_impl(o, step, before, out, piece))
        })
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
    fn to_rust(&self) -> Result<RAdam, c_int> {
        Ok(RAdam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            decoupled_weight_decay: flag(self.decoupled_weight_decay),
            maximize: flag(self.maximize),
        })
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
    fo_radam_init_state_ex,
    fo_radam_step,
    fo_radam_step_ex
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
    fn to_rust(&self) -> Result<Lion, c_int> {
        Ok(Lion {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            weight_decay: self.weight_decay,
            maximize: flag(self.maximize),
        })
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
    fo_lion_init_state_ex,
    fo_lion_step,
    fo_lion_step_ex
);

/// `torch.optim.Rprop`'s hyperparameters. The state is `prev` then `step_size` (2 planes);
/// a fresh one has `step_size = lr` (`fo_rprop_init_state`), not zeros.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoRprop {
    /// Learning rate: the initial step size.
    pub lr: f64,
    /// η−, the factor that shrinks a step size (in (0, 1)).
    pub eta_minus: f64,
    /// η+, the factor that grows a step size (> 1).
    pub eta_plus: f64,
    /// The smallest step size.
    pub step_size_min: f64,
    /// The largest step size.
    pub step_size_max: f64,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl CConfig for FoRprop {
    type Rust = Rprop;
    fn to_rust(&self) -> Result<Rprop, c_int> {
        Ok(Rprop {
            lr: self.lr,
            etas: (self.eta_minus, self.eta_plus),
            step_sizes: (self.step_size_min, self.step_size_max),
            maximize: flag(self.maximize),
        })
    }
    fn from_rust(r: &Rprop) -> Self {
        FoRprop {
            lr: r.lr,
            eta_minus: r.etas.0,
            eta_plus: r.etas.1,
            step_size_min: r.step_sizes.0,
            step_size_max: r.step_sizes.1,
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoRprop,
    Rprop,
    "Rprop",
    fo_rprop_default,
    fo_rprop_validate,
    fo_rprop_state_len,
    fo_rprop_init_state,
    fo_rprop_init_state_ex,
    fo_rprop_step,
    fo_rprop_step_ex
);

/// `torch.optim.ASGD`'s hyperparameters. The state is `ax` (1 plane; zeros are a fresh state).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoAsgd {
    /// Learning rate.
    pub lr: f64,
    /// Decay term λ.
    pub lambd: f64,
    /// Power α of the η schedule.
    pub alpha: f64,
    /// The step after which averaging starts.
    pub t0: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

/// ASGD's scalar state, shared by every tensor at the same step.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoAsgdScalars {
    /// The step size η the next step uses (not read by step 1).
    pub eta: f32,
    /// The averaging weight μ the next step uses (not read by step 1).
    pub mu: f32,
}

impl CConfig for FoAsgd {
    type Rust = Asgd;
    fn to_rust(&self) -> Result<Asgd, c_int> {
        Ok(Asgd {
            lr: self.lr,
            lambd: self.lambd,
            alpha: self.alpha,
            t0: self.t0,
            weight_decay: self.weight_decay,
            maximize: flag(self.maximize),
        })
    }
    fn from_rust(r: &Asgd) -> Self {
        FoAsgd {
            lr: r.lr,
            lambd: r.lambd,
            alpha: r.alpha,
            t0: r.t0,
            weight_decay: r.weight_decay,
            maximize: int(r.maximize),
        }
    }
}
c_functions!(
    FoAsgd,
    Asgd,
    "ASGD",
    fo_asgd_default,
    fo_asgd_validate,
    fo_asgd_state_len,
    fo_asgd_init_state,
    fo_asgd_init_state_ex
);

/// ASGD's scalar state before the first step (torch's fresh state for the default `lr`;
/// step 1 does not read it).
#[unsafe(no_mangle)]
pub extern "C" fn fo_asgd_scalars_default() -> FoAsgdScalars {
    let d = AsgdScalars::default();
    FoAsgdScalars {
        eta: d.eta,
        mu: d.mu,
    }
}

/// Reads ASGD's scalar state before the step, runs `f`, and writes the state after it to
/// `scalars_after` (when not NULL) on success.
///
/// # Safety
/// `scalars` is NULL or points to a valid struct, `scalars_after` is NULL or writable.
unsafe fn with_asgd_scalars(
    scalars: *const FoAsgdScalars,
    scalars_after: *mut FoAsgdScalars,
    f: impl FnOnce(&AsgdScalars, (usize, usize)) -> Result<AsgdScalars, c_int>,
) -> c_int {
    if scalars.is_null() || !scalars.is_aligned() {
        return FO_ERR_POINTER;
    }
    if !scalars_after.is_null() && !scalars_after.is_aligned() {
        return FO_ERR_POINTER;
    }
    // SAFETY: non-NULL, aligned, valid by the caller's contract.
    let FoAsgdScalars { eta, mu } = unsafe { *scalars };
    let before = AsgdScalars { eta, mu };
    // Written after the step: it must not overlap any buffer the step reads or writes.
    let out = range(
        scalars_after.cast_const(),
        usize::from(!scalars_after.is_null()),
    );
    match f(&before, out) {
        Ok(after) => {
            if !scalars_after.is_null() {
                // SAFETY: non-NULL, aligned, writable by the caller's contract.
                unsafe {
                    *scalars_after = FoAsgdScalars {
                        eta: after.eta,
                        mu: after.mu,
                    }
                };
            }
            FO_OK
        }
        Err(e) => e,
    }
}

/// One ASGD step on one tensor. `scalars` is the scalar state before step `step` (the same
/// for every tensor of that step; not read at step 1); on success `scalars_after` (may be
/// NULL) receives the state for the next step.
///
/// Returns `FO_OK`, or an error status with nothing written.
///
/// # Safety
/// As `fo_adam_step`; `scalars` points to a valid struct, `scalars_after` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn fo_asgd_step(
    opt: *const FoAsgd,
    step: u64,
    scalars: *const FoAsgdScalars,
    scalars_after: *mut FoAsgdScalars,
    params: *mut f32,
    grads: *const f32,
    n: usize,
    state: *mut f32,
    state_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        with_asgd_scalars(scalars, scalars_after, |before, out| {
            read(opt)
                .and_then(|o| step_impl(o, step, before, out, params, grads, n, state, state_len))
        })
    }
}

/// One ASGD step on one piece of a tensor in any storage format (see `FoPiece`), with the
/// scalar state as in `fo_asgd_step`.
///
/// Returns `FO_OK`, or an error status with nothing written.
///
/// # Safety
/// As `fo_adam_step_ex`; `scalars` points to a valid struct, `scalars_after` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fo_asgd_step_ex(
    opt: *const FoAsgd,
    step: u64,
    scalars: *const FoAsgdScalars,
    scalars_after: *mut FoAsgdScalars,
    piece: *const FoPiece,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe {
        with_asgd_scalars(scalars, scalars_after, |before, out| {
            read(opt).and_then(|o| step_ex_impl(o, step, before, out, piece))
        })
    }
}

/// torchao's low-bit Adam / AdamW hyperparameters (`torchao.optim.AdamW8bit` and its siblings,
/// version 0.18): its formula, with f32 scalars. Start from one of the `fo_torchao_*_default`
/// functions. The state has 2 planes (`exp_avg`, `exp_avg_sq`), 3 with `amsgrad`, in any
/// format; `fo_torchao_adam_state_format_for` gives the one torchao itself uses.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoTorchaoAdam {
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
    /// AMSGrad (nonzero: true; 3 state planes).
    pub amsgrad: i32,
    /// Decoupled weight decay, the `AdamW*` classes (nonzero: true).
    pub is_adamw: i32,
    /// The class's block format: `FO_STATE_INT8`, `FO_STATE_INT4` or `FO_STATE_FP8`.
    pub format: i32,
}

impl CConfig for FoTorchaoAdam {
    type Rust = TorchaoAdam;
    fn to_rust(&self) -> Result<TorchaoAdam, c_int> {
        Ok(TorchaoAdam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            weight_decay: self.weight_decay,
            amsgrad: flag(self.amsgrad),
            is_adamw: flag(self.is_adamw),
            format: state_format(self.format)?,
        })
    }
    fn from_rust(r: &TorchaoAdam) -> Self {
        FoTorchaoAdam {
            lr: r.lr,
            beta1: r.betas.0,
            beta2: r.betas.1,
            eps: r.eps,
            weight_decay: r.weight_decay,
            amsgrad: int(r.amsgrad),
            is_adamw: int(r.is_adamw),
            format: state_format_code(r.format),
        }
    }
}
c_functions!(
    @rest FoTorchaoAdam,
    "torchao's low-bit Adam",
    fo_torchao_adam_validate,
    fo_torchao_adam_state_len,
    fo_torchao_adam_init_state,
    fo_torchao_adam_init_state_ex,
    fo_torchao_adam_step,
    fo_torchao_adam_step_ex
);

/// Defines one `fo_torchao_*_default` function.
macro_rules! torchao_default {
    ($name:ident, $ctor:ident, $class:literal) => {
        #[doc = concat!("`torchao.optim.", $class, "`'s defaults.")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name() -> FoTorchaoAdam {
            FoTorchaoAdam::from_rust(&TorchaoAdam::$ctor())
        }
    };
}
torchao_default!(fo_torchao_adamw8bit_default, adamw8bit, "AdamW8bit");
torchao_default!(fo_torchao_adam8bit_default, adam8bit, "Adam8bit");
torchao_default!(fo_torchao_adamw4bit_default, adamw4bit, "AdamW4bit");
torchao_default!(fo_torchao_adam4bit_default, adam4bit, "Adam4bit");
torchao_default!(fo_torchao_adamw_fp8_default, adamw_fp8, "AdamWFp8");
torchao_default!(fo_torchao_adam_fp8_default, adam_fp8, "AdamFp8");

/// The state format torchao uses for a tensor of `n` values whose parameters are stored in
/// `param_state_format` (`FO_STATE_F32`, `FO_STATE_BF16` or `FO_STATE_F16`): `opt->format` when
/// `n >= 4096` and `n` fills whole blocks, otherwise `param_state_format`.
///
/// Returns the `FO_STATE_*` code, or a negative status (`FO_ERR_POINTER`, `FO_ERR_FORMAT`).
///
/// # Safety
/// `opt` is NULL or points to a valid struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fo_torchao_adam_state_format_for(
    opt: *const FoTorchaoAdam,
    n: usize,
    param_state_format: i32,
) -> i32 {
    // SAFETY: the caller's contract.
    let r = unsafe { read(opt) }.and_then(|o| {
        let small = state_format(param_state_format)?;
        Ok(state_format_code(o.state_format_for(n, small)))
    });
    r.unwrap_or_else(|e| e)
}

// ---------------------------------------------------------------------------------------------
// SparseAdam

/// `torch.optim.SparseAdam`'s hyperparameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FoSparseAdam {
    /// Learning rate (> 0).
    pub lr: f64,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// Added to √v (> 0).
    pub eps: f64,
    /// Maximize (nonzero: true).
    pub maximize: i32,
}

impl FoSparseAdam {
    fn to_rust(self) -> SparseAdam {
        SparseAdam {
            lr: self.lr,
            betas: (self.beta1, self.beta2),
            eps: self.eps,
            maximize: flag(self.maximize),
        }
    }
}

/// Reads SparseAdam's hyperparameters behind `opt`.
///
/// # Safety
/// `opt` is NULL or points to a valid `FoSparseAdam`.
unsafe fn read_sparse_adam(opt: *const FoSparseAdam) -> Result<SparseAdam, c_int> {
    if opt.is_null() || !opt.is_aligned() {
        return Err(FO_ERR_POINTER);
    }
    // SAFETY: non-NULL and aligned; the caller vouches that it points to a valid struct (every
    // bit pattern of its fields is a valid value).
    Ok(unsafe { *opt }.to_rust())
}

/// torch's default hyperparameters for SparseAdam.
#[unsafe(no_mangle)]
pub extern "C" fn fo_sparse_adam_default() -> FoSparseAdam {
    let d = SparseAdam::default();
    FoSparseAdam {
        lr: d.lr,
        beta1: d.betas.0,
        beta2: d.betas.1,
        eps: d.eps,
        maximize: int(d.maximize),
    }
}

/// Checks SparseAdam's hyperparameters: `FO_OK` or the first error.
///
/// # Safety
/// `opt` is NULL (`FO_ERR_POINTER`) or points to a valid struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fo_sparse_adam_validate(opt: *const FoSparseAdam) -> c_int {
    // SAFETY: the caller's contract.
    code(unsafe { read_sparse_adam(opt) }.and_then(|o| o.validate().map_err(status)))
}

/// State floats SparseAdam needs for a table of `n` values (`2·n`; 0 when `opt` is NULL).
///
/// # Safety
/// `opt` is NULL or points to a valid struct.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fo_sparse_adam_state_len(opt: *const FoSparseAdam, n: usize) -> usize {
    // SAFETY: the caller's contract.
    match unsafe { read_sparse_adam(opt) } {
        Ok(o) => o.state_len(n),
        Err(_) => 0,
    }
}

/// Writes a fresh SparseAdam state (zeros) after checking the hyperparameters.
///
/// # Safety
/// `opt` points to a valid struct; `state` is NULL with `state_len` 0 or points to
/// `state_len` writable floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn fo_sparse_adam_init_state(
    opt: *const FoSparseAdam,
    state: *mut f32,
    state_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let r = unsafe { read_sparse_adam(opt) }.and_then(|o| {
        o.validate().map_err(status)?;
        check(state, state_len)?;
        // SAFETY: checked above; the caller vouches for the memory.
        unsafe { slice_mut(state, state_len) }.fill(0.0);
        Ok(())
    });
    code(r)
}

/// One SparseAdam step (number `step`, from 1) on the rows of a `[n / dim, dim]` table that a
/// sparse gradient touches, on the best backend. `indices` holds `n_indices` row numbers,
/// strictly increasing (torch's coalesced gradient); `values` holds their `n_indices·dim`
/// gradient values, row-major; `state` holds `exp_avg` then `exp_avg_sq` (`2·n` floats).
///
/// Returns `FO_OK`, or an error status with nothing written: `FO_ERR_INVALID_COMBINATION` for
/// `dim == 0`, `FO_ERR_LENGTH` unless `n` is a multiple of `dim` and `state_len == 2·n`,
/// `FO_ERR_INDEX` for an index that is negative, not below `n / dim`, or not greater than the
/// one before it.
///
/// # Safety
/// `opt` points to a valid struct; `params` points to `n` writable floats, `indices` to
/// `n_indices` values, `values` to `n_indices·dim` floats and `state` to `state_len` writable
/// floats (each may be NULL when its length is 0); no other thread accesses them during the
/// call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn fo_sparse_adam_step(
    opt: *const FoSparseAdam,
    step: u64,
    params: *mut f32,
    n: usize,
    dim: usize,
    indices: *const i64,
    n_indices: usize,
    values: *const f32,
    state: *mut f32,
    state_len: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    let r = unsafe { read_sparse_adam(opt) }.and_then(|o| {
        let n_values = n_indices.checked_mul(dim).ok_or(FO_ERR_LENGTH)?;
        check(params, n)?;
        check(indices, n_indices)?;
        check(values, n_values)?;
        check(state, state_len)?;
        let ranges = [
            range(params, n),
            range(indices, n_indices),
            range(values, n_values),
            range(state, state_len),
        ];
        if any_overlap(&ranges) {
            return Err(FO_ERR_OVERLAP);
        }
        let plan = o.plan(step).map_err(status)?;
        // SAFETY: checked above; distinct buffers, by the overlap check.
        let (p, i, v, s) = unsafe {
            (
                slice_mut(params, n),
                slice(indices, n_indices),
                slice(values, n_values),
                slice_mut(state, state_len),
            )
        };
        plan.apply(p, SparseGrad::new(dim, i, v), s).map_err(status)
    });
    code(r)
}

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
