//! Storage formats: bf16/f16 parameters and gradients, bf16/f16 and block-quantized state
//! (int8, int4, fp8), stochastic rounding (SR) and Kahan-compensated bf16.
//!
//! - Every backend this CPU supports gives the scalar reference's bits (NaN as a class) for
//!   every optimizer × parameter/gradient format × state format, every tail length, special
//!   values in every input, and fresh or random state (random codes and scales for the block
//!   formats).
//! - The element formats are the `f32` step with each operand widened and each store rounded
//!   once (checked against `half`'s conversions and the documented Kahan rule; SR rounds to one
//!   of the two neighbours).
//! - Any split at block multiples (anywhere, for the element formats) gives the bits of the
//!   whole tensor; a piece that starts inside a block is refused and writes nothing.
//! - SR is unbiased, differs between seeds and steps, and, with Kahan, keeps updates that round
//!   to nearest loses.
//! - Every error (lengths, alignment, backend) writes nothing.
//!
//! Tests are grouped by backend, so the test names say which backends ran; a backend this CPU
//! lacks is reported on stderr and checked to be refused.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

mod common;
mod strategies;

use core::ops::Range;
use std::io::Write;

use common::Rng;
use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Asgd, Backend, Error, Grads, Lion, NAdam, Optimizer, Params,
    RAdam, RMSprop, Rprop, Sgd, State, StateFormat, StepPlan, TensorStep, TorchaoAdam, bf16, f16,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Owned buffers in every format

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamKind {
    F32,
    Bf16,
    F16,
    Bf16Sr,
    Bf16Kahan,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GradKind {
    F32,
    Bf16,
    F16,
}

/// The parameter/gradient combinations under test.
const COMBOS: [(ParamKind, GradKind); 7] = [
    (ParamKind::F32, GradKind::F32),
    (ParamKind::F32, GradKind::Bf16),
    (ParamKind::F32, GradKind::F16),
    (ParamKind::Bf16, GradKind::Bf16),
    (ParamKind::F16, GradKind::F16),
    (ParamKind::Bf16Sr, GradKind::Bf16),
    (ParamKind::Bf16Kahan, GradKind::Bf16),
];

const FORMATS: [StateFormat; 6] = [
    StateFormat::F32,
    StateFormat::Bf16,
    StateFormat::F16,
    StateFormat::Int8,
    StateFormat::Int4,
    StateFormat::Fp8,
];

/// Lengths that hit every tail of every lane width, the block edges, and a few large ones.
fn lengths() -> impl Iterator<Item = usize> {
    (0..=80).chain([127, 255, 256, 257, 1000, 4133])
}

/// A bf16 special-heavy value: `special_f32` rounded, or any bit pattern.
fn random_bf16(rng: &mut Rng) -> bf16 {
    if rng.next_u64().is_multiple_of(16) {
        bf16::from_bits(rng.next_u64() as u16)
    } else {
        bf16::from_f32(rng.special_f32())
    }
}

fn random_f16(rng: &mut Rng) -> f16 {
    if rng.next_u64().is_multiple_of(16) {
        f16::from_bits(rng.next_u64() as u16)
    } else {
        f16::from_f32(rng.special_f32())
    }
}

/// A block scale: mostly a plausible absmax (1e-12 to 1e3), sometimes any special value.
fn random_scale(rng: &mut Rng) -> f32 {
    if rng.next_u64().is_multiple_of(4) {
        rng.special_f32()
    } else {
        10f64.powf(rng.range(-12.0, 3.0)) as f32
    }
}

/// Bits with NaN made canonical (NaN is compared as a class).
fn class32(x: f32) -> u32 {
    if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() }
}

fn class_bf16(x: bf16) -> u32 {
    if x.is_nan() {
        0x7fc0
    } else {
        u32::from(x.to_bits())
    }
}

fn class_f16(x: f16) -> u32 {
    if x.is_nan() {
        0x7e00
    } else {
        u32::from(x.to_bits())
    }
}

/// Named buffers as bit vectors, for comparison and for "nothing written" checks.
type Bits = Vec<(&'static str, Vec<u32>)>;

/// The first difference between two snapshots: buffer, index and both values.
fn first_diff(a: &[(&'static str, Vec<u32>)], b: &[(&'static str, Vec<u32>)]) -> Option<String> {
    for ((name, x), (_, y)) in a.iter().zip(b) {
        if x.len() != y.len() {
            return Some(format!("{name}: lengths {} vs {}", x.len(), y.len()));
        }
        if let Some(i) = x.iter().zip(y).position(|(u, v)| u != v) {
            return Some(format!("{name}[{i}]: {:#x} vs {:#x}", x[i], y[i]));
        }
    }
    (a.len() != b.len()).then(|| "different buffers".to_string())
}

#[derive(Clone, Debug)]
enum ParamBuf {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
    Sr { params: Vec<bf16>, seed: u64 },
    Kahan { params: Vec<bf16>, comp: Vec<bf16> },
}

impl ParamBuf {
    fn random(kind: ParamKind, n: usize, rng: &mut Rng) -> Self {
        let bf = |rng: &mut Rng| (0..n).map(|_| random_bf16(rng)).collect::<Vec<_>>();
        match kind {
            ParamKind::F32 => ParamBuf::F32(rng.vec_special(n)),
            ParamKind::Bf16 => ParamBuf::Bf16(bf(rng)),
            ParamKind::F16 => ParamBuf::F16((0..n).map(|_| random_f16(rng)).collect()),
            ParamKind::Bf16Sr => ParamBuf::Sr {
                params: bf(rng),
                seed: rng.next_u64(),
            },
            ParamKind::Bf16Kahan => {
                let params = bf(rng);
                // A compensation is a rounding error: usually small, sometimes special.
                let comp = (0..n)
                    .map(|_| match rng.next_u64() % 4 {
                        0 => random_bf16(rng),
                        1 => bf16::ZERO,
                        _ => bf16::from_f32(rng.finite_f32(1e-3)),
                    })
                    .collect();
                ParamBuf::Kahan { params, comp }
            }
        }
    }

    fn params(&mut self) -> Params<'_> {
        match self {
            ParamBuf::F32(p) => Params::F32(p),
            ParamBuf::Bf16(p) => Params::Bf16(p),
            ParamBuf::F16(p) => Params::F16(p),
            ParamBuf::Sr { params, seed } => Params::Bf16Stochastic {
                params,
                seed: *seed,
            },
            ParamBuf::Kahan { params, comp } => Params::Bf16Kahan {
                params,
                compensation: comp,
            },
        }
    }

    fn slice(&self, r: Range<usize>) -> Self {
        match self {
            ParamBuf::F32(p) => ParamBuf::F32(p[r].to_vec()),
            ParamBuf::Bf16(p) => ParamBuf::Bf16(p[r].to_vec()),
            ParamBuf::F16(p) => ParamBuf::F16(p[r].to_vec()),
            ParamBuf::Sr { params, seed } => ParamBuf::Sr {
                params: params[r].to_vec(),
                seed: *seed,
            },
            ParamBuf::Kahan { params, comp } => ParamBuf::Kahan {
                params: params[r.clone()].to_vec(),
                comp: comp[r].to_vec(),
            },
        }
    }

    fn put(&mut self, at: usize, piece: &Self) {
        fn put<T: Copy>(dst: &mut [T], at: usize, src: &[T]) {
            dst[at..at + src.len()].copy_from_slice(src);
        }
        match (self, piece) {
            (ParamBuf::F32(d), ParamBuf::F32(s)) => put(d, at, s),
            (ParamBuf::Bf16(d), ParamBuf::Bf16(s)) => put(d, at, s),
            (ParamBuf::F16(d), ParamBuf::F16(s)) => put(d, at, s),
            (ParamBuf::Sr { params: d, .. }, ParamBuf::Sr { params: s, .. }) => put(d, at, s),
            (
                ParamBuf::Kahan {
                    params: d,
                    comp: dc,
                },
                ParamBuf::Kahan {
                    params: s,
                    comp: sc,
                },
            ) => {
                put(d, at, s);
                put(dc, at, sc);
            }
            _ => unreachable!("pieces have the tensor's format"),
        }
    }

    fn bits(&self, class: bool) -> Bits {
        let b16 = |v: &[bf16]| -> Vec<u32> {
            v.iter()
                .map(|x| {
                    if class {
                        class_bf16(*x)
                    } else {
                        u32::from(x.to_bits())
                    }
                })
                .collect()
        };
        match self {
            ParamBuf::F32(p) => vec![(
                "params",
                p.iter()
                    .map(|x| if class { class32(*x) } else { x.to_bits() })
                    .collect(),
            )],
            ParamBuf::Bf16(p) | ParamBuf::Sr { params: p, .. } => vec![("params", b16(p))],
            ParamBuf::F16(p) => vec![(
                "params",
                p.iter()
                    .map(|x| {
                        if class {
                            class_f16(*x)
                        } else {
                            u32::from(x.to_bits())
                        }
                    })
                    .collect(),
            )],
            ParamBuf::Kahan { params, comp } => {
                vec![("params", b16(params)), ("compensation", b16(comp))]
            }
        }
    }
}

