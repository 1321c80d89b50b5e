//! The seed experiment: four copies of a tiny network, one per optimizer, fitting a noisy
//! parabola, after the well-known PyTorch tutorial on choosing an optimizer.
//!
//! * Data: 1000 points, `x` evenly spaced on [−1, 1] (`torch.linspace`), `y = x² + 0.1·N(0, 1)`,
//!   from a seeded SplitMix64 generator and the Box–Muller transform.
//! * Model: `Linear(1 → 20)`, ReLU, `Linear(20 → 1)`, initialised as `nn.Linear` is (weights and
//!   biases uniform in ±1/√fan_in). As in the tutorial, which builds four separate nets, every
//!   optimizer gets its **own independently initialised** copy, drawn one after the other from
//!   one seeded stream; `same_init` gives them all the same initial weights instead.
//! * Loss: mean squared error. Mini-batches of 32 (the last one of each epoch holds the 8 points
//!   left over, as a `DataLoader` without `drop_last` gives), reshuffled every epoch; every
//!   optimizer sees the same batches in the same order, as in the tutorial's shared loader.
//!
//! Forward and backward are written by hand over `f32` arrays; parameters, gradients and
//! optimizer state live in fixed-size arrays, as firmware would hold them. Only the data set
//! and the loss history use `Vec`.
//!
//! Storage formats (`--state`, `--params`): the optimizer state can be kept in any of the
//! crate's [`StateFormat`]s (bf16, or torchao's 8-bit, 4-bit and float8 blocks; with 20 values
//! per tensor every plane is one partial block), and the parameters in bf16, rounded to nearest
//! even, stochastically, or with a Kahan compensation buffer. The network then computes its
//! forward and backward passes on the bf16 parameters widened to `f32`; gradients stay `f32`.
//! The default, `f32` for both, is the original experiment, bit for bit.
//!
//! This file is shared by the example (`main.rs`) and by `tests/seed_experiment.rs`.

use core::fmt;
use core::slice;

use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Backend, Error, Grads, Lion, NAdam, Optimizer, Params, RAdam,
    RMSprop, Sgd, State, StateFormat, StepPlan, bf16, f16,
};

/// Number of data points.
pub(crate) const N_POINTS: usize = 1000;
/// Width of the hidden layer.
pub(crate) const HIDDEN: usize = 20;
/// Mini-batch size.
pub(crate) const BATCH: usize = 32;
/// Optimizer steps per epoch: 31 full batches and one of 8.
pub(crate) const STEPS_PER_EPOCH: usize = N_POINTS.div_ceil(BATCH);
/// State planes reserved per tensor. The most any of the crate's optimizers needs is three
/// (Adam with AMSGrad, centered RMSprop with momentum); one more is spare.
const PLANES: usize = 4;
/// The seed used when none is given.
pub(crate) const DEFAULT_SEED: u64 = 1;
/// The tutorial's number of epochs.
pub(crate) const DEFAULT_EPOCHS: usize = 12;
/// Where the picture goes by default.
pub(crate) const DEFAULT_OUT: &str = "optimizer_comparison.svg";

// ---------------------------------------------------------------------------------------------
// Random numbers

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, well-mixed 64-bit generator.
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

    /// Uniform in [0, 1), from the top 53 bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [−bound, bound).
    pub(crate) fn symmetric(&mut self, bound: f64) -> f64 {
        bound * (2.0 * self.uniform() - 1.0)
    }

    /// Standard normal, by the Box–Muller transform (one of the pair is used). `libm` keeps
    /// the data identical on every platform.
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(core::f64::consts::TAU * u2)
    }

    /// Uniform in `0..n` (for `n ≥ 1`), by Lemire's multiply-shift; the bias is below
    /// `n / 2⁶⁴`, far too small to matter here.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Data

/// The regression data: `y = x² + 0.1·noise`.
#[derive(Clone, Debug)]
pub(crate) struct Data {
    /// Inputs.
    pub(crate) x: Vec<f32>,
    /// Targets.
    pub(crate) y: Vec<f32>,
}

impl Data {
    /// 1000 points, `x` evenly spaced on [−1, 1], `y = x² + 0.1·N(0, 1)`.
    pub(crate) fn generate(rng: &mut SplitMix64) -> Self {
        let last = (N_POINTS - 1) as f64;
        let x: Vec<f32> = (0..N_POINTS)
            .map(|i| (-1.0 + 2.0 * i as f64 / last) as f32)
            .collect();
        let y = x
            .iter()
            .map(|&x| (f64::from(x) * f64::from(x) + 0.1 * rng.normal()) as f32)
            .collect();
        Data { x, y }
    }

