//! Times whole multi-tensor optimizer steps, for `bench/compare.py` (which compares them with
//! `torch.optim` in the same run).
//!
//! ```sh
//! cargo run --release --example bench_driver -- adam 72,8,1152,16,4000,10
//! cargo run --release --example bench_driver -- adamw 16777216 --params bf16 --state int8
//! ```
//!
//! Arguments: an optimizer name (`sgd`, `sgd-momentum`, `adam`, `adamw`, `adagrad`,
//! `adadelta`, `rmsprop`, `adamax`, `nadam`, `radam`, `lion`, `rprop`, `asgd`, and `torchao-adamw` /
//! `torchao-adam`: the crate's `TorchaoAdam`, torchao's low-bit formula; `sparse-adam`, below) with its default
//! hyperparameters (torch's; `sgd-momentum` is `momentum = 0.9`), then the element count of
//! every tensor, comma-separated. Options: `--target-ms MS` (how long one repetition lasts,
//! default 50), `--backend NAME` (default: the best available), `--align BYTES` (start every
//! buffer at this alignment; default: wherever the allocator puts it), and the storage formats:
//!
//! - `--params f32|bf16|f16|bf16-sr|bf16-kahan` (default `f32`; `bf16-sr` is stochastic
//!   rounding, `bf16-kahan` adds a bf16 compensation buffer);
//! - `--grads f32|bf16|f16` (default `f32`);
//! - `--state f32|bf16|f16|int8|int4|fp8` (default `f32`). A block format (`int8`, `int4`,
//!   `fp8`) goes, as torchao does, to tensors of at least 4096 values that fill whole blocks;
//!   the others keep their state in the parameters' dtype (`f32`, or bf16 for bf16 parameters).
//!   `--block-all` puts every tensor's state in the block format (a last partial block counts).
//! - `--stagger BYTES` starts the `k`-th buffer allocated `k · BYTES` bytes into its allocation
//!   (default 0), to see how a step's speed depends on where its buffers' pages fall (see
//!   `docs/formats.md`, "What bounds each format").
//!
//! Each tensor gets its own parameter, gradient and state buffers. One *step* is what a
//! training loop pays: build the step's plan once (validation and per-step scalars), apply it to
//! every tensor (`StepPlan::apply_piece` at offset 0 with the chosen formats; for all-`f32` this
//! is the same direct driver as `apply_on`), keep the scalar state for the next step.
//!
//! Two memory floors walk the same tensors over separate buffers, with no arithmetic:
//! - `floor-crate`: `fused_optim::__private::memory_floor` (f32 buffers only), the crate's own
//!   floor through its SIMD driver;
//! - `floor-bytes`: this file's byte floor for any format: it reads every byte of the
//!   parameters, gradients and state (codes and block scales included) and writes every byte of
//!   the parameters and state (and the Kahan compensation), in one pass over the tensor in tiles
//!   of 1024 elements (every stream advanced tile by tile, as the staged driver does). Plain safe
//!   Rust over byte slices, which the compiler vectorizes for the build's baseline (SSE2 on
//!   x86_64: 16-byte loads and stores). Where the data comes from DRAM it moves bytes as fast as
//!   `floor-crate` (with `--align 64`; on 16-byte aligned buffers `floor-crate`'s 64-byte
//!   AVX-512 accesses straddle cache lines and it is a few % slower); on cache-resident tensors
//!   (64 Ki) it is about 2× slower than `floor-crate`, being 16 bytes wide, so use it for
//!   tensors that do not fit in cache (see [`floor_bytes`]).
//!
//! `sparse-adam ROWS,DIM` times `SparseAdam` (torch's defaults) on one `ROWS × DIM` f32
//! embedding table, each step touching `--touch-pct P` percent of the rows (default 1; every
//! step the same rows, spread evenly over the table, sorted). Its `floor` (and `floor-bytes`)
//! walks the same rows with no arithmetic, reading the parameters, gradient values and both
//! state planes and writing the parameters and state. The setup line gives `rows`, `dim`,
//! `touched_rows` and the bytes moved per step.
//!
//! `floor` is the format's floor: `floor-crate` for the all-`f32` format (what it always was),
//! `floor-bytes` otherwise.
//!
//! After calibrating, the driver reads commands from stdin, one per line, so the caller can
//! interleave it with other measurements: `step`, `floor`, `floor-crate` or `floor-bytes` times
//! one repetition (as many iterations as fit in the target time at calibration) and prints one
//! JSON line, `{"kind":"step","ns_per_step":…,"iters":…}`; `quit` (or end of input) exits. The
//! first line printed describes the setup (formats, bytes of state and bytes moved per step).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::io::{BufRead, Write};
use std::time::Instant;

use fused_optim::__private::{FloorPlan, memory_floor};
#[cfg(feature = "rayon")]
use fused_optim::TensorStep;
use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Asgd, Backend, Grads, Lion, NAdam, Optimizer, Params, RAdam,
    RMSprop, Rprop, Sgd, SparseAdam, SparseGrad, State, StateFormat, StepPlan, TorchaoAdam, bf16,
    f16,
};
use half::slice::HalfFloatSliceExt;

/// How the parameters are stored (and rounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamFmt {
    F32,
    Bf16,
    F16,
    Bf16Sr,
    Bf16Kahan,
}

