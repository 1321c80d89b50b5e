//! The format-convergence example (`examples/format_convergence`): its qualitative results,
//! the failure mode behind its `eps`, its backward pass and its data.
//!
//! Thresholds come from the example's table for seeds 1 to 5 (`--seed N`, default everything
//! else; docs/formats-convergence.md): each bound is about twice the largest gap seen there, and
//! the test checks them on seed 1.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/format_convergence/convergence.rs"]
mod convergence;

use convergence::{
    CLASSES, Config, Dataset, HIDDEN, INPUT, Mlp, ParamMode, Problem, Record, SETUPS, SHAPES,
    Setup, SplitMix64, TRAIN_PER_CLASS, Workspace, train, train_all,
};
use fused_optim::{Adam, Backend, Grads, Params, State, StateFormat, TorchaoAdam};

fn find(records: &[Record], state: StateFormat, params: ParamMode) -> &Record {
    records
        .iter()
        .find(|r| r.setup == Setup { state, params })
        .unwrap()
}

/// The example's default run (seed 1, 3000 steps, every combination). Measured over seeds 1–5
/// (final training loss minus the all-f32 run's):
///
/// | state / params | gap, seeds 1–5 | bound here |
/// |---|---|---|
/// | int8 / f32 | −0.0006 … +0.0005 | ±0.002 |
/// | fp8 / f32 | −0.0004 … +0.0017 | ±0.004 |
/// | bf16 / f32 | +0.0016 … +0.0052 | (0, 0.01] |
/// | int4 / f32 | +0.0020 … +0.0109 | (0, 0.02] |
/// | f32 / bf16-sr, f32 / bf16-kahan | −0.0002 … +0.0018 | ±0.004 |
/// | int8 / bf16-sr, int8 / bf16-kahan | −0.0007 … +0.0011 | ±0.004 |
/// | f32 / bf16 (round to nearest) | 2.3× to 2.9× the f32 loss | ≥ 1.8× f32, SR and Kahan |
///
/// Share of parameters still changing in the last 750 steps: 4.5–11.2% with round-to-nearest
/// bf16 parameters (bound: < 15%), 67–78% with SR or Kahan (bound: > 60%), all in f32. Held-out
/// accuracy is at least 98.8% everywhere (bound: 98.5%); it does not separate the formats.
#[test]
fn default_run_shows_the_documented_results() {
    let config = Config::default();
    let records = train_all(&config, &Problem::new(config.seed), &SETUPS, 2).unwrap();
    assert_eq!(records.len(), SETUPS.len());
    let reference = find(&records, StateFormat::F32, ParamMode::F32);
    let f32_loss = reference.train_loss;
    let initial = reference.curve[0].1;
    assert!(
        f32_loss < 0.03 && initial > 1.3,
        "f32: {initial} -> {f32_loss}"
    );
    let gap = |state, params| find(&records, state, params).train_loss - f32_loss;
    for r in &records {
        assert!(!r.diverged(), "{}: {}", r.setup, r.train_loss);
        assert!(
            r.test_acc >= 0.985,
            "{}: test accuracy {}",
            r.setup,
            r.test_acc
        );
    }

    // State formats, f32 parameters.
    use ParamMode as P;
    use StateFormat as S;
    let int8 = gap(S::Int8, P::F32);
    assert!(int8.abs() <= 0.002, "int8 state: gap {int8}");
    let fp8 = gap(S::Fp8, P::F32);
    assert!(fp8.abs() <= 0.004, "fp8 state: gap {fp8}");
    let bf16 = gap(S::Bf16, P::F32);
    assert!(bf16 > 0.0 && bf16 <= 0.01, "bf16 state: gap {bf16}");
    let int4 = gap(S::Int4, P::F32);
    assert!(int4 > 0.0 && int4 <= 0.02, "int4 state: gap {int4}");

    // Parameter modes: stochastic rounding and Kahan track f32, round-to-nearest stalls.
    for (state, params) in [
        (S::F32, P::Bf16Sr),
        (S::F32, P::Bf16Kahan),
        (S::Int8, P::Bf16Sr),
        (S::Int8, P::Bf16Kahan),
    ] {
        let g = gap(state, params);
        assert!(g.abs() <= 0.004, "{state:?} / {params:?}: gap {g}");
        let moved = find(&records, state, params).moved_late;
        assert!(moved > 0.6, "{state:?} / {params:?}: moved {moved}");
    }
    for state in [S::F32, S::Int8] {
        let rne = find(&records, state, P::Bf16).train_loss;
        for other in [P::F32, P::Bf16Sr, P::Bf16Kahan] {
            let loss = find(&records, state, other).train_loss;
            assert!(
                rne >= 1.8 * loss,
                "{state:?} state: bf16 round-to-nearest {rne} vs {other:?} {loss}"
            );
        }
    }
    for (state, params) in [(S::F32, P::Bf16), (S::Bf16, P::Bf16), (S::Int8, P::Bf16)] {
        let moved = find(&records, state, params).moved_late;
        assert!(moved < 0.15, "{state:?} / {params:?}: moved {moved}");
    }
    for r in records.iter().filter(|r| r.setup.params == P::F32) {
        assert!(r.moved_late > 0.99, "{}: moved {}", r.setup, r.moved_late);
    }
}