    /// Mean squared error of the noise-free curve `x²`: the loss a perfect model would have.
    pub(crate) fn noise_floor(&self) -> f64 {
        let sum: f64 = self
            .x
            .iter()
            .zip(&self.y)
            .map(|(&x, &y)| {
                let e = f64::from(y) - f64::from(x) * f64::from(x);
                e * e
            })
            .sum();
        sum / self.x.len() as f64
    }

    /// Fisher–Yates shuffle of the points (`x` and `y` together).
    pub(crate) fn shuffle(&mut self, rng: &mut SplitMix64) {
        for i in (1..self.x.len()).rev() {
            let j = rng.below(i + 1);
            self.x.swap(i, j);
            self.y.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Model

/// `Linear(1 → 20)`, ReLU, `Linear(20 → 1)`. The same layout holds the gradients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Mlp {
    /// First layer's weights (`20 × 1`).
    pub(crate) w1: [f32; HIDDEN],
    /// First layer's biases.
    pub(crate) b1: [f32; HIDDEN],
    /// Second layer's weights (`1 × 20`).
    pub(crate) w2: [f32; HIDDEN],
    /// Second layer's bias.
    pub(crate) b2: f32,
}

impl Mlp {
    /// All zeros (a gradient buffer).
    pub(crate) const ZERO: Mlp = Mlp {
        w1: [0.0; HIDDEN],
        b1: [0.0; HIDDEN],
        w2: [0.0; HIDDEN],
        b2: 0.0,
    };

    /// `nn.Linear`'s initialisation, layer by layer, weight before bias: every value uniform in
    /// ±1/√fan_in (fan_in = 1 for the first layer, 20 for the second).
    pub(crate) fn init(rng: &mut SplitMix64) -> Self {
        let mut net = Mlp::ZERO;
        let bound1 = 1.0; // 1/√1
        let bound2 = 1.0 / libm::sqrt(HIDDEN as f64);
        net.w1
            .iter_mut()
            .for_each(|w| *w = rng.symmetric(bound1) as f32);
        net.b1
            .iter_mut()
            .for_each(|b| *b = rng.symmetric(bound1) as f32);
        net.w2
            .iter_mut()
            .for_each(|w| *w = rng.symmetric(bound2) as f32);
        net.b2 = rng.symmetric(bound2) as f32;
        net
    }

    /// The four tensors, in order, for the optimizer.
    pub(crate) fn tensors_mut(&mut self) -> [&mut [f32]; 4] {
        [
            &mut self.w1,
            &mut self.b1,
            &mut self.w2,
            slice::from_mut(&mut self.b2),
        ]
    }

    /// The four tensors, read-only.
    pub(crate) fn tensors(&self) -> [&[f32]; 4] {
        [&self.w1, &self.b1, &self.w2, slice::from_ref(&self.b2)]
    }

    /// Mean squared error over the batch `(xs, ys)`, with its gradient with respect to every
    /// parameter written into `grads`. An empty batch has loss 0 and a zero gradient.
    pub(crate) fn loss_and_grad(&self, xs: &[f32], ys: &[f32], grads: &mut Mlp) -> f32 {
        *grads = Mlp::ZERO;
        let n = xs.len().min(ys.len());
        if n == 0 {
            return 0.0;
        }
        // d(mean((pred − y)²))/d pred = 2·(pred − y)/n
        let scale = 2.0 / n as f32;
        let mut sum_sq = 0.0f32;
        for (&x, &y) in xs.iter().zip(ys) {
            // forward
            let mut hidden = [0.0f32; HIDDEN];
            let mut pred = self.b2;
            for (((h, &w1), &b1), &w2) in
                hidden.iter_mut().zip(&self.w1).zip(&self.b1).zip(&self.w2)
            {
                *h = (w1 * x + b1).max(0.0);
                pred += w2 * *h;
            }
            let err = pred - y;
            sum_sq += err * err;
            // backward
            let d = scale * err;
            grads.b2 += d;
            let layer = grads
                .w1
                .iter_mut()
                .zip(grads.b1.iter_mut())
                .zip(grads.w2.iter_mut());
            for ((((gw1, gb1), gw2), &h), &w2) in layer.zip(&hidden).zip(&self.w2) {
                *gw2 += d * h;
                if h > 0.0 {
                    // ReLU passes the gradient only where its input was positive (as torch).
                    let dh = d * w2;
                    *gw1 += dh * x;
                    *gb1 += dh;
                }
            }
        }
        sum_sq / n as f32
    }
}

/// Values of one state plane at most: the largest tensor.
const TENSOR_MAX: usize = HIDDEN;
/// Blocks of one plane at most, in the smallest block format (int4, 128 values a block).
const BLOCKS_MAX: usize = TENSOR_MAX.div_ceil(StateFormat::Int4.block());

/// One tensor's optimizer state, in fixed-size buffers that can hold [`PLANES`] planes of up
/// to [`TENSOR_MAX`] values in any [`StateFormat`]; [`StateBufs::view`] lends the part a format
/// needs.
#[derive(Clone, Copy, Debug)]
struct StateBufs {
    f32s: [f32; PLANES * TENSOR_MAX],
    bf16s: [bf16; PLANES * TENSOR_MAX],
    f16s: [f16; PLANES * TENSOR_MAX],
    codes: [u8; PLANES * TENSOR_MAX],
    scales: [f32; PLANES * BLOCKS_MAX],
}

impl StateBufs {
    const ZERO: StateBufs = StateBufs {
        f32s: [0.0; PLANES * TENSOR_MAX],
        bf16s: [bf16::ZERO; PLANES * TENSOR_MAX],
        f16s: [f16::ZERO; PLANES * TENSOR_MAX],
        codes: [0; PLANES * TENSOR_MAX],
        scales: [0.0; PLANES * BLOCKS_MAX],
    };

    /// The state of `planes` planes of `n` values in `format`, sized by
    /// [`StateFormat::layout`].
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] if the buffers are too small (never, for the crate's
    /// optimizers on this network).
    fn view(&mut self, format: StateFormat, planes: usize, n: usize) -> Result<State<'_>, Error> {
        let layout = format.layout(planes, n);
        let too_small = |what, expected, actual| Error::LengthMismatch {
            what,
            expected,
            actual,
        };
        let values = |len: usize| too_small("state", layout.values, len);
        Ok(match format {
            StateFormat::F32 => State::F32(
                self.f32s
                    .get_mut(..layout.values)
                    .ok_or(values(PLANES * TENSOR_MAX))?,
            ),
            StateFormat::Bf16 => State::Bf16(
                self.bf16s
                    .get_mut(..layout.values)
                    .ok_or(values(PLANES * TENSOR_MAX))?,
            ),
            StateFormat::F16 => State::F16(
                self.f16s
                    .get_mut(..layout.values)
                    .ok_or(values(PLANES * TENSOR_MAX))?,
            ),
            block => {
                let codes = self.codes.get_mut(..layout.codes).ok_or(too_small(
                    "state codes",
                    layout.codes,
                    PLANES * TENSOR_MAX,
                ))?;
                let scales = self.scales.get_mut(..layout.scales).ok_or(too_small(
                    "state scales",
                    layout.scales,
                    PLANES * BLOCKS_MAX,
                ))?;
                match block {
                    StateFormat::Int8 => State::Int8 { codes, scales },
                    StateFormat::Int4 => State::Int4 { codes, scales },
                    StateFormat::Fp8 => State::Fp8 { codes, scales },
                    _ => return Err(Error::InvalidCombination("unknown state format")),
                }
            }
        })
    }
}

/// How the parameters are stored between steps (`--params`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamMode {
    /// `f32` (the original experiment).
    F32,
    /// bf16, rounded to nearest even after every update.
    Bf16,
    /// bf16 with stochastic rounding.
    Bf16Sr,
    /// bf16 with a bf16 Kahan compensation buffer.
    Bf16Kahan,
    /// f16, rounded to nearest even.
    F16,
}