/// How the gradients are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GradFmt {
    F32,
    Bf16,
    F16,
}

impl ParamFmt {
    fn parse(s: &str) -> Self {
        match s {
            "f32" => ParamFmt::F32,
            "bf16" => ParamFmt::Bf16,
            "f16" => ParamFmt::F16,
            "bf16-sr" => ParamFmt::Bf16Sr,
            "bf16-kahan" => ParamFmt::Bf16Kahan,
            _ => panic!("--params takes f32, bf16, f16, bf16-sr or bf16-kahan, not {s:?}"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            ParamFmt::F32 => "f32",
            ParamFmt::Bf16 => "bf16",
            ParamFmt::F16 => "f16",
            ParamFmt::Bf16Sr => "bf16-sr",
            ParamFmt::Bf16Kahan => "bf16-kahan",
        }
    }
    /// The element state format torchao would use for small tensors: the parameters' dtype.
    fn small_state(self) -> StateFormat {
        match self {
            ParamFmt::F32 => StateFormat::F32,
            ParamFmt::F16 => StateFormat::F16,
            ParamFmt::Bf16 | ParamFmt::Bf16Sr | ParamFmt::Bf16Kahan => StateFormat::Bf16,
        }
    }
}

impl GradFmt {
    fn parse(s: &str) -> Self {
        match s {
            "f32" => GradFmt::F32,
            "bf16" => GradFmt::Bf16,
            "f16" => GradFmt::F16,
            _ => panic!("--grads takes f32, bf16 or f16, not {s:?}"),
        }
    }
    fn name(self) -> &'static str {
        match self {
            GradFmt::F32 => "f32",
            GradFmt::Bf16 => "bf16",
            GradFmt::F16 => "f16",
        }
    }
}

fn parse_state(s: &str) -> StateFormat {
    match s {
        "f32" => StateFormat::F32,
        "bf16" => StateFormat::Bf16,
        "f16" => StateFormat::F16,
        "int8" => StateFormat::Int8,
        "int4" => StateFormat::Int4,
        "fp8" => StateFormat::Fp8,
        _ => panic!("--state takes f32, bf16, f16, int8, int4 or fp8, not {s:?}"),
    }
}

fn state_name(f: StateFormat) -> &'static str {
    match f {
        StateFormat::F32 => "f32",
        StateFormat::Bf16 => "bf16",
        StateFormat::F16 => "f16",
        StateFormat::Int8 => "int8",
        StateFormat::Int4 => "int4",
        StateFormat::Fp8 => "fp8",
        _ => "?",
    }
}

struct Args {
    optimizer: String,
    sizes: Vec<usize>,
    target: Duration,
    backend: Backend,
    align: usize,
    params: ParamFmt,
    grads: GradFmt,
    state: StateFormat,
    block_all: bool,
    /// `sparse-adam`: the percentage of rows each step touches.
    touch_pct: f64,
    /// With the `rayon` feature: steps and floors through `parallel::apply` on a pool of this
    /// many threads (0: the plain one-thread loop).
    #[cfg_attr(not(feature = "rayon"), allow(dead_code))]
    threads: usize,
    /// With `threads`: the threshold passed to `parallel::apply_with_threshold` (default
    /// `parallel::MIN_PARALLEL`).
    #[cfg_attr(not(feature = "rayon"), allow(dead_code))]
    min_parallel: Option<usize>,
}

impl Args {
    fn all_f32(&self) -> bool {
        self.params == ParamFmt::F32 && self.grads == GradFmt::F32 && self.state == StateFormat::F32
    }
}

fn parse_args() -> Args {
    let mut positional = Vec::new();
    let mut target = Duration::from_millis(50);
    let mut backend = Backend::best();
    let mut align = 0;
    let (mut params, mut grads, mut state) = (ParamFmt::F32, GradFmt::F32, StateFormat::F32);
    let mut block_all = false;
    let mut touch_pct = 1.0;
    let mut threads = 0;
    let mut min_parallel = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target-ms" => {
                let ms: f64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--target-ms MS");
                target = Duration::from_secs_f64(ms / 1e3);
            }
            "--align" => {
                align = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--align BYTES");
                assert!(align % 4 == 0, "--align takes a multiple of 4 bytes");
            }
            "--backend" => {
                let name = it.next().expect("--backend NAME");
                backend = Backend::ALL
                    .into_iter()
                    .find(|b| b.name() == name)
                    .unwrap_or_else(|| panic!("unknown backend {name}"));
                assert!(
                    backend.is_available(),
                    "backend {name} is not available here"
                );
            }
            "--params" => params = ParamFmt::parse(&it.next().expect("--params FORMAT")),
            "--grads" => grads = GradFmt::parse(&it.next().expect("--grads FORMAT")),
            "--state" => state = parse_state(&it.next().expect("--state FORMAT")),
            "--block-all" => block_all = true,
            "--stagger" => STAGGER.store(
                it.next()
                    .and_then(|v| v.parse().ok())
                    .expect("--stagger BYTES"),
                Ordering::Relaxed,
            ),
            "--touch-pct" => {
                touch_pct = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--touch-pct PERCENT");
                assert!(
                    touch_pct > 0.0 && touch_pct <= 100.0,
                    "--touch-pct takes a percentage in (0, 100]"
                );
            }
            "--threads" => {
                threads = it.next().and_then(|v| v.parse().ok()).expect("--threads N");
                if !cfg!(feature = "rayon") && threads > 0 {
                    panic!("--threads needs the rayon feature (cargo build --features rayon)");
                }
            }
            "--min-parallel" => {
                min_parallel = Some(
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--min-parallel N"),
                );
            }
            _ => positional.push(a),
        }
    }
    assert!(
        positional.len() == 2,
        "usage: bench_driver OPTIMIZER N1,N2,... [--target-ms MS] [--params F] [--grads F] \
         [--state F]"
    );
    let sizes = positional[1]
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad size {s:?}"))
        })
        .collect();
    Args {
        optimizer: positional[0].clone(),
        sizes,
        target,
        backend,
        align,
        params,
        grads,
        state,
        block_all,
        touch_pct,
        threads,
        min_parallel,
    }
}

