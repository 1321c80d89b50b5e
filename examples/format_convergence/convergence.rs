//! Storage formats under a harder task: an MLP classifier on generated spirals, trained with
//! AdamW once per combination of state format and parameter storage.
//!
//! * Data: [`CLASSES`] interleaved spiral arms in the plane (a point at radius `r` in `(0, 1]`
//!   on arm `c` sits at angle `2πc/K + TURNS·2πr + 0.2·N(0, 1)`), [`TRAIN_PER_CLASS`] training
//!   and [`TEST_PER_CLASS`] held-out points per class, drawn from one seeded SplitMix64 stream.
//!   No downloads.
//! * Model: `Linear(2 → 128)`, ReLU, `Linear(128 → 128)`, ReLU, `Linear(128 → K)`, softmax
//!   cross-entropy; weights stored input-major (`w[i·out + j]`), initialised as `nn.Linear` is
//!   (uniform in ±1/√fan_in). The 128×128 weight (16 384 values) fills 64 blocks of 256 and the
//!   output weight 2; the biases and the first layer's 256 weights are single or partial blocks.
//! * Training: AdamW (torch's defaults, weight decay 1e-2, except `eps` = 1e-6: see below),
//!   batches of [`BATCH`] from a shuffled pass over the training set, linear warmup then cosine
//!   annealing down to a small rate ([`Config::lr_min`]). Late in the schedule most updates are
//!   smaller than half a bf16 ulp of the weight they update, which is where the parameter
//!   rounding modes differ.
//!
//! Why `eps` = 1e-6: with torch's 1e-8, the 8-bit and float8 block formats (as torchao's) can
//! store an element's `v` as zero while its `m` survives (`v` spans the square of `m`'s range,
//! and a block is scaled to its largest value); the next step with a zero gradient (a ReLU unit
//! that did not fire) then moves the weight by `lr·m̂/eps`. On this network, with `eps` = 1e-8
//! (`--eps 1e-8`), fp8 state reaches NaN by step 50 (seed 1); a larger `eps` bounds those steps.
//! See docs/formats-convergence.md.
//!
//! Every run starts from the same weights and sees the same batches; only the storage differs.
//! Forward and backward run in `f32` on the parameters as stored (bf16 widened to `f32`);
//! gradients stay `f32`.
//!
//! Shared by the example (`main.rs`) and `tests/format_convergence.rs`.

use core::fmt;

use fused_optim::schedule::WarmupCosine;
use fused_optim::{Adam, Backend, Error, Grads, Params, State, StateFormat, bf16};

/// Number of classes (spiral arms).
pub(crate) const CLASSES: usize = 4;
/// Width of both hidden layers.
pub(crate) const HIDDEN: usize = 128;
/// Input dimension.
pub(crate) const INPUT: usize = 2;
/// Turns of each arm from the centre to radius 1.
pub(crate) const TURNS: f64 = 1.5;
/// Training points per class.
pub(crate) const TRAIN_PER_CLASS: usize = 512;
/// Held-out points per class.
pub(crate) const TEST_PER_CLASS: usize = 256;
/// Mini-batch size.
pub(crate) const BATCH: usize = 64;
/// Angular noise of the arms (radians, standard deviation).
const NOISE: f64 = 0.2;

/// The six tensors: `(rows, cols)` of each weight (input-major) and the length of each bias.
pub(crate) const SHAPES: [(usize, usize); 6] = [
    (INPUT, HIDDEN),
    (1, HIDDEN),
    (HIDDEN, HIDDEN),
    (1, HIDDEN),
    (HIDDEN, CLASSES),
    (1, CLASSES),
];

// ---------------------------------------------------------------------------------------------
// Random numbers

/// SplitMix64 (Steele, Lea and Flood, 2014).
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator started from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(core::f64::consts::TAU * u2)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Data

/// Labelled points.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dataset {
    /// Inputs, `INPUT` values per point.
    pub(crate) x: Vec<f32>,
    /// Class of each point.
    pub(crate) y: Vec<usize>,
}