impl ParamMode {
    /// Every mode, in display order.
    pub(crate) const ALL: [ParamMode; 5] = [
        ParamMode::F32,
        ParamMode::Bf16,
        ParamMode::Bf16Sr,
        ParamMode::Bf16Kahan,
        ParamMode::F16,
    ];

    /// The command-line name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            ParamMode::F32 => "f32",
            ParamMode::Bf16 => "bf16",
            ParamMode::Bf16Sr => "bf16-sr",
            ParamMode::Bf16Kahan => "bf16-kahan",
            ParamMode::F16 => "f16",
        }
    }

    /// A longer description, for the table's header.
    pub(crate) const fn describe(self) -> &'static str {
        match self {
            ParamMode::F32 => "f32",
            ParamMode::Bf16 => "bf16, rounded to nearest even",
            ParamMode::Bf16Sr => "bf16, stochastic rounding",
            ParamMode::Bf16Kahan => "bf16 with a bf16 Kahan compensation buffer",
            ParamMode::F16 => "f16, rounded to nearest even",
        }
    }

    /// Parses a name, case-insensitively.
    pub(crate) fn parse(name: &str) -> Option<ParamMode> {
        ParamMode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// The state formats `--state` accepts, in display order, with their names.
pub(crate) const STATE_FORMATS: [(StateFormat, &str); 6] = [
    (StateFormat::F32, "f32"),
    (StateFormat::Bf16, "bf16"),
    (StateFormat::F16, "f16"),
    (StateFormat::Int8, "int8"),
    (StateFormat::Int4, "int4"),
    (StateFormat::Fp8, "fp8"),
];

/// The command-line name of a state format.
pub(crate) fn state_name(format: StateFormat) -> &'static str {
    STATE_FORMATS
        .iter()
        .find(|(f, _)| *f == format)
        .map_or("?", |(_, name)| name)
}

