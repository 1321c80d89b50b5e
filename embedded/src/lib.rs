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
//! Adding an optimizer to the proof is one line in [`cases`] (and, for the footprint table,
//! a three-line file in `src/bin/`).
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

pub mod expected;
#[cfg(target_os = "none")]
pub mod rt;

use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Backend, Error, Lion, NAdam, Optimizer, RAdam, RMSprop, Sgd,
    StepPlan,
};

/// The largest tensor a case uses: two 8-lane chunks and a 3-element tail on the portable
/// backend, one 16-lane chunk and a tail on AVX-512F.
pub const N: usize = 19;
/// Consecutive steps per case.
pub const STEPS: usize = 3;
/// The most state values per parameter any optimizer keeps (room to spare).
pub const MAX_PLANES: usize = 4;
/// Room for one case's output: every step's parameters and state.
pub const MAX_OUT: usize = STEPS * N * (1 + MAX_PLANES);

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
}

/// What [`cases`] calls once per case.
pub trait Visit {
    /// One case: run `STEPS` steps of `opt` starting at step `first_step`.
    fn case<O: Optimizer>(&mut self, name: &'static str, first_step: u64, opt: O);
}

/// How a case reaches the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `StepPlan::apply_on(backend, …)`.
    On(Backend),
    /// `StepPlan::apply(…)`: the backend `Backend::best` picks.
    Best,
}

impl Path {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Path::On(b) => b.name(),
            Path::Best => "best",
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

/// The bits recorded for `x`: its own, or the canonical quiet NaN.
#[inline]
pub fn bits(x: f32) -> u32 {
    if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() }
}

/// Runs one case on `n` parameters (`n` is a run-time value, at most [`N`]): a fresh state
/// (`init_state`), then `STEPS` steps from `first_step`, writing the bits of the parameters and
/// the state after every step into `out`. Returns how many values it wrote.
///
/// # Errors
/// The crate's error, or [`Fail::Capacity`] when `n` or the state does not fit.
pub fn run_case<O: Optimizer>(
    opt: &O,
    first_step: u64,
    path: Path,
    n: usize,
    out: &mut [u32],
) -> Result<usize, Fail> {
    let mut params = [0.0f32; N];
    let mut grads = [0.0f32; N];
    let mut state = [0.0f32; N * MAX_PLANES];
    let p = params.get_mut(..n).ok_or(Fail::Capacity)?;
    let g = grads.get_mut(..n).ok_or(Fail::Capacity)?;
    let s = state.get_mut(..opt.state_len(n)).ok_or(Fail::Capacity)?;
    for (i, x) in (0..N).zip(p.iter_mut()) {
        *x = param0(i);
    }
    opt.init_state(s);

    let room = out.len();
    let mut w = out.iter_mut();
    let mut scalars = O::Scalars::default();
    let mut t = first_step;
    for k in 0..STEPS {
        for (i, x) in (0..N).zip(g.iter_mut()) {
            *x = grad(i, k);
        }
        let plan = opt.plan(t, &scalars)?;
        match path {
            Path::On(b) => plan.apply_on(b, p, g, s)?,
            Path::Best => plan.apply(p, g, s)?,
        }
        scalars = plan.scalars_after();
        t = t.saturating_add(1);
        for x in p.iter().chain(s.iter()) {
            *w.next().ok_or(Fail::Capacity)? = bits(*x);
        }
    }
    Ok(room.saturating_sub(w.len()))
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
        fn case<O: Optimizer>(&mut self, name: &'static str, first_step: u64, opt: O) {
            let run = |path: Path| {
                let mut out = [0u32; MAX_OUT];
                let len = run_case(&opt, first_step, path, N, &mut out)
                    .unwrap_or_else(|e| panic!("{name} on {}: {e:?}", path.name()));
                out[..len].to_vec()
            };
            let reference = run(Path::On(Backend::Scalar));
            let paths = Backend::available().map(Path::On).chain([Path::Best]);
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
        let mut out = [0u32; MAX_OUT];
        assert_eq!(
            run_case(&Sgd::default(), 1, Path::Best, N + 1, &mut out),
            Err(Fail::Capacity)
        );
        assert_eq!(
            run_case(&Sgd::default(), 1, Path::Best, N, &mut out[..3]),
            Err(Fail::Capacity)
        );
    }
}