/// SplitMix64, for reproducible buffer contents.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // Uniform in [-1, 1), nudged away from zero (no subnormal gradients).
        let x = ((z >> 40) as f32 / (1u32 << 24) as f32) * 2.0 - 1.0;
        x.signum() * (1e-3 + 0.999 * x.abs())
    }
}

/// A buffer whose first element sits at a chosen alignment (or wherever the allocator put it).
struct Buf<T> {
    data: Vec<T>,
    start: usize,
    len: usize,
}

/// `--stagger BYTES`: the `k`-th buffer made starts `k · BYTES` further into its allocation.
static STAGGER: AtomicUsize = AtomicUsize::new(0);
/// How many buffers have been made (for `STAGGER`).
static BUFFERS: AtomicUsize = AtomicUsize::new(0);

impl<T: Copy + Default> Buf<T> {
    fn new(values: impl Iterator<Item = T>, len: usize, align: usize) -> Self {
        let size = size_of::<T>();
        let k = BUFFERS.fetch_add(1, Ordering::Relaxed);
        let extra = (STAGGER.load(Ordering::Relaxed) * k).div_ceil(size);
        let mut data: Vec<T> = Vec::with_capacity(len + align / size + extra);
        let start = extra
            + match align {
                0 => 0,
                a => (a - data.as_ptr() as usize % a) % a / size,
            };
        data.resize(start, T::default());
        data.extend(values.take(len));
        data.resize(start + len, T::default());
        Buf { data, start, len }
    }
    fn zeros(len: usize, align: usize) -> Self {
        Self::new(core::iter::empty(), len, align)
    }
    fn get(&self) -> &[T] {
        &self.data[self.start..self.start + self.len]
    }
    fn get_mut(&mut self) -> &mut [T] {
        &mut self.data[self.start..self.start + self.len]
    }
}

/// Byte views of the element types, for the byte floor.
trait Bytes: Sized {
    fn bytes(s: &[Self]) -> &[u8];
    fn bytes_mut(s: &mut [Self]) -> &mut [u8];
}

macro_rules! pod_bytes {
    ($($t:ty),*) => {$(
        impl Bytes for $t {
            fn bytes(s: &[Self]) -> &[u8] {
                bytemuck::cast_slice(s)
            }
            fn bytes_mut(s: &mut [Self]) -> &mut [u8] {
                bytemuck::cast_slice_mut(s)
            }
        }
    )*};
}
pod_bytes!(f32, u8);

macro_rules! half_bytes {
    ($($t:ty),*) => {$(
        impl Bytes for $t {
            fn bytes(s: &[Self]) -> &[u8] {
                bytemuck::cast_slice(s.reinterpret_cast())
            }
            fn bytes_mut(s: &mut [Self]) -> &mut [u8] {
                bytemuck::cast_slice_mut(s.reinterpret_cast_mut())
            }
        }
    )*};
}
half_bytes!(bf16, f16);

impl<T: Copy + Default + Bytes> Buf<T> {
    fn bytes(&self) -> &[u8] {
        T::bytes(self.get())
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        T::bytes_mut(self.get_mut())
    }
}

/// One tensor's parameters, in their format.
enum PBuf {
    F32(Buf<f32>),
    Bf16(Buf<bf16>),
    F16(Buf<f16>),
    Bf16Sr(Buf<bf16>, u64),
    Bf16Kahan(Buf<bf16>, Buf<bf16>),
}