/// One tensor's parameters in 16-bit storage (used unless the parameters are `f32`), with the
/// Kahan compensation buffer.
#[derive(Clone, Copy, Debug)]
struct HalfParams {
    bf16s: [bf16; TENSOR_MAX],
    f16s: [f16; TENSOR_MAX],
    compensation: [bf16; TENSOR_MAX],
}

impl HalfParams {
    const ZERO: HalfParams = HalfParams {
        bf16s: [bf16::ZERO; TENSOR_MAX],
        f16s: [f16::ZERO; TENSOR_MAX],
        compensation: [bf16::ZERO; TENSOR_MAX],
    };

    /// Stores `values` (rounded to nearest even), with a zero compensation.
    fn store(&mut self, values: &[f32]) {
        for ((b, h), &v) in self.bf16s.iter_mut().zip(&mut self.f16s).zip(values) {
            *b = bf16::from_f32(v);
            *h = f16::from_f32(v);
        }
        self.compensation = [bf16::ZERO; TENSOR_MAX];
    }

    /// Writes the stored parameters, widened to `f32`, into `values` (the network's view).
    fn load(&self, mode: ParamMode, values: &mut [f32]) {
        match mode {
            ParamMode::F32 => {}
            ParamMode::F16 => values
                .iter_mut()
                .zip(&self.f16s)
                .for_each(|(v, h)| *v = h.to_f32()),
            ParamMode::Bf16 | ParamMode::Bf16Sr | ParamMode::Bf16Kahan => values
                .iter_mut()
                .zip(&self.bf16s)
                .for_each(|(v, b)| *v = b.to_f32()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Optimizers

/// The optimizers that can race: the tutorial's four, then the crate's others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Plain SGD.
    Sgd,
    /// SGD with momentum 0.8.
    Momentum,
    /// RMSprop with alpha 0.9.
    RmsProp,
    /// Adam with betas (0.9, 0.99).
    Adam,
    /// AdamW with torch's defaults (weight decay 1e-2).
    AdamW,
    /// Adagrad with torch's defaults.
    Adagrad,
    /// Adadelta with torch's defaults.
    Adadelta,
    /// Adamax with torch's defaults.
    Adamax,
    /// NAdam with torch's defaults.
    NAdam,
    /// RAdam with torch's defaults.
    RAdam,
    /// Lion with its paper's betas (0.9, 0.99).
    Lion,
}

impl Kind {
    /// The tutorial's four, always in the race.
    pub(crate) const BASE: [Kind; 4] = [Kind::Sgd, Kind::Momentum, Kind::RmsProp, Kind::Adam];
    /// Every kind, in display order.
    pub(crate) const ALL: [Kind; 11] = [
        Kind::Sgd,
        Kind::Momentum,
        Kind::RmsProp,
        Kind::Adam,
        Kind::AdamW,
        Kind::Adagrad,
        Kind::Adadelta,
        Kind::Adamax,
        Kind::NAdam,
        Kind::RAdam,
        Kind::Lion,
    ];

    /// The name shown in tables and in the legend.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Kind::Sgd => "SGD",
            Kind::Momentum => "Momentum",
            Kind::RmsProp => "RMSprop",
            Kind::Adam => "Adam",
            Kind::AdamW => "AdamW",
            Kind::Adagrad => "Adagrad",
            Kind::Adadelta => "Adadelta",
            Kind::Adamax => "Adamax",
            Kind::NAdam => "NAdam",
            Kind::RAdam => "RAdam",
            Kind::Lion => "Lion",
        }
    }

    /// Parses a name, case-insensitively.
    pub(crate) fn parse(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }

    /// The learning rate used when `--lr` is not given.
    ///
    /// The tutorial's four use its 0.01, and so do the other members of the Adam family
    /// (AdamW, Adamax, NAdam, RAdam), whose steps have the same scale. Adagrad uses 0.1: its
    /// step sizes shrink as squared gradients accumulate, and torch's default of 0.01 leaves it
    /// far behind on a run this short. Adadelta uses torch's default of 1.0: its `lr` only
    /// scales the step its own running averages choose. Lion uses 0.003: its sign updates are
    /// larger than Adam's, and its authors advise a learning rate 3–10× smaller than AdamW's.
    pub(crate) const fn default_lr(self) -> f64 {
        match self {
            Kind::Sgd | Kind::Momentum | Kind::RmsProp | Kind::Adam | Kind::AdamW => 0.01,
            Kind::Adagrad => 0.1,
            Kind::Adadelta => 1.0,
            Kind::Adamax | Kind::NAdam | Kind::RAdam => 0.01,
            Kind::Lion => 0.003,
        }
    }

    /// A runner for this optimizer with learning rate `lr`, starting from `net`, storing its
    /// state and parameters as `storage` says. Every other hyperparameter is torch's default
    /// unless the tutorial sets it.
    #[rustfmt::skip]
    fn racer(self, lr: f64, backend: Backend, storage: Storage, net: Mlp) -> Result<Box<dyn Racer>, Error> {
        let (b, s, n) = (backend, storage, net);
        match self {
            Kind::Sgd => Runner::boxed(Sgd { lr, ..Sgd::default() }, b, s, n),
            Kind::Momentum => Runner::boxed(Sgd { lr, momentum: 0.8, ..Sgd::default() }, b, s, n),
            Kind::RmsProp => Runner::boxed(RMSprop { lr, alpha: 0.9, ..RMSprop::default() }, b, s, n),
            Kind::Adam => Runner::boxed(Adam { lr, betas: (0.9, 0.99), ..Adam::default() }, b, s, n),
            Kind::AdamW => Runner::boxed(Adam { lr, ..Adam::adamw() }, b, s, n),
            Kind::Adagrad => Runner::boxed(Adagrad { lr, ..Adagrad::default() }, b, s, n),
            Kind::Adadelta => Runner::boxed(Adadelta { lr, ..Adadelta::default() }, b, s, n),
            Kind::Adamax => Runner::boxed(Adamax { lr, ..Adamax::default() }, b, s, n),
            Kind::NAdam => Runner::boxed(NAdam { lr, ..NAdam::default() }, b, s, n),
            Kind::RAdam => Runner::boxed(RAdam { lr, ..RAdam::default() }, b, s, n),
            Kind::Lion => Runner::boxed(Lion { lr, ..Lion::default() }, b, s, n),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One network and its optimizer, behind an object-safe interface so that runners for
/// different optimizer types can share one list.
trait Racer {
    /// One optimizer step on the batch `(xs, ys)`; returns the batch loss before the step.
    fn train_batch(&mut self, xs: &[f32], ys: &[f32]) -> Result<f32, Error>;
    /// The network as it is now.
    fn net(&self) -> &Mlp;
    /// Bytes of optimizer state (values, codes and block scales) for the whole network.
    fn state_bytes(&self) -> usize;
}

/// How a runner stores its state and parameters, and the seeds of its stochastic rounding.
#[derive(Clone, Copy, Debug)]
struct Storage {
    state: StateFormat,
    params: ParamMode,
    /// One stochastic-rounding seed per tensor.
    seeds: [u64; 4],
}

/// A network trained by optimizer `O`, using only the crate's [`Optimizer`] / [`StepPlan`]
/// traits.
struct Runner<O: Optimizer> {
    opt: O,
    backend: Backend,
    storage: Storage,
    /// The number of steps taken so far.
    steps: u64,
    scalars: O::Scalars,
    /// The network the forward and backward passes use: the parameters themselves when they
    /// are `f32`, else the 16-bit parameters widened.
    net: Mlp,
    /// The 16-bit parameters, one per tensor (unused for `f32` parameters).
    half: [HalfParams; 4],
    grads: Mlp,
    state: [StateBufs; 4],
}

/// The number of state planes `opt` keeps per parameter.
fn planes_of<O: Optimizer>(opt: &O, n: usize) -> usize {
    opt.state_len(n) / n.max(1)
}

/// Bytes of state for every tensor of `net`, with `planes(n)` planes for a tensor of `n`
/// values: values, codes and `f32` block scales, counted from [`StateFormat::layout`].
pub(crate) fn state_bytes(
    format: StateFormat,
    planes: impl Fn(usize) -> usize,
    net: &Mlp,
) -> usize {
    let value_bytes = match format {
        StateFormat::F32 => 4,
        _ => 2,
    };
    net.tensors()
        .iter()
        .map(|t| {
            let layout = format.layout(planes(t.len()), t.len());
            layout.values * value_bytes + layout.codes + layout.scales * 4
        })
        .sum()
}

impl<O: Optimizer + 'static> Runner<O> {
    fn boxed(
        opt: O,
        backend: Backend,
        storage: Storage,
        net: Mlp,
    ) -> Result<Box<dyn Racer>, Error> {
        opt.validate()?;
        let mut state = [StateBufs::ZERO; 4];
        for (buf, tensor) in state.iter_mut().zip(net.tensors()) {
            let n = tensor.len();
            opt.init_state_in(buf.view(storage.state, planes_of(&opt, n), n)?)?;
        }
        // 16-bit parameters start as the initial weights rounded to nearest (as `.to(bf16)`),
        // and the network computes with those.
        let mut net = net;
        let mut half = [HalfParams::ZERO; 4];
        for (h, tensor) in half.iter_mut().zip(net.tensors_mut()) {
            h.store(tensor);
            h.load(storage.params, tensor);
        }
        Ok(Box::new(Runner {
            opt,
            backend,
            storage,
            steps: 0,
            scalars: O::Scalars::default(),
            net,
            half,
            grads: Mlp::ZERO,
            state,
        }))
    }
}

impl<O: Optimizer> Racer for Runner<O> {
    fn train_batch(&mut self, xs: &[f32], ys: &[f32]) -> Result<f32, Error> {
        let loss = self.net.loss_and_grad(xs, ys, &mut self.grads);
        self.steps += 1;
        // One plan per step (the per-step scalars), applied to each of the four tensors.
        let plan = self.opt.plan(self.steps, &self.scalars)?;
        let Storage {
            state: format,
            params: mode,
            seeds,
        } = self.storage;
        let tensors = self.net.tensors_mut().into_iter().zip(self.grads.tensors());
        let buffers = self.state.iter_mut().zip(self.half.iter_mut()).zip(seeds);
        for ((net, grads), ((buf, half), seed)) in tensors.zip(buffers) {
            let n = net.len();
            let state = buf.view(format, planes_of(&self.opt, n), n)?;
            // `HalfParams` holds `TENSOR_MAX` values; the tensor's own are the first `n`.
            let (bf16s, f16s, compensation) = (
                half.bf16s.get_mut(..n).unwrap_or_default(),
                half.f16s.get_mut(..n).unwrap_or_default(),
                half.compensation.get_mut(..n).unwrap_or_default(),
            );
            let params = match mode {
                ParamMode::F32 => Params::F32(net),
                ParamMode::Bf16 => Params::Bf16(bf16s),
                ParamMode::Bf16Sr => Params::Bf16Stochastic {
                    params: bf16s,
                    seed,
                },
                ParamMode::Bf16Kahan => Params::Bf16Kahan {
                    params: bf16s,
                    compensation,
                },
                ParamMode::F16 => Params::F16(f16s),
            };
            plan.apply_piece(self.backend, 0, params, Grads::F32(grads), state)?;
            half.load(mode, net);
        }
        self.scalars = plan.scalars_after();
        Ok(loss)
    }

    fn net(&self) -> &Mlp {
        &self.net
    }

    fn state_bytes(&self) -> usize {
        state_bytes(self.storage.state, |n| planes_of(&self.opt, n), &self.net)
    }
}

// ---------------------------------------------------------------------------------------------
// The race

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Config {
    /// Seed of the data, the initial weights and the shuffles.
    pub(crate) seed: u64,
    /// Number of passes over the data.
    pub(crate) epochs: usize,
    /// One learning rate for every optimizer, instead of each one's [`Kind::default_lr`].
    pub(crate) lr: Option<f64>,
    /// The optimizers, in order (the tutorial's four first).
    pub(crate) optimizers: Vec<Kind>,
    /// Start every optimizer from the same initial weights.
    pub(crate) same_init: bool,
    /// The backend the kernels run on (`None`: the best this CPU has).
    pub(crate) backend: Option<Backend>,
    /// Where the picture goes.
    pub(crate) out: String,
    /// How every optimizer's state is stored.
    pub(crate) state: StateFormat,
    /// How the parameters are stored.
    pub(crate) params: ParamMode,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: DEFAULT_SEED,
            epochs: DEFAULT_EPOCHS,
            lr: None,
            optimizers: Kind::BASE.to_vec(),
            same_init: false,
            backend: None,
            out: DEFAULT_OUT.to_owned(),
            state: StateFormat::F32,
            params: ParamMode::F32,
        }
    }
}

impl Config {
    /// The learning rate `kind` runs with.
    pub(crate) fn lr_of(&self, kind: Kind) -> f64 {
        self.lr.unwrap_or(kind.default_lr())
    }