impl Dataset {
    /// `per_class` points on each arm, radii uniform in (0, 1], classes interleaved.
    pub(crate) fn spirals(per_class: usize, rng: &mut SplitMix64) -> Self {
        let mut x = Vec::with_capacity(per_class * CLASSES * INPUT);
        let mut y = Vec::with_capacity(per_class * CLASSES);
        for _ in 0..per_class {
            for class in 0..CLASSES {
                let r = 1.0 - rng.uniform();
                let theta = core::f64::consts::TAU * (class as f64 / CLASSES as f64 + TURNS * r)
                    + NOISE * rng.normal();
                x.push((r * libm::cos(theta)) as f32);
                x.push((r * libm::sin(theta)) as f32);
                y.push(class);
            }
        }
        Dataset { x, y }
    }

    /// Number of points.
    pub(crate) fn len(&self) -> usize {
        self.y.len()
    }

    /// Points `idx`, gathered into `(x, y)`.
    fn gather(&self, idx: &[usize], x: &mut Vec<f32>, y: &mut Vec<usize>) {
        x.clear();
        y.clear();
        for &i in idx {
            if let (Some(p), Some(&c)) = (self.x.get(i * INPUT..(i + 1) * INPUT), self.y.get(i)) {
                x.extend_from_slice(p);
                y.push(c);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model

/// The six tensors of the MLP (or of its gradient), flat, in [`SHAPES`] order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mlp {
    /// `w1, b1, w2, b2, w3, b3`.
    pub(crate) tensors: [Vec<f32>; 6],
}

/// Activations of one batch, reused from step to step.
#[derive(Clone, Debug, Default)]
pub(crate) struct Workspace {
    h1: Vec<f32>,
    h2: Vec<f32>,
    z: Vec<f32>,
    dz: Vec<f32>,
    dh2: Vec<f32>,
    dh1: Vec<f32>,
}

/// `out += a·x`.
#[inline]
fn axpy(out: &mut [f32], a: f32, x: &[f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o += a * x;
    }
}

/// `Σ a·b` with eight partial sums (so that it vectorises), then the tail.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in ac.zip(bc) {
        for ((s, x), y) in acc.iter_mut().zip(x).zip(y) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `out[b] = bias + x[b]·w` for every row `b` (`w` is `inp × bias.len()`), then ReLU if asked.
fn dense(x: &[f32], inp: usize, w: &[f32], bias: &[f32], out: &mut Vec<f32>, relu: bool) {
    let n = bias.len();
    let rows = x.len() / inp;
    out.clear();
    out.resize(rows * n, 0.0);
    for (xr, or) in x.chunks_exact(inp).zip(out.chunks_exact_mut(n)) {
        or.copy_from_slice(bias);
        for (&xi, wr) in xr.iter().zip(w.chunks_exact(n)) {
            // ReLU activations are often exactly zero: nothing to add.
            if xi != 0.0 {
                axpy(or, xi, wr);
            }
        }
        if relu {
            or.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// Backward through `dense`: adds `xᵀ·dout` to `dw` and the column sums of `dout` to `db`, and
/// (if `dx` is given) writes `dout·wᵀ`, zeroed where `x` is zero (the ReLU that produced `x`).
fn dense_back(
    x: &[f32],
    inp: usize,
    w: &[f32],
    dout: &[f32],
    dw: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut Vec<f32>>,
) {
    let n = db.len();
    for (xr, dr) in x.chunks_exact(inp).zip(dout.chunks_exact(n)) {
        for (&xi, dwr) in xr.iter().zip(dw.chunks_exact_mut(n)) {
            if xi != 0.0 {
                axpy(dwr, xi, dr);
            }
        }
        axpy(db, 1.0, dr);
    }
    if let Some(dx) = dx {
        dx.clear();
        dx.resize(x.len(), 0.0);
        for ((xr, dr), dxr) in x
            .chunks_exact(inp)
            .zip(dout.chunks_exact(n))
            .zip(dx.chunks_exact_mut(inp))
        {
            for ((&xi, wr), d) in xr.iter().zip(w.chunks_exact(n)).zip(dxr.iter_mut()) {
                *d = if xi > 0.0 { dot(wr, dr) } else { 0.0 };
            }
        }
    }
}

/// Log-softmax cross-entropy of one row of logits against `class`, and whether the row's
/// largest logit is `class` (the first largest, on ties). Writes `softmax − onehot` into
/// `grad` if given.
fn cross_entropy(z: &[f32], class: usize, grad: Option<&mut [f32]>) -> (f32, bool) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = z.iter().map(|&v| libm::expf(v - max)).sum();
    let target = z.get(class).copied().unwrap_or(f32::NAN);
    let loss = libm::logf(sum) + max - target;
    let argmax = z
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0;
    if let Some(grad) = grad {
        for (k, (g, &v)) in grad.iter_mut().zip(z).enumerate() {
            let p = libm::expf(v - max) / sum;
            *g = if k == class { p - 1.0 } else { p };
        }
    }
    (loss, argmax == class)
}

impl Mlp {
    /// All zeros (a gradient buffer).
    pub(crate) fn zeros() -> Self {
        Mlp {
            tensors: SHAPES.map(|(r, c)| vec![0.0; r * c]),
        }
    }

    /// `nn.Linear`'s initialisation, layer by layer, weight before bias: uniform in
    /// ±1/√fan_in.
    pub(crate) fn init(rng: &mut SplitMix64) -> Self {
        let mut net = Mlp::zeros();
        let fan_ins = [INPUT, INPUT, HIDDEN, HIDDEN, HIDDEN, HIDDEN];
        for (t, fan_in) in net.tensors.iter_mut().zip(fan_ins) {
            let bound = 1.0 / libm::sqrt(fan_in as f64);
            t.iter_mut()
                .for_each(|v| *v = (bound * (2.0 * rng.uniform() - 1.0)) as f32);
        }
        net
    }

    /// The number of parameters.
    pub(crate) fn len(&self) -> usize {
        self.tensors.iter().map(Vec::len).sum()
    }

    /// The logits of the batch `x` (left in `ws.z`), keeping the activations for `backward`.
    fn forward(&self, x: &[f32], ws: &mut Workspace) {
        let [w1, b1, w2, b2, w3, b3] = &self.tensors;
        dense(x, INPUT, w1, b1, &mut ws.h1, true);
        dense(&ws.h1, HIDDEN, w2, b2, &mut ws.h2, true);
        dense(&ws.h2, HIDDEN, w3, b3, &mut ws.z, false);
    }

    /// Mean cross-entropy over the batch `(x, y)` and its gradient, written into `grads`.
    pub(crate) fn loss_and_grad(
        &self,
        x: &[f32],
        y: &[usize],
        grads: &mut Mlp,
        ws: &mut Workspace,
    ) -> f32 {
        grads.tensors.iter_mut().for_each(|t| t.fill(0.0));
        if y.is_empty() {
            return 0.0;
        }
        self.forward(x, ws);
        let scale = 1.0 / y.len() as f32;
        ws.dz.clear();
        ws.dz.resize(ws.z.len(), 0.0);
        let mut sum = 0.0f32;
        for ((zr, dr), &c) in
            ws.z.chunks_exact(CLASSES)
                .zip(ws.dz.chunks_exact_mut(CLASSES))
                .zip(y)
        {
            sum += cross_entropy(zr, c, Some(dr)).0;
            dr.iter_mut().for_each(|d| *d *= scale);
        }
        let [w1, _, w2, _, w3, _] = &self.tensors;
        let [gw1, gb1, gw2, gb2, gw3, gb3] = &mut grads.tensors;
        dense_back(&ws.h2, HIDDEN, w3, &ws.dz, gw3, gb3, Some(&mut ws.dh2));
        dense_back(&ws.h1, HIDDEN, w2, &ws.dh2, gw2, gb2, Some(&mut ws.dh1));
        dense_back(x, INPUT, w1, &ws.dh1, gw1, gb1, None);
        sum * scale
    }

    /// Mean cross-entropy and accuracy over a whole data set (in chunks of 256 points).
    pub(crate) fn evaluate(&self, data: &Dataset, ws: &mut Workspace) -> (f64, f64) {
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for (x, y) in data.x.chunks(256 * INPUT).zip(data.y.chunks(256)) {
            self.forward(x, ws);
            for (zr, &c) in ws.z.chunks_exact(CLASSES).zip(y) {
                let (l, hit) = cross_entropy(zr, c, None);
                loss += f64::from(l);
                correct += usize::from(hit);
            }
        }
        let n = data.len().max(1) as f64;
        (loss / n, correct as f64 / n)
    }
}

// ---------------------------------------------------------------------------------------------
// Storage

/// How the parameters are stored between steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamMode {
    /// `f32`.
    F32,
    /// bf16, rounded to nearest even after every update.
    Bf16,
    /// bf16 with stochastic rounding.
    Bf16Sr,
    /// bf16 with a bf16 Kahan compensation buffer.
    Bf16Kahan,
}

impl ParamMode {
    /// The short name used in the table.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            ParamMode::F32 => "f32",
            ParamMode::Bf16 => "bf16",
            ParamMode::Bf16Sr => "bf16-sr",
            ParamMode::Bf16Kahan => "bf16-kahan",
        }
    }
}

/// The short name of a state format.
pub(crate) fn state_name(format: StateFormat) -> &'static str {
    match format {
        StateFormat::F32 => "f32",
        StateFormat::Bf16 => "bf16",
        StateFormat::F16 => "f16",
        StateFormat::Int8 => "int8",
        StateFormat::Int4 => "int4",
        StateFormat::Fp8 => "fp8",
        _ => "?",
    }
}

/// One storage combination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Setup {
    /// How AdamW's two state planes are stored.
    pub(crate) state: StateFormat,
    /// How the parameters are stored.
    pub(crate) params: ParamMode,
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state {} / params {}",
            state_name(self.state),
            self.params.name()
        )
    }
}

