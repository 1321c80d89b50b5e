//! The cases the firmware runs on a Cortex-M4F and the host records on x86_64, and the
//! bare-metal runtime pieces (semihosting, stack painting, the link-time panic check).
//!
//! Every optimizer runs through the public API ([`Optimizer::plan`], [`StepPlan::apply_on`],
//! [`StepPlan::apply`]) on buffers whose length is a run-time value, for [`STEPS`] consecutive
//! steps, from fixed inputs that include ±0, subnormals, ±Inf, NaN and values near `f32::MAX`.
//! The parameters and state after every step are flattened into `u32` bits (NaN canonicalised:
//! payloads are not part of the crate's contract) and compared with [`expected::EXPECTED`],
//! recorded on x86_64.
//!
//! Storage formats run the same way: cases with bf16/f16 parameters and gradients (stochastic
//! rounding and Kahan compensation included) and bf16/f16 or block-quantized state (torchao's
//! 8-bit and 4-bit codes, float8) go through [`StepPlan::apply_piece`] and
//! [`StepPlan::apply_to`]; their outputs are the 16-bit values (two per word), the codes (four
//! per word) and the block scales. Every case also runs as two pieces of one tensor (the second
//! at a block-aligned offset), which must give the whole tensor's bits.
//!
//! SparseAdam, whose gradient is a set of rows of a table, runs through [`run_sparse_case`]:
//! a table of [`SPARSE_ROWS`] rows of the run-time length, each step touching a different set
//! of rows ([`sparse_rows`]); the table and both state planes are recorded after every step.
//!
//! Adding an optimizer to the proof is one line in [`cases`] (and, for the footprint table,
//! a three-line file in `src/bin/`).
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod expected;
#[cfg(target_os = "none")]
pub mod rt;
#[cfg(all(target_os = "none", target_arch = "riscv32"))]
pub mod rt_riscv;

use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Backend, Error, Grads, Lion, NAdam, Optimizer, Params, RAdam, RMSprop, Sgd, SparseAdam, SparseGrad, State, StateFormat, StepPlan, TorchaoAdam, bf16, f16, Asgd, Rprop,
};

/// The tensor length of the `f32` cases: two 8-lane chunks and a 3-element tail on the
/// portable backend, one 16-lane chunk and a tail on AVX-512F.
pub const N: usize = 19;
/// The largest tensor a storage-format case uses: two blocks of 256 (two tiles of the staged
/// driver).
#[cfg(not(feature = "microbit"))]
pub const N_MAX: usize = 512;
/// The largest tensor this build runs: with the feature `microbit` (16 KiB of RAM) only the
/// cases of [`N`] values; the firmware reports the longer ones as skipped.
#[cfg(feature = "microbit")]
pub const N_MAX: usize = N;
/// Consecutive steps per case.
pub const STEPS: usize = 3;
/// The most state values per parameter any optimizer keeps (room to spare).
pub const MAX_PLANES: usize = 4;
/// Room for one case's output: every step's parameters, compensation and state.
pub const MAX_OUT: usize = STEPS * N_MAX * (2 + MAX_PLANES) + 64;
/// Room for block scales: every plane of two pieces, each with a partial block.
const MAX_SCALES: usize = MAX_PLANES * (N_MAX / 128 + 2);

/// How a case's parameters are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamStore {
    /// `f32`.
    F32,
    /// bf16, round to nearest even.
    Bf16,
    /// f16, round to nearest even.
    F16,
    /// bf16 with stochastic rounding keyed by this seed.
    Bf16Stochastic(u64),
    /// bf16 with a Kahan compensation buffer.
    Bf16Kahan,
}

/// How a case's gradients are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradStore {
    /// `f32`.
    F32,
    /// bf16.
    Bf16,
    /// f16.
    F16,
}

/// The storage of one case: formats and tensor length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Storage {
    /// Parameters.
    pub params: ParamStore,
    /// Gradients.
    pub grads: GradStore,
    /// State.
    pub state: StateFormat,
    /// Tensor length (at most [`N_MAX`]).
    pub n: usize,
}

impl Storage {
    /// The `f32` cases: `f32` everything, [`N`] values.
    pub const F32: Storage = Storage {
        params: ParamStore::F32,
        grads: GradStore::F32,
        state: StateFormat::F32,
        n: N,
    };

    /// Whether this is the plain `f32` API's case.
    pub fn is_f32(&self) -> bool {
        self.params == ParamStore::F32
            && self.grads == GradStore::F32
            && self.state == StateFormat::F32
    }

    /// Where the two-piece path splits an `n`-value tensor: half way, rounded down to a whole
    /// block (0 when the tensor is a single block: no split).
    pub fn split(&self, n: usize) -> usize {
        let block = self.state.block();
        ((n / 2) / block.max(1)).wrapping_mul(block)
    }
}