    /// Whether state and parameters are both `f32`: the original experiment.
    pub(crate) fn all_f32(&self) -> bool {
        self.state == StateFormat::F32 && self.params == ParamMode::F32
    }
}

/// One optimizer's record.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Curve {
    /// Which optimizer.
    pub(crate) kind: Kind,
    /// Its learning rate.
    pub(crate) lr: f64,
    /// The batch loss at every step (before that step's update), as the tutorial records it.
    pub(crate) losses: Vec<f32>,
    /// The mean batch loss of each epoch.
    pub(crate) epoch_means: Vec<f64>,
    /// The trained network (the parameters widened to `f32`).
    pub(crate) net: Mlp,
    /// Bytes of optimizer state for the whole network.
    pub(crate) state_bytes: usize,
}

impl Curve {
    /// The last epoch's mean batch loss (`NaN` if no epoch ran).
    pub(crate) fn final_loss(&self) -> f64 {
        self.epoch_means.last().copied().unwrap_or(f64::NAN)
    }

    /// The first epoch (counting from 1) whose mean batch loss is at most `target`.
    pub(crate) fn first_epoch_below(&self, target: f64) -> Option<usize> {
        self.epoch_means
            .iter()
            .position(|&m| m <= target)
            .map(|i| i + 1)
    }
}