/// The combinations the example runs: the `f32` reference, each state format with `f32`
/// parameters, each parameter mode with `f32` state, and some mixtures.
pub(crate) const SETUPS: [Setup; 12] = {
    use ParamMode as P;
    use StateFormat as S;
    const fn s(state: StateFormat, params: ParamMode) -> Setup {
        Setup { state, params }
    }
    [
        s(S::F32, P::F32),
        s(S::Bf16, P::F32),
        s(S::Int8, P::F32),
        s(S::Int4, P::F32),
        s(S::Fp8, P::F32),
        s(S::F32, P::Bf16),
        s(S::F32, P::Bf16Sr),
        s(S::F32, P::Bf16Kahan),
        s(S::Bf16, P::Bf16),
        s(S::Int8, P::Bf16),
        s(S::Int8, P::Bf16Sr),
        s(S::Int8, P::Bf16Kahan),
    ]
};

/// AdamW's state for one tensor, in one format.
#[derive(Clone, Debug)]
enum StateBuf {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    Blocks {
        format: StateFormat,
        codes: Vec<u8>,
        scales: Vec<f32>,
    },
}

impl StateBuf {
    /// A fresh (zeroed) state of `planes` planes of `n` values.
    fn new(format: StateFormat, planes: usize, n: usize) -> Result<Self, Error> {
        let layout = format.layout(planes, n);
        Ok(match format {
            StateFormat::F32 => StateBuf::F32(vec![0.0; layout.values]),
            StateFormat::Bf16 => StateBuf::Bf16(vec![bf16::ZERO; layout.values]),
            StateFormat::Int8 | StateFormat::Int4 | StateFormat::Fp8 => StateBuf::Blocks {
                format,
                codes: vec![0; layout.codes],
                scales: vec![0.0; layout.scales],
            },
            _ => {
                return Err(Error::InvalidCombination(
                    "state format not in this example",
                ));
            }
        })
    }

