//! The seed experiment (`examples/optimizer_comparison`): its qualitative result, the
//! hand-written backward pass, the data, and the command line.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/optimizer_comparison/experiment.rs"]
mod experiment;

use experiment::{
    BATCH, Command, Config, Curve, Data, HIDDEN, Kind, Mlp, N_POINTS, ParamMode, STATE_FORMATS,
    STEPS_PER_EPOCH, SplitMix64, clip_to_range, parse_args, run,
};
use fused_optim::{Backend, StateFormat};

fn curve(curves: &[Curve], kind: Kind) -> &Curve {
    curves.iter().find(|c| c.kind == kind).unwrap()
}

/// The tutorial's result: with the default seed, Momentum, RMSprop and Adam end the 12th epoch
/// at a mean loss of at most 0.02 (PyTorch's own run gives 0.010–0.014 over seeds 1–3; the
/// noise floor is 0.01), and plain SGD ends higher than each of them.
#[test]
fn default_seed_reproduces_the_tutorial() {
    let outcome = run(&Config::default()).unwrap();
    let sgd = curve(&outcome.curves, Kind::Sgd).final_loss();
    for kind in [Kind::Momentum, Kind::RmsProp, Kind::Adam] {
        let loss = curve(&outcome.curves, kind).final_loss();
        assert!(loss <= 0.02, "{kind}: last-epoch mean loss {loss} > 0.02");
        assert!(sgd > loss, "SGD ({sgd}) is not worse than {kind} ({loss})");
    }
    // No optimizer can beat the noise by much on average: the noise floor is the loss of the
    // true curve, and a 61-parameter net cannot fit 1000 independent noise draws.
    for c in &outcome.curves {
        assert!(
            c.final_loss() > 0.8 * outcome.noise_floor,
            "{}: {}",
            c.kind,
            c.final_loss()
        );
        assert_eq!(c.losses.len(), 12 * STEPS_PER_EPOCH);
        assert_eq!(c.epoch_means.len(), 12);
    }
}

/// The claims hold for the tutorial's other seeds too, and with shared initial weights.
#[test]
fn result_holds_over_seeds_and_shared_init() {
    for seed in 1..=3 {
        for same_init in [false, true] {
            let config = Config {
                seed,
                same_init,
                ..Config::default()
            };
            let outcome = run(&config).unwrap();
            let sgd = curve(&outcome.curves, Kind::Sgd).final_loss();
            for kind in [Kind::Momentum, Kind::RmsProp, Kind::Adam] {
                let loss = curve(&outcome.curves, kind).final_loss();
                assert!(
                    loss <= 0.02,
                    "seed {seed}, same_init {same_init}, {kind}: {loss}"
                );
                assert!(
                    sgd > loss,
                    "seed {seed}, same_init {same_init}: SGD {sgd}, {kind} {loss}"
                );
            }
        }
    }
}

/// Every optimizer the example can race learns the parabola with its default learning rate:
/// its last epoch is well below its first and below the loss of predicting the mean of `y`
/// (the variance of `x²` on [−1, 1] is 4/45 ≈ 0.089, plus the noise's 0.01).
#[test]
fn every_optimizer_learns_with_its_default_lr() {
    let config = Config {
        optimizers: Kind::ALL.to_vec(),
        ..Config::default()
    };
    let outcome = run(&config).unwrap();
    assert_eq!(outcome.curves.len(), Kind::ALL.len());
    for c in &outcome.curves {
        let (first, last) = (c.epoch_means[0], c.final_loss());
        assert!(
            last.is_finite() && last < 0.05,
            "{}: last-epoch loss {last}",
            c.kind
        );
        assert!(last < first, "{}: {first} -> {last}", c.kind);
    }
}

/// The crate's contract, end to end: the whole training run gives the same bits on every
/// backend this CPU has.
#[test]
fn every_backend_gives_the_same_losses() {
    let on = |backend| {
        let config = Config {
            optimizers: Kind::ALL.to_vec(),
            backend: Some(backend),
            ..Config::default()
        };
        run(&config).unwrap()
    };
    let reference = on(Backend::Scalar);
    for backend in Backend::available() {
        let other = on(backend);
        assert_eq!(other.backend, backend);
        for (a, b) in reference.curves.iter().zip(&other.curves) {
            let bits = |c: &Curve| c.losses.iter().map(|l| l.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b), "{} on {backend}", a.kind);
            assert_eq!(a.net, b.net, "{} on {backend}", a.kind);
        }
    }
}