/// The result of a race.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Outcome {
    /// One curve per optimizer, in the configured order.
    pub(crate) curves: Vec<Curve>,
    /// The data's noise floor ([`Data::noise_floor`]).
    pub(crate) noise_floor: f64,
    /// The backend that ran the updates.
    pub(crate) backend: Backend,
}

/// Trains one network per configured optimizer on the same batches and records the losses.
///
/// # Errors
/// An invalid learning rate (or other hyperparameter), or an unavailable forced backend.
pub(crate) fn run(config: &Config) -> Result<Outcome, Error> {
    let backend = config.backend.unwrap_or_else(Backend::best);
    if !backend.is_available() {
        return Err(Error::BackendUnavailable(backend));
    }
    // Independent streams for the data, the initial weights and the shuffles, so that adding
    // optimizers changes neither the data nor the batch order.
    let mut master = SplitMix64::new(config.seed);
    let mut data = Data::generate(&mut SplitMix64::new(master.next_u64()));
    let mut init_rng = SplitMix64::new(master.next_u64());
    let mut shuffle_rng = SplitMix64::new(master.next_u64());
    // Drawn after the others, so that it changes nothing they give.
    let mut rounding_rng = SplitMix64::new(master.next_u64());
    let noise_floor = data.noise_floor();

    let shared = Mlp::init(&mut init_rng);
    let mut racers = Vec::with_capacity(config.optimizers.len());
    let mut curves = Vec::with_capacity(config.optimizers.len());
    for (i, &kind) in config.optimizers.iter().enumerate() {
        // Tutorial-style: each net is drawn from the stream in turn (the first is `shared`).
        let net = if config.same_init || i == 0 {
            shared
        } else {
            Mlp::init(&mut init_rng)
        };
        let lr = config.lr_of(kind);
        let storage = Storage {
            state: config.state,
            params: config.params,
            seeds: core::array::from_fn(|_| rounding_rng.next_u64()),
        };
        let racer = kind.racer(lr, backend, storage, net)?;
        curves.push(Curve {
            kind,
            lr,
            losses: Vec::with_capacity(config.epochs * STEPS_PER_EPOCH),
            epoch_means: Vec::with_capacity(config.epochs),
            net: *racer.net(),
            state_bytes: racer.state_bytes(),
        });
        racers.push(racer);
    }

    for _ in 0..config.epochs {
        data.shuffle(&mut shuffle_rng);
        let mut sums = vec![0.0f64; racers.len()];
        for (xs, ys) in data.x.chunks(BATCH).zip(data.y.chunks(BATCH)) {
            for ((racer, curve), sum) in racers.iter_mut().zip(&mut curves).zip(&mut sums) {
                let loss = racer.train_batch(xs, ys)?;
                curve.losses.push(loss);
                *sum += f64::from(loss);
            }
        }
        for (curve, sum) in curves.iter_mut().zip(sums) {
            curve.epoch_means.push(sum / STEPS_PER_EPOCH as f64);
        }
    }
    for (curve, racer) in curves.iter_mut().zip(&racers) {
        curve.net = *racer.net();
    }
    Ok(Outcome {
        curves,
        noise_floor,
        backend,
    })
}

