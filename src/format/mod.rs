//! Storage formats: bf16 and f16 parameters and gradients, bf16/f16 state, torchao's
//! block-quantized state (8-bit and 4-bit codes, float8), stochastic rounding and Kahan
//! compensation.
//!
//! Formats are load/store paths around the same kernel bodies. The driver below cuts a tensor
//! into tiles of 256 values, widens each operand of the tile to `f32` (dequantizing whole blocks),
//! runs the optimizer's ordinary `f32` kernel on the tile, and narrows the results back:
//! parameters rounded once per store (to nearest even, stochastically, or with a Kahan
//! compensation), state rounded or re-quantized block by block. Tiles start at multiples of 256
//! from the piece's start, and a piece of a block-quantized tensor must start at a block
//! boundary, so every block is quantized whole and the bits never depend on the split.

mod codes;
pub(crate) mod convert;
mod philox;
mod split;
mod tables;

use core::ops::Range;

pub use half::{bf16, f16};
pub use split::{Pieces, StatePlanes, TensorStep};

use crate::dispatch::{LaneJob, with_backend};
use crate::kernel::{Elem, Kernel, drive, drive_with};
use crate::lane::Lane;
use crate::{Backend, Error};
pub(crate) use codes::BytePlanes;
use codes::{
    INT4_SIGNED_MAP, INT4_UNSIGNED_MAP, INT8_SIGNED_BYTES, INT8_SIGNED_MAP, INT8_UNSIGNED_BYTES,
    INT8_UNSIGNED_MAP, code4, code8, e4m3_to_f32, f32_to_e4m3, quantize4, quantize8,
};
use convert::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_bf16_sr, f32_to_f16};

impl crate::kernel::Elem for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16_to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f32_to_bf16(x)
    }
    #[inline(always)]
    fn load<L: Lane>(src: &[Self]) -> L {
        L::load_bf16(src)
    }
    #[inline(always)]
    fn store<L: Lane>(v: L, dst: &mut [Self]) {
        v.store_bf16(dst);
    }
}

impl crate::kernel::Elem for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16_to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f32_to_f16(x)
    }
    #[inline(always)]
    fn load<L: Lane>(src: &[Self]) -> L {
        L::load_f16(src)
    }
    #[inline(always)]
    fn store<L: Lane>(v: L, dst: &mut [Self]) {
        v.store_f16(dst);
    }
}

/// A tensor's parameters, in one of the supported dtypes, with the rounding used when the
/// updated values are stored.
///
/// Every element is computed in `f32` and rounded **once** per store. Round to nearest even is
/// what torch's fused CPU kernels do for bf16/f16 parameters. An update smaller than half a bf16
/// ulp is lost under it; the two other bf16 modes keep such updates:
/// - [`Params::Bf16Stochastic`] rounds up or down at random with the probability that makes the
///   result unbiased. The random bits are Philox4x32-10 keyed by `seed`, with the step and the
///   element's index in the whole tensor as the counter, so any split of the tensor and every
///   backend give the same bits.
/// - [`Params::Bf16Kahan`] keeps the rounding error of each parameter in a bf16 compensation
///   buffer (torch-optimi's Kahan-compensated bf16): the kernel sees `p + c`, and after the
///   update `p = bf16(p')`, `c = bf16(p' − p)`. A zeroed buffer is a fresh state.
#[derive(Debug)]
#[non_exhaustive]
pub enum Params<'a> {
    /// `f32` parameters, as in [`StepPlan::apply`](crate::StepPlan::apply).
    F32(&'a mut [f32]),
    /// bf16 parameters, rounded to nearest even.
    Bf16(&'a mut [bf16]),
    /// f16 parameters, rounded to nearest even.
    F16(&'a mut [f16]),
    /// bf16 parameters with stochastic rounding.
    Bf16Stochastic {
        /// The parameters.
        params: &'a mut [bf16],
        /// Keys the random stream; use one seed per tensor (or per run) and keep it across steps.
        seed: u64,
    },
    /// bf16 parameters with a bf16 Kahan compensation buffer of the same length.
    Bf16Kahan {
        /// The parameters.
        params: &'a mut [bf16],
        /// The rounding error carried from step to step; zeros to start.
        compensation: &'a mut [bf16],
    },
}

impl Params<'_> {
    /// The number of parameters.
    ///
    /// ```
    /// use fused_optim::{Params, bf16};
    /// let mut p = [bf16::ZERO; 5];
    /// assert_eq!(Params::Bf16(&mut p).len(), 5);
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Params::F32(p) => p.len(),
            Params::Bf16(p) | Params::Bf16Stochastic { params: p, .. } => p.len(),
            Params::Bf16Kahan { params, .. } => params.len(),
            Params::F16(p) => p.len(),
        }
    }

    /// Whether there are no parameters.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor's gradients, in any supported dtype (independent of the parameters' dtype: f32
/// master weights with bf16 gradients are common).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Grads<'a> {
    /// `f32` gradients.
    F32(&'a [f32]),
    /// bf16 gradients.
    Bf16(&'a [bf16]),
    /// f16 gradients.
    F16(&'a [f16]),
}

impl Grads<'_> {
    /// The number of gradients.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Grads::F32(g) => g.len(),
            Grads::Bf16(g) => g.len(),
            Grads::F16(g) => g.len(),
        }
    }

    /// Whether there are no gradients.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How optimizer state is stored. See [`StateFormat::layout`] for the buffer sizes.