/// Adding optimizers to the race leaves the data, the batches and the first nets alone, so the
/// tutorial's four curves do not change.
#[test]
fn extra_optimizers_do_not_change_the_base_curves() {
    let base = run(&Config::default()).unwrap();
    let all = run(&Config {
        optimizers: Kind::ALL.to_vec(),
        ..Config::default()
    })
    .unwrap();
    assert_eq!(base.curves[..], all.curves[..4]);
}

/// With shared initial weights every optimizer sees the same first batch with the same net,
/// so the first recorded loss (taken before the first update) is the same for all; with
/// independent nets it is not.
#[test]
fn shared_and_independent_initial_weights() {
    let shared = run(&Config {
        same_init: true,
        ..Config::default()
    })
    .unwrap();
    let first: Vec<f32> = shared.curves.iter().map(|c| c.losses[0]).collect();
    assert!(first.iter().all(|&l| l == first[0]), "{first:?}");
    let independent = run(&Config::default()).unwrap();
    let first: Vec<f32> = independent.curves.iter().map(|c| c.losses[0]).collect();
    assert!(first.iter().skip(1).all(|&l| l != first[0]), "{first:?}");
}

/// Runs the default race with the given storage and returns the last-epoch loss of each of the
/// tutorial's four, in the order SGD, Momentum, RMSprop, Adam.
fn finals(seed: u64, state: StateFormat, params: ParamMode) -> [f64; 4] {
    let outcome = run(&Config {
        seed,
        state,
        params,
        ..Config::default()
    })
    .unwrap();
    Kind::BASE.map(|kind| curve(&outcome.curves, kind).final_loss())
}

/// Adam with 8-bit block state (one partial block of 20 values per plane) and bf16 parameters
/// with stochastic rounding still ends the default run at a mean loss of at most 0.02 (it ends
/// at 0.0104, as in f32), and so do Momentum and RMSprop, over the tutorial's seeds.
#[test]
fn int8_state_and_stochastic_bf16_params_keep_the_result() {
    for seed in 1..=3 {
        let [sgd, momentum, rmsprop, adam] = finals(seed, StateFormat::Int8, ParamMode::Bf16Sr);
        assert!(adam <= 0.02, "seed {seed}: Adam int8 + bf16-sr: {adam}");
        for (name, loss) in [("Momentum", momentum), ("RMSprop", rmsprop), ("Adam", adam)] {
            assert!(loss <= 0.02, "seed {seed}: {name}: {loss}");
            assert!(sgd > loss, "seed {seed}: SGD {sgd}, {name} {loss}");
        }
    }
}

/// bf16 parameters rounded to nearest even lose SGD's and Momentum's small steps: late in the
/// run `lr·g` is around 1e-4 to 1e-3 while half a bf16 ulp of a weight of 0.5 is 2⁻¹⁰ ≈ 1e-3,
/// so most updates round back to the old value. Measured last-epoch losses (f32 → bf16):
/// SGD 0.0496 → 0.0670, 0.0494 → 0.0609, 0.0501 → 0.0666 and Momentum 0.0186 → 0.0304,
/// 0.0138 → 0.0189, 0.0119 → 0.0240 for seeds 1, 2, 3: at least 1.23× the f32 loss. Stochastic
/// rounding and Kahan compensation keep those steps (within 4% of f32 for every seed).
///
/// Adam and RMSprop are **not** hurt here: their normalized steps are about `lr` = 0.01, far
/// above half an ulp, and their losses with bf16 parameters stay within 3% of f32 (Adam ends at
/// 0.0104 in both for seed 1). `tests/format_convergence.rs` shows the stall for Adam with
/// small learning rates.
#[test]
fn round_to_nearest_bf16_params_lose_small_steps() {
    for seed in 1..=3 {
        let f32s = finals(seed, StateFormat::F32, ParamMode::F32);
        let rne = finals(seed, StateFormat::F32, ParamMode::Bf16);
        let sr = finals(seed, StateFormat::F32, ParamMode::Bf16Sr);
        let kahan = finals(seed, StateFormat::F32, ParamMode::Bf16Kahan);
        for (i, name) in [(0, "SGD"), (1, "Momentum")] {
            assert!(
                rne[i] > 1.15 * f32s[i],
                "seed {seed}, {name}: bf16 {} vs f32 {}",
                rne[i],
                f32s[i]
            );
            for (mode, loss) in [("bf16-sr", sr[i]), ("bf16-kahan", kahan[i])] {
                assert!(
                    loss < 1.06 * f32s[i] && loss < rne[i],
                    "seed {seed}, {name}: {mode} {loss}, f32 {}, bf16 {}",
                    f32s[i],
                    rne[i]
                );
            }
        }
        for (i, name) in [(2, "RMSprop"), (3, "Adam")] {
            assert!(
                (rne[i] - f32s[i]).abs() < 0.03 * f32s[i],
                "seed {seed}, {name}: bf16 {} vs f32 {}",
                rne[i],
                f32s[i]
            );
        }
    }
}