impl PBuf {
    fn new(fmt: ParamFmt, values: &[f32], align: usize, seed: u64) -> Self {
        let n = values.len();
        let b = || Buf::new(values.iter().map(|&x| bf16::from_f32(x)), n, align);
        match fmt {
            ParamFmt::F32 => PBuf::F32(Buf::new(values.iter().copied(), n, align)),
            ParamFmt::Bf16 => PBuf::Bf16(b()),
            ParamFmt::F16 => {
                PBuf::F16(Buf::new(values.iter().map(|&x| f16::from_f32(x)), n, align))
            }
            ParamFmt::Bf16Sr => PBuf::Bf16Sr(b(), seed),
            ParamFmt::Bf16Kahan => PBuf::Bf16Kahan(b(), Buf::zeros(n, align)),
        }
    }
    fn view(&mut self) -> Params<'_> {
        match self {
            PBuf::F32(p) => Params::F32(p.get_mut()),
            PBuf::Bf16(p) => Params::Bf16(p.get_mut()),
            PBuf::F16(p) => Params::F16(p.get_mut()),
            PBuf::Bf16Sr(p, seed) => Params::Bf16Stochastic {
                params: p.get_mut(),
                seed: *seed,
            },
            PBuf::Bf16Kahan(p, c) => Params::Bf16Kahan {
                params: p.get_mut(),
                compensation: c.get_mut(),
            },
        }
    }
    /// The f32 parameters (for the crate's floor).
    fn f32_mut(&mut self) -> &mut [f32] {
        match self {
            PBuf::F32(p) => p.get_mut(),
            _ => panic!("the crate's memory floor takes f32 parameters"),
        }
    }
    /// The byte streams read and written: the parameters, then the compensation, if any.
    fn streams(&mut self) -> (&mut [u8], &mut [u8]) {
        match self {
            PBuf::F32(p) => (p.bytes_mut(), &mut []),
            PBuf::Bf16(p) | PBuf::Bf16Sr(p, _) => (p.bytes_mut(), &mut []),
            PBuf::F16(p) => (p.bytes_mut(), &mut []),
            PBuf::Bf16Kahan(p, c) => (p.bytes_mut(), c.bytes_mut()),
        }
    }
    fn byte_len(&self) -> usize {
        match self {
            PBuf::F32(p) => p.bytes().len(),
            PBuf::Bf16(p) | PBuf::Bf16Sr(p, _) => p.bytes().len(),
            PBuf::F16(p) => p.bytes().len(),
            PBuf::Bf16Kahan(p, c) => p.bytes().len() + c.bytes().len(),
        }
    }
}

/// One tensor's gradients, in their format.
enum GBuf {
    F32(Buf<f32>),
    Bf16(Buf<bf16>),
    F16(Buf<f16>),
}

impl GBuf {
    fn new(fmt: GradFmt, values: &[f32], align: usize) -> Self {
        let n = values.len();
        match fmt {
            GradFmt::F32 => GBuf::F32(Buf::new(values.iter().copied(), n, align)),
            GradFmt::Bf16 => GBuf::Bf16(Buf::new(
                values.iter().map(|&x| bf16::from_f32(x)),
                n,
                align,
            )),
            GradFmt::F16 => GBuf::F16(Buf::new(values.iter().map(|&x| f16::from_f32(x)), n, align)),
        }
    }
    fn view(&self) -> Grads<'_> {
        match self {
            GBuf::F32(g) => Grads::F32(g.get()),
            GBuf::Bf16(g) => Grads::Bf16(g.get()),
            GBuf::F16(g) => Grads::F16(g.get()),
        }
    }
    fn f32(&self) -> &[f32] {
        match self {
            GBuf::F32(g) => g.get(),
            _ => panic!("the crate's memory floor takes f32 gradients"),
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            GBuf::F32(g) => g.bytes(),
            GBuf::Bf16(g) => g.bytes(),
            GBuf::F16(g) => g.bytes(),
        }
    }
}

/// One tensor's state, in its format: values, or codes and block scales. All planes in the same
/// buffers, one after another.
enum SBuf {
    F32(Buf<f32>),
    Bf16(Buf<bf16>),
    F16(Buf<f16>),
    Block {
        format: StateFormat,
        codes: Buf<u8>,
        scales: Buf<f32>,
    },
}

impl SBuf {
    fn new(format: StateFormat, planes: usize, n: usize, align: usize) -> Self {
        let layout = format.layout(planes, n);
        match format {
            StateFormat::F32 => SBuf::F32(Buf::zeros(layout.values, align)),
            StateFormat::Bf16 => SBuf::Bf16(Buf::zeros(layout.values, align)),
            StateFormat::F16 => SBuf::F16(Buf::zeros(layout.values, align)),
            _ => SBuf::Block {
                format,
                codes: Buf::zeros(layout.codes, align),
                scales: Buf::zeros(layout.scales, align),
            },
        }
    }
    fn view(&mut self) -> State<'_> {
        match self {
            SBuf::F32(v) => State::F32(v.get_mut()),
            SBuf::Bf16(v) => State::Bf16(v.get_mut()),
            SBuf::F16(v) => State::F16(v.get_mut()),
            SBuf::Block {
                format,
                codes,
                scales,
            } => {
                let (codes, scales) = (codes.get_mut(), scales.get_mut());
                match format {
                    StateFormat::Int8 => State::Int8 { codes, scales },
                    StateFormat::Int4 => State::Int4 { codes, scales },
                    StateFormat::Fp8 => State::Fp8 { codes, scales },
                    other => panic!("not a block format: {other:?}"),
                }
            }
        }
    }
    fn f32_mut(&mut self) -> &mut [f32] {
        match self {
            SBuf::F32(v) => v.get_mut(),
            _ => panic!("the crate's memory floor takes f32 state"),
        }
    }
    /// The byte streams: values (or codes) and scales (empty for the element formats).
    fn streams(&mut self) -> (&mut [u8], &mut [u8]) {
        match self {
            SBuf::F32(v) => (v.bytes_mut(), &mut []),
            SBuf::Bf16(v) => (v.bytes_mut(), &mut []),
            SBuf::F16(v) => (v.bytes_mut(), &mut []),
            SBuf::Block { codes, scales, .. } => (codes.bytes_mut(), scales.bytes_mut()),
        }
    }
    fn byte_len(&self) -> usize {
        match self {
            SBuf::F32(v) => v.bytes().len(),
            SBuf::Bf16(v) => v.bytes().len(),
            SBuf::F16(v) => v.bytes().len(),
            SBuf::Block { codes, scales, .. } => codes.bytes().len() + scales.bytes().len(),
        }
    }
}