/// Every case: a name, the first step number and the hyperparameters. Adding an optimizer (or
/// an option worth covering) is one line here; `FUSED_OPTIM_BLESS=1 cargo test --lib` then
/// records its bits on x86_64.
pub fn cases<V: Visit>(v: &mut V) {
    v.case(
        "sgd",
        1,
        Sgd {
            lr: 0.1,
            ..Sgd::default()
        },
    );
    v.case(
        "sgd momentum dampening wd",
        1,
        Sgd {
            lr: 0.05,
            momentum: 0.9,
            dampening: 0.1,
            weight_decay: 0.01,
            ..Sgd::default()
        },
    );
    v.case(
        "sgd nesterov maximize",
        1,
        Sgd {
            lr: 0.02,
            momentum: 0.5,
            nesterov: true,
            maximize: true,
            ..Sgd::default()
        },
    );
    v.case("adam", 1, Adam::default());
    v.case(
        "adam amsgrad lr 0.1",
        1,
        Adam {
            lr: 0.1,
            amsgrad: true,
            ..Adam::default()
        },
    );
    v.case(
        "adamw t 1000",
        1000,
        Adam {
            lr: 0.05,
            ..Adam::adamw()
        },
    );
    v.case(
        "adam l2 maximize eps 0 betas (0.5, 0.75)",
        1,
        Adam {
            lr: 0.5,
            betas: (0.5, 0.75),
            eps: 0.0,
            weight_decay: 0.1,
            maximize: true,
            ..Adam::default()
        },
    );
    v.case("adagrad", 1, Adagrad::default());
    v.case(
        "adagrad lr_decay wd init 0.1",
        1,
        Adagrad {
            lr: 0.1,
            lr_decay: 0.01,
            weight_decay: 0.1,
            initial_accumulator_value: 0.1,
            ..Adagrad::default()
        },
    );
    v.case("adadelta", 1, Adadelta::default());
    v.case(
        "adadelta rho 0.5 wd maximize",
        1,
        Adadelta {
            rho: 0.5,
            weight_decay: 0.1,
            maximize: true,
            ..Adadelta::default()
        },
    );
    v.case("rmsprop", 1, RMSprop::default());
    v.case(
        "rmsprop centered momentum wd",
        1,
        RMSprop {
            lr: 0.01,
            momentum: 0.9,
            centered: true,
            weight_decay: 0.1,
            ..RMSprop::default()
        },
    );
    v.case("adamax", 1, Adamax::default());
    v.case(
        "adamax wd maximize t 1000",
        1000,
        Adamax {
            weight_decay: 0.1,
            maximize: true,
            ..Adamax::default()
        },
    );
    v.case("nadam", 1, NAdam::default());
    v.case(
        "nadam decoupled wd",
        1,
        NAdam {
            weight_decay: 0.1,
            decoupled_weight_decay: true,
            ..NAdam::default()
        },
    );
    v.case("radam", 1, RAdam::default());
    v.case(
        "radam t 4 decoupled wd",
        4,
        RAdam {
            lr: 0.01,
            weight_decay: 0.1,
            decoupled_weight_decay: true,
            ..RAdam::default()
        },
    );
    v.case("lion", 1, Lion::default());
    v.case(
        "lion wd maximize",
        1,
        Lion {
            lr: 0.01,
            weight_decay: 0.5,
            maximize: true,
            ..Lion::default()
        },
    );
    v.case("rprop", 1, Rprop::default());
    v.case(
        "rprop etas step_sizes maximize",
        1,
        Rprop {
            lr: 0.05,
            etas: (0.3, 1.5),
            step_sizes: (1e-3, 1.0),
            maximize: true,
        },
    );
    v.case("asgd", 1, Asgd::default());
    v.case(
        "asgd t0 0 lambd wd maximize",
        1,
        Asgd {
            lr: 0.05,
            lambd: 0.5,
            t0: 0.0,
            weight_decay: 0.1,
            maximize: true,
            ..Asgd::default()
        },
    );
    // Storage formats. 8-bit AdamW (torchao's formula) over two blocks of 256.
    let int8 = |params, grads| Storage {
        params,
        grads,
        state: StateFormat::Int8,
        n: 512,
    };
    let adamw8bit = TorchaoAdam {
        lr: 0.01,
        ..TorchaoAdam::adamw8bit()
    };
    v.case_in(
        "torchao adamw8bit int8",
        1,
        adamw8bit,
        &int8(ParamStore::F32, GradStore::F32),
    );
    v.case_in(
        "torchao adamw8bit int8, bf16 sr params, bf16 grads",
        1,
        adamw8bit,
        &int8(
            ParamStore::Bf16Stochastic(0x0123_4567_89ab_cdef),
            GradStore::Bf16,
        ),
    );
    // torch's Adam/AdamW formula with 8-bit state.
    v.case_in(
        "adamw int8",
        1,
        Adam {
            lr: 0.01,
            ..Adam::adamw()
        },
        &int8(ParamStore::F32, GradStore::F32),
    );
    v.case_in(
        "adam amsgrad l2 int8 t 10, bf16 kahan params",
        10,
        Adam {
            lr: 0.01,
            amsgrad: true,
            weight_decay: 0.1,
            ..Adam::default()
        },
        &int8(ParamStore::Bf16Kahan, GradStore::F32),
    );
    // The other block formats, for the code paths they add.
    v.case_in(
        "torchao adam4bit amsgrad int4, bf16 params",
        1,
        TorchaoAdam {
            lr: 0.01,
            amsgrad: true,
            ..TorchaoAdam::adam4bit()
        },
        &Storage {
            params: ParamStore::Bf16,
            grads: GradStore::F32,
            state: StateFormat::Int4,
            n: 512,
        },
    );
    v.case_in(
        "torchao adamw fp8, f16 grads",
        1,
        TorchaoAdam {
            lr: 0.01,
            ..TorchaoAdam::adamw_fp8()
        },
        &Storage {
            params: ParamStore::F32,
            grads: GradStore::F16,
            state: StateFormat::Fp8,
            n: 300,
        },
    );
    // bf16 parameters with stochastic rounding and with Kahan compensation, on the special
    // inputs (±0, subnormals, ±Inf, NaN, near f32::MAX).
    let small = |params, grads, state| Storage {
        params,
        grads,
        state,
        n: N,
    };
    v.case_in(
        "adamw bf16 sr params",
        1,
        Adam {
            lr: 0.01,
            ..Adam::adamw()
        },
        &small(
            ParamStore::Bf16Stochastic(42),
            GradStore::F32,
            StateFormat::F32,
        ),
    );
    v.case_in(
        "adamw bf16 sr params, bf16 grads, bf16 state, t 1000",
        1000,
        Adam {
            lr: 0.05,
            ..Adam::adamw()
        },
        &small(
            ParamStore::Bf16Stochastic(u64::MAX),
            GradStore::Bf16,
            StateFormat::Bf16,
        ),
    );
    v.case_in(
        "adamw bf16 kahan params, bf16 state",
        1,
        Adam {
            lr: 0.01,
            ..Adam::adamw()
        },
        &small(ParamStore::Bf16Kahan, GradStore::F32, StateFormat::Bf16),
    );
    v.case_in(
        "sgd momentum bf16 kahan params, f16 grads",
        1,
        Sgd {
            lr: 0.05,
            momentum: 0.9,
            ..Sgd::default()
        },
        &small(ParamStore::Bf16Kahan, GradStore::F16, StateFormat::F32),
    );
    v.case_in(
        "rmsprop centered f16 params, f16 state",
        1,
        RMSprop {
            lr: 0.01,
            centered: true,
            momentum: 0.5,
            ..RMSprop::default()
        },
        &small(ParamStore::F16, GradStore::F32, StateFormat::F16),
    );
    // SparseAdam: rows of a table (see `run_sparse_case`).
    v.sparse_case("sparse_adam", 1, SparseAdam::default());
    v.sparse_case(
        "sparse_adam maximize betas (0.5, 0.75) eps 1e-3 t 1000",
        1000,
        SparseAdam {
            lr: 0.05,
            betas: (0.5, 0.75),
            eps: 1e-3,
            maximize: true,
        },
    );
    // Rprop's fresh state (step sizes at lr, not zeros) written into bf16 state.
    v.case_in(
        "rprop bf16 params, bf16 state",
        1,
        Rprop {
            lr: 0.05,
            ..Rprop::default()
        },
        &small(ParamStore::Bf16, GradStore::Bf16, StateFormat::Bf16),
    );
}