/// Every optimizer learns in every storage combination: the last epoch is below the first and
/// below 0.05, with the state in any format and the parameters in any mode. Plain SGD is allowed
/// 0.07: with 16-bit parameters rounded to nearest it loses its small steps (it ends at 0.0670
/// with bf16, 0.0520 with f16, against 0.0496 in f32; see the test above).
#[test]
fn every_optimizer_learns_in_every_storage() {
    for &(state, name) in &STATE_FORMATS {
        for params in ParamMode::ALL {
            let outcome = run(&Config {
                optimizers: Kind::ALL.to_vec(),
                state,
                params,
                ..Config::default()
            })
            .unwrap();
            for c in &outcome.curves {
                let (first, last) = (c.epoch_means[0], c.final_loss());
                let limit = if c.kind == Kind::Sgd { 0.07 } else { 0.05 };
                assert!(
                    last.is_finite() && last < limit && last < first,
                    "{} with {name} state, {} params: {first} -> {last}",
                    c.kind,
                    params.name()
                );
            }
        }
    }
}

/// Explicit `f32` storage is the original experiment, bit for bit; any other storage changes
/// the trajectory (but neither the data nor the first loss, which is taken before any update,
/// when the parameters are `f32`).
#[test]
fn f32_storage_is_the_original_experiment() {
    let base = run(&Config::default()).unwrap();
    let explicit = run(&config_of(&["--state", "f32", "--params", "f32"])).unwrap();
    assert_eq!(base, explicit);
    let int8 = run(&Config {
        state: StateFormat::Int8,
        ..Config::default()
    })
    .unwrap();
    for (a, b) in base.curves.iter().zip(&int8.curves) {
        assert_eq!(a.losses[0], b.losses[0], "{}", a.kind);
        if a.kind != Kind::Sgd {
            // SGD without momentum has no state: nothing to quantize.
            assert_ne!(a.losses, b.losses, "{}", a.kind);
        } else {
            assert_eq!(a.losses, b.losses);
        }
    }
}

/// The bytes of state reported: Adam keeps 2 planes of 61 values, so 488 bytes in f32, 244 in
/// bf16, and 122 codes plus 2 scales per tensor (8 scales of 4 bytes) in int8.
#[test]
fn state_bytes_follow_the_layout() {
    for (state, adam_bytes) in [
        (StateFormat::F32, 2 * 61 * 4),
        (StateFormat::Bf16, 2 * 61 * 2),
        (StateFormat::Int8, 2 * 61 + 4 * 2 * 4),
        (StateFormat::Fp8, 2 * 61 + 4 * 2 * 4),
        // Two 4-bit codes a byte, rounded up per plane: 10 + 10 + 10 + 1 bytes per plane.
        (StateFormat::Int4, 2 * 31 + 4 * 2 * 4),
    ] {
        let outcome = run(&Config {
            state,
            epochs: 1,
            ..Config::default()
        })
        .unwrap();
        let bytes: Vec<usize> = outcome.curves.iter().map(|c| c.state_bytes).collect();
        let f = |planes: usize| adam_bytes / 2 * planes;
        // SGD: no state; Momentum and RMSprop: one plane; Adam: two.
        assert_eq!(bytes, [0, f(1), f(1), f(2)], "{state:?}");
    }
}