/// Why the example uses `eps` = 1e-6: with torch's 1e-8, fp8 state diverges on this network
/// within the first few hundred steps, while f32 and int8 state do not; with 1e-6 fp8 trains.
#[test]
fn fp8_state_diverges_with_torch_default_eps() {
    let problem = Problem::new(1);
    let short = |eps| Config {
        eps,
        steps: 300,
        eval_every: 100,
        ..Config::default()
    };
    let run = |eps, state| {
        train(
            &short(eps),
            &problem,
            Setup {
                state,
                params: ParamMode::F32,
            },
        )
        .unwrap()
    };
    let fp8 = run(1e-8, StateFormat::Fp8);
    assert!(fp8.diverged(), "{:?}", fp8.curve);
    for (eps, state) in [
        (1e-8, StateFormat::F32),
        (1e-8, StateFormat::Int8),
        (1e-6, StateFormat::Fp8),
    ] {
        let r = run(eps, state);
        assert!(
            !r.diverged() && r.train_loss < 0.6,
            "eps {eps}, {state:?}: {:?}",
            r.curve
        );
    }
}

/// Block state (int8 or fp8) over the buffers `(codes, scales)`.
fn block_state(format: StateFormat, (codes, scales): &mut (Vec<u8>, Vec<f32>)) -> State<'_> {
    match format {
        StateFormat::Fp8 => State::Fp8 { codes, scales },
        _ => State::Int8 { codes, scales },
    }
}