///
/// | format | bytes per state value | block | notes |
/// |---|---|---|---|
/// | `F32` | 4 | – | as [`StepPlan::apply`](crate::StepPlan::apply) |
/// | `Bf16`, `F16` | 2 | – | rounded to nearest even on every store, as torch's fused kernels keep bf16 state |
/// | `Int8` | 1 + 4/256 | 256 | torchao's dynamic-tree codes, one f32 scale (absmax) per block |
/// | `Int4` | 0.5 + 4/128 | 128 | torchao's 4-bit codes, two per byte (`hi << 4 \| lo`) |
/// | `Fp8` | 1 + 4/256 | 256 | float8 e4m3fn, scale `absmax / 448` per block |
///
/// Block formats quantize each block to the scale of its largest magnitude and pick the nearest
/// code (ties up), exactly as torchao does; the step itself uses the unquantized new values. A
/// state plane that can only be non-negative (Adam's `v`, Adagrad's `sum`, …) uses the unsigned
/// code table, a signed one (momentum, `m`) the signed table.
///
/// **A caveat the block formats share with torchao:** each block is scaled to its largest
/// value, so a second moment far below its block's largest can be stored as 0 while the first
/// moment survives. A later zero gradient then gives an Adam step of `lr·m̂/eps`, which with
/// torch's `eps = 1e-8` can throw a weight far off (torchao 0.18 does the same; see
/// `docs/formats-convergence.md`). A larger `eps` (`1e-6`) avoids it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateFormat {
    /// `f32` values.
    F32,
    /// bf16 values.
    Bf16,
    /// f16 values.
    F16,
    /// 8-bit codes in blocks of 256 (torchao `AdamW8bit`).
    Int8,
    /// 4-bit codes in blocks of 128 (torchao `AdamW4bit`).
    Int4,
    /// float8 e4m3fn codes in blocks of 256 (torchao `AdamWFp8`).
    Fp8,
}

/// The buffer sizes of one tensor's state: see [`StateFormat::layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct StateLayout {
    /// Elements of the value buffer (`f32`, bf16 or f16), for the element formats.
    pub values: usize,
    /// Bytes of codes, for the block formats.
    pub codes: usize,
    /// `f32` block scales, for the block formats.
    pub scales: usize,
}

impl StateFormat {
    /// Values per block: 256 for `Int8` and `Fp8`, 128 for `Int4`, 1 for the element formats.
    /// A piece of a tensor must start at a multiple of it.
    #[inline]
    pub const fn block(self) -> usize {
        match self {
            StateFormat::F32 | StateFormat::Bf16 | StateFormat::F16 => 1,
            StateFormat::Int8 | StateFormat::Fp8 => 256,
            StateFormat::Int4 => 128,
        }
    }

    /// The buffers needed for `planes` state planes of `n` values (see each optimizer's
    /// `state_len(n) / n` for its plane count). Planes are stored one after another in each
    /// buffer: plane `j`'s values (or codes, or scales) follow plane `j − 1`'s.
    ///
    /// ```
    /// use fused_optim::{StateFormat, StateLayout};
    /// assert_eq!(StateFormat::Bf16.layout(2, 10), StateLayout { values: 20, codes: 0, scales: 0 });
    /// // 4-bit: two codes per byte, one scale per 128 values (a last partial block counts).
    /// assert_eq!(StateFormat::Int4.layout(2, 300), StateLayout { values: 0, codes: 300, scales: 6 });
    /// ```
    #[inline]
    pub const fn layout(self, planes: usize, n: usize) -> StateLayout {
        let per_plane = self.plane(n);
        StateLayout {
            values: per_plane.values.saturating_mul(planes),
            codes: per_plane.codes.saturating_mul(planes),
            scales: per_plane.scales.saturating_mul(planes),
        }
    }

    /// Bytes of state for `planes` planes of `n` values: values, codes and scales together.
    ///
    /// ```
    /// use fused_optim::StateFormat;
    /// // AdamW's two planes over 4096 parameters: 8 bytes each in f32, about 2 in 8-bit.
    /// assert_eq!(StateFormat::F32.bytes(2, 4096), 32768);
    /// assert_eq!(StateFormat::Bf16.bytes(2, 4096), 16384);
    /// assert_eq!(StateFormat::Int8.bytes(2, 4096), 8192 + 2 * 16 * 4);
    /// ```
    #[inline]
    pub const fn bytes(self, planes: usize, n: usize) -> usize {
        let l = self.layout(planes, n);
        let value = match self {
            StateFormat::F32 => 4,
            _ => 2,
        };
        l.values
            .saturating_mul(value)
            .saturating_add(l.codes)
            .saturating_add(l.scales.saturating_mul(4))
    }

    /// The layout of one plane of `n` values.
    const fn plane(self, n: usize) -> StateLayout {
        let blocks = n.div_ceil(self.block());
        match self {
            StateFormat::F32 | StateFormat::Bf16 | StateFormat::F16 => StateLayout {
                values: n,
                codes: 0,
                scales: 0,
            },
            StateFormat::Int8 | StateFormat::Fp8 => StateLayout {
                values: 0,
                codes: n,
                scales: blocks,
            },
            StateFormat::Int4 => StateLayout {
                values: 0,
                codes: n.div_ceil(2),
                scales: blocks,
            },
        }
    }