#[derive(Clone, Debug)]
enum GradBuf {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

impl GradBuf {
    fn random(kind: GradKind, n: usize, rng: &mut Rng) -> Self {
        match kind {
            GradKind::F32 => GradBuf::F32(rng.vec_special(n)),
            GradKind::Bf16 => GradBuf::Bf16((0..n).map(|_| random_bf16(rng)).collect()),
            GradKind::F16 => GradBuf::F16((0..n).map(|_| random_f16(rng)).collect()),
        }
    }

    fn grads(&self) -> Grads<'_> {
        match self {
            GradBuf::F32(g) => Grads::F32(g),
            GradBuf::Bf16(g) => Grads::Bf16(g),
            GradBuf::F16(g) => Grads::F16(g),
        }
    }

    fn slice(&self, r: Range<usize>) -> Self {
        match self {
            GradBuf::F32(g) => GradBuf::F32(g[r].to_vec()),
            GradBuf::Bf16(g) => GradBuf::Bf16(g[r].to_vec()),
            GradBuf::F16(g) => GradBuf::F16(g[r].to_vec()),
        }
    }
}

#[derive(Clone, Debug)]
enum StateBuf {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
    Block {
        format: StateFormat,
        codes: Vec<u8>,
        scales: Vec<f32>,
    },
}

/// Where plane `j` of a piece `[a, b)` lives in each buffer of the whole tensor's state:
/// `(values or codes, scales)`, as `StateFormat::layout` describes (planes one after another).
fn plane_ranges(
    format: StateFormat,
    planes: usize,
    n: usize,
    a: usize,
    b: usize,
) -> Vec<(Range<usize>, Range<usize>)> {
    let one = format.layout(1, n);
    let block = format.block();
    (0..planes)
        .map(|j| match format {
            StateFormat::Int4 => (
                j * one.codes + a / 2..j * one.codes + b.div_ceil(2),
                j * one.scales + a / block..j * one.scales + b.div_ceil(block),
            ),
            StateFormat::Int8 | StateFormat::Fp8 => (
                j * one.codes + a..j * one.codes + b,
                j * one.scales + a / block..j * one.scales + b.div_ceil(block),
            ),
            _ => (j * n + a..j * n + b, 0..0),
        })
        .collect()
}

impl StateBuf {
    fn zeroed(format: StateFormat, planes: usize, n: usize) -> Self {
        let l = format.layout(planes, n);
        match format {
            StateFormat::F32 => StateBuf::F32(vec![0.0; l.values]),
            StateFormat::Bf16 => StateBuf::Bf16(vec![bf16::ZERO; l.values]),
            StateFormat::F16 => StateBuf::F16(vec![f16::ZERO; l.values]),
            _ => StateBuf::Block {
                format,
                codes: vec![0; l.codes],
                scales: vec![0.0; l.scales],
            },
        }
    }

    /// What torch starts from, written by `init_state_in`.
    fn fresh<O: Optimizer>(opt: &O, format: StateFormat, planes: usize, n: usize) -> Self {
        let mut s = Self::zeroed(format, planes, n);
        opt.init_state_in(s.state()).unwrap();
        s
    }

    /// A state as a previous step could have left it, and worse: special values, random codes,
    /// random scales (special ones included).
    fn random(format: StateFormat, planes: usize, n: usize, rng: &mut Rng) -> Self {
        let l = format.layout(planes, n);
        match format {
            StateFormat::F32 => StateBuf::F32(rng.vec_special(l.values)),
            StateFormat::Bf16 => StateBuf::Bf16((0..l.values).map(|_| random_bf16(rng)).collect()),
            StateFormat::F16 => StateBuf::F16((0..l.values).map(|_| random_f16(rng)).collect()),
            _ => StateBuf::Block {
                format,
                codes: (0..l.codes).map(|_| rng.next_u64() as u8).collect(),
                scales: (0..l.scales).map(|_| random_scale(rng)).collect(),
            },
        }
    }

    fn state(&mut self) -> State<'_> {
        match self {
            StateBuf::F32(v) => State::F32(v),
            StateBuf::Bf16(v) => State::Bf16(v),
            StateBuf::F16(v) => State::F16(v),
            StateBuf::Block {
                format,
                codes,
                scales,
            } => match format {
                StateFormat::Int8 => State::Int8 { codes, scales },
                StateFormat::Int4 => State::Int4 { codes, scales },
                StateFormat::Fp8 => State::Fp8 { codes, scales },
                other => unreachable!("{other:?} is not a block format"),
            },
        }
    }

    fn format(&self) -> StateFormat {
        match self {
            StateBuf::F32(_) => StateFormat::F32,
            StateBuf::Bf16(_) => StateFormat::Bf16,
            StateBuf::F16(_) => StateFormat::F16,
            StateBuf::Block { format, .. } => *format,
        }
    }

    /// The state of the piece `[a, b)` of a tensor of `n` values: each plane's slice.
    fn piece(&self, planes: usize, n: usize, a: usize, b: usize) -> Self {
        let ranges = plane_ranges(self.format(), planes, n, a, b);
        fn gather<T: Copy>(v: &[T], rs: impl Iterator<Item = Range<usize>>) -> Vec<T> {
            rs.flat_map(|r| v[r].to_vec()).collect()
        }
        let values = || ranges.iter().map(|r| r.0.clone());
        let piece = match self {
            StateBuf::F32(v) => StateBuf::F32(gather(v, values())),
            StateBuf::Bf16(v) => StateBuf::Bf16(gather(v, values())),
            StateBuf::F16(v) => StateBuf::F16(gather(v, values())),
            StateBuf::Block {
                format,
                codes,
                scales,
            } => StateBuf::Block {
                format: *format,
                codes: gather(codes, values()),
                scales: gather(scales, ranges.iter().map(|r| r.1.clone())),
            },
        };
        // The slicing above follows the documented layout: the piece has its own layout.
        let want = self.format().layout(planes, b - a);
        let have = match &piece {
            StateBuf::F32(v) => (v.len(), 0, 0),
            StateBuf::Bf16(v) => (v.len(), 0, 0),
            StateBuf::F16(v) => (v.len(), 0, 0),
            StateBuf::Block { codes, scales, .. } => (0, codes.len(), scales.len()),
        };
        assert_eq!(have, (want.values, want.codes, want.scales), "piece layout");
        piece
    }

    /// Writes a piece's state back into the whole tensor's buffers.
    fn put_piece(&mut self, planes: usize, n: usize, a: usize, b: usize, piece: &Self) {
        let ranges = plane_ranges(self.format(), planes, n, a, b);
        fn scatter<T: Copy>(v: &mut [T], rs: impl Iterator<Item = Range<usize>>, src: &[T]) {
            let mut at = 0;
            for r in rs {
                let len = r.len();
                v[r].copy_from_slice(&src[at..at + len]);
                at += len;
            }
            assert_eq!(at, src.len());
        }
        let values = || ranges.iter().map(|r| r.0.clone());
        match (self, piece) {
            (StateBuf::F32(d), StateBuf::F32(s)) => scatter(d, values(), s),
            (StateBuf::Bf16(d), StateBuf::Bf16(s)) => scatter(d, values(), s),
            (StateBuf::F16(d), StateBuf::F16(s)) => scatter(d, values(), s),
            (
                StateBuf::Block {
                    codes: dc,
                    scales: ds,
                    ..
                },
                StateBuf::Block {
                    codes: sc,
                    scales: ss,
                    ..
                },
            ) => {
                scatter(dc, values(), sc);
                scatter(ds, ranges.iter().map(|r| r.1.clone()), ss);
            }
            _ => unreachable!("pieces have the tensor's format"),
        }
    }

    /// The bits of every buffer; with `class`, NaN made canonical (fp8's NaN codes `0x7f` and
    /// `0xff` too: their sign is a NaN's sign).
    fn bits(&self, class: bool) -> Bits {
        match self {
            StateBuf::F32(v) => vec![(
                "state",
                v.iter()
                    .map(|x| if class { class32(*x) } else { x.to_bits() })
                    .collect(),
            )],
            StateBuf::Bf16(v) => vec![(
                "state",
                v.iter()
                    .map(|x| {
                        if class {
                            class_bf16(*x)
                        } else {
                            u32::from(x.to_bits())
                        }
                    })
                    .collect(),
            )],
            StateBuf::F16(v) => vec![(
                "state",
                v.iter()
                    .map(|x| {
                        if class {
                            class_f16(*x)
                        } else {
                            u32::from(x.to_bits())
                        }
                    })
                    .collect(),
            )],
            StateBuf::Block {
                format,
                codes,
                scales,
            } => {
                let fp8 = *format == StateFormat::Fp8;
                vec![
                    (
                        "state codes",
                        codes
                            .iter()
                            .map(|&c| {
                                if class && fp8 && c & 0x7f == 0x7f {
                                    0x7f
                                } else {
                                    u32::from(c)
                                }
                            })
                            .collect(),
                    ),
                    (
                        "state scales",
                        scales
                            .iter()
                            .map(|x| if class { class32(*x) } else { x.to_bits() })
                            .collect(),
                    ),
                ]
            }
        }
    }
}