/// The mechanism, on one 4096-value tensor: step 1 gives element 1 a gradient of 1e-4 among
/// gradients of 1, so its `v` (1e-11) is below the smallest code of its block (scaled to 1e-3)
/// and is stored as zero while its `m` (1e-5) is not; step 2 has zero gradients, and element 1
/// moves by `lr·m̂/eps` instead of about `lr`. torchao 0.18 does the same: on this input
/// `torchao.optim.AdamWFp8` moves element 1 by −4.543217 at step 2 and `AdamW8bit` by
/// −4.203947, `torch.optim.AdamW` by −0.00066995 (docs/formats-convergence.md has the script).
#[test]
fn a_zero_v_under_a_nonzero_m_makes_a_huge_step() {
    let n = 4096;
    for (state, torchao) in [
        (StateFormat::Fp8, -4.543_217),
        (StateFormat::Int8, -4.203_947),
    ] {
        let layout = state.layout(2, n);
        let mut bufs = [(); 2].map(|()| (vec![0u8; layout.codes], vec![0.0f32; layout.scales]));
        let mut f32_state = vec![0.0f32; 2 * n];
        let mut params = [(); 3].map(|()| vec![0.0f32; n]);
        let mut grads = vec![1.0f32; n];
        grads[1] = 1e-4;
        let adam = Adam {
            lr: 1e-3,
            ..Adam::adamw()
        };
        let tao = TorchaoAdam {
            lr: 1e-3,
            ..if state == StateFormat::Fp8 {
                TorchaoAdam::adamw_fp8()
            } else {
                TorchaoAdam::adamw8bit()
            }
        };
        let mut before = [0.0f32; 3];
        for step in 1..=2 {
            if step == 2 {
                grads.fill(0.0);
                before = [0, 1, 2].map(|i| params[i][1]);
            }
            let g = Grads::F32(&grads);
            let [p0, p1, p2] = &mut params;
            let [b0, b1] = &mut bufs;
            let plan = adam.plan(step).unwrap();
            plan.apply_to(Params::F32(p0), g, block_state(state, b0))
                .unwrap();
            plan.apply_to(Params::F32(p1), g, State::F32(&mut f32_state))
                .unwrap();
            tao.plan(step)
                .unwrap()
                .apply_to(Params::F32(p2), g, block_state(state, b1))
                .unwrap();
        }
        let moved = [0, 1, 2].map(|i| params[i][1] - before[i]);
        let [block, plain, tao_block] = moved;
        assert!(
            (plain + 6.6995e-4).abs() < 1e-7,
            "{state:?}: f32 state moved {plain}"
        );
        assert!(block < -1.0, "{state:?}: block state moved {block}");
        assert!(
            (tao_block - torchao).abs() < 1e-5 * torchao.abs(),
            "{state:?}: TorchaoAdam moved {tao_block}, torchao {torchao}"
        );
    }
}

/// A short run gives the same bits on every backend this CPU has, with block state and
/// stochastic rounding.
#[test]
fn every_backend_gives_the_same_network() {
    let problem = Problem::new(3);
    let setup = Setup {
        state: StateFormat::Int8,
        params: ParamMode::Bf16Sr,
    };
    let on = |backend| {
        let config = Config {
            steps: 40,
            eval_every: 20,
            backend: Some(backend),
            ..Config::default()
        };
        train(&config, &problem, setup).unwrap()
    };
    let reference = on(Backend::Scalar);
    for backend in Backend::available() {
        let other = on(backend);
        assert_eq!(other.net, reference.net, "{backend}");
        assert_eq!(other.curve, reference.curve, "{backend}");
    }
}

/// Mean cross-entropy of the batch in f64, written independently of the example's f32 code
/// (parameters flat, in the example's tensor order, weights input-major).
fn loss_f64(p: &[f64], x: &[f32], y: &[usize]) -> f64 {
    let mut offset = 0;
    let mut tensors = Vec::new();
    for (r, c) in SHAPES {
        tensors.push(&p[offset..offset + r * c]);
        offset += r * c;
    }
    let layer = |input: &[f64], w: &[f64], b: &[f64], relu: bool| -> Vec<f64> {
        let out = b.len();
        (0..out)
            .map(|j| {
                let s: f64 = b[j]
                    + (0..input.len())
                        .map(|i| input[i] * w[i * out + j])
                        .sum::<f64>();
                if relu { s.max(0.0) } else { s }
            })
            .collect()
    };
    let mut total = 0.0;
    for (xi, &c) in x.chunks(INPUT).zip(y) {
        let input: Vec<f64> = xi.iter().map(|&v| f64::from(v)).collect();
        let h1 = layer(&input, tensors[0], tensors[1], true);
        let h2 = layer(&h1, tensors[2], tensors[3], true);
        let z = layer(&h2, tensors[4], tensors[5], false);
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        total += lse - z[c];
    }
    total / y.len() as f64
}