/// One tensor's buffers.
struct Tensor {
    n: usize,
    params: PBuf,
    grads: GBuf,
    state: SBuf,
}

/// Elements per tile of the byte floor (a multiple of every block size): every stream advances
/// by its share of this many elements per tile (4 KiB of an f32 stream), so all streams are in
/// flight together, as in the kernels. At 16 Mi elements 256 and 1024 measured the same; 1024
/// has less loop overhead on cache-resident tensors.
const FLOOR_TILE: usize = 1024;

/// `dst ^= src`, with `src` folded onto `dst` when it is longer (wider gradients than
/// parameters) and only a prefix of `dst` touched when it is shorter. Vectorizes to full-width
/// SIMD XORs.
#[inline(always)]
fn xor_into(dst: &mut [u8], src: &[u8]) {
    if dst.is_empty() {
        return;
    }
    for chunk in src.chunks(dst.len()) {
        for (d, s) in dst.iter_mut().zip(chunk) {
            *d ^= *s;
        }
    }
}

/// Reads and writes every byte (`b += 1`), vectorized.
#[inline(always)]
fn touch(dst: &mut [u8]) {
    for d in dst.iter_mut() {
        *d = d.wrapping_add(1);
    }
}

/// One byte stream of the floor: its bytes, and how many of them one tile covers.
struct Stream<'a> {
    bytes: &'a mut [u8],
    per_tile: usize,
}

/// Tile `i` of a stream of `len` bytes, `per_tile` bytes a tile (the last one may be short).
#[inline(always)]
fn tile(len: usize, per_tile: usize, i: usize) -> core::ops::Range<usize> {
    (i * per_tile).min(len)..((i + 1) * per_tile).min(len)
}

/// The byte floor of one tensor of `tiles` tiles: reads every byte of `ro` (the gradients) and
/// of the `rw` streams (parameters, compensation, each state plane's values or codes and each
/// plane's scales), writes every byte of `rw`, with no arithmetic: `rw[0] ^= ro`, `rw[k] += 1`
/// for `k >= 1`. The tiles are walked in order, all streams of a tile together.
#[inline(never)]
fn floor_bytes(tiles: usize, ro: &[u8], ro_per_tile: usize, rw: &mut [Stream<'_>]) {
    let Some((first, rest)) = rw.split_first_mut() else {
        return;
    };
    for i in 0..tiles {
        let src = &ro[tile(ro.len(), ro_per_tile, i)];
        let r = tile(first.bytes.len(), first.per_tile, i);
        xor_into(&mut first.bytes[r], src);
        for s in rest.iter_mut() {
            let r = tile(s.bytes.len(), s.per_tile, i);
            touch(&mut s.bytes[r]);
        }
    }
}

impl Tensor {
    /// The byte floor over this tensor's buffers. State planes are separate streams (plane `j`'s
    /// values or codes, then plane `j`'s scales), as the optimizer walks them.
    fn floor_bytes(&mut self, planes: usize) {
        let (n, t) = (self.n, FLOOR_TILE);
        if n == 0 {
            return;
        }
        let tiles = n.div_ceil(t);
        // Bytes per tile of each stream: element streams `t · bytes per element`; codes `t` or
        // `t / 2` (int4); scales 4 bytes per block.
        let (state_per_tile, scales_per_tile) = match &self.state {
            SBuf::F32(_) => (4 * t, 0),
            SBuf::Bf16(_) | SBuf::F16(_) => (2 * t, 0),
            SBuf::Block { format, .. } => {
                let codes = if *format == StateFormat::Int4 {
                    t / 2
                } else {
                    t
                };
                (codes, 4 * t / format.block())
            }
        };
        let grads = self.grads.bytes();
        let g_per_tile = grads.len() / n * t;
        let (p, comp) = self.params.streams();
        let p_per_tile = p.len() / n * t;
        let (values, scales) = self.state.streams();
        // At most: params, compensation, 3 planes of values/codes, 3 planes of scales.
        let mut rw: [Stream<'_>; 8] = core::array::from_fn(|_| Stream {
            bytes: &mut [],
            per_tile: 0,
        });
        let mut k = 0;
        for (bytes, per_tile) in [(p, p_per_tile), (comp, p_per_tile)] {
            if !bytes.is_empty() {
                rw[k] = Stream { bytes, per_tile };
                k += 1;
            }
        }
        let vplane = values.len() / planes.max(1);
        let splane = scales.len() / planes.max(1);
        let (mut vrest, mut srest) = (values, scales);
        for _ in 0..planes {
            let (v, vr) = core::mem::take(&mut vrest).split_at_mut(vplane);
            let (s, sr) = core::mem::take(&mut srest).split_at_mut(splane);
            vrest = vr;
            srest = sr;
            for (bytes, per_tile) in [(v, state_per_tile), (s, scales_per_tile)] {
                if !bytes.is_empty() {
                    rw[k] = Stream { bytes, per_tile };
                    k += 1;
                }
            }
        }
        floor_bytes(tiles, grads, g_per_tile, &mut rw[..k]);
    }

    /// Bytes read plus bytes written by one step: parameters, gradients and state read;
    /// parameters and state written.
    fn bytes_moved(&self) -> usize {
        2 * self.params.byte_len() + self.grads.bytes().len() + 2 * self.state.byte_len()
    }
}