    /// The state format torchao 0.18 uses for a tensor of `n` values under this block format:
    /// the block format itself when `n ≥ 4096` and `n` is a multiple of the block, otherwise
    /// plain state (`small`: `F32`, or `Bf16` for bf16 parameters). Element formats are
    /// returned unchanged.
    ///
    /// ```
    /// use fused_optim::StateFormat;
    /// assert_eq!(StateFormat::Int8.torchao_for(4096, StateFormat::F32), StateFormat::Int8);
    /// assert_eq!(StateFormat::Int8.torchao_for(4000, StateFormat::F32), StateFormat::F32);
    /// assert_eq!(StateFormat::Int4.torchao_for(4096 + 128, StateFormat::Bf16), StateFormat::Int4);
    /// assert_eq!(StateFormat::Fp8.torchao_for(4096 + 128, StateFormat::Bf16), StateFormat::Bf16);
    /// ```
    #[inline]
    pub const fn torchao_for(self, n: usize, small: StateFormat) -> StateFormat {
        if self.block() == 1 || (n >= 4096 && n.is_multiple_of(self.block())) {
            self
        } else {
            small
        }
    }
}

/// One tensor's optimizer state in one of the [`StateFormat`]s. All planes of the tensor live
/// in the same buffers, one plane after another (see [`StateFormat::layout`]). Zeroed buffers
/// are a fresh state in every format (for Adagrad and Rprop, write their initial values with
/// [`Optimizer::init_state_in`](crate::Optimizer::init_state_in)).
#[derive(Debug)]
#[non_exhaustive]
pub enum State<'a> {
    /// `f32` values.
    F32(&'a mut [f32]),
    /// bf16 values.
    Bf16(&'a mut [bf16]),
    /// f16 values.
    F16(&'a mut [f16]),
    /// 8-bit codes with one scale per 256 values.
    Int8 {
        /// One byte per value.
        codes: &'a mut [u8],
        /// One `f32` per block.
        scales: &'a mut [f32],
    },
    /// 4-bit codes, two per byte, with one scale per 128 values.
    Int4 {
        /// Half a byte per value (the first of each pair in the high nibble).
        codes: &'a mut [u8],
        /// One `f32` per block.
        scales: &'a mut [f32],
    },
    /// float8 e4m3fn codes with one scale per 256 values.
    Fp8 {
        /// One byte per value.
        codes: &'a mut [u8],
        /// One `f32` per block.
        scales: &'a mut [f32],
    },
    /// One piece of a tensor's state, plane by plane, as [`TensorStep`] cuts it.
    Planes(StatePlanes<'a>),
}

impl State<'_> {
    /// The format of these buffers.
    ///
    /// ```
    /// use fused_optim::{State, StateFormat};
    /// let (mut codes, mut scales) = ([0u8; 512], [0.0f32; 2]);
    /// let s = State::Int8 { codes: &mut codes, scales: &mut scales };
    /// assert_eq!(s.format(), StateFormat::Int8);
    /// ```
    #[inline]
    pub fn format(&self) -> StateFormat {
        match self {
            State::F32(_) => StateFormat::F32,
            State::Bf16(_) => StateFormat::Bf16,
            State::F16(_) => StateFormat::F16,
            State::Int8 { .. } => StateFormat::Int8,
            State::Int4 { .. } => StateFormat::Int4,
            State::Fp8 { .. } => StateFormat::Fp8,
            State::Planes(p) => p.format(),
        }
    }

    /// The buffers' sizes.
    fn layout(&self) -> StateLayout {
        match self {
            State::F32(v) => StateLayout {
                values: v.len(),
                ..StateLayout::default()
            },
            State::Bf16(v) => StateLayout {
                values: v.len(),
                ..StateLayout::default()
            },
            State::F16(v) => StateLayout {
                values: v.len(),
                ..StateLayout::default()
            },
            State::Int8 { codes, scales }
            | State::Int4 { codes, scales }
            | State::Fp8 { codes, scales } => StateLayout {
                values: 0,
                codes: codes.len(),
                scales: scales.len(),
            },
            State::Planes(p) => p.format().layout(p.planes(), p.len()),
        }
    }

    /// Writes the state of `value` in every element (a zeroed state for `0.0`): every value,
    /// or every code with the block scale that makes it dequantize closest to `value`.
    pub(crate) fn fill(&mut self, value: f32) {
        match self {
            State::Planes(p) => p.fill(value),
            State::F32(v) => v.fill(value),
            State::Bf16(v) => v.fill(f32_to_bf16(value)),
            State::F16(v) => v.fill(f32_to_f16(value)),
            State::Int8 { codes, scales }
            | State::Int4 { codes, scales }
            | State::Fp8 { codes, scales }
                if value == 0.0 =>
            {
                codes.fill(0);
                scales.fill(0.0);
            }
            State::Int8 { codes, scales } => {
                // The unsigned table (the only planes with a non-zero start are accumulators).
                let (c, s) = quantize_one(value, |y| code8(false, y), 1.0);
                codes.fill(c);
                scales.fill(s);
            }
            State::Int4 { codes, scales } => {
                let (c, s) = quantize_one(value, |y| code4(false, y), 1.0);
                codes.fill((c << 4) | c);
                scales.fill(s);
            }
            State::Fp8 { codes, scales } => {
                let (c, s) = quantize_one(value, f32_to_e4m3, FP8_MAX);
                codes.fill(c);
                scales.fill(s);
            }
        }
    }
}

/// A block whose every value is `x`: its scale and code.
impl State<'_> {
    /// Writes a fresh state whose planes start at different values (Rprop's `prev` at 0 and
    /// `step_size` at `lr`): the buffers hold `values.len()` planes one after another, and
    /// plane `j` gets `values[j]` as in [`State::fill`].
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when the buffers do not hold a whole number of planes (or a
    /// [`State::Planes`] has another plane count); nothing is written then.
    pub(crate) fn fill_planes(&mut self, values: &[f32]) -> Result<(), Error> {
        let count = values.len();
        if let State::Planes(p) = self {
            if p.planes() != count {
                return Err(Error::LengthMismatch {
                    what: "state planes",
                    expected: count,
                    actual: p.planes(),
                });
            }
            p.fill_each(values);
            return Ok(());
        }
        let layout = self.layout();
        for (what, len) in [
            ("state", layout.values),
            ("state codes", layout.codes),
            ("state scales", layout.scales),
        ] {
            let whole = len
                .checked_div(count)
                .map_or(0, |each| each.wrapping_mul(count));
            if whole != len {
                return Err(Error::LengthMismatch {
                    what,
                    expected: whole,
                    actual: len,
                });
            }
        }
        match self {
            State::Planes(_) => {}
            State::F32(v) => each_plane(v, values, |p, x| State::F32(p).fill(x)),
            State::Bf16(v) => each_plane(v, values, |p, x| State::Bf16(p).fill(x)),
            State::F16(v) => each_plane(v, values, |p, x| State::F16(p).fill(x)),
            State::Int8 { codes, scales } => {
                each_block_plane(codes, scales, values, |codes, scales, x| {
                    State::Int8 { codes, scales }.fill(x);
                });
            }
            State::Int4 { codes, scales } => {
                each_block_plane(codes, scales, values, |codes, scales, x| {
                    State::Int4 { codes, scales }.fill(x);
                });
            }
            State::Fp8 { codes, scales } => {
                each_block_plane(codes, scales, values, |codes, scales, x| {
                    State::Fp8 { codes, scales }.fill(x);
                });
            }
        }
        Ok(())
    }
}

/// Calls `f` on each of `values.len()` equal consecutive pieces of `buf` with its value.
fn each_plane<T>(buf: &mut [T], values: &[f32], mut f: impl FnMut(&mut [T], f32)) {
    let each = buf.len().checked_div(values.len()).unwrap_or(0);
    let mut rest = buf;
    for &x in values {
        let (head, tail) = core::mem::take(&mut rest)
            .split_at_mut_checked(each)
            .unwrap_or_default();
        rest = tail;
        f(head, x);
    }
}

/// [`each_plane`] over the codes and the scales of a block format together.
fn each_block_plane(
    codes: &mut [u8],
    scales: &mut [f32],
    values: &[f32],
    mut f: impl FnMut(&mut [u8], &mut [f32], f32),
) {
    let codes_each = codes.len().checked_div(values.len()).unwrap_or(0);
    let scales_each = scales.len().checked_div(values.len()).unwrap_or(0);
    let (mut codes, mut scales) = (codes, scales);
    for &x in values {
        let (c, c_rest) = core::mem::take(&mut codes)
            .split_at_mut_checked(codes_each)
            .unwrap_or_default();
        let (s, s_rest) = core::mem::take(&mut scales)
            .split_at_mut_checked(scales_each)
            .unwrap_or_default();
        codes = c_rest;
        scales = s_rest;
        f(c, s, x);
    }
}

fn quantize_one(x: f32, code: impl Fn(f32) -> u8, max: f32) -> (u8, f32) {
    let s = block_scale(libm::fabsf(x), max);
    (code(x / s), s)
}

/// The largest finite float8 e4m3fn value.
const FP8_MAX: f32 = 448.0;

/// torchao's block scale: `clip(absmax, 1e-12) / max` (NaN stays NaN, as torch's clamp).
#[inline(always)]
fn block_scale(absmax: f32, max: f32) -> f32 {
    let s = if absmax < 1e-12 { 1e-12 } else { absmax };
    let s = if absmax.is_nan() { absmax } else { s };
    if max == 1.0 { s } else { s / max }
}

/// Which block code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockKind {
    Int8,
    Int4,
    Fp8,
}

impl BlockKind {
    const fn size(self) -> usize {
        match self {
            BlockKind::Int8 | BlockKind::Fp8 => 256,
            BlockKind::Int4 => 128,
        }
    }
}

/// One state plane of one tensor (piece).
#[derive(Debug)]
enum Plane<'a> {
    F32(&'a mut [f32]),
    Bf16(&'a mut [bf16]),
    F16(&'a mut [f16]),
    Block {
        kind: BlockKind,
        codes: &'a mut [u8],
        scales: &'a mut [f32],
    },
}

/// The all-`f32` path on its own: the lengths checked as [`run`] checks them, then the direct
/// driver. Plans' `apply`/`apply_on` call this, so a firmware that only steps `f32` tensors
/// links none of the storage-format code.
///
/// # Errors
/// [`Error::LengthMismatch`] or [`Error::BackendUnavailable`]; nothing is written on error.
#[inline]
pub(crate) fn run_f32<K: Kernel<S>, const S: usize>(
    backend: Backend,
    k: &K,
    params: &mut [f32],
    grads: &[f32],
    state: &mut [f32],
) -> Result<(), Error> {
    let planes = crate::kernel::split_state::<S>(params.len(), grads.len(), state)?;
    crate::dispatch::run(backend, k, params, grads, planes)
}

/// The gradients' and the Kahan compensation's lengths against the parameters'; returns the
/// element count.
pub(crate) fn check_operands(params: &Params<'_>, grads: Grads<'_>) -> Result<usize, Error> {
    let n = params.len();
    if grads.len() != n {
        return Err(Error::LengthMismatch {
            what: "grads",
            expected: n,
            actual: grads.len(),
        });
    }
    if let Params::Bf16Kahan { compensation, .. } = params
        && compensation.len() != n
    {
        return Err(Error::LengthMismatch {
            what: "compensation",
            expected: n,
            actual: compensation.len(),
        });
    }
    Ok(n)
}

/// Checks every length and alignment, then runs `k` over the tensor piece on `backend`.
/// `signed[j]` says whether plane `j` may hold negative values (it picks the code table).
///
/// # Errors
/// [`Error::LengthMismatch`], [`Error::Misaligned`], [`Error::BackendUnavailable`]; nothing is
/// written on error.
#[allow(
    clippy::too_many_arguments,
    reason = "one piece of one tensor, fully described"
)]
pub(crate) fn run<K: Kernel<S>, const S: usize>(
    backend: Backend,
    k: &K,
    step: u64,
    offset: usize,
    params: Params<'_>,
    grads: Grads<'_>,
    state: State<'_>,
) -> Result<(), Error> {
    let n = check_operands(&params, grads)?;
    let format = state.format();
    let planes = StatePlanes::of(state, S, n)?;
    // A piece must start on a block boundary; with no state planes, or no elements (the
    // empty piece at a tensor's end), there are no blocks.
    if S > 0 && n > 0 && !offset.is_multiple_of(format.block()) {
        return Err(Error::Misaligned {
            offset,
            block: format.block(),
        });
    }
    if !backend.is_available() {
        return Err(Error::BackendUnavailable(backend));
    }
    // The all-f32 case, and the common element-format cases (torch's fused bf16/f16 mode,
    // bf16 state under f32 parameters, f32 master weights with bf16 gradients), run the direct
    // driver: conversions happen in registers, with no staging.
    use crate::dispatch::run as direct;
    use split::PlanesInnerS as S_;
    let (params, grads, state) = match (params, grads, planes.first::<S>()) {
        (Params::F32(p), Grads::F32(g), S_::F32(v)) => return direct(backend, k, p, g, v),
        (Params::Bf16(p), Grads::Bf16(g), S_::Bf16(v)) => return direct(backend, k, p, g, v),
        (Params::F16(p), Grads::F16(g), S_::F16(v)) => return direct(backend, k, p, g, v),
        (Params::F32(p), Grads::F32(g), S_::Bf16(v)) => return direct(backend, k, p, g, v),
        (Params::F32(p), Grads::Bf16(g), S_::F32(v)) => return direct(backend, k, p, g, v),
        other => other,
    };
    let planes: [Plane<'_>; S] = match state {
        S_::F32(v) => v.map(Plane::F32),
        S_::Bf16(v) => v.map(Plane::Bf16),
        S_::F16(v) => v.map(Plane::F16),
        S_::Block {
            kind,
            codes,
            scales,
        } => {
            let mut s = scales.into_iter();
            codes.map(|codes| Plane::Block {
                kind,
                codes,
                scales: s.next().unwrap_or_default(),
            })
        }
    };
    let job = Staged {
        k,
        step,
        offset,
        params,
        grads,
        planes,
    };
    with_backend(backend, job)
}

/// Values per tile of the staged driver: a multiple of every block size.
const TILE: usize = 256;

/// One tile of `f32` values on a cache-line boundary.
#[repr(C, align(64))]
struct Tile([f32; TILE]);

/// The staged driver as a job: widen a tile, run the `f32` kernel, narrow it back.
struct Staged<'a, 'k, K, const S: usize> {
    k: &'k K,
    step: u64,
    offset: usize,
    params: Params<'a>,
    grads: Grads<'a>,
    planes: [Plane<'a>; S],
}

impl<K: Kernel<S>, const S: usize> LaneJob for Staged<'_, '_, K, S> {
    type Output = ();

    #[inline(always)]
    fn run<L: Lane>(self) {
        let Staged {
            k,
            step,
            offset,
            mut params,
            grads,
            mut planes,
        } = self;
        // Plain f32 or bf16 parameters with gradients of the same dtype go to the kernel
        // directly (converted in registers); only the state is staged.
        match (&mut params, grads) {
            (Params::F32(p), Grads::F32(g)) => {
                return direct_tiles::<L, K, S, _, _>(k, p, g, &mut planes);
            }
            (Params::Bf16(p), Grads::Bf16(g)) => {
                return direct_tiles::<L, K, S, _, _>(k, p, g, &mut planes);
            }
            _ => {}
        }
        let n = params.len();
        // Cache-line aligned, so the kernel's vector loop covers whole tiles with no scalar
        // head (the driver aligns to the parameters' address).
        let mut pbuf = Tile([0.0; TILE]);
        let mut gbuf = Tile([0.0; TILE]);
        let mut sbuf = [const { Tile([0.0; TILE]) }; S];
        let mut start = 0;
        while start < n {
            let len = (n - start).min(TILE);
            let r = start..start.wrapping_add(len);
            let (Some(pt), Some(gt)) = (pbuf.0.get_mut(..len), gbuf.0.get_mut(..len)) else {
                return;
            };
            load_params(&params, r.clone(), pt);
            load_grads(grads, r.clone(), gt);
            for ((plane, buf), signed) in planes.iter().zip(sbuf.iter_mut()).zip(K::SIGNED) {
                if let Some(b) = buf.0.get_mut(..len) {
                    load_plane::<L>(plane, r.clone(), b, signed);
                }
            }
            {
                let mut rows = sbuf.iter_mut();
                let st: [&mut [f32]; S] = core::array::from_fn(|_| match rows.next() {
                    Some(row) => row.0.get_mut(..len).unwrap_or_default(),
                    None => <&mut [f32]>::default(),
                });
                drive::<L, K, S, f32, f32, f32>(k, pt, gt, st);
            }
            store_params(&mut params, r.clone(), pt, step, offset);
            for ((plane, buf), signed) in planes.iter_mut().zip(sbuf.iter()).zip(K::SIGNED) {
                if let Some(b) = buf.0.get(..len) {
                    store_plane::<L>(plane, r.clone(), b, signed);
                }
            }
            start = start.wrapping_add(len);
        }
    }
}

/// The staged loop for parameters and gradients that the kernel reads and writes in place
/// (`f32`, or bf16 rounded to nearest even): only the state planes go through tiles.
#[inline(always)]
fn direct_tiles<L: Lane, K: Kernel<S>, const S: usize, P: Elem, G: Elem>(
    k: &K,
    p: &mut [P],
    g: &[G],
    planes: &mut [Plane<'_>; S],
) {
    let n = p.len().min(g.len());
    let mut sbuf = [const { Tile([0.0; TILE]) }; S];
    let mut start = 0;
    while start < n {
        let len = (n - start).min(TILE);
        let r = start..start.wrapping_add(len);
        let (Some(pt), Some(gt)) = (p.get_mut(r.clone()), g.get(r.clone())) else {
            return;
        };
        for ((plane, buf), signed) in planes.iter().zip(sbuf.iter_mut()).zip(K::SIGNED) {
            if let Some(b) = buf.0.get_mut(..len) {
                load_plane::<L>(plane, r.clone(), b, signed);
            }
        }
        {
            let mut rows = sbuf.iter_mut();
            let st: [&mut [f32]; S] = core::array::from_fn(|_| match rows.next() {
                Some(row) => row.0.get_mut(..len).unwrap_or_default(),
                None => <&mut [f32]>::default(),
            });
            drive_with::<L, K, S, P, G, f32>(k, pt, gt, st, false);
        }
        for ((plane, buf), signed) in planes.iter_mut().zip(sbuf.iter()).zip(K::SIGNED) {
            if let Some(b) = buf.0.get(..len) {
                store_plane::<L>(plane, r.clone(), b, signed);
            }
        }
        start = start.wrapping_add(len);
    }
}

/// Copies `src[r]` converted to f32 into `dst` (`dst.len() == r.len()`).
#[inline(always)]
fn widen<T: Copy>(src: &[T], r: Range<usize>, dst: &mut [f32], f: impl Fn(T) -> f32) {
    if let Some(s) = src.get(r) {
        for (d, x) in dst.iter_mut().zip(s) {
            *d = f(*x);
        }
    }
}

/// Stores `src` converted by `f` into `dst[r]`.
#[inline(always)]
fn narrow<T>(src: &[f32], dst: &mut [T], r: Range<usize>, f: impl Fn(f32) -> T) {
    if let Some(d) = dst.get_mut(r) {
        for (d, x) in d.iter_mut().zip(src) {
            *d = f(*x);
        }
    }
}

#[inline(always)]
fn load_params(p: &Params<'_>, r: Range<usize>, dst: &mut [f32]) {
    match p {
        Params::F32(p) => widen(p, r, dst, |x| x),
        Params::Bf16(p) | Params::Bf16Stochastic { params: p, .. } => widen(p, r, dst, bf16_to_f32),
        Params::F16(p) => widen(p, r, dst, f16_to_f32),
        Params::Bf16Kahan {
            params,
            compensation,
        } => {
            widen(params, r.clone(), dst, bf16_to_f32);
            if let Some(c) = compensation.get(r) {
                for (d, c) in dst.iter_mut().zip(c) {
                    *d += bf16_to_f32(*c);
                }
            }
        }
    }
}

#[inline(always)]
fn store_params(p: &mut Params<'_>, r: Range<usize>, src: &[f32], step: u64, offset: usize) {
    match p {
        Params::F32(p) => narrow(src, p, r, |x| x),
        Params::Bf16(p) => narrow(src, p, r, f32_to_bf16),
        Params::F16(p) => narrow(src, p, r, f32_to_f16),
        Params::Bf16Stochastic { params, seed } => {
            let mut bits = [0u16; TILE];
            let first = (offset as u64).wrapping_add(r.start as u64);
            if let (Some(b), Some(d)) = (bits.get_mut(..src.len()), params.get_mut(r)) {
                philox::random_u16s(*seed, step, first, b);
                for ((d, x), b) in d.iter_mut().zip(src).zip(b.iter()) {
                    *d = f32_to_bf16_sr(*x, *b);
                }
            }
        }
        Params::Bf16Kahan {
            params,
            compensation,
        } => {
            if let (Some(pd), Some(cd)) = (params.get_mut(r.clone()), compensation.get_mut(r)) {
                for ((pd, cd), x) in pd.iter_mut().zip(cd.iter_mut()).zip(src) {
                    let rounded = f32_to_bf16(*x);
                    let r = bf16_to_f32(rounded);
                    // A parameter that is (or rounds to) ±inf or NaN carries no compensation:
                    // `x − r` would be NaN or ∓inf and poison the next step's `p + c`.
                    // (Tested on the bf16 bits: exponent all ones is ±inf or NaN.)
                    let err = if rounded.to_bits() & 0x7f80 != 0x7f80 {
                        *x - r
                    } else {
                        0.0
                    };
                    *pd = rounded;
                    *cd = f32_to_bf16(err);
                }
            }
        }
    }
}

#[inline(always)]
fn load_grads(g: Grads<'_>, r: Range<usize>, dst: &mut [f32]) {
    match g {
        Grads::F32(g) => widen(g, r, dst, |x| x),
        Grads::Bf16(g) => widen(g, r, dst, bf16_to_f32),
        Grads::F16(g) => widen(g, r, dst, f16_to_f32),
    }
}

#[inline(always)]
fn load_plane<L: Lane>(plane: &Plane<'_>, r: Range<usize>, dst: &mut [f32], signed: bool) {
    match plane {
        Plane::F32(v) => widen(v, r, dst, |x| x),
        Plane::Bf16(v) => widen(v, r, dst, bf16_to_f32),
        Plane::F16(v) => widen(v, r, dst, f16_to_f32),
        Plane::Block {
            kind,
            codes,
            scales,
        } => {
            // `r.start` is a multiple of the tile, hence of the block (and even).
            let size = kind.size();
            // Wrapping index arithmetic (the indices are bounded by the slices): no overflow
            // check stays in a build with overflow checks on.
            let mut first = r.start;
            for out in dst.chunks_mut(size) {
                let block_first = first;
                first = first.wrapping_add(size);
                let first = block_first;
                let scale = scales.get(first / size).copied().unwrap_or(0.0);
                match kind {
                    BlockKind::Int8 => {
                        let (table, bytes) = if signed {
                            (&INT8_SIGNED_MAP.values, &INT8_SIGNED_BYTES)
                        } else {
                            (&INT8_UNSIGNED_MAP.values, &INT8_UNSIGNED_BYTES)
                        };
                        if let Some(c) = codes.get(first..first.wrapping_add(out.len())) {
                            L::dequantize8(table, bytes, c, scale, out);
                        }
                    }
                    BlockKind::Fp8 => {
                        if let Some(c) = codes.get(first..first.wrapping_add(out.len())) {
                            for (o, c) in out.iter_mut().zip(c) {
                                *o = e4m3_to_f32(*c) * scale;
                            }
                        }
                    }
                    BlockKind::Int4 => {
                        let table = if signed {
                            &INT4_SIGNED_MAP.values
                        } else {
                            &INT4_UNSIGNED_MAP.values
                        };
                        let bytes = codes.get(first / 2..).unwrap_or_default();
                        L::dequantize4(table, bytes, scale, out);
                    }
                }
            }
        }
    }
}

/// `out[i] = table[codes[i]] · scale` (a gather per value).
#[inline(always)]
#[allow(
    clippy::indexing_slicing,
    reason = "a u8 index into a 256-entry table is in range"
)]
pub(crate) fn dequantize8(table: &[f32; 256], codes: &[u8], scale: f32, out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(codes) {
        *o = table[usize::from(*c)] * scale;
    }
}

/// Unpacks two 4-bit codes per byte (the first in the high nibble) and dequantizes them.
#[inline(always)]
#[allow(
    clippy::indexing_slicing,
    reason = "a 4-bit index into a 16-entry table is in range"
)]
pub(crate) fn dequantize4(table: &[f32; 16], bytes: &[u8], scale: f32, out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(unpack4(bytes)) {
        *o = table[usize::from(c & 15)] * scale;
    }
}