/// What [`cases`] calls once per case.
pub trait Visit {
    /// One case: run `STEPS` steps of `opt` starting at step `first_step`, on buffers stored
    /// as `storage` says.
    fn case_in<O: Optimizer>(
        &mut self,
        name: &'static str,
        first_step: u64,
        opt: O,
        storage: &Storage,
    );

    /// One `f32` case ([`Storage::F32`]).
    fn case<O: Optimizer>(&mut self, name: &'static str, first_step: u64, opt: O) {
        self.case_in(name, first_step, opt, &Storage::F32);
    }

    /// One SparseAdam case: [`run_sparse_case`] for `STEPS` steps from `first_step`.
    fn sparse_case(&mut self, name: &'static str, first_step: u64, opt: SparseAdam);

    /// A case this build leaves out (the `microbit` firmware skips the storage formats).
    /// Does nothing by default.
    fn skip(&mut self, name: &'static str, storage: &Storage) {
        let _ = (name, storage);
    }
}

/// How a case reaches the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `StepPlan::apply_on(backend, …)`.
    On(Backend),
    /// `StepPlan::apply(…)` (or `apply_to`): the backend `Backend::best` picks.
    Best,
    /// `StepPlan::apply_piece(Backend::best(), offset, …)` on two pieces of the tensor, the
    /// second at [`Storage::split`] (each with its own state buffers).
    Pieces,
}

impl Path {
    /// Every path a case runs on: the scalar reference, the portable backend, the best one,
    /// and two pieces.
    pub const ALL: [Path; 4] = [
        Path::On(Backend::Scalar),
        Path::On(Backend::Portable),
        Path::Best,
        Path::Pieces,
    ];
}

impl Path {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Path::On(b) => b.name(),
            Path::Best => "best",
            Path::Pieces => "two pieces",
        }
    }
}

/// Why a case did not produce its output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fail {
    /// The crate returned an error.
    Optimizer(Error),
    /// `n` or the optimizer's state does not fit the case's fixed buffers.
    Capacity,
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Optimizer(e)
    }
}

/// Initial parameters: ordinary values of both signs and magnitudes, with ±0, a subnormal,
/// +Inf, NaN and −3·10³⁸ among them.
const PARAMS: [f32; N] = [
    0.5,
    -1.5,
    0.0,
    -0.0,
    f32::from_bits(0x0002_3456), // subnormal
    3.25,
    -7.0e-3,
    1.0e3,
    f32::INFINITY,
    -0.125,
    42.0,
    f32::NAN,
    -2.0,
    1.0e-20,
    -3.0e38,
    0.75,
    6.0,
    -0.3,
    1.0,
];

/// Ordinary gradient values.
const ORDINARY: [f32; 13] = [
    0.25, -0.5, 1.0e-3, -3.0, 0.125, 7.5, -1.0e-4, 0.9, -0.01, 2.0, -64.0, 1.0e-6, 0.33,
];

/// Special gradient values, injected at a few positions that move from step to step.
const SPECIAL: [f32; 8] = [
    0.0,
    -0.0,
    f32::from_bits(0x0000_0101),
    -f32::from_bits(0x0040_0000),
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    3.0e38,
];

/// The initial value of parameter `i`.
#[inline]
pub fn param0(i: usize) -> f32 {
    PARAMS.get(i % N).copied().unwrap_or(0.0)
}

/// The gradient of parameter `i` at the `k`-th step of a case (`k` from 0).
#[inline]
pub fn grad(i: usize, k: usize) -> f32 {
    // Wrapping arithmetic: the indices are small, and no overflow check stays in the firmware.
    if i.wrapping_add(k.wrapping_mul(4)) % 7 == 2 {
        SPECIAL
            .get(i.wrapping_add(k) % SPECIAL.len())
            .copied()
            .unwrap_or(0.0)
    } else {
        let j = i.wrapping_mul(5).wrapping_add(k.wrapping_mul(3));
        ORDINARY.get(j % ORDINARY.len()).copied().unwrap_or(0.0)
    }
}

/// The gradient of parameter `i` of an `n`-value tensor stored as `storage`, at the `k`-th
/// step. Block-quantized state keeps the special values to the last block at the last step
/// (a NaN or an infinity in a block makes its whole scale NaN or infinite from then on);
/// elsewhere the ordinary values, scaled by a factor that varies along the tensor.
#[inline]
pub fn grad_in(storage: &Storage, n: usize, i: usize, k: usize) -> f32 {
    let block = storage.state.block();
    let last_block = i.wrapping_add(block) >= n;
    if block == 1 || (last_block && k.wrapping_add(1) == STEPS) {
        grad(i, k)
    } else {
        let j = i.wrapping_mul(5).wrapping_add(k.wrapping_mul(3));
        let g = ORDINARY.get(j % ORDINARY.len()).copied().unwrap_or(0.0);
        g * (1.0 + (i % 11) as f32 * 0.0625)
    }
}