struct Model<O: Optimizer> {
    opt: O,
    backend: Backend,
    tensors: Vec<Tensor>,
    step: u64,
    scalars: O::Scalars,
    planes: usize,
    /// The threshold handed to `parallel::apply_with_threshold`.
    #[cfg(feature = "rayon")]
    min_parallel: usize,
    #[cfg(feature = "rayon")]
    pool: Option<rayon::ThreadPool>,
}

impl<O: Optimizer> Model<O> {
    fn new(opt: O, args: &Args) -> Self {
        let mut rng = Rng(42);
        let planes = opt.state_len(1);
        let tensors = args
            .sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let p: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
                let g: Vec<f32> = (0..n).map(|_| rng.next_f32() * 0.1).collect();
                let format = if args.block_all {
                    args.state
                } else {
                    args.state.torchao_for(n, args.params.small_state())
                };
                let mut state = SBuf::new(format, planes, n, args.align);
                opt.init_state_in(state.view()).unwrap();
                Tensor {
                    n,
                    params: PBuf::new(args.params, &p, args.align, 0x5eed ^ i as u64),
                    grads: GBuf::new(args.grads, &g, args.align),
                    state,
                }
            })
            .collect();
        Model {
            opt,
            backend: args.backend,
            tensors,
            step: 0,
            scalars: O::Scalars::default(),
            planes,
            #[cfg(feature = "rayon")]
            min_parallel: args
                .min_parallel
                .unwrap_or(fused_optim::parallel::MIN_PARALLEL),
            #[cfg(feature = "rayon")]
            pool: (args.threads > 0).then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(args.threads)
                    .build()
                    .expect("a thread pool")
            }),
        }
    }

    /// `plan` over every tensor through `parallel::apply` on the pool; false without one.
    #[cfg(feature = "rayon")]
    fn parallel<P: StepPlan>(&mut self, plan: &P) -> bool {
        let Some(pool) = &self.pool else {
            return false;
        };
        let planes = self.planes;
        let mut steps: Vec<TensorStep<'_>> = self
            .tensors
            .iter_mut()
            .map(|t| {
                TensorStep::new(t.params.view(), t.grads.view(), t.state.view(), planes)
                    .expect("buffers fit")
            })
            .collect();
        let backend = self.backend;
        let min = self.min_parallel;
        pool.install(|| {
            fused_optim::parallel::apply_with_threshold(plan, backend, &mut steps, min)
        })
        .expect("buffers fit");
        true
    }

    #[cfg(not(feature = "rayon"))]
    fn parallel<P: StepPlan>(&mut self, _plan: &P) -> bool {
        false
    }

    /// One optimizer step over every tensor: one plan, applied to each.
    #[inline(never)]
    fn step(&mut self) {
        self.step += 1;
        let plan = self
            .opt
            .plan(self.step, &self.scalars)
            .expect("valid hyperparameters");
        if self.parallel(&plan) {
            self.scalars = plan.scalars_after();
            return;
        }
        for t in &mut self.tensors {
            plan.apply_piece(
                self.backend,
                0,
                t.params.view(),
                t.grads.view(),
                t.state.view(),
            )
            .expect("buffers fit");
        }
        self.scalars = plan.scalars_after();
    }

    /// The same walk with the crate's memory floor instead of the optimizer (f32 buffers).
    #[inline(never)]
    fn floor_crate(&mut self) {
        if self.parallel(&FloorPlan {
            planes: self.planes,
        }) {
            return;
        }
        for t in &mut self.tensors {
            let (p, g, s) = (t.params.f32_mut(), t.grads.f32(), t.state.f32_mut());
            memory_floor(self.backend, self.planes, p, g, s).expect("buffers fit");
        }
    }

    /// The same walk with the byte floor, any format.
    #[inline(never)]
    fn floor_bytes(&mut self) {
        for t in &mut self.tensors {
            t.floor_bytes(self.planes);
        }
    }

    fn run(&mut self, kind: Kind, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            match kind {
                Kind::Step => self.step(),
                Kind::FloorCrate => self.floor_crate(),
                Kind::FloorBytes => self.floor_bytes(),
            }
            core::hint::black_box(&mut self.tensors);
        }
        start.elapsed()
    }

    /// How many iterations fill `target`, after a warm-up of about the same length.
    /// (One untimed iteration first; then doubling batches until one lasts a quarter of the
    /// target, re-timed three times, keeping the fastest, so one preemption does not skew it.)
    fn calibrate(&mut self, kind: Kind, target: Duration) -> u64 {
        self.run(kind, 1);
        let mut iters = 1u64;
        while iters < 1 << 40 && self.run(kind, iters) < target / 4 {
            iters *= 2;
        }
        let best = (0..3)
            .map(|_| self.run(kind, iters))
            .min()
            .unwrap_or(target);
        let per = best.as_secs_f64() / iters as f64;
        ((target.as_secs_f64() / per).round() as u64).max(1)
    }

    fn state_bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.state.byte_len()).sum()
    }

    fn bytes_moved(&self) -> usize {
        self.tensors.iter().map(Tensor::bytes_moved).sum()
    }

    /// How many tensors keep their state in each format, e.g. `{"int8":20,"f32":42}`.
    fn state_formats(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for t in &self.tensors {
            let name = match &t.state {
                SBuf::F32(_) => "f32",
                SBuf::Bf16(_) => "bf16",
                SBuf::F16(_) => "f16",
                SBuf::Block { format, .. } => state_name(*format),
            };
            match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        let fields: Vec<String> = counts.iter().map(|(k, c)| format!("\"{k}\":{c}")).collect();
        format!("{{{}}}", fields.join(","))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Step,
    FloorCrate,
    FloorBytes,
}

fn serve<O: Optimizer>(opt: O, formula: &str, args: &Args) {
    // Separate buffers for the floors, so they never disturb the optimizer's state.
    let mut model = Model::new(opt, args);
    let mut floor_model = Model::new(opt, args);
    let elements: usize = args.sizes.iter().sum();
    let step_iters = model.calibrate(Kind::Step, args.target);
    let crate_iters = if args.all_f32() {
        floor_model.calibrate(Kind::FloorCrate, args.target)
    } else {
        0
    };
    let bytes_iters = floor_model.calibrate(Kind::FloorBytes, args.target);
    let (floor_kind, floor_iters) = if args.all_f32() {
        (Kind::FloorCrate, crate_iters)
    } else {
        (Kind::FloorBytes, bytes_iters)
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{{\"kind\":\"setup\",\"optimizer\":\"{}\",\"formula\":\"{}\",\"backend\":\"{}\",\
         \"tensors\":{},\"elements\":{},\"planes\":{},\"params\":\"{}\",\"grads\":\"{}\",\
         \"state\":\"{}\",\"block_all\":{},\"state_formats\":{},\"state_bytes\":{},\
         \"bytes_moved\":{},\"step_iters\":{},\"floor_iters\":{},\"floor_bytes_iters\":{},\
         \"floor_crate_iters\":{}}}",
        args.optimizer,
        formula,
        args.backend,
        args.sizes.len(),
        elements,
        model.planes,
        args.params.name(),
        args.grads.name(),
        state_name(args.state),
        args.block_all,
        model.state_formats(),
        model.state_bytes(),
        model.bytes_moved(),
        step_iters,
        floor_iters,
        bytes_iters,
        crate_iters,
    )
    .unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let (kind, took, iters) = match line.trim() {
            "step" => ("step", model.run(Kind::Step, step_iters), step_iters),
            "floor" => (
                "floor",
                floor_model.run(floor_kind, floor_iters),
                floor_iters,
            ),
            "floor-bytes" => (
                "floor-bytes",
                floor_model.run(Kind::FloorBytes, bytes_iters),
                bytes_iters,
            ),
            "floor-crate" if args.all_f32() => (
                "floor-crate",
                floor_model.run(Kind::FloorCrate, crate_iters),
                crate_iters,
            ),
            "quit" | "" => break,
            other => panic!("unknown command {other:?}"),
        };
        let ns = took.as_nanos() as f64 / iters as f64;
        writeln!(
            out,
            "{{\"kind\":\"{kind}\",\"ns_per_step\":{ns:.3},\"iters\":{iters}}}"
        )
        .unwrap();
        out.flush().unwrap();
    }
}

/// One embedding table for `sparse-adam`: the table, its state, one step's sparse gradient, and
/// a separate table and state for the floor.
struct SparseModel {
    dim: usize,
    indices: Vec<u32>,
    values: Vec<f32>,
    params: Buf<f32>,
    state: Buf<f32>,
    floor_params: Buf<f32>,
    floor_state: Buf<f32>,
    step: u64,
    backend: Backend,
}

impl SparseModel {
    fn new(args: &Args) -> Self {
        let [rows, dim] = args.sizes[..] else {
            panic!("sparse-adam takes ROWS,DIM");
        };
        let n = rows * dim;
        let mut rng = Rng(0x5eed ^ n as u64);
        let touched = ((rows as f64 * args.touch_pct / 100.0).round() as usize).clamp(1, rows);
        // `touched` rows spread evenly over the table: sorted and unique.
        let indices: Vec<u32> = (0..touched).map(|k| (k * rows / touched) as u32).collect();
        let values: Vec<f32> = (0..touched * dim).map(|_| rng.next_f32()).collect();
        let table: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
        let mut model = SparseModel {
            dim,
            indices,
            values,
            params: Buf::new(table.iter().copied(), n, args.align),
            state: Buf::zeros(2 * n, args.align),
            floor_params: Buf::new(table.iter().copied(), n, args.align),
            floor_state: Buf::zeros(2 * n, args.align),
            step: 0,
            backend: args.backend,
        };
        // Touch every page once, and leave a state that is not all zeros.
        model.step();
        model
    }

    #[inline(never)]
    fn step(&mut self) {
        self.step += 1;
        let plan = SparseAdam::default().plan(self.step).unwrap();
        let grad = SparseGrad::new(self.dim, &self.indices, &self.values);
        plan.apply_on(
            self.backend,
            self.params.get_mut(),
            grad,
            self.state.get_mut(),
        )
        .unwrap();
    }

    /// Reads the touched rows of the table, the gradient and both state planes, and writes the
    /// table and the state rows, with no arithmetic: `p ← g`, `m ← p`, `v ← m`.
    #[inline(never)]
    fn floor(&mut self) {
        let dim = self.dim;
        let n = self.floor_params.len;
        let (m, v) = self.floor_state.get_mut().split_at_mut(n);
        let p = self.floor_params.get_mut();
        for (&row, g) in self.indices.iter().zip(self.values.chunks_exact(dim)) {
            let span = row as usize * dim..(row as usize + 1) * dim;
            let (p, m, v) = (&mut p[span.clone()], &mut m[span.clone()], &mut v[span]);
            for ((p, m), (v, g)) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut().zip(g)) {
                let (old_p, old_m) = (*p, *m);
                *p = *g;
                *m = old_p;
                *v = old_m;
            }
        }
    }

    fn run(&mut self, floor: bool, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            if floor {
                self.floor();
            } else {
                self.step();
            }
            core::hint::black_box(&mut self.params);
            core::hint::black_box(&mut self.floor_params);
        }
        start.elapsed()
    }

    /// As `Model::calibrate`.
    fn calibrate(&mut self, floor: bool, target: Duration) -> u64 {
        self.run(floor, 1);
        let mut iters = 1u64;
        while iters < 1 << 40 && self.run(floor, iters) < target / 4 {
            iters *= 2;
        }
        let best = (0..3)
            .map(|_| self.run(floor, iters))
            .min()
            .unwrap_or(target);
        let per = best.as_secs_f64() / iters as f64;
        ((target.as_secs_f64() / per).round() as u64).max(1)
    }
}