/// The 4-bit codes of up to 128 bytes, one per byte (the first of each pair in the high nibble).
#[inline(always)]
pub(crate) fn unpack4(bytes: &[u8]) -> [u8; 256] {
    let mut c = [0u8; 256];
    // Fixed-size pairs: no chunk length to divide by and no index to check, even where the
    // iterator code is not inlined (opt-level "z").
    let (pairs, _) = c.as_chunks_mut::<2>();
    for ([hi, lo], b) in pairs.iter_mut().zip(bytes) {
        (*hi, *lo) = (b >> 4, b & 15);
    }
    c
}

#[inline(always)]
fn store_plane<L: Lane>(plane: &mut Plane<'_>, r: Range<usize>, src: &[f32], signed: bool) {
    match plane {
        Plane::F32(v) => narrow(src, v, r, |x| x),
        Plane::Bf16(v) => narrow(src, v, r, f32_to_bf16),
        Plane::F16(v) => narrow(src, v, r, f32_to_f16),
        Plane::Block {
            kind,
            codes,
            scales,
        } => {
            let size = kind.size();
            // Wrapping index arithmetic, as in `load_plane`.
            let mut first = r.start;
            for x in src.chunks(size) {
                let block_first = first;
                first = first.wrapping_add(size);
                let first = block_first;
                let absmax = crate::kernel::drive_fold::<L, _>(&MaxAbs, x, 0.0);
                let max = if *kind == BlockKind::Fp8 {
                    FP8_MAX
                } else {
                    1.0
                };
                let scale = block_scale(absmax, max);
                if let Some(s) = scales.get_mut(first / size) {
                    *s = scale;
                }
                match kind {
                    BlockKind::Int8 => {
                        if let Some(c) = codes.get_mut(first..first.wrapping_add(x.len())) {
                            quantize8(signed, x, scale, c);
                        }
                    }
                    BlockKind::Fp8 => {
                        if let Some(c) = codes.get_mut(first..first.wrapping_add(x.len())) {
                            for (c, x) in c.iter_mut().zip(x) {
                                *c = f32_to_e4m3(*x / scale);
                            }
                        }
                    }
                    BlockKind::Int4 => {
                        let mut c = [0u8; 256];
                        quantize4::<L>(signed, x, scale, &mut c);
                        // Past the block's values the codes are zero, so an odd last value
                        // leaves the low nibble of its byte zero.
                        for c in c.iter_mut().skip(x.len()) {
                            *c = 0;
                        }
                        let mut packed = [0u8; 128];
                        for (p, pair) in packed.iter_mut().zip(c.chunks_exact(2)) {
                            *p = (pair.first().copied().unwrap_or(0) << 4)
                                | pair.get(1).copied().unwrap_or(0);
                        }
                        let bytes = codes.get_mut(first / 2..).unwrap_or_default();
                        for (b, p) in bytes.iter_mut().zip(packed).take(x.len().div_ceil(2)) {
                            *b = p;
                        }
                    }
                }
            }
        }
    }
}