/// The initial value of parameter `i` of a tensor stored as `storage`: [`param0`], with the
/// non-finite values replaced when the state is block-quantized (torch's L2 decay would carry
/// them into the gradient, and so into a whole block's scale).
#[inline]
pub fn param_in(storage: &Storage, i: usize) -> f32 {
    let p = param0(i);
    if storage.state.block() == 1 || p.is_finite() {
        p
    } else {
        0.25 + (i % 5) as f32
    }
}

/// The bits recorded for `x`: its own, or the canonical quiet NaN.
#[inline]
pub fn bits(x: f32) -> u32 {
    if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() }
}

/// A bf16 value's bits, NaN canonical.
#[inline]
fn bits_bf16(x: bf16) -> u16 {
    if x.is_nan() { 0x7fc0 } else { x.to_bits() }
}

/// An f16 value's bits, NaN canonical.
#[inline]
fn bits_f16(x: f16) -> u16 {
    if x.is_nan() { 0x7e00 } else { x.to_bits() }
}

/// A float8 e4m3fn code, NaN canonical (both signs of NaN are one class).
#[inline]
fn bits_fp8(c: u8) -> u8 {
    if c & 0x7f == 0x7f { 0x7f } else { c }
}

/// Writes output words: 32-bit values as they are, 16-bit values two per word and bytes four
/// per word (little end first), a partial word flushed at the end of each section.
struct Out<'a> {
    words: core::slice::IterMut<'a, u32>,
    acc: u32,
    bits: u32,
    written: usize,
}