fn serve_sparse(args: &Args) {
    let mut model = SparseModel::new(args);
    let step_iters = model.calibrate(false, args.target);
    let floor_iters = model.calibrate(true, args.target);
    let touched = model.values.len();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{{\"kind\":\"setup\",\"optimizer\":\"sparse-adam\",\"formula\":\"torch\",\
         \"backend\":\"{}\",\"rows\":{},\"dim\":{},\"touched_rows\":{},\"elements\":{},\
         \"touched_elements\":{},\"planes\":2,\"state_bytes\":{},\"bytes_moved\":{},\
         \"step_iters\":{},\"floor_iters\":{}}}",
        args.backend,
        args.sizes[0],
        model.dim,
        model.indices.len(),
        model.params.len,
        touched,
        model.state.len * 4,
        // Read p, g, m, v and write p, m, v per touched value, plus the indices.
        touched * 7 * 4 + model.indices.len() * 4,
        step_iters,
        floor_iters,
    )
    .unwrap();
    out.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let (kind, took, iters) = match line.trim() {
            "step" => ("step", model.run(false, step_iters), step_iters),
            k @ ("floor" | "floor-bytes") => (k, model.run(true, floor_iters), floor_iters),
            "quit" | "" => break,
            other => panic!("unknown command {other:?}"),
        };
        let ns = took.as_nanos() as f64 / iters as f64;
        writeln!(
            out,
            "{{\"kind\":\"{kind}\",\"ns_per_step\":{ns:.3},\"iters\":{iters}}}"
        )
        .unwrap();
        out.flush().unwrap();
    }
}