fn snapshot(p: &ParamBuf, s: &StateBuf, class: bool) -> Bits {
    let mut b = p.bits(class);
    b.extend(s.bits(class));
    b
}

/// State planes of an optimizer.
fn planes<O: Optimizer>(opt: &O) -> usize {
    opt.state_len(1)
}

// ---------------------------------------------------------------------------------------------
// Optimizers: every one, as an enum, for the tests that draw the optimizer too

#[derive(Clone, Copy, Debug)]
enum AnyOpt {
    Sgd(Sgd),
    Adam(Adam),
    Adagrad(Adagrad),
    Adadelta(Adadelta),
    RMSprop(RMSprop),
    Adamax(Adamax),
    NAdam(NAdam),
    RAdam(RAdam),
    Lion(Lion),
    Rprop(Rprop),
    Asgd(Asgd),
    Torchao(TorchaoAdam),
}

/// Runs `$body` with `$o` bound to the optimizer inside an [`AnyOpt`].
macro_rules! with_opt {
    ($any:expr, $o:ident => $body:expr) => {
        match $any {
            AnyOpt::Sgd($o) => $body,
            AnyOpt::Adam($o) => $body,
            AnyOpt::Adagrad($o) => $body,
            AnyOpt::Adadelta($o) => $body,
            AnyOpt::RMSprop($o) => $body,
            AnyOpt::Adamax($o) => $body,
            AnyOpt::NAdam($o) => $body,
            AnyOpt::RAdam($o) => $body,
            AnyOpt::Lion($o) => $body,
            AnyOpt::Rprop($o) => $body,
            AnyOpt::Asgd($o) => $body,
            AnyOpt::Torchao($o) => $body,
        }
    };
}

/// torchao's six classes, with amsgrad and the hyperparameters drawn (all finite in f32).
fn torchao() -> impl Strategy<Value = TorchaoAdam> {
    (
        0..6usize,
        strategies::lr(),
        strategies::beta(),
        strategies::beta(),
        strategies::eps(),
        strategies::weight_decay(),
        any::<bool>(),
    )
        .prop_map(|(class, lr, b1, b2, eps, weight_decay, amsgrad)| {
            let base = [
                TorchaoAdam::adamw8bit(),
                TorchaoAdam::adam8bit(),
                TorchaoAdam::adamw4bit(),
                TorchaoAdam::adam4bit(),
                TorchaoAdam::adamw_fp8(),
                TorchaoAdam::adam_fp8(),
            ][class];
            TorchaoAdam {
                lr,
                betas: (b1, b2),
                eps,
                weight_decay,
                amsgrad,
                ..base
            }
        })
}

fn any_opt() -> impl Strategy<Value = AnyOpt> {
    prop_oneof![
        strategies::sgd().prop_map(AnyOpt::Sgd),
        strategies::adam().prop_map(AnyOpt::Adam),
        strategies::adagrad().prop_map(AnyOpt::Adagrad),
        strategies::adadelta().prop_map(AnyOpt::Adadelta),
        strategies::rmsprop().prop_map(AnyOpt::RMSprop),
        strategies::adamax().prop_map(AnyOpt::Adamax),
        strategies::nadam().prop_map(AnyOpt::NAdam),
        strategies::radam().prop_map(AnyOpt::RAdam),
        strategies::lion().prop_map(AnyOpt::Lion),
        strategies::rprop().prop_map(AnyOpt::Rprop),
        strategies::asgd().prop_map(AnyOpt::Asgd),
        torchao().prop_map(AnyOpt::Torchao),
    ]
}

// Variants the plain strategies only sometimes draw, forced so each is covered every run.
fn sgd_plain() -> impl Strategy<Value = Sgd> {
    strategies::sgd().prop_map(|s| Sgd {
        momentum: 0.0,
        nesterov: false,
        ..s
    })
}

fn sgd_momentum() -> impl Strategy<Value = Sgd> {
    strategies::sgd().prop_map(|s| {
        if s.momentum == 0.0 {
            Sgd { momentum: 0.9, ..s }
        } else {
            s
        }
    })
}

fn adam_plain() -> impl Strategy<Value = Adam> {
    strategies::adam().prop_map(|a| Adam {
        amsgrad: false,
        decoupled_weight_decay: false,
        ..a
    })
}

fn adamw() -> impl Strategy<Value = Adam> {
    strategies::adam().prop_map(|a| Adam {
        amsgrad: false,
        decoupled_weight_decay: true,
        ..a
    })
}

fn amsgrad() -> impl Strategy<Value = Adam> {
    strategies::adam().prop_map(|a| Adam { amsgrad: true, ..a })
}

fn rmsprop_plain() -> impl Strategy<Value = RMSprop> {
    strategies::rmsprop().prop_map(|r| RMSprop {
        momentum: 0.0,
        centered: false,
        ..r
    })
}

fn rmsprop_momentum() -> impl Strategy<Value = RMSprop> {
    strategies::rmsprop().prop_map(|r| RMSprop {
        momentum: if r.momentum == 0.0 { 0.9 } else { r.momentum },
        centered: false,
        ..r
    })
}

fn rmsprop_centered() -> impl Strategy<Value = RMSprop> {
    strategies::rmsprop().prop_map(|r| RMSprop {
        centered: true,
        ..r
    })
}

// ---------------------------------------------------------------------------------------------
// The checks

/// Consecutive steps per case (NAdam's scalar state and SR's step counter carried).
const STEPS: u64 = 2;

/// Every combination × state format × length: `STEPS` steps on `backend` and on the scalar
/// reference from the same inputs, the same bits after every step.
fn assert_formats_match_scalar<O: Optimizer>(backend: Backend, opt: O, first_step: u64, seed: u64) {
    let mut rng = Rng(seed);
    let planes = planes(&opt);
    for n in lengths() {
        for (pk, gk) in COMBOS {
            let p0 = ParamBuf::random(pk, n, &mut rng);
            let grads: Vec<GradBuf> = (0..STEPS)
                .map(|_| GradBuf::random(gk, n, &mut rng))
                .collect();
            for format in FORMATS {
                let fresh = rng.next_u64() & 1 == 0;
                let s0 = if fresh {
                    StateBuf::fresh(&opt, format, planes, n)
                } else {
                    StateBuf::random(format, planes, n, &mut rng)
                };
                let (mut p_ref, mut s_ref) = (p0.clone(), s0.clone());
                let (mut p, mut s) = (p0.clone(), s0);
                let mut scalars = O::Scalars::default();
                for (k, g) in grads.iter().enumerate() {
                    let t = first_step + k as u64;
                    let plan = opt.plan(t, &scalars).unwrap();
                    plan.apply_piece(Backend::Scalar, 0, p_ref.params(), g.grads(), s_ref.state())
                        .unwrap();
                    plan.apply_piece(backend, 0, p.params(), g.grads(), s.state())
                        .unwrap();
                    scalars = plan.scalars_after();
                    if let Some(d) =
                        first_diff(&snapshot(&p_ref, &s_ref, true), &snapshot(&p, &s, true))
                    {
                        panic!(
                            "{backend} differs from scalar: {d}; {opt:?} {pk:?}/{gk:?} {format:?} \
                             fresh {fresh} step {t} n {n} (seed {seed})"
                        );
                    }
                }
            }
        }
    }
}