impl Out<'_> {
    fn word(&mut self, w: u32) -> Result<(), Fail> {
        *self.words.next().ok_or(Fail::Capacity)? = w;
        self.written = self.written.wrapping_add(1);
        Ok(())
    }
    fn part(&mut self, x: u32, width: u32) -> Result<(), Fail> {
        self.acc |= x.wrapping_shl(self.bits);
        self.bits = self.bits.wrapping_add(width);
        if self.bits == 32 {
            let w = self.acc;
            (self.acc, self.bits) = (0, 0);
            self.word(w)?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Fail> {
        if self.bits > 0 {
            let w = self.acc;
            (self.acc, self.bits) = (0, 0);
            self.word(w)?;
        }
        Ok(())
    }
}

/// Every buffer a case may use, at the largest size.
struct Bufs {
    p32: [f32; N_MAX],
    pbf: [bf16; N_MAX],
    pf16: [f16; N_MAX],
    comp: [bf16; N_MAX],
    g32: [f32; N_MAX],
    gbf: [bf16; N_MAX],
    gf16: [f16; N_MAX],
    v32: [f32; N_MAX * MAX_PLANES],
    vbf: [bf16; N_MAX * MAX_PLANES],
    vf16: [f16; N_MAX * MAX_PLANES],
    codes: [u8; N_MAX * MAX_PLANES],
    scales: [f32; MAX_SCALES],
}

/// Where one piece's buffers start: its first element and its state's first value, code and
/// scale (pieces keep their state one after another).
#[derive(Clone, Copy, Debug, Default)]
struct PieceAt {
    start: usize,
    len: usize,
    values: usize,
    codes: usize,
    scales: usize,
}

/// The pieces of an `n`-value tensor: one, or two split at [`Storage::split`].
fn pieces(storage: &Storage, planes: usize, n: usize, two: bool) -> ([PieceAt; 2], usize) {
    let split = storage.split(n);
    let lens = if two && split > 0 {
        [split, n.wrapping_sub(split)]
    } else {
        [n, 0]
    };
    let mut at = [PieceAt::default(); 2];
    let mut next = PieceAt::default();
    for (a, len) in at.iter_mut().zip(lens) {
        let l = storage.state.layout(planes, len);
        *a = PieceAt { len, ..next };
        next = PieceAt {
            start: next.start.wrapping_add(len),
            len: 0,
            values: next.values.wrapping_add(l.values),
            codes: next.codes.wrapping_add(l.codes),
            scales: next.scales.wrapping_add(l.scales),
        };
    }
    (at, if lens[1] > 0 { 2 } else { 1 })
}

/// A sub-slice, or [`Fail::Capacity`].
fn sub<T>(s: &mut [T], start: usize, len: usize) -> Result<&mut [T], Fail> {
    s.get_mut(start..start.wrapping_add(len))
        .ok_or(Fail::Capacity)
}

/// Applies `plan` to one piece of the buffers.
fn apply_piece<P: StepPlan>(
    plan: &P,
    backend: Option<Backend>,
    storage: &Storage,
    planes: usize,
    b: &mut Bufs,
    at: PieceAt,
) -> Result<(), Fail> {
    let (s, len) = (at.start, at.len);
    let l = storage.state.layout(planes, len);
    let params = match storage.params {
        ParamStore::F32 => Params::F32(sub(&mut b.p32, s, len)?),
        ParamStore::Bf16 => Params::Bf16(sub(&mut b.pbf, s, len)?),
        ParamStore::F16 => Params::F16(sub(&mut b.pf16, s, len)?),
        ParamStore::Bf16Stochastic(seed) => Params::Bf16Stochastic {
            params: sub(&mut b.pbf, s, len)?,
            seed,
        },
        ParamStore::Bf16Kahan => Params::Bf16Kahan {
            params: sub(&mut b.pbf, s, len)?,
            compensation: sub(&mut b.comp, s, len)?,
        },
    };
    let grads = match storage.grads {
        GradStore::F32 => Grads::F32(sub(&mut b.g32, s, len)?),
        GradStore::Bf16 => Grads::Bf16(sub(&mut b.gbf, s, len)?),
        GradStore::F16 => Grads::F16(sub(&mut b.gf16, s, len)?),
    };
    let (codes, scales) = (
        sub(&mut b.codes, at.codes, l.codes)?,
        sub(&mut b.scales, at.scales, l.scales)?,
    );
    let state = match storage.state {
        StateFormat::F32 => State::F32(sub(&mut b.v32, at.values, l.values)?),
        StateFormat::Bf16 => State::Bf16(sub(&mut b.vbf, at.values, l.values)?),
        StateFormat::F16 => State::F16(sub(&mut b.vf16, at.values, l.values)?),
        StateFormat::Int8 => State::Int8 { codes, scales },
        StateFormat::Int4 => State::Int4 { codes, scales },
        _ => State::Fp8 { codes, scales },
    };
    match backend {
        Some(backend) => plan.apply_piece(backend, s, params, grads, state)?,
        None => plan.apply_to(params, grads, state)?,
    }
    Ok(())
}

/// Writes the parameters, the compensation and the state (plane by plane in whole-tensor
/// order, then the scales) of the pieces `at`.
fn record(
    storage: &Storage,
    planes: usize,
    n: usize,
    b: &Bufs,
    at: &[PieceAt],
    w: &mut Out<'_>,
) -> Result<(), Fail> {
    let pr = 0..n;
    match storage.params {
        ParamStore::F32 => {
            for x in b.p32.get(pr).ok_or(Fail::Capacity)? {
                w.word(bits(*x))?;
            }
        }
        ParamStore::F16 => {
            for x in b.pf16.get(pr).ok_or(Fail::Capacity)? {
                w.part(u32::from(bits_f16(*x)), 16)?;
            }
        }
        ParamStore::Bf16 | ParamStore::Bf16Stochastic(_) => {
            for x in b.pbf.get(pr).ok_or(Fail::Capacity)? {
                w.part(u32::from(bits_bf16(*x)), 16)?;
            }
        }
        ParamStore::Bf16Kahan => {
            for x in b.pbf.get(pr.clone()).ok_or(Fail::Capacity)? {
                w.part(u32::from(bits_bf16(*x)), 16)?;
            }
            w.flush()?;
            for x in b.comp.get(pr).ok_or(Fail::Capacity)? {
                w.part(u32::from(bits_bf16(*x)), 16)?;
            }
        }
    }
    w.flush()?;
    for j in 0..planes {
        for a in at {
            let one = storage.state.layout(1, a.len);
            let v = a.values.wrapping_add(j.wrapping_mul(one.values));
            let vr = v..v.wrapping_add(one.values);
            let c = a.codes.wrapping_add(j.wrapping_mul(one.codes));
            let cr = c..c.wrapping_add(one.codes);
            match storage.state {
                StateFormat::F32 => {
                    for x in b.v32.get(vr).ok_or(Fail::Capacity)? {
                        w.word(bits(*x))?;
                    }
                }
                StateFormat::Bf16 => {
                    for x in b.vbf.get(vr).ok_or(Fail::Capacity)? {
                        w.part(u32::from(bits_bf16(*x)), 16)?;
                    }
                }
                StateFormat::F16 => {
                    for x in b.vf16.get(vr).ok_or(Fail::Capacity)? {
                        w.part(u32::from(bits_f16(*x)), 16)?;
                    }
                }
                StateFormat::Fp8 => {
                    for x in b.codes.get(cr).ok_or(Fail::Capacity)? {
                        w.part(u32::from(bits_fp8(*x)), 8)?;
                    }
                }
                _ => {
                    for x in b.codes.get(cr).ok_or(Fail::Capacity)? {
                        w.part(u32::from(*x), 8)?;
                    }
                }
            }
        }
        w.flush()?;
        for a in at {
            let one = storage.state.layout(1, a.len).scales;
            let s = a.scales.wrapping_add(j.wrapping_mul(one));
            for x in b.scales.get(s..s.wrapping_add(one)).ok_or(Fail::Capacity)? {
                w.word(bits(*x))?;
            }
        }
    }
    Ok(())
}

/// Runs one case on `n` parameters (`n` is a run-time value, at most the storage's length):
/// a fresh state (`init_state` / `init_state_in`), then `STEPS` steps from `first_step`,
/// writing the bits of the parameters and the state after every step into `out`. Returns how
/// many words it wrote.
///
/// # Errors
/// The crate's error, or [`Fail::Capacity`] when `n` or the state does not fit.
pub fn run_case<O: Optimizer>(
    opt: &O,
    first_step: u64,
    path: Path,
    storage: &Storage,
    n: usize,
    out: &mut [u32],
) -> Result<usize, Fail> {
    if n > storage.n || n > N_MAX {
        return Err(Fail::Capacity);
    }
    // The `microbit` build (256 KiB of flash) compiles in only the plain f32 API.
    if cfg!(feature = "microbit") && !(storage.is_f32() && path != Path::Pieces) {
        return Err(Fail::Capacity);
    }
    let planes = opt.state_len(1);
    if planes > MAX_PLANES {
        return Err(Fail::Capacity);
    }
    let mut b = Bufs {
        p32: [0.0; N_MAX],
        pbf: [bf16::ZERO; N_MAX],
        pf16: [f16::ZERO; N_MAX],
        comp: [bf16::ZERO; N_MAX],
        g32: [0.0; N_MAX],
        gbf: [bf16::ZERO; N_MAX],
        gf16: [f16::ZERO; N_MAX],
        v32: [0.0; N_MAX * MAX_PLANES],
        vbf: [bf16::ZERO; N_MAX * MAX_PLANES],
        vf16: [f16::ZERO; N_MAX * MAX_PLANES],
        codes: [0; N_MAX * MAX_PLANES],
        scales: [0.0; MAX_SCALES],
    };
    // Indices from a range, not `enumerate` (whose counter keeps an overflow check in the
    // build with overflow checks).
    for (i, ((p, pb), ph)) in (0..n).zip(
        b.p32
            .iter_mut()
            .zip(b.pbf.iter_mut())
            .zip(b.pf16.iter_mut()),
    ) {
        let x = param_in(storage, i);
        (*p, *pb, *ph) = (x, bf16::from_f32(x), f16::from_f32(x));
    }
    let (at, count) = pieces(storage, planes, n, path == Path::Pieces);
    let at = at.get(..count).unwrap_or_default();
    let whole = storage.state.layout(planes, n);

    // The plain f32 API for the f32 cases. In the `microbit` build (only those reach here)
    // the storage-format branches are dead at compile time, whatever the inliner decides.
    let plain_f32 = cfg!(feature = "microbit") || (storage.is_f32() && path != Path::Pieces);
    // A fresh state, through the f32 API for the f32 cases.
    if plain_f32 {
        opt.init_state(b.v32.get_mut(..whole.values).ok_or(Fail::Capacity)?)?;
    } else {
        for a in at {
            let l = storage.state.layout(planes, a.len);
            let (codes, scales) = (
                sub(&mut b.codes, a.codes, l.codes)?,
                sub(&mut b.scales, a.scales, l.scales)?,
            );
            let state = match storage.state {
                StateFormat::F32 => State::F32(sub(&mut b.v32, a.values, l.values)?),
                StateFormat::Bf16 => State::Bf16(sub(&mut b.vbf, a.values, l.values)?),
                StateFormat::F16 => State::F16(sub(&mut b.vf16, a.values, l.values)?),
                StateFormat::Int8 => State::Int8 { codes, scales },
                StateFormat::Int4 => State::Int4 { codes, scales },
                _ => State::Fp8 { codes, scales },
            };
            opt.init_state_in(state)?;
        }
    }

    let mut w = Out {
        words: out.iter_mut(),
        acc: 0,
        bits: 0,
        written: 0,
    };
    let mut scalars = O::Scalars::default();
    let mut t = first_step;
    for k in 0..STEPS {
        for (i, ((g, gb), gh)) in (0..n).zip(
            b.g32
                .iter_mut()
                .zip(b.gbf.iter_mut())
                .zip(b.gf16.iter_mut()),
        ) {
            let x = grad_in(storage, n, i, k);
            (*g, *gb, *gh) = (x, bf16::from_f32(x), f16::from_f32(x));
        }
        let plan = opt.plan(t, &scalars)?;
        if plain_f32 {
            // The plain f32 API.
            let p = b.p32.get_mut(..n).ok_or(Fail::Capacity)?;
            let g = b.g32.get(..n).ok_or(Fail::Capacity)?;
            let s = b.v32.get_mut(..whole.values).ok_or(Fail::Capacity)?;
            match path {
                Path::On(backend) => plan.apply_on(backend, p, g, s)?,
                _ => plan.apply(p, g, s)?,
            }
        } else {
            let backend = match path {
                Path::On(backend) => Some(backend),
                Path::Best => None,
                Path::Pieces => Some(Backend::best()),
            };
            for a in at {
                apply_piece(&plan, backend, storage, planes, &mut b, *a)?;
            }
        }
        scalars = plan.scalars_after();
        t = t.saturating_add(1);
        record(storage, planes, n, &b, at, &mut w)?;
    }
    Ok(w.written)
}

/// Rows of the SparseAdam cases' table.
pub const SPARSE_ROWS: usize = 2;

/// The rows the SparseAdam cases' gradient touches at the `k`-th step (`k` from 0): the second
/// row, the first (updated for the first time at step 2), both (sorted and unique).
#[inline]
pub fn sparse_rows(k: usize) -> &'static [u8] {
    match k % 3 {
        0 => &[1],
        1 => &[0],
        _ => &[0, 1],
    }
}