/// The same loss in f64, written independently of the example's f32 code: parameters in the
/// order w1, b1, w2, b2.
fn loss_f64(p: &[f64], xs: &[f32], ys: &[f32]) -> f64 {
    let (w1, rest) = p.split_at(HIDDEN);
    let (b1, rest) = rest.split_at(HIDDEN);
    let (w2, b2) = rest.split_at(HIDDEN);
    let mut sum = 0.0;
    for (&x, &y) in xs.iter().zip(ys) {
        let x = f64::from(x);
        let hidden = (0..HIDDEN).map(|j| w2[j] * (w1[j] * x + b1[j]).max(0.0));
        let err = hidden.sum::<f64>() + b2[0] - f64::from(y);
        sum += err * err;
    }
    sum / xs.len() as f64
}

/// The hand-written backward pass agrees with central finite differences of an independent
/// f64 forward pass.
#[test]
fn gradient_matches_finite_differences() {
    let mut rng = SplitMix64::new(7);
    let data = Data::generate(&mut rng);
    for trial in 0..5 {
        let net = Mlp::init(&mut rng);
        let start = (trial * 97) % (N_POINTS - BATCH);
        let (xs, ys) = (&data.x[start..start + BATCH], &data.y[start..start + BATCH]);
        let mut grads = Mlp::ZERO;
        let loss = net.loss_and_grad(xs, ys, &mut grads);

        let params: Vec<f64> = net
            .tensors()
            .iter()
            .flat_map(|t| t.iter().map(|&v| f64::from(v)))
            .collect();
        let analytic: Vec<f32> = grads.tensors().iter().flat_map(|t| t.to_vec()).collect();
        assert_eq!(params.len(), 3 * HIDDEN + 1);
        let exact = loss_f64(&params, xs, ys);
        assert!(
            (f64::from(loss) - exact).abs() <= 1e-5 * exact.max(1e-3),
            "{loss} vs {exact}"
        );

        let h = 1e-6;
        for (i, &g) in analytic.iter().enumerate() {
            let (mut up, mut down) = (params.clone(), params.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss_f64(&up, xs, ys) - loss_f64(&down, xs, ys)) / (2.0 * h);
            let g = f64::from(g);
            assert!(
                (g - numeric).abs() <= 1e-6 + 1e-4 * numeric.abs(),
                "trial {trial}, parameter {i}: analytic {g}, numeric {numeric}"
            );
        }
    }
}

/// An empty batch has zero loss and zero gradient.
#[test]
fn empty_batch() {
    let net = Mlp::init(&mut SplitMix64::new(1));
    let mut grads = Mlp {
        b2: 1.0,
        ..Mlp::ZERO
    };
    assert_eq!(net.loss_and_grad(&[], &[], &mut grads), 0.0);
    assert_eq!(grads, Mlp::ZERO);
}

/// The data is the tutorial's: `linspace(−1, 1, 1000)` and noise with mean 0 and standard
/// deviation 0.1.
#[test]
fn data_is_a_noisy_parabola() {
    let data = Data::generate(&mut SplitMix64::new(1));
    assert_eq!((data.x.len(), data.y.len()), (N_POINTS, N_POINTS));
    assert_eq!((data.x[0], data.x[N_POINTS - 1]), (-1.0, 1.0));
    let step = 2.0 / 999.0;
    for (i, &x) in data.x.iter().enumerate() {
        assert!((f64::from(x) - (-1.0 + step * i as f64)).abs() < 1e-7);
    }
    let noise: Vec<f64> = data
        .x
        .iter()
        .zip(&data.y)
        .map(|(&x, &y)| f64::from(y) - f64::from(x * x))
        .collect();
    let mean = noise.iter().sum::<f64>() / N_POINTS as f64;
    let var = noise.iter().map(|e| (e - mean) * (e - mean)).sum::<f64>() / (N_POINTS - 1) as f64;
    // Mean within 4 standard errors (0.1/√1000) of 0; standard deviation within 10% of 0.1.
    assert!(
        mean.abs() < 4.0 * 0.1 / (N_POINTS as f64).sqrt(),
        "mean {mean}"
    );
    assert!((var.sqrt() - 0.1).abs() < 0.01, "sd {}", var.sqrt());
    // The noise floor is the mean square of the noise: about 0.01.
    assert!(
        (data.noise_floor() - 0.01).abs() < 0.002,
        "{}",
        data.noise_floor()
    );
}