    fn view(&mut self) -> State<'_> {
        match self {
            StateBuf::F32(v) => State::F32(v),
            StateBuf::Bf16(v) => State::Bf16(v),
            StateBuf::Blocks {
                format: StateFormat::Int4,
                codes,
                scales,
            } => State::Int4 { codes, scales },
            StateBuf::Blocks {
                format: StateFormat::Fp8,
                codes,
                scales,
            } => State::Fp8 { codes, scales },
            StateBuf::Blocks { codes, scales, .. } => State::Int8 { codes, scales },
        }
    }

    /// Bytes held: values, codes and `f32` scales.
    fn bytes(&self) -> usize {
        match self {
            StateBuf::F32(v) => 4 * v.len(),
            StateBuf::Bf16(v) => 2 * v.len(),
            StateBuf::Blocks { codes, scales, .. } => codes.len() + 4 * scales.len(),
        }
    }
}

/// The parameters and state of one tensor.
#[derive(Clone, Debug)]
struct Stored {
    /// bf16 parameters (unused for `f32` parameters, which live in the network itself).
    bf16s: Vec<bf16>,
    /// Kahan compensation.
    compensation: Vec<bf16>,
    state: StateBuf,
    /// Stochastic-rounding seed of this tensor.
    seed: u64,
}