/// The bounds of the pieces: `cuts` folded onto `[0, n]`, at multiples of `block`.
fn bounds(n: usize, block: usize, cuts: &[usize]) -> Vec<usize> {
    let mut b: Vec<usize> = cuts.iter().map(|c| c % (n / block + 1) * block).collect();
    b.extend([0, n]);
    b.sort_unstable();
    b
}

/// For every combination and state format: the tensor updated whole, and in pieces cut at
/// `cuts` (block multiples for the block formats, anywhere otherwise), each piece with its
/// offset and its slice of every plane, give the same bits.
fn assert_pieces_match_whole<O: Optimizer>(
    backend: Backend,
    opt: O,
    step: u64,
    n: usize,
    cuts: &[usize],
    seed: u64,
) {
    let mut rng = Rng(seed);
    let planes = planes(&opt);
    let plan = opt.plan(step, &O::Scalars::default()).unwrap();
    for (pk, gk) in COMBOS {
        let p0 = ParamBuf::random(pk, n, &mut rng);
        let g = GradBuf::random(gk, n, &mut rng);
        for format in FORMATS {
            let s0 = if rng.next_u64() & 1 == 0 {
                StateBuf::fresh(&opt, format, planes, n)
            } else {
                StateBuf::random(format, planes, n, &mut rng)
            };
            let (mut p_whole, mut s_whole) = (p0.clone(), s0.clone());
            plan.apply_piece(backend, 0, p_whole.params(), g.grads(), s_whole.state())
                .unwrap();
            let cut_at = bounds(n, format.block(), cuts);
            let (mut p, mut s) = (p0.clone(), s0);
            for w in cut_at.windows(2) {
                let (a, b) = (w[0], w[1]);
                let mut pp = p.slice(a..b);
                let mut sp = s.piece(planes, n, a, b);
                plan.apply_piece(backend, a, pp.params(), g.slice(a..b).grads(), sp.state())
                    .unwrap();
                p.put(a, &pp);
                s.put_piece(planes, n, a, b, &sp);
            }
            if let Some(d) =
                first_diff(&snapshot(&p_whole, &s_whole, true), &snapshot(&p, &s, true))
            {
                panic!(
                    "{backend}: pieces {cut_at:?} differ from the whole: {d}; {opt:?} \
                     {pk:?}/{gk:?} {format:?} step {step} n {n} (seed {seed})"
                );
            }
        }
    }
}