/// Box–Muller output looks standard normal over many draws: mean, variance, and the share
/// within one standard deviation (68.27%).
#[test]
fn normal_draws_are_standard() {
    let mut rng = SplitMix64::new(42);
    let n = 200_000usize;
    let draws: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let mean = draws.iter().sum::<f64>() / n as f64;
    let var = draws.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n as f64;
    let within = draws.iter().filter(|d| d.abs() < 1.0).count() as f64 / n as f64;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((var - 1.0).abs() < 0.02, "variance {var}");
    assert!((within - 0.6827).abs() < 0.005, "within 1 sd: {within}");
}

/// `nn.Linear`'s initialisation: uniform in ±1 for the first layer (fan_in 1) and ±1/√20 for
/// the second, using most of the range.
#[test]
fn initialisation_bounds() {
    let mut rng = SplitMix64::new(3);
    let (mut max1, mut max2) = (0.0f32, 0.0f32);
    for _ in 0..50 {
        let net = Mlp::init(&mut rng);
        for &v in net.w1.iter().chain(&net.b1) {
            assert!(v.abs() <= 1.0);
            max1 = max1.max(v.abs());
        }
        for &v in net.w2.iter().chain([&net.b2]) {
            assert!(f64::from(v.abs()) <= 1.0 / 20f64.sqrt());
            max2 = max2.max(v.abs());
        }
    }
    assert!(
        max1 > 0.95 && f64::from(max2) > 0.95 / 20f64.sqrt(),
        "{max1} {max2}"
    );
}

/// Each epoch's shuffle is a permutation of the points (no point lost or duplicated).
#[test]
fn shuffle_is_a_permutation() {
    let mut rng = SplitMix64::new(5);
    let original = Data::generate(&mut rng);
    let mut data = original.clone();
    let key = |d: &Data| {
        let mut pairs: Vec<(u32, u32)> =
            d.x.iter()
                .zip(&d.y)
                .map(|(x, y)| (x.to_bits(), y.to_bits()))
                .collect();
        pairs.sort_unstable();
        pairs
    };
    for _ in 0..3 {
        data.shuffle(&mut rng);
        assert_ne!(data.x, original.x);
        assert_eq!(key(&data), key(&original));
    }
}

#[test]
fn clipping_cuts_curves_at_the_top_edge() {
    let y_max = 0.2;
    // Starts above, comes in, goes out, comes back.
    let points = [
        (0.0, 0.6),
        (1.0, 0.1),
        (2.0, 0.1),
        (3.0, 0.3),
        (4.0, 0.5),
        (5.0, 0.1),
    ];
    let pieces = clip_to_range(&points, y_max);
    assert_eq!(pieces.len(), 2);
    // 0.6 → 0.1 crosses 0.2 at x = 0.8; 0.1 → 0.3 at x = 2.5; 0.5 → 0.1 at x = 4.75.
    let close =
        |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12;
    let expected = [
        vec![(0.8, 0.2), (1.0, 0.1), (2.0, 0.1), (2.5, 0.2)],
        vec![(4.75, 0.2), (5.0, 0.1)],
    ];
    for (piece, want) in pieces.iter().zip(&expected) {
        assert_eq!(piece.len(), want.len(), "{piece:?}");
        assert!(
            piece.iter().zip(want).all(|(&a, &b)| close(a, b)),
            "{piece:?}"
        );
    }
    // Entirely inside: unchanged; entirely outside or NaN: nothing.
    assert_eq!(
        clip_to_range(&points[1..3], y_max),
        vec![points[1..3].to_vec()]
    );
    assert!(clip_to_range(&[(0.0, 0.5), (1.0, f64::NAN)], y_max).is_empty());
}