/// Runs one SparseAdam case on a table of [`SPARSE_ROWS`] rows of `dim` values (`dim` a
/// run-time value, at most [`N`]): a zero state, then `STEPS` steps from `first_step`, step `k`
/// touching [`sparse_rows`]`(k)` with the gradient values [`grad`] gives element `i` of the
/// table at step `k`. [`Path::Pieces`] applies each step's rows in two calls (the first row,
/// then the others). Writes the table and the state (`exp_avg` then `exp_avg_sq`) after every
/// step into `out`; returns how many words it wrote.
///
/// # Errors
/// The crate's error, or [`Fail::Capacity`] when `dim` or `out` does not fit.
pub fn run_sparse_case(
    opt: &SparseAdam,
    first_step: u64,
    path: Path,
    dim: usize,
    out: &mut [u32],
) -> Result<usize, Fail> {
    const CAP: usize = SPARSE_ROWS * N;
    if dim > N {
        return Err(Fail::Capacity);
    }
    let n = SPARSE_ROWS.wrapping_mul(dim);
    let mut p = [0.0f32; CAP];
    let mut s = [0.0f32; 2 * CAP];
    let mut g = [0.0f32; CAP];
    let p = p.get_mut(..n).ok_or(Fail::Capacity)?;
    let s = s.get_mut(..n.wrapping_mul(2)).ok_or(Fail::Capacity)?;
    for (i, x) in (0..n).zip(p.iter_mut()) {
        *x = param0(i);
    }
    let mut w = Out {
        words: out.iter_mut(),
        acc: 0,
        bits: 0,
        written: 0,
    };
    let mut t = first_step;
    for k in 0..STEPS {
        let rows = sparse_rows(k);
        let values = g
            .get_mut(..rows.len().wrapping_mul(dim))
            .ok_or(Fail::Capacity)?;
        // Row `row`'s values are those [`grad`] gives its elements of the table.
        let mut slots = values.iter_mut();
        for &row in rows {
            let start = usize::from(row).wrapping_mul(dim);
            for c in 0..dim {
                if let Some(x) = slots.next() {
                    *x = grad(start.wrapping_add(c), k);
                }
            }
        }
        let values = &*values;
        let plan = opt.plan(t)?;
        let grad = SparseGrad::new(dim, rows, values);
        match path {
            Path::On(backend) => plan.apply_on(backend, p, grad, s)?,
            Path::Best => plan.apply(p, grad, s)?,
            Path::Pieces => {
                let (first, rest) = rows.split_at_checked(1).unwrap_or_default();
                let (gf, gr) = values.split_at_checked(dim).unwrap_or_default();
                plan.apply(p, SparseGrad::new(dim, first, gf), s)?;
                plan.apply(p, SparseGrad::new(dim, rest, gr), s)?;
            }
        }
        t = t.saturating_add(1);
        for x in p.iter().chain(s.iter()) {
            w.word(bits(*x))?;
        }
    }
    Ok(w.written)
}