/// Runs `f` if `backend` is available here; otherwise checks that a formats step is refused
/// cleanly (nothing written) and says so on stderr.
fn on(backend: Backend, f: impl FnOnce()) {
    if backend.is_available() {
        f();
    } else {
        let plan = Adam::default().plan(1).unwrap();
        let mut p = ParamBuf::Bf16(vec![bf16::ONE; 3]);
        let mut s = StateBuf::zeroed(StateFormat::Int8, 2, 3);
        let before = snapshot(&p, &s, false);
        let g = [bf16::ONE; 3];
        let err = plan
            .apply_piece(backend, 0, p.params(), Grads::Bf16(&g), s.state())
            .unwrap_err();
        assert_eq!(err, Error::BackendUnavailable(backend));
        assert_eq!(snapshot(&p, &s, false), before);
        let _ = writeln!(
            std::io::stderr(),
            "backend {backend} not available on this CPU: refused, as it should be"
        );
    }
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Cases per optimizer and backend of the full sweep (every combination, format and length).
const SWEEP_CASES: u32 = 12;
/// Cases per backend of the chunk test (every combination and format per case).
const CHUNK_CASES: u32 = 128;

macro_rules! backend_tests {
    // Every backend but the scalar reference is compared with the scalar reference; the
    // scalar module has only the tests that do not compare a backend with itself.
    ($modname:ident, $backend:expr) => {
        backend_tests!(@module $modname, $backend, {
            fn bitwise<O: Optimizer>(opt: O, step: u64, seed: u64) {
                on($backend, || assert_formats_match_scalar($backend, opt, step, seed));
            }

            proptest! {
                #![proptest_config(config(SWEEP_CASES))]
                #[test]
                fn sgd_formats_match_scalar(opt in sgd_plain(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn sgd_momentum_formats_match_scalar(opt in sgd_momentum(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adam_formats_match_scalar(opt in adam_plain(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adamw_formats_match_scalar(opt in adamw(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn amsgrad_formats_match_scalar(opt in amsgrad(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adagrad_formats_match_scalar(opt in strategies::adagrad(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adadelta_formats_match_scalar(opt in strategies::adadelta(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn rmsprop_formats_match_scalar(opt in rmsprop_plain(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn rmsprop_momentum_formats_match_scalar(opt in rmsprop_momentum(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn rmsprop_centered_formats_match_scalar(opt in rmsprop_centered(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adamax_formats_match_scalar(opt in strategies::adamax(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn nadam_formats_match_scalar(opt in strategies::nadam(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn radam_formats_match_scalar(opt in strategies::radam(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn lion_formats_match_scalar(opt in strategies::lion(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn rprop_formats_match_scalar(opt in strategies::rprop(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn asgd_formats_match_scalar(opt in strategies::asgd(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn torchao_adam_formats_match_scalar(opt in torchao(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
            }
        });
    };
    ($modname:ident, $backend:expr, reference) => {
        backend_tests!(@module $modname, $backend, {});
    };
    (@module $modname:ident, $backend:expr, { $($bitwise:tt)* }) => {
        mod $modname {
            use super::*;

            $($bitwise)*

            proptest! {
                #![proptest_config(config(CHUNK_CASES))]
                #[test]
                fn pieces_match_whole(opt in any_opt(), step in strategies::step(),
                    n in prop_oneof![0..1100usize, Just(4133usize)],
                    cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    on($backend, || with_opt!(opt, o => assert_pieces_match_whole($backend, o, step, n, &cuts, seed)));
                }
            }
        }
    };
}

backend_tests!(scalar, Backend::Scalar, reference);
backend_tests!(portable, Backend::Portable);
backend_tests!(avx2, Backend::Avx2);
backend_tests!(avx512, Backend::Avx512);

// ---------------------------------------------------------------------------------------------
// The split API (`TensorStep`) and, with the `rayon` feature, `parallel::apply`: pieces run on
// several threads give the whole step's bits.

/// Every combination and state format: a whole-tensor step, against the same step cut by
/// `TensorStep::pieces(count)` and run on `count` std threads at once.
fn assert_threads_match_whole<O: Optimizer>(opt: O, step: u64, n: usize, count: usize, seed: u64) {
    let mut rng = Rng(seed);
    let planes = planes(&opt);
    let plan = opt.plan(step, &O::Scalars::default()).unwrap();
    let best = Backend::best();
    for (pk, gk) in COMBOS {
        let p0 = ParamBuf::random(pk, n, &mut rng);
        let g = GradBuf::random(gk, n, &mut rng);
        for format in FORMATS {
            let s0 = StateBuf::random(format, planes, n, &mut rng);
            let (mut p_whole, mut s_whole) = (p0.clone(), s0.clone());
            plan.apply_piece(best, 0, p_whole.params(), g.grads(), s_whole.state())
                .unwrap();
            let (mut p, mut s) = (p0.clone(), s0);
            let whole = TensorStep::new(p.params(), g.grads(), s.state(), planes).unwrap();
            let pieces: Vec<TensorStep<'_>> = whole.pieces(count).collect();
            assert_eq!(pieces.len(), count);
            for w in pieces.windows(2) {
                assert_eq!(w[0].offset() + w[0].len(), w[1].offset());
                // Every piece starts aligned, or at the end (an empty last piece).
                assert!(w[1].offset() % w[1].alignment() == 0 || w[1].offset() == n);
            }
            std::thread::scope(|scope| {
                let handles: Vec<_> = pieces
                    .into_iter()
                    .map(|piece| scope.spawn(|| piece.apply(&plan, best)))
                    .collect();
                for h in handles {
                    h.join().unwrap().unwrap();
                }
            });
            if let Some(d) =
                first_diff(&snapshot(&p_whole, &s_whole, true), &snapshot(&p, &s, true))
            {
                panic!(
                    "{count} threads differ from the whole: {d}; {opt:?} {pk:?}/{gk:?} \
                     {format:?} step {step} n {n} (seed {seed})"
                );
            }
        }
    }
}

/// Several tensors of one format through `parallel::apply` on `threads` rayon threads, against
/// each tensor stepped whole on one thread.
#[cfg(feature = "rayon")]
fn assert_parallel_matches_whole<O: Optimizer>(
    opt: O,
    step: u64,
    lens: &[usize],
    threads: usize,
    seed: u64,
) {
    let mut rng = Rng(seed);
    let planes = planes(&opt);
    let plan = opt.plan(step, &O::Scalars::default()).unwrap();
    let best = Backend::best();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    for (pk, gk) in COMBOS {
        for format in FORMATS {
            let mut p: Vec<ParamBuf> = lens
                .iter()
                .map(|&n| ParamBuf::random(pk, n, &mut rng))
                .collect();
            let g: Vec<GradBuf> = lens
                .iter()
                .map(|&n| GradBuf::random(gk, n, &mut rng))
                .collect();
            let mut s: Vec<StateBuf> = lens
                .iter()
                .map(|&n| StateBuf::random(format, planes, n, &mut rng))
                .collect();
            let (mut p_whole, mut s_whole) = (p.clone(), s.clone());
            for ((p, g), s) in p_whole.iter_mut().zip(&g).zip(s_whole.iter_mut()) {
                plan.apply_piece(best, 0, p.params(), g.grads(), s.state())
                    .unwrap();
            }
            {
                let mut tensors: Vec<TensorStep<'_>> = p
                    .iter_mut()
                    .zip(&g)
                    .zip(s.iter_mut())
                    .map(|((p, g), s)| {
                        TensorStep::new(p.params(), g.grads(), s.state(), planes).unwrap()
                    })
                    .collect();
                pool.install(|| fused_optim::parallel::apply(&plan, best, &mut tensors))
                    .unwrap();
            }
            for (k, (a, b)) in p_whole.iter().zip(&p).enumerate() {
                let whole = snapshot(a, &s_whole[k], true);
                let par = snapshot(b, &s[k], true);
                if let Some(d) = first_diff(&whole, &par) {
                    panic!(
                        "{threads} rayon threads differ from one: tensor {k} of {lens:?}: {d}; \
                         {opt:?} {pk:?}/{gk:?} {format:?} step {step} (seed {seed})"
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    fn pieces_on_threads_match_whole(opt in any_opt(), step in strategies::step(),
        n in prop_oneof![0..2000usize, Just(4133usize), Just(40_000usize)],
        count in 1..9usize, seed: u64) {
        with_opt!(opt, o => assert_threads_match_whole(o, step, n, count, seed));
    }
}

#[cfg(feature = "rayon")]
proptest! {
    #![proptest_config(config(12))]

    #[test]
    fn parallel_steps_match_one_thread(opt in any_opt(), step in strategies::step(),
        big in prop_oneof![Just(70_000usize), Just(33_000usize), 0..5000usize],
        threads in prop::sample::select(vec![1usize, 2, 3, 8]), seed: u64) {
        let lens = [big, 37, 4096, big / 2 + 1];
        with_opt!(opt, o => assert_parallel_matches_whole(o, step, &lens, threads, seed));
    }
}

#[test]
fn split_errors_are_typed_and_apply_checks_the_plan() {
    let mut p = vec![0.5f32; 1000];
    let g = vec![0.1f32; 1000];
    let (mut codes, mut scales) = (vec![0u8; 2000], vec![0.0f32; 8]);
    let t = TensorStep::new(
        Params::F32(&mut p),
        Grads::F32(&g),
        State::Int8 {
            codes: &mut codes,
            scales: &mut scales,
        },
        2,
    )
    .unwrap();
    assert_eq!((t.block(), t.alignment()), (256, 256));
    assert_eq!(
        t.split_at(100).unwrap_err(),
        Error::Misaligned {
            offset: 100,
            block: 256
        }
    );
    let t = TensorStep::new(
        Params::F32(&mut p),
        Grads::F32(&g),
        State::Int8 {
            codes: &mut codes,
            scales: &mut scales,
        },
        2,
    )
    .unwrap();
    assert!(matches!(
        t.split_at(1001),
        Err(Error::LengthMismatch { .. })
    ));
    // A plan with three planes (AMSGrad) on a two-plane step: refused, nothing written.
    let t = TensorStep::new(
        Params::F32(&mut p),
        Grads::F32(&g),
        State::Int8 {
            codes: &mut codes,
            scales: &mut scales,
        },
        2,
    )
    .unwrap();
    let amsgrad = Adam {
        amsgrad: true,
        ..Adam::default()
    }
    .plan(1)
    .unwrap();
    assert!(matches!(
        t.apply(&amsgrad, Backend::best()),
        Err(Error::LengthMismatch {
            what: "state planes",
            ..
        })
    ));
    assert!(p.iter().all(|&x| x == 0.5) && codes.iter().all(|&c| c == 0));
    // Wrong buffer sizes are found when the step is built.
    assert!(matches!(
        TensorStep::new(
            Params::F32(&mut p),
            Grads::F32(&g[..999]),
            State::F32(&mut []),
            0
        ),
        Err(Error::LengthMismatch { what: "grads", .. })
    ));
    assert!(matches!(
        TensorStep::new(
            Params::F32(&mut p),
            Grads::F32(&g),
            State::F32(&mut [0.0; 10]),
            1
        ),
        Err(Error::LengthMismatch { what: "state", .. })
    ));
}

#[cfg(feature = "rayon")]
#[test]
fn a_parallel_step_with_one_bad_tensor_writes_nothing() {
    let plan = Adam::default().plan(1).unwrap();
    let (mut a, mut b) = (vec![1.0f32; 100_000], vec![2.0f32; 50_000]);
    let (ga, gb) = (vec![0.1f32; 100_000], vec![0.1f32; 50_000]);
    let (mut sa, mut sb) = (vec![0.0f32; 200_000], vec![0.0f32; 50_000]);
    let mut tensors = [
        TensorStep::new(Params::F32(&mut a), Grads::F32(&ga), State::F32(&mut sa), 2).unwrap(),
        // One plane where Adam has two.
        TensorStep::new(Params::F32(&mut b), Grads::F32(&gb), State::F32(&mut sb), 1).unwrap(),
    ];
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let r = pool.install(|| fused_optim::parallel::apply(&plan, Backend::best(), &mut tensors));
    assert!(matches!(
        r,
        Err(Error::LengthMismatch {
            what: "state planes",
            ..
        })
    ));
    assert!(a.iter().all(|&x| x == 1.0) && b.iter().all(|&x| x == 2.0));
    assert!(sa.iter().chain(&sb).all(|&x| x == 0.0));
}

// ---------------------------------------------------------------------------------------------
// Element formats against an independent model: the f32 step, operands widened and each store
// rounded once (`half`'s round-to-nearest-even; Kahan's documented rule; SR to a neighbour).

/// The two bf16 values around `x` (equal when `x` is a bf16): truncation and the next value away
/// from zero.
fn bf16_neighbours(x: f32) -> (u16, u16) {
    let t = (x.to_bits() >> 16) as u16;
    if x.to_bits() & 0xffff == 0 {
        (t, t)
    } else {
        (t, t.wrapping_add(1))
    }
}

fn check_element_model<O: Optimizer>(opt: O, step: u64, n: usize, seed: u64) {
    let mut rng = Rng(seed);
    let planes = planes(&opt);
    let plan = opt.plan(step, &O::Scalars::default()).unwrap();
    for (pk, gk) in COMBOS {
        for format in [StateFormat::F32, StateFormat::Bf16, StateFormat::F16] {
            let mut p = ParamBuf::random(pk, n, &mut rng);
            let g = GradBuf::random(gk, n, &mut rng);
            let mut s = StateBuf::random(format, planes, n, &mut rng);
            // The model's f32 operands.
            let mut pf: Vec<f32> = match &p {
                ParamBuf::F32(v) => v.clone(),
                ParamBuf::Bf16(v) | ParamBuf::Sr { params: v, .. } => {
                    v.iter().map(|x| x.to_f32()).collect()
                }
                ParamBuf::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
                ParamBuf::Kahan { params, comp } => params
                    .iter()
                    .zip(comp)
                    .map(|(p, c)| p.to_f32() + c.to_f32())
                    .collect(),
            };
            let gf: Vec<f32> = match &g {
                GradBuf::F32(v) => v.clone(),
                GradBuf::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
                GradBuf::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            };
            let mut sf: Vec<f32> = match &s {
                StateBuf::F32(v) => v.clone(),
                StateBuf::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
                StateBuf::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
                StateBuf::Block { .. } => unreachable!(),
            };
            plan.apply_on(Backend::Scalar, &mut pf, &gf, &mut sf)
                .unwrap();
            plan.apply_piece(Backend::best(), 0, p.params(), g.grads(), s.state())
                .unwrap();
            let ctx = || format!("{opt:?} {pk:?}/{gk:?} {format:?} step {step} n {n} seed {seed}");
            // State: rounded to nearest even once.
            let want_state: Vec<u32> = match &s {
                StateBuf::F32(_) => sf.iter().map(|x| class32(*x)).collect(),
                StateBuf::Bf16(_) => sf.iter().map(|x| class_bf16(bf16::from_f32(*x))).collect(),
                StateBuf::F16(_) => sf.iter().map(|x| class_f16(f16::from_f32(*x))).collect(),
                StateBuf::Block { .. } => unreachable!(),
            };
            assert_eq!(
                first_diff(&[("state", want_state)], &s.bits(true)),
                None,
                "state: {}",
                ctx()
            );
            match &p {
                ParamBuf::F32(v) => {
                    let want: Vec<u32> = pf.iter().map(|x| class32(*x)).collect();
                    let have: Vec<u32> = v.iter().map(|x| class32(*x)).collect();
                    assert_eq!(want, have, "{}", ctx());
                }
                ParamBuf::Bf16(v) => {
                    for (i, (x, y)) in pf.iter().zip(v).enumerate() {
                        let want = class_bf16(bf16::from_f32(*x));
                        assert_eq!(want, class_bf16(*y), "i {i} x {x:e}: {}", ctx());
                    }
                }
                ParamBuf::F16(v) => {
                    for (i, (x, y)) in pf.iter().zip(v).enumerate() {
                        let want = class_f16(f16::from_f32(*x));
                        assert_eq!(want, class_f16(*y), "i {i} x {x:e}: {}", ctx());
                    }
                }
                ParamBuf::Sr { params, .. } => {
                    for (i, (x, y)) in pf.iter().zip(params).enumerate() {
                        if x.is_nan() {
                            assert!(y.is_nan(), "i {i}: NaN became {y}: {}", ctx());
                        } else {
                            let (lo, hi) = bf16_neighbours(*x);
                            let b = y.to_bits();
                            assert!(
                                b == lo || b == hi,
                                "i {i}: {x:e} rounded to {y} ({b:#x}), not {lo:#x} or {hi:#x}: {}",
                                ctx()
                            );
                        }
                    }
                }
                ParamBuf::Kahan { params, comp } => {
                    for (i, ((x, y), c)) in pf.iter().zip(params).zip(comp).enumerate() {
                        let rounded = bf16::from_f32(*x);
                        // The documented rule: a parameter that is, or rounds to, ±inf or NaN
                        // carries no compensation.
                        let err = if rounded.to_f32().is_finite() {
                            *x - rounded.to_f32()
                        } else {
                            0.0
                        };
                        assert_eq!(
                            (class_bf16(rounded), class_bf16(bf16::from_f32(err))),
                            (class_bf16(*y), class_bf16(*c)),
                            "i {i} x {x:e}: {}",
                            ctx()
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn element_formats_are_the_f32_step_rounded_once(opt in any_opt(), step in strategies::step(),
        n in prop_oneof![0..80usize, 250..300usize, Just(1000usize)], seed: u64) {
        with_opt!(opt, o => check_element_model(o, step, n, seed));
    }
}

// ---------------------------------------------------------------------------------------------
// Misaligned pieces

/// A piece of a block-quantized tensor that starts inside a block is refused on every backend
/// and writes nothing; the element formats accept any offset.
#[test]
fn misaligned_pieces_are_refused_and_write_nothing() {
    let opts = [
        AnyOpt::Adam(Adam::default()),
        AnyOpt::Adam(Adam {
            amsgrad: true,
            ..Adam::adamw()
        }),
        AnyOpt::Sgd(Sgd {
            momentum: 0.9,
            ..Sgd::default()
        }),
        AnyOpt::Adagrad(Adagrad {
            initial_accumulator_value: 0.5,
            ..Adagrad::default()
        }),
        AnyOpt::RMSprop(RMSprop {
            momentum: 0.5,
            centered: true,
            ..RMSprop::default()
        }),
        AnyOpt::Torchao(TorchaoAdam::adamw4bit()),
    ];
    let mut rng = Rng(7);
    let mut refused = 0;
    for opt in opts {
        with_opt!(opt, o => {
            let plan = Optimizer::plan(&o, 2, &Default::default()).unwrap();
            for (pk, gk) in COMBOS {
                for format in FORMATS {
                    let block = format.block();
                    for n in [1usize, 100, 128, 300] {
                        for offset in [1, 2, 64, 127, 129, 255, 257, 384, 1000, usize::MAX] {
                            let mut p = ParamBuf::random(pk, n, &mut rng);
                            let g = GradBuf::random(gk, n, &mut rng);
                            let mut s = StateBuf::random(format, planes(&o), n, &mut rng);
                            for backend in Backend::available() {
                                let before = snapshot(&p, &s, false);
                                let r = plan.apply_piece(backend, offset, p.params(), g.grads(), s.state());
                                if offset % block == 0 {
                                    assert_eq!(r, Ok(()), "{o:?} {format:?} offset {offset}");
                                    continue;
                                }
                                assert_eq!(
                                    r,
                                    Err(Error::Misaligned { offset, block }),
                                    "{o:?} {pk:?}/{gk:?} {format:?} n {n} {backend}"
                                );
                                assert_eq!(
                                    first_diff(&before, &snapshot(&p, &s, false)),
                                    None,
                                    "written on error: {o:?} {pk:?} {format:?} offset {offset} {backend}"
                                );
                                refused += 1;
                            }
                        }
                    }
                }
            }
        });
    }
    assert!(refused > 1000, "only {refused} refusals checked");
}

// ---------------------------------------------------------------------------------------------
// Errors write nothing

/// One buffer of a step made wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Grads(isize),
    Compensation(isize),
    Values(isize),
    Codes(isize),
    Scales(isize),
    Offset(usize),
}

fn resized<T: Copy>(v: &[T], delta: isize, fill: T) -> Vec<T> {
    let len = v.len().checked_add_signed(delta).unwrap();
    let mut out: Vec<T> = v.iter().copied().take(len).collect();
    out.resize(len, fill);
    out
}

/// Applies `fault` to a valid `(p, g, s)` and checks the exact error on every backend (and on
/// every unavailable one), with every buffer bit-identical afterwards.
fn assert_fault_writes_nothing<O: Optimizer>(
    opt: O,
    n: usize,
    (pk, gk): (ParamKind, GradKind),
    format: StateFormat,
    fault: Fault,
    rng: &mut Rng,
) {
    let planes = planes(&opt);
    let plan = opt.plan(3, &O::Scalars::default()).unwrap();
    let mut p = ParamBuf::random(pk, n, rng);
    let mut g = GradBuf::random(gk, n, rng);
    let mut s = StateBuf::random(format, planes, n, rng);
    let layout = format.layout(planes, n);
    let mut offset = 0;
    let expected = match fault {
        Fault::Grads(d) => {
            g = match &g {
                GradBuf::F32(v) => GradBuf::F32(resized(v, d, 1.0)),
                GradBuf::Bf16(v) => GradBuf::Bf16(resized(v, d, bf16::ONE)),
                GradBuf::F16(v) => GradBuf::F16(resized(v, d, f16::ONE)),
            };
            Error::LengthMismatch {
                what: "grads",
                expected: n,
                actual: n.checked_add_signed(d).unwrap(),
            }
        }
        Fault::Compensation(d) => {
            let ParamBuf::Kahan { comp, .. } = &mut p else {
                unreachable!()
            };
            *comp = resized(comp, d, bf16::ZERO);
            Error::LengthMismatch {
                what: "compensation",
                expected: n,
                actual: n.checked_add_signed(d).unwrap(),
            }
        }
        Fault::Values(d) => {
            s = match &s {
                StateBuf::F32(v) => StateBuf::F32(resized(v, d, 0.0)),
                StateBuf::Bf16(v) => StateBuf::Bf16(resized(v, d, bf16::ZERO)),
                StateBuf::F16(v) => StateBuf::F16(resized(v, d, f16::ZERO)),
                StateBuf::Block { .. } => unreachable!(),
            };
            Error::LengthMismatch {
                what: "state",
                expected: layout.values,
                actual: layout.values.checked_add_signed(d).unwrap(),
            }
        }
        Fault::Codes(d) | Fault::Scales(d) => {
            let StateBuf::Block { codes, scales, .. } = &mut s else {
                unreachable!()
            };
            if let Fault::Codes(_) = fault {
                *codes = resized(codes, d, 0);
                Error::LengthMismatch {
                    what: "state codes",
                    expected: layout.codes,
                    actual: layout.codes.checked_add_signed(d).unwrap(),
                }
            } else {
                *scales = resized(scales, d, 1.0);
                Error::LengthMismatch {
                    what: "state scales",
                    expected: layout.scales,
                    actual: layout.scales.checked_add_signed(d).unwrap(),
                }
            }
        }
        Fault::Offset(o) => {
            offset = o;
            Error::Misaligned {
                offset: o,
                block: format.block(),
            }
        }
    };
    let before = snapshot(&p, &s, false);
    for backend in Backend::ALL {
        let r = plan.apply_piece(backend, offset, p.params(), g.grads(), s.state());
        // A backend this CPU lacks may be reported instead.
        let missing = Err(Error::BackendUnavailable(backend));
        assert!(
            r == Err(expected) || (!backend.is_available() && r == missing),
            "{opt:?} {pk:?}/{gk:?} {format:?} n {n} {fault:?} on {backend}: {r:?}, expected {expected:?}"
        );
        assert_eq!(
            first_diff(&before, &snapshot(&p, &s, false)),
            None,
            "written on error: {opt:?} {pk:?}/{gk:?} {format:?} n {n} {fault:?} on {backend}"
        );
    }
}

/// Every single fault, in every combination and format, for an optimizer of every plane count.
#[test]
fn length_and_alignment_errors_write_nothing() {
    let opts = [
        AnyOpt::Sgd(Sgd::default()),
        AnyOpt::Lion(Lion::default()),
        AnyOpt::Adam(Adam::default()),
        AnyOpt::RMSprop(RMSprop {
            momentum: 0.9,
            centered: true,
            ..RMSprop::default()
        }),
        AnyOpt::NAdam(NAdam::default()),
        AnyOpt::Torchao(TorchaoAdam {
            amsgrad: true,
            ..TorchaoAdam::adamw8bit()
        }),
    ];
    let mut rng = Rng(11);
    let mut checked = 0;
    for opt in opts {
        with_opt!(opt, o => {
            let planes = planes(&o);
            for combo in COMBOS {
                for format in FORMATS {
                    for n in [0usize, 1, 37, 256, 300] {
                        let mut faults = vec![Fault::Grads(1)];
                        if n > 0 {
                            faults.push(Fault::Grads(-1));
                        }
                        if combo.0 == ParamKind::Bf16Kahan {
                            faults.push(Fault::Compensation(1));
                            if n > 0 {
                                faults.push(Fault::Compensation(-1));
                            }
                        }
                        let layout = format.layout(planes, n);
                        if format.block() == 1 {
                            faults.push(Fault::Values(1));
                            if layout.values > 0 {
                                faults.push(Fault::Values(-1));
                            }
                        } else {
                            faults.extend([Fault::Codes(1), Fault::Scales(1)]);
                            if layout.codes > 0 {
                                faults.push(Fault::Codes(-1));
                            }
                            if layout.scales > 0 {
                                faults.push(Fault::Scales(-1));
                            }
                            // An empty piece (the end of a tensor) has no block to align.
                            if planes > 0 && n > 0 {
                                faults.extend([Fault::Offset(1), Fault::Offset(format.block() + 2)]);
                            }
                        }
                        for fault in faults {
                            assert_fault_writes_nothing(o, n, combo, format, fault, &mut rng);
                            checked += 1;
                        }
                    }
                }
            }
        });
    }
    assert!(checked > 1000, "only {checked} faults checked");
}

/// Several faults at once (and an unavailable backend, when this CPU lacks one): an error,
/// and nothing written.
#[test]
fn combined_faults_write_nothing() {
    let mut rng = Rng(13);
    let opt = Adam {
        amsgrad: true,
        ..Adam::default()
    };
    let plan = opt.plan(5).unwrap();
    for (pk, gk) in COMBOS {
        for format in FORMATS {
            for n in [1usize, 200, 513] {
                let mut p = ParamBuf::random(pk, n, &mut rng);
                let g = GradBuf::random(gk, n + 1, &mut rng);
                let mut s = StateBuf::random(format, 3, n + 1, &mut rng);
                let before = snapshot(&p, &s, false);
                for backend in Backend::ALL {
                    let r = plan.apply_piece(backend, 3, p.params(), g.grads(), s.state());
                    assert!(r.is_err(), "{pk:?}/{gk:?} {format:?} n {n} {backend}");
                    assert_eq!(first_diff(&before, &snapshot(&p, &s, false)), None);
                }
            }
        }
    }
}

/// A forced backend this CPU lacks is refused with every format and writes nothing; on a CPU
/// with every backend this is reported on stderr.
#[test]
fn unavailable_backend_writes_nothing() {
    let missing: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| !b.is_available())
        .collect();
    if missing.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "every backend is available on this CPU: BackendUnavailable not exercised"
        );
    }
    let mut rng = Rng(17);
    let plan = TorchaoAdam::adamw_fp8().plan(1).unwrap();
    for backend in missing {
        for (pk, gk) in COMBOS {
            for format in FORMATS {
                let n = 300;
                let mut p = ParamBuf::random(pk, n, &mut rng);
                let g = GradBuf::random(gk, n, &mut rng);
                let mut s = StateBuf::random(format, 2, n, &mut rng);
                let before = snapshot(&p, &s, false);
                let r = plan.apply_piece(backend, 0, p.params(), g.grads(), s.state());
                assert_eq!(r, Err(Error::BackendUnavailable(backend)));
                assert_eq!(first_diff(&before, &snapshot(&p, &s, false)), None);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Stochastic rounding: unbiased, seeded, and better than round-to-nearest on small updates

/// One SGD step with `lr = 1` and `g = p − x` stores exactly `x` before rounding (`x − p` is
/// exact: `x` is within one bf16 ulp of `p`, and `p + (x − p) = x`): every element of the result
/// is then `x` rounded stochastically.
fn sr_round(
    p: bf16,
    x: f32,
    n: usize,
    seed: u64,
    step: u64,
    offset: usize,
    backend: Backend,
) -> Vec<bf16> {
    let mut params = vec![p; n];
    let g = vec![p.to_f32() - x; n];
    let plan = Sgd {
        lr: 1.0,
        ..Sgd::default()
    }
    .plan(step)
    .unwrap();
    plan.apply_piece(
        backend,
        offset,
        Params::Bf16Stochastic {
            params: &mut params,
            seed,
        },
        Grads::F32(&g),
        State::F32(&mut []),
    )
    .unwrap();
    params
}

/// `count` ups out of `n` Bernoulli(`q`) trials is within 5 binomial standard errors.
fn assert_binomial(count: usize, n: usize, q: f64, what: &str) {
    let sigma = (n as f64 * q * (1.0 - q)).sqrt();
    let dev = (count as f64 - n as f64 * q).abs();
    assert!(
        dev <= 5.0 * sigma + 1e-9,
        "{what}: {count} of {n}, expected {:.1} ± {sigma:.1} (5σ = {:.1})",
        n as f64 * q,
        5.0 * sigma
    );
}

#[test]
fn stochastic_rounding_is_unbiased() {
    const N: usize = 1 << 16;
    let backend = Backend::best();
    // bf16 bases of both signs and several magnitudes; fractions of an ulp in 1/65536 units.
    // 1, -1, 3/256, -384, and the subnormals ±5·2^-133.
    for base in [0x3f80u16, 0xbf80, 0x3c40, 0xc3c0, 0x0005, 0x8005] {
        let p = bf16::from_bits(base);
        for frac in [0u32, 1, 6554, 16384, 32768, 49152, 58982, 65535] {
            let x = f32::from_bits(p.to_f32().to_bits() | frac);
            let (lo, hi) = bf16_neighbours(x);
            let ulp = f64::from(bf16::from_bits(hi).to_f32()) - f64::from(p.to_f32());
            let q = f64::from(frac) / 65536.0;
            let out = sr_round(p, x, N, 0x5eed ^ u64::from(frac), 1, 0, backend);
            let ups = out
                .iter()
                .map(|y| {
                    let b = y.to_bits();
                    assert!(b == lo || b == hi, "{x:e} rounded to {y}");
                    usize::from(b == hi && hi != lo)
                })
                .sum::<usize>();
            if frac == 0 {
                assert_eq!(ups, 0, "an exact bf16 never moves");
                continue;
            }
            let mean = out.iter().map(|y| f64::from(y.to_f32())).sum::<f64>() / N as f64;
            // The mean's standard error: |ulp|·√(q(1−q)/N).
            let sigma = ulp.abs() * (q * (1.0 - q) / N as f64).sqrt();
            let dev = (mean - f64::from(x)).abs();
            assert!(
                dev <= 5.0 * sigma + ulp.abs() * 1e-12,
                "x = {x:e} ({frac}/65536 ulp): mean {mean:e}, off by {dev:e} > 5σ = {:e}",
                5.0 * sigma
            );
            assert_binomial(ups, N, q, &format!("ups for {x:e}"));
        }
    }
}

#[test]
fn stochastic_rounding_depends_on_seed_step_and_index_only() {
    const N: usize = 1 << 14;
    let p = bf16::from_f32(1.0);
    let x = f32::from_bits(0x3f80_8000); // half-way: up with probability 1/2
    let ups = |v: &[bf16]| -> Vec<bool> { v.iter().map(|y| y.to_bits() == 0x3f81).collect() };
    let base = ups(&sr_round(p, x, N, 1, 1, 0, Backend::Scalar));
    // Deterministic, and the same on every backend.
    for backend in Backend::available() {
        assert_eq!(ups(&sr_round(p, x, N, 1, 1, 0, backend)), base, "{backend}");
    }
    // Another seed, another step, another offset: other, independent roundings (agreement about
    // one half, within 5σ of Bin(N, 1/2)).
    for (seed, step, offset, what) in [
        (2, 1, 0, "seed"),
        (1 << 32, 1, 0, "seed's high word"),
        (1, 2, 0, "step"),
        (1, 1 << 32, 0, "step's high word"),
        (1, 1, 8, "offset"),
        (1, 1, 1 << 40, "offset beyond 2^32 Philox blocks"),
    ] {
        let other = ups(&sr_round(p, x, N, seed, step, offset, Backend::best()));
        assert_ne!(other, base, "{what}");
        let agree = other.iter().zip(&base).filter(|(a, b)| a == b).count();
        assert_binomial(agree, N, 0.5, &format!("agreement across {what}"));
    }
    // An offset is an index shift: the piece at offset 8 is the whole tensor's tail.
    let shifted = ups(&sr_round(p, x, N - 8, 1, 1, 8, Backend::best()));
    assert_eq!(shifted[..], base[8..]);
    // Within one tensor: neighbours (same Philox block) and elements 8 apart (next block) are
    // independent: both up in a quarter of the disjoint pairs.
    for gap in [1usize, 3, 8] {
        let pairs: Vec<(bool, bool)> = (0..N - gap)
            .step_by(2 * gap.max(2))
            .map(|i| (base[i], base[i + gap]))
            .collect();
        let both = pairs.iter().filter(|(a, b)| *a && *b).count();
        assert_binomial(both, pairs.len(), 0.25, &format!("pairs {gap} apart"));
    }
}

/// 1000 SGD steps of a tenth of an ulp: round-to-nearest never moves, stochastic rounding moves
/// by the expected amount on average, and Kahan compensation tracks the exact sum.
#[test]
fn small_updates_stall_under_nearest_but_not_under_sr_or_kahan() {
    const N: usize = 4096;
    const STEPS: u64 = 1000;
    let ulp = 2f32.powi(-7); // bf16's ulp in [1, 2)
    let delta = 0.1 * ulp;
    let g = vec![-delta; N]; // lr = 1: every step adds delta
    let sgd = Sgd {
        lr: 1.0,
        ..Sgd::default()
    };
    let backend = Backend::best();
    let mut nearest = vec![bf16::ONE; N];
    let mut sr = vec![bf16::ONE; N];
    let (mut kahan, mut comp) = (vec![bf16::ONE; N], vec![bf16::ZERO; N]);
    let mut exact = vec![1.0f32; N];
    for t in 1..=STEPS {
        let plan = sgd.plan(t).unwrap();
        plan.apply_piece(
            backend,
            0,
            Params::Bf16(&mut nearest),
            Grads::F32(&g),
            State::Bf16(&mut []),
        )
        .unwrap();
        plan.apply_piece(
            backend,
            0,
            Params::Bf16Stochastic {
                params: &mut sr,
                seed: 99,
            },
            Grads::F32(&g),
            State::Bf16(&mut []),
        )
        .unwrap();
        plan.apply_piece(
            backend,
            0,
            Params::Bf16Kahan {
                params: &mut kahan,
                compensation: &mut comp,
            },
            Grads::F32(&g),
            State::Bf16(&mut []),
        )
        .unwrap();
        plan.apply(&mut exact, &g, &mut []).unwrap();
    }
    assert!(nearest.iter().all(|p| *p == bf16::ONE), "nearest moved");

    // SR: in [1, 2), `1 + delta` in f32 sits q = low16/65536 of an ulp above its bf16, so each
    // step adds q·ulp in expectation, with variance q(1 − q)·ulp² (a few elements cross 2, where
    // the expectation is the same to within f32 rounding).
    let q = f64::from((1.0f32 + delta).to_bits() & 0xffff) / 65536.0;
    let ulp = f64::from(ulp);
    let want = 1.0 + STEPS as f64 * q * ulp;
    let mean = sr.iter().map(|p| f64::from(p.to_f32())).sum::<f64>() / N as f64;
    let sigma = ulp * (STEPS as f64 * q * (1.0 - q) / N as f64).sqrt();
    assert!(
        (mean - want).abs() <= 5.0 * sigma,
        "SR mean {mean} vs {want} ± {sigma:e}"
    );
    assert!(mean > 1.7, "SR moved only to {mean}");
    // Different elements took different paths.
    assert!(sr.iter().any(|p| *p != sr[0]));

    // Kahan: every element alike; p + c within 2 ulp·2^-9·1000 of the exact sum (each step's
    // compensation loses at most 2^-9 of half an ulp), p itself within an ulp more.
    let exact_sum = 1.0 + STEPS as f64 * f64::from(delta);
    assert!(kahan.iter().all(|p| *p == kahan[0]) && comp.iter().all(|c| *c == comp[0]));
    let pc = f64::from(kahan[0].to_f32()) + f64::from(comp[0].to_f32());
    assert!(
        (pc - exact_sum).abs() <= 2.0 * ulp,
        "Kahan p + c = {pc} vs {exact_sum}"
    );
    assert!((f64::from(kahan[0].to_f32()) - exact_sum).abs() <= 3.0 * ulp);
    // The f32 reference moves by the same amount (the setup is right).
    assert!((f64::from(exact[0]) - exact_sum).abs() <= 1e-3);
}

/// A case a run found: a finite parameter that rounds to bf16 −inf under Kahan compensation keeps
/// no compensation (the test's model once gave it +inf).
#[test]
fn kahan_at_minus_infinity_keeps_no_compensation() {
    let opt = RAdam {
        lr: 5.152693855318467,
        betas: (0.19393825135994006, 0.9),
        eps: 1e-10,
        weight_decay: 0.0,
        decoupled_weight_decay: false,
        maximize: false,
    };
    check_element_model(opt, 4, 1000, 1_200_596_768_181_480_802);
}