fn config_of(args: &[&str]) -> Config {
    match parse_args(args.iter().copied()) {
        Ok(Command::Run(config)) => config,
        other => panic!("{args:?}: {other:?}"),
    }
}

#[test]
fn command_line_defaults_and_options() {
    assert_eq!(config_of(&[]), Config::default());
    let c = Config::default();
    assert_eq!((c.seed, c.epochs, c.lr, c.same_init), (1, 12, None, false));
    assert_eq!(c.optimizers, Kind::BASE.to_vec());
    assert_eq!(c.out, "optimizer_comparison.svg");
    assert_eq!(c.lr_of(Kind::Adam), 0.01);
    assert_eq!((c.state, c.params), (StateFormat::F32, ParamMode::F32));
    assert!(c.all_f32());

    let c = config_of(&[
        "--seed",
        "7",
        "--epochs=3",
        "--lr",
        "0.05",
        "--out",
        "a.svg",
    ]);
    assert_eq!(
        (c.seed, c.epochs, c.lr, c.out.as_str()),
        (7, 3, Some(0.05), "a.svg")
    );
    assert_eq!(c.lr_of(Kind::Adadelta), 0.05);

    let c = config_of(&[
        "--optimizers",
        "lion,ADAMW,adam",
        "--same-init",
        "--backend=scalar",
    ]);
    assert_eq!(c.optimizers[4..], [Kind::Lion, Kind::AdamW]);
    assert!(c.same_init);
    assert_eq!(c.backend, Some(Backend::Scalar));
    assert_eq!(
        config_of(&["--optimizers=all"]).optimizers,
        Kind::ALL.to_vec()
    );

    for (args, state, params) in [
        (&["--state", "int8"][..], StateFormat::Int8, ParamMode::F32),
        (
            &["--state=INT4", "--params=bf16"][..],
            StateFormat::Int4,
            ParamMode::Bf16,
        ),
        (
            &["--state", "fp8", "--params", "bf16-sr"][..],
            StateFormat::Fp8,
            ParamMode::Bf16Sr,
        ),
        (
            &["--state", "bf16", "--params", "bf16-kahan"][..],
            StateFormat::Bf16,
            ParamMode::Bf16Kahan,
        ),
        (
            &["--state", "f16", "--params", "f16"][..],
            StateFormat::F16,
            ParamMode::F16,
        ),
    ] {
        let c = config_of(args);
        assert_eq!((c.state, c.params), (state, params), "{args:?}");
        assert!(!c.all_f32());
    }

    for help in ["--help", "-h"] {
        assert_eq!(parse_args([help]), Ok(Command::Help));
    }
}

#[test]
fn bad_options_are_rejected() {
    for (args, needle) in [
        (&["--bogus"][..], "unknown option `--bogus`"),
        (&["extra"][..], "unknown option `extra`"),
        (&["--seed"][..], "--seed needs a value"),
        (&["--seed", "-1"][..], "--seed"),
        (&["--seed", "x"][..], "--seed"),
        (&["--epochs", "0"][..], "--epochs"),
        (&["--epochs", "2.5"][..], "--epochs"),
        (&["--lr", "0"][..], "--lr"),
        (&["--lr", "-0.1"][..], "--lr"),
        (&["--lr", "nan"][..], "--lr"),
        (&["--lr", "inf"][..], "--lr"),
        (&["--out", ""][..], "--out"),
        (
            &["--optimizers", "adam,sgdx"][..],
            "unknown optimizer `sgdx`",
        ),
        (&["--backend", "gpu"][..], "unknown backend `gpu`"),
        (&["--same-init=yes"][..], "takes no value"),
        (&["--state"][..], "--state needs a value"),
        (&["--state", "int2"][..], "unknown format `int2`"),
        (&["--params", "bf8"][..], "unknown mode `bf8`"),
        (&["--params", "bf16_sr"][..], "unknown mode `bf16_sr`"),
    ] {
        match parse_args(args.iter().copied()) {
            Err(msg) => assert!(msg.contains(needle), "{args:?}: {msg}"),
            Ok(c) => panic!("{args:?} accepted: {c:?}"),
        }
    }
}