/// The first index where `got` and `want` differ (a length difference counts at the shorter
/// length).
#[inline]
pub fn first_difference(got: &[u32], want: &[u32]) -> Option<usize> {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => Some(i),
        None if got.len() != want.len() => Some(got.len().min(want.len())),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    //! Regenerates the expected bits on this machine and compares them with the committed
    //! file, after checking that every backend here gives the same bits. On x86_64 this keeps
    //! `src/expected.rs` from going stale (`FUSED_OPTIM_BLESS=1` rewrites it); on aarch64
    //! (under qemu-aarch64 in CI) it checks that NEON gives the bits recorded on x86_64.
    use super::*;
    use std::fmt::Write as _;
    use std::string::String;
    use std::vec::Vec;

    struct Record {
        text: String,
        cases: usize,
    }

    impl Visit for Record {
        fn case_in<O: Optimizer>(
            &mut self,
            name: &'static str,
            first_step: u64,
            opt: O,
            storage: &Storage,
        ) {
            let run = |path: Path| {
                let mut out = std::vec![0u32; MAX_OUT];
                let len = run_case(&opt, first_step, path, storage, storage.n, &mut out)
                    .unwrap_or_else(|e| panic!("{name} on {}: {e:?}", path.name()));
                out[..len].to_vec()
            };
            let reference = run(Path::On(Backend::Scalar));
            let paths = Backend::available()
                .map(Path::On)
                .chain([Path::Best, Path::Pieces]);
            for path in paths {
                let got = run(path);
                assert_eq!(
                    first_difference(&got, &reference),
                    None,
                    "{name}: {} differs from scalar",
                    path.name()
                );
            }
            assert_eq!(reference.len() % STEPS, 0);
            let _ = writeln!(self.text, "    ({name:?}, &[");
            for line in reference.chunks(8) {
                let words: Vec<String> = line.iter().map(|b| std::format!("0x{b:08x}")).collect();
                let _ = writeln!(self.text, "        {},", words.join(", "));
            }
            let _ = writeln!(self.text, "    ]),");
            self.cases += 1;
        }

        fn sparse_case(&mut self, name: &'static str, first_step: u64, opt: SparseAdam) {
            let run = |path: Path| {
                let mut out = std::vec![0u32; MAX_OUT];
                let len = run_sparse_case(&opt, first_step, path, N, &mut out)
                    .unwrap_or_else(|e| panic!("{name} on {}: {e:?}", path.name()));
                out[..len].to_vec()
            };
            let reference = run(Path::On(Backend::Scalar));
            let paths = Backend::available()
                .map(Path::On)
                .chain([Path::Best, Path::Pieces]);
            for path in paths {
                assert_eq!(
                    first_difference(&run(path), &reference),
                    None,
                    "{name}: {} differs from scalar",
                    path.name()
                );
            }
            self.push(name, &reference);
        }
    }

    impl Record {
        fn push(&mut self, name: &str, reference: &[u32]) {
            assert_eq!(reference.len() % STEPS, 0);
            let _ = writeln!(self.text, "    ({name:?}, &[");
            for line in reference.chunks(8) {
                let words: Vec<String> = line.iter().map(|b| std::format!("0x{b:08x}")).collect();
                let _ = writeln!(self.text, "        {},", words.join(", "));
            }
            let _ = writeln!(self.text, "    ]),");
            self.cases += 1;
        }
    }

    fn generate() -> (String, usize) {
        let mut r = Record {
            text: String::new(),
            cases: 0,
        };
        cases(&mut r);
        let text = std::format!(
            "//! Expected bits of every case in `cases`, recorded on x86_64 (every backend there \
             agrees).\n\
             //! Generated by `FUSED_OPTIM_BLESS=1 cargo test --lib`: do not edit by hand.\n\n\
             /// `(case name, bits)`: the parameters then the state after each of the `STEPS` \
             steps, NaN as `0x7fc00000`.\n\
             #[rustfmt::skip]\n\
             pub static EXPECTED: &[(&str, &[u32])] = &[\n{}];\n",
            r.text
        );
        (text, r.cases)
    }

    #[test]
    fn expected_bits_are_current() {
        let (text, count) = generate();
        assert!(count >= 2, "no cases ran");
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/expected.rs");
        if std::env::var_os("FUSED_OPTIM_BLESS").is_some() {
            std::fs::write(path, &text).unwrap();
            return;
        }
        let committed = include_str!("expected.rs");
        if let Some((i, (a, b))) = committed
            .lines()
            .zip(text.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!(
                "src/expected.rs line {}: committed `{a}`, this machine computes `{b}` \
                 (on x86_64 after an intended change: FUSED_OPTIM_BLESS=1 cargo test --lib)",
                i + 1
            );
        }
        assert_eq!(
            committed.lines().count(),
            text.lines().count(),
            "case count changed"
        );
        assert_eq!(expected::EXPECTED.len(), count);
    }

    /// An independent check of the recording itself: plain SGD's first step is
    /// `p − 0.1·g` in f32 (one product, one difference), written out here without the crate.
    #[test]
    #[allow(
        clippy::needless_range_loop,
        reason = "i is the element index of both sides"
    )]
    fn plain_sgd_first_step_is_p_minus_lr_g() {
        let (name, bits_) = expected::EXPECTED[0];
        assert_eq!(name, "sgd");
        for i in 0..N {
            let want = param0(i) - 0.1f32 * grad(i, 0);
            assert_eq!(bits_[i], bits(want), "element {i}");
        }
    }

    fn recorded(name: &str) -> &'static [u32] {
        expected::EXPECTED
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no case {name}"))
            .1
    }

    /// An independent check of the 8-bit recording: after torchao AdamW8bit's first step from
    /// zero state, `m = g·f32(1 − β1)` and `v = (g·g)·f32(1 − β2)` exactly (lerp from 0 with a
    /// weight below 0.5 is `0 + (b − 0)·w`), so each block's scale is the largest of those
    /// magnitudes, computed here without the crate.
    #[test]
    fn int8_first_step_scales_are_the_block_absmax() {
        let storage = Storage {
            params: ParamStore::F32,
            grads: GradStore::F32,
            state: StateFormat::Int8,
            n: 512,
        };
        let rec = recorded("torchao adamw8bit int8");
        let (w1, w2) = ((1.0f64 - 0.9) as f32, (1.0f64 - 0.999) as f32);
        // Step 1's words: 512 parameters, then per plane 128 code words and 2 scales.
        let scale = |plane: usize, block: usize| rec[512 + plane * 130 + 128 + block];
        for block in 0..2 {
            let g = |i: usize| grad_in(&storage, 512, block * 256 + i, 0);
            let m = (0..256).map(|i| (g(i) * w1).abs()).fold(0.0f32, f32::max);
            let v = (0..256)
                .map(|i| (g(i) * g(i) * w2).abs())
                .fold(0.0f32, f32::max);
            assert_eq!(scale(0, block), m.to_bits(), "m scale of block {block}");
            assert_eq!(scale(1, block), v.to_bits(), "v scale of block {block}");
        }
    }

    /// An independent check of the stochastic-rounding recording: every bf16 parameter after
    /// the first step is one of the two bf16 neighbours of the `f32` step (the crate's plain
    /// `f32` API on the same widened inputs), or that value itself when bf16 holds it.
    #[test]
    fn stochastic_rounding_lands_on_a_neighbour_of_the_f32_step() {
        let storage = Storage {
            params: ParamStore::Bf16Stochastic(42),
            grads: GradStore::F32,
            state: StateFormat::F32,
            n: N,
        };
        let rec = recorded("adamw bf16 sr params");
        let opt = Adam {
            lr: 0.01,
            ..Adam::adamw()
        };
        let mut p: Vec<f32> = (0..N)
            .map(|i| bf16::from_f32(param_in(&storage, i)).to_f32())
            .collect();
        let g: Vec<f32> = (0..N).map(|i| grad_in(&storage, N, i, 0)).collect();
        let mut s = std::vec![0.0f32; 2 * N];
        opt.plan(1)
            .unwrap()
            .apply_on(Backend::Scalar, &mut p, &g, &mut s)
            .unwrap();
        let mut up_or_down = [0usize; 2];
        for (i, x) in p.iter().enumerate() {
            let b = (rec[i / 2] >> (16 * (i % 2))) as u16;
            let got = bf16::from_bits(b).to_f32();
            if x.is_nan() {
                assert_eq!(b, 0x7fc0, "element {i}");
                continue;
            }
            // The bf16 values just below and just above x (toward zero: truncation).
            let t = f32::from_bits(x.to_bits() & 0xffff_0000);
            let away = f32::from_bits((x.to_bits() & 0xffff_0000).wrapping_add(0x1_0000));
            let (lo, hi) = if t == *x {
                (t, t)
            } else {
                (t.min(away), t.max(away))
            };
            assert!(
                got == lo || got == hi,
                "element {i}: {got} is not {lo} or {hi} (f32 step {x})"
            );
            if lo != hi {
                up_or_down[usize::from(got == hi)] += 1;
            }
        }
        // Both directions occur (not round-to-nearest in disguise).
        assert!(up_or_down[0] > 0 && up_or_down[1] > 0, "{up_or_down:?}");
    }

    /// An independent check of the SparseAdam recording: step 1 touches only row 1, so row 0
    /// of the table keeps its initial bits and its state stays zero; step 2 touches row 0.
    #[test]
    fn sparse_adam_leaves_untouched_rows_alone() {
        let rec = recorded("sparse_adam");
        let n = SPARSE_ROWS * N;
        let step = |k: usize| &rec[k * 3 * n..(k + 1) * 3 * n];
        assert_eq!(sparse_rows(0), &[1]);
        for i in 0..N {
            assert_eq!(step(0)[i], bits(param0(i)), "table element {i}");
            assert_eq!(step(0)[n + i], 0, "exp_avg element {i}");
            assert_eq!(step(0)[2 * n + i], 0, "exp_avg_sq element {i}");
        }
        // Step 2 moves row 0's ordinary elements and leaves row 1 as step 1 left it.
        assert!((0..N).any(|i| step(1)[i] != step(0)[i]));
        assert_eq!(step(1)[N..n], step(0)[N..n]);
    }

    #[test]
    fn inputs_cover_the_special_values() {
        let vals: Vec<f32> = (0..N)
            .map(param0)
            .chain((0..STEPS).flat_map(|k| (0..N).map(move |i| grad(i, k))))
            .collect();
        assert!(vals.iter().any(|x| x.is_nan()));
        assert!(vals.contains(&f32::INFINITY));
        assert!(vals.contains(&f32::NEG_INFINITY));
        assert!(vals.iter().any(|x| x.is_subnormal()));
        assert!(vals.iter().any(|x| x.to_bits() == 0x8000_0000));
        assert!(vals.iter().any(|x| x.abs() > 1e38));
    }

    #[test]
    fn a_length_that_does_not_fit_is_refused() {
        let mut out = std::vec![0u32; MAX_OUT];
        let f32_ = &Storage::F32;
        assert_eq!(
            run_case(&Sgd::default(), 1, Path::Best, f32_, N + 1, &mut out),
            Err(Fail::Capacity)
        );
        assert_eq!(
            run_case(&Sgd::default(), 1, Path::Best, f32_, N, &mut out[..3]),
            Err(Fail::Capacity)
        );
    }
}