/// The hand-written backward pass agrees with central differences of an independent f64
/// forward pass, on 300 parameters drawn from every tensor.
#[test]
fn gradient_matches_finite_differences() {
    let problem = Problem::new(5);
    let mut rng = SplitMix64::new(11);
    let net = Mlp::init(&mut rng);
    let idx: Vec<usize> = (0..16).map(|_| rng.below(problem.train.len())).collect();
    let x: Vec<f32> = idx
        .iter()
        .flat_map(|&i| problem.train.x[i * INPUT..(i + 1) * INPUT].to_vec())
        .collect();
    let y: Vec<usize> = idx.iter().map(|&i| problem.train.y[i]).collect();
    let mut grads = Mlp::zeros();
    let loss = net.loss_and_grad(&x, &y, &mut grads, &mut Workspace::default());

    let params: Vec<f64> = net
        .tensors
        .iter()
        .flat_map(|t| t.iter().map(|&v| f64::from(v)))
        .collect();
    let analytic: Vec<f32> = grads.tensors.concat();
    assert_eq!(params.len(), net.len());
    let exact = loss_f64(&params, &x, &y);
    assert!(
        (f64::from(loss) - exact).abs() < 1e-5 * exact,
        "{loss} vs {exact}"
    );
    // Every tensor's first element, then random ones.
    let mut picks: Vec<usize> = SHAPES
        .iter()
        .scan(0, |start, (r, c)| {
            let first = *start;
            *start += r * c;
            Some(first)
        })
        .collect();
    picks.extend((0..300 - picks.len()).map(|_| rng.below(params.len())));
    let h = 1e-6;
    for &i in &picks {
        let (mut up, mut down) = (params.clone(), params.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (loss_f64(&up, &x, &y) - loss_f64(&down, &x, &y)) / (2.0 * h);
        let g = f64::from(analytic[i]);
        assert!(
            (g - numeric).abs() <= 2e-5 + 1e-3 * numeric.abs(),
            "parameter {i}: analytic {g}, numeric {numeric}"
        );
    }
}

/// The spirals: balanced classes, points within the unit disc (the noise is angular), and the
/// same data for the same seed.
#[test]
fn spirals_are_balanced_and_reproducible() {
    let a = Problem::new(1);
    assert_eq!(a, Problem::new(1));
    assert_ne!(a.train, Problem::new(2).train);
    assert_eq!(a.train.len(), TRAIN_PER_CLASS * CLASSES);
    for c in 0..CLASSES {
        assert_eq!(
            a.train.y.iter().filter(|&&y| y == c).count(),
            TRAIN_PER_CLASS
        );
    }
    for p in a.train.x.chunks(INPUT).chain(a.test.x.chunks(INPUT)) {
        let r = f64::from(p[0]).hypot(f64::from(p[1]));
        assert!(r <= 1.0 + 1e-6, "{p:?}");
    }
    // The held-out set is new points, not a copy of training points.
    let train: std::collections::HashSet<(u32, u32)> = a
        .train
        .x
        .chunks(INPUT)
        .map(|p| (p[0].to_bits(), p[1].to_bits()))
        .collect();
    assert!(
        a.test
            .x
            .chunks(INPUT)
            .all(|p| !train.contains(&(p[0].to_bits(), p[1].to_bits())))
    );
    let _: &Dataset = &a.test;
}

/// The network's shape: 2-128-128-K, the 128×128 weight fills whole 256-blocks (at least 4096
/// values, so torchao itself would quantize it), and `nn.Linear`'s init bounds.
#[test]
fn network_shape_and_initialisation() {
    assert_eq!(SHAPES[2], (HIDDEN, HIDDEN));
    let w2 = HIDDEN * HIDDEN;
    assert!(w2 >= 4096 && w2.is_multiple_of(256));
    assert_eq!(
        StateFormat::Int8.torchao_for(w2, StateFormat::F32),
        StateFormat::Int8
    );
    let net = Mlp::init(&mut SplitMix64::new(9));
    let bounds = [1.0 / 2f32.sqrt(), 1.0 / 2f32.sqrt()]
        .into_iter()
        .chain([1.0 / (HIDDEN as f32).sqrt(); 4]);
    for (t, bound) in net.tensors.iter().zip(bounds) {
        let max = t.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max <= bound, "{max} vs {bound}");
        // With a hundred draws or more, the largest is close to the bound.
        assert!(t.len() < 100 || max > 0.95 * bound, "{max} vs {bound}");
    }
}