// ---------------------------------------------------------------------------------------------
// Training

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Config {
    /// Seed of the data, the initial weights, the batch order and the stochastic rounding.
    pub(crate) seed: u64,
    /// Optimizer steps.
    pub(crate) steps: u64,
    /// Peak learning rate.
    pub(crate) lr: f64,
    /// AdamW's `eps`.
    pub(crate) eps: f64,
    /// The rate the cosine ends at.
    pub(crate) lr_min: f64,
    /// Linear warmup steps (from a tenth of `lr`).
    pub(crate) warmup: u64,
    /// Steps between two evaluations of the training loss.
    pub(crate) eval_every: u64,
    /// Backend of the kernels (`None`: the best).
    pub(crate) backend: Option<Backend>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 1,
            steps: 3000,
            lr: 1e-2,
            eps: 1e-6,
            lr_min: 1e-4,
            warmup: 100,
            eval_every: 500,
            backend: None,
        }
    }
}

impl Config {
    /// The learning-rate schedule.
    pub(crate) fn schedule(&self) -> WarmupCosine {
        WarmupCosine {
            base_lr: self.lr,
            start_factor: 0.1,
            warmup_iters: self.warmup,
            t_max: self.steps.saturating_sub(self.warmup).max(1),
            eta_min: self.lr_min,
        }
    }
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    /// The storage.
    pub(crate) setup: Setup,
    /// `(step, loss over the whole training set)`, every `eval_every` steps and at the end.
    pub(crate) curve: Vec<(u64, f64)>,
    /// Final loss over the training set.
    pub(crate) train_loss: f64,
    /// Final accuracy on the training set.
    pub(crate) train_acc: f64,
    /// Final loss on the held-out set.
    pub(crate) test_loss: f64,
    /// Final accuracy on the held-out set.
    pub(crate) test_acc: f64,
    /// Share of the parameters whose stored value changed over the last quarter of the steps.
    pub(crate) moved_late: f64,
    /// Bytes of optimizer state.
    pub(crate) state_bytes: usize,
    /// The trained network (as the forward pass sees it).
    pub(crate) net: Mlp,
}

impl Record {
    /// Whether the run blew up: a non-finite final loss, or one above the initial loss.
    pub(crate) fn diverged(&self) -> bool {
        let initial = self.curve.first().map_or(f64::INFINITY, |&(_, l)| l);
        !self.train_loss.is_finite() || self.train_loss > initial
    }
}

/// The data and initial weights of a seed: shared by every run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Problem {
    /// Training set.
    pub(crate) train: Dataset,
    /// Held-out set.
    pub(crate) test: Dataset,
    /// Initial weights (`f32`; bf16 runs round them to nearest).
    pub(crate) init: Mlp,
    /// Seed of the batch order.
    shuffle_seed: u64,
    /// Seed of the stochastic-rounding seeds.
    rounding_seed: u64,
}

impl Problem {
    /// Data, initial weights and the other seeds, from independent streams of `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        let mut master = SplitMix64::new(seed);
        let mut data_rng = SplitMix64::new(master.next_u64());
        let train = Dataset::spirals(TRAIN_PER_CLASS, &mut data_rng);
        let test = Dataset::spirals(TEST_PER_CLASS, &mut data_rng);
        let init = Mlp::init(&mut SplitMix64::new(master.next_u64()));
        Problem {
            train,
            test,
            init,
            shuffle_seed: master.next_u64(),
            rounding_seed: master.next_u64(),
        }
    }
}