// ---------------------------------------------------------------------------------------------
// Plotting

/// Splits the curve `(x, y)` into the pieces inside `0 ≤ y ≤ y_max`, cutting each
/// segment where it crosses the top edge (as a plot's y limit does), so that nothing is drawn
/// outside the plotting area.
pub(crate) fn clip_to_range(points: &[(f64, f64)], y_max: f64) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let inside = |y: f64| (0.0..=y_max).contains(&y);
    let crossing = |(x0, y0): (f64, f64), (x1, y1): (f64, f64)| {
        (x0 + (x1 - x0) * (y_max - y0) / (y1 - y0), y_max)
    };
    let mut prev: Option<(f64, f64)> = None;
    for &p in points {
        match prev {
            None if inside(p.1) => current.push(p),
            None => {}
            Some(q) => match (inside(q.1), inside(p.1)) {
                (true, true) => current.push(p),
                (true, false) => {
                    // leaving through the top
                    if p.1 > y_max {
                        current.push(crossing(q, p));
                    }
                    pieces.push(core::mem::take(&mut current));
                }
                (false, true) => {
                    // coming back in from above
                    if q.1 > y_max {
                        current.push(crossing(q, p));
                    }
                    current.push(p);
                }
                (false, false) => {}
            },
        }
        prev = Some(p);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

// ---------------------------------------------------------------------------------------------
// Command line

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Command {
    /// Run the race.
    Run(Config),
    /// Print [`USAGE`].
    Help,
}

/// The `--help` text.
pub(crate) const USAGE: &str = "\
Usage: cargo run --release --example optimizer_comparison -- [OPTIONS]

Trains Linear(1->20), ReLU, Linear(20->1) on y = x^2 + 0.1*N(0,1) (1000 points, batches of 32)
once per optimizer, prints the mean loss of every epoch and draws the loss curves.

Options:
  --seed N            seed of the data, the initial weights and the shuffles [default: 1]
  --epochs N          passes over the data, at least 1 [default: 12]
  --lr X              one learning rate for every optimizer [default: per optimizer, below]
  --out PATH          where to write the SVG picture [default: optimizer_comparison.svg]
  --optimizers LIST   comma-separated optimizers to add to SGD, Momentum, RMSprop and Adam;
                      `all` adds every one [default: none]
  --same-init         start every optimizer from the same initial weights
                      [default: one independently initialised net each, as the tutorial]
  --backend NAME      run the kernels on scalar, portable, avx2 or avx512 [default: the best]
  --state FORMAT      store every optimizer's state as f32, bf16, f16, int8, int4 or fp8
                      (int8/int4/fp8: torchao's block codes, blocks of 256/128/256 values;
                      each 20-value tensor is one partial block) [default: f32]
  --params MODE       store the parameters as f32, bf16 (round to nearest even), bf16-sr
                      (stochastic rounding, seeded from --seed), bf16-kahan (bf16 with a bf16
                      Kahan compensation buffer) or f16 [default: f32]
  -h, --help          print this help

Optimizers and their default learning rates:
  SGD 0.01 | Momentum (SGD, momentum 0.8) 0.01 | RMSprop (alpha 0.9) 0.01
  Adam (betas 0.9, 0.99) 0.01 | AdamW (weight decay 1e-2) 0.01 | Adagrad 0.1
  Adadelta 1.0 | Adamax 0.01 | NAdam 0.01 | RAdam 0.01 | Lion (betas 0.9, 0.99) 0.003
  (all other hyperparameters are torch's defaults)
";

/// Parses the arguments (without the program name).
///
/// # Errors
/// A message naming the bad option or value.
pub(crate) fn parse_args<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut config = Config::default();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            name.as_str(),
            "--seed"
                | "--epochs"
                | "--lr"
                | "--out"
                | "--optimizers"
                | "--backend"
                | "--state"
                | "--params"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
            }
        } else if inline.is_some() {
            return Err(format!("{name} takes no value"));
        } else {
            String::new()
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--same-init" => config.same_init = true,
            "--seed" => {
                config.seed = value
                    .parse()
                    .map_err(|_| format!("--seed: `{value}` is not a non-negative integer"))?;
            }
            "--epochs" => {
                config.epochs = match value.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(format!("--epochs: `{value}` is not a positive integer")),
                };
            }
            "--lr" => {
                config.lr = match value.parse::<f64>() {
                    Ok(lr) if lr.is_finite() && lr > 0.0 => Some(lr),
                    _ => return Err(format!("--lr: `{value}` is not a positive number")),
                };
            }
            "--out" => {
                if value.is_empty() {
                    return Err("--out: the path is empty".to_owned());
                }
                config.out = value;
            }
            "--optimizers" => {
                for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let kinds: Vec<Kind> = if item.eq_ignore_ascii_case("all") {
                        Kind::ALL.to_vec()
                    } else {
                        match Kind::parse(item) {
                            Some(k) => vec![k],
                            None => {
                                let names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
                                return Err(format!(
                                    "--optimizers: unknown optimizer `{item}` (known: {}, all)",
                                    names.join(", ")
                                ));
                            }
                        }
                    };
                    for k in kinds {
                        if !config.optimizers.contains(&k) {
                            config.optimizers.push(k);
                        }
                    }
                }
            }
            "--backend" => {
                let b = Backend::ALL
                    .into_iter()
                    .find(|b| b.name().eq_ignore_ascii_case(&value))
                    .ok_or_else(|| {
                        format!(
                            "--backend: unknown backend `{value}` (scalar, portable, avx2, avx512)"
                        )
                    })?;
                if !b.is_available() {
                    return Err(format!("--backend: {b} is not available on this CPU"));
                }
                config.backend = Some(b);
            }
            "--state" => {
                config.state = STATE_FORMATS
                    .iter()
                    .find(|(_, name)| name.eq_ignore_ascii_case(&value))
                    .map(|&(format, _)| format)
                    .ok_or_else(|| {
                        format!(
                            "--state: unknown format `{value}` (f32, bf16, f16, int8, int4, fp8)"
                        )
                    })?;
            }
            "--params" => {
                config.params = ParamMode::parse(&value).ok_or_else(|| {
                    format!(
                        "--params: unknown mode `{value}` (f32, bf16, bf16-sr, bf16-kahan, f16)"
                    )
                })?;
            }
            _ => return Err(format!("unknown option `{arg}` (try --help)")),
        }
    }
    Ok(Command::Run(config))
}