/// `max |x|` over a block, NaN if any value is NaN (torch's `abs().amax()`).
#[derive(Clone, Copy, Debug)]
struct MaxAbs;

impl crate::kernel::Fold for MaxAbs {
    const INIT: f32 = 0.0;
    #[inline(always)]
    fn fold<L: Lane>(&self, x: L, acc: L) -> (L, L) {
        (x, crate::lane::max_nan(acc, x.abs()))
    }
    #[inline(always)]
    fn combine(a: f32, b: f32) -> f32 {
        crate::lane::max_nan(a, b)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::Sgd;

    /// Sgd with `lr = 0` returns each parameter unchanged, so only the store's rounding acts.
    fn hold(params: Params<'_>) {
        let plan = Sgd {
            lr: 0.0,
            ..Sgd::default()
        }
        .plan(1)
        .unwrap();
        let n = params.len();
        let g = std::vec![bf16::ZERO; n];
        plan.apply_to(params, Grads::Bf16(&g), State::F32(&mut []))
            .unwrap();
    }

    #[test]
    fn kahan_keeps_what_rounding_drops_and_nothing_past_infinity() {
        // 1 + 2^-10 is not a bf16: p = 1 keeps the rest in c.
        let mut p = [bf16::ONE, bf16::MAX];
        let mut c = [bf16::from_f32(1.0 / 1024.0), bf16::from_f32(1e36)];
        hold(Params::Bf16Kahan {
            params: &mut p,
            compensation: &mut c,
        });
        assert_eq!(p[0], bf16::ONE);
        assert_eq!(c[0].to_f32(), 1.0 / 1024.0);
        // MAX + 1e36 rounds to +inf: the parameter overflows and carries no compensation.
        assert_eq!(p[1], bf16::INFINITY);
        assert_eq!(c[1].to_bits(), 0);
    }

    #[test]
    fn stochastic_rounding_depends_on_seed_step_and_index_only() {
        let x = bf16_to_f32(bf16::ONE) + 1.0 / 512.0; // a quarter of the way to the next bf16
        let run = |seed: u64, offset: usize, n: usize| {
            let mut p = std::vec![bf16::ONE; n];
            // SGD with lr = 1 and gradient −2^-9 computes p' = 1 + 2^-9 = x exactly.
            let plan = Sgd {
                lr: 1.0,
                ..Sgd::default()
            }
            .plan(1)
            .unwrap();
            let g = std::vec![bf16::from_f32(-1.0 / 512.0); n];
            plan.apply_piece(
                Backend::Scalar,
                offset,
                Params::Bf16Stochastic {
                    params: &mut p,
                    seed,
                },
                Grads::Bf16(&g),
                State::F32(&mut []),
            )
            .unwrap();
            p
        };
        let whole = run(9, 0, 64);
        let ups = whole.iter().filter(|v| v.to_f32() > x).count();
        assert!(ups > 0 && ups < 64, "{ups} of 64 rounded up");
        // The second half computed alone, at its offset, gives the same bits.
        assert_eq!(run(9, 32, 32)[..], whole[32..]);
        assert_ne!(run(10, 0, 64), whole);
    }
}