/// The `f32` values the network computes with, from stored bf16 parameters.
fn widen(src: &[bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// Trains one network with AdamW and `setup`'s storage.
///
/// # Errors
/// An invalid configuration or an unavailable backend.
pub(crate) fn train(config: &Config, problem: &Problem, setup: Setup) -> Result<Record, Error> {
    let backend = config.backend.unwrap_or_else(Backend::best);
    let schedule = config.schedule();
    schedule.validate()?;
    let mut opt = Adam {
        eps: config.eps,
        ..Adam::adamw()
    };
    const PLANES: usize = 2; // AdamW: m and v
    let mut net = problem.init.clone();
    let mut seeds = SplitMix64::new(problem.rounding_seed);
    let mut stored = Vec::with_capacity(SHAPES.len());
    for t in &mut net.tensors {
        let bf16s: Vec<bf16> = t.iter().map(|&v| bf16::from_f32(v)).collect();
        if setup.params != ParamMode::F32 {
            widen(&bf16s, t);
        }
        stored.push(Stored {
            compensation: vec![bf16::ZERO; t.len()],
            bf16s,
            state: StateBuf::new(setup.state, PLANES, t.len())?,
            seed: seeds.next_u64(),
        });
    }
    let state_bytes = stored.iter().map(|s| s.state.bytes()).sum();

    let mut grads = Mlp::zeros();
    let mut ws = Workspace::default();
    let mut order: Vec<usize> = (0..problem.train.len()).collect();
    let mut pos = order.len();
    let mut shuffle = SplitMix64::new(problem.shuffle_seed);
    let (mut bx, mut by) = (Vec::new(), Vec::new());
    let mut curve = vec![(0, net.evaluate(&problem.train, &mut ws).0)];
    let late_start = config.steps - config.steps / 4;
    let mut snapshot = net.clone();

    for step in 1..=config.steps {
        if step == late_start + 1 {
            snapshot = net.clone();
        }
        // Next batch from a shuffled pass (reshuffled when fewer than a batch remain).
        if pos + BATCH > order.len() {
            for i in (1..order.len()).rev() {
                order.swap(i, shuffle.below(i + 1));
            }
            pos = 0;
        }
        problem.train.gather(
            order.get(pos..pos + BATCH).unwrap_or_default(),
            &mut bx,
            &mut by,
        );
        pos += BATCH;
        net.loss_and_grad(&bx, &by, &mut grads, &mut ws);

        opt.lr = schedule.lr(step - 1)?;
        let plan = opt.plan(step)?;
        for ((t, g), s) in net.tensors.iter_mut().zip(&grads.tensors).zip(&mut stored) {
            let params = match setup.params {
                ParamMode::F32 => Params::F32(t),
                ParamMode::Bf16 => Params::Bf16(&mut s.bf16s),
                ParamMode::Bf16Sr => Params::Bf16Stochastic {
                    params: &mut s.bf16s,
                    seed: s.seed,
                },
                ParamMode::Bf16Kahan => Params::Bf16Kahan {
                    params: &mut s.bf16s,
                    compensation: &mut s.compensation,
                },
            };
            plan.apply_piece(backend, 0, params, Grads::F32(g), s.state.view())?;
            if setup.params != ParamMode::F32 {
                widen(&s.bf16s, t);
            }
        }
        if step % config.eval_every.max(1) == 0 || step == config.steps {
            curve.push((step, net.evaluate(&problem.train, &mut ws).0));
        }
    }

    let (train_loss, train_acc) = net.evaluate(&problem.train, &mut ws);
    let (test_loss, test_acc) = net.evaluate(&problem.test, &mut ws);
    let moved = net
        .tensors
        .iter()
        .zip(&snapshot.tensors)
        .flat_map(|(a, b)| a.iter().zip(b))
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    Ok(Record {
        setup,
        curve,
        train_loss,
        train_acc,
        test_loss,
        test_acc,
        moved_late: moved as f64 / net.len().max(1) as f64,
        state_bytes,
        net,
    })
}

/// Trains every setup, on up to `threads` threads (results in `setups` order).
///
/// # Errors
/// The first error of any run.
pub(crate) fn train_all(
    config: &Config,
    problem: &Problem,
    setups: &[Setup],
    threads: usize,
) -> Result<Vec<Record>, Error> {
    let threads = threads.clamp(1, setups.len().max(1));
    let mut results: Vec<Option<Result<Record, Error>>> = vec![None; setups.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    setups
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, &s)| (i, train(config, problem, s)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A panicking run would be a bug in this file; report it as a missing result.
            for (i, r) in h.join().unwrap_or_default() {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(r);
                }
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(Error::InvalidCombination("a training run panicked"))))
        .collect()
}