fn main() {
    let args = parse_args();
    let torch = "torch";
    match args.optimizer.as_str() {
        "sgd" => serve(Sgd::default(), torch, &args),
        "sgd-momentum" => serve(
            Sgd {
                momentum: 0.9,
                ..Sgd::default()
            },
            torch,
            &args,
        ),
        "adam" => serve(Adam::default(), torch, &args),
        "adamw" => serve(Adam::adamw(), torch, &args),
        "adagrad" => serve(Adagrad::default(), torch, &args),
        "adadelta" => serve(Adadelta::default(), torch, &args),
        "rmsprop" => serve(RMSprop::default(), torch, &args),
        "adamax" => serve(Adamax::default(), torch, &args),
        "nadam" => serve(NAdam::default(), torch, &args),
        "radam" => serve(RAdam::default(), torch, &args),
        "lion" => serve(Lion::default(), torch, &args),
        "rprop" => serve(Rprop::default(), torch, &args),
        "asgd" => serve(Asgd::default(), torch, &args),
        // torchao's low-bit formula (f32 scalars, its order of operations); the state format
        // is still the one chosen with --state.
        "torchao-adamw" => serve(TorchaoAdam::adamw8bit(), "torchao", &args),
        "torchao-adam" => serve(TorchaoAdam::adam8bit(), "torchao", &args),
        "sparse-adam" => serve_sparse(&args),
        other => panic!("unknown optimizer {other:?}"),
    }
}
