//! The adapter against the raw crate: the same bits for the same gradients, for every
//! optimizer, dtype, rounding and state format; skipping, errors and the learning rate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer as _;
use common::{CNN, Raw, backward, bits, vars};
use fused_optim::StateFormat;
use fused_optim_candle::{Config, FusedOptimizer, Rounding, TorchOptimizer};

/// `steps` steps of the adapter and of the raw crate on the same gradients (from a real
/// backward pass on the adapter's vars): every parameter's bits equal after every step.
fn same_bits<O: TorchOptimizer>(config: Config<O>, dtype: DType, shapes: &[&[usize]], steps: u64) {
    let vs = vars(shapes, dtype, 7);
    let mut raw = Raw::new(&vs, &config);
    let mut opt = FusedOptimizer::from_named(vs.clone(), config).unwrap();
    for t in 1..=steps {
        let grads = backward(&vs, t);
        raw.step(&config.optimizer, &vs, &grads);
        opt.step(&grads).unwrap();
        for (i, (name, v)) in vs.iter().enumerate() {
            assert_eq!(
                bits(v),
                raw.bits(i),
                "{:?} {dtype:?}: {name} differs at step {t}",
                config.optimizer
            );
        }
        // The update really moved the parameters (the comparison is not vacuous).
        if t == 1 {
            let fresh = vars(shapes, dtype, 7);
            assert!(
                vs.iter()
                    .zip(&fresh)
                    .any(|((_, a), (_, b))| bits(a) != bits(b)),
                "{:?}: nothing changed",
                config.optimizer
            );
        }
    }
}

#[test]
fn every_optimizer_gives_the_raw_crates_bits_in_f32() {
    use fused_optim::*;
    same_bits(Config::new(Sgd::default()), DType::F32, CNN, 3);
    same_bits(
        Config::new(Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-2,
            ..Sgd::default()
        }),
        DType::F32,
        CNN,
        3,
    );
    same_bits(Config::new(Adam::default()), DType::F32, CNN, 3);
    same_bits(Config::new(Adam::adamw()), DType::F32, CNN, 3);
    same_bits(
        Config::new(Adam {
            amsgrad: true,
            maximize: true,
            ..Adam::default()
        }),
        DType::F32,
        CNN,
        3,
    );
    same_bits(
        Config::new(Adagrad {
            initial_accumulator_value: 0.25,
            lr_decay: 1e-3,
            ..Adagrad::default()
        }),
        DType::F32,
        CNN,
        3,
    );
    same_bits(Config::new(Adadelta::default()), DType::F32, CNN, 3);
    same_bits(
        Config::new(RMSprop {
            momentum: 0.9,
            centered: true,
            ..RMSprop::default()
        }),
        DType::F32,
        CNN,
        3,
    );
    same_bits(Config::new(Adamax::default()), DType::F32, CNN, 3);
    same_bits(Config::new(NAdam::default()), DType::F32, CNN, 4);
    same_bits(
        Config::new(RAdam {
            decoupled_weight_decay: true,
            weight_decay: 1e-2,
            ..RAdam::default()
        }),
        DType::F32,
        CNN,
        8,
    );
    same_bits(Config::new(Lion::default()), DType::F32, CNN, 3);
    same_bits(Config::new(TorchaoAdam::adamw8bit()), DType::F32, CNN, 3);
}

#[test]
fn bf16_and_f16_vars_update_in_place_at_their_precision() {
    use fused_optim::{Adam, NAdam, Sgd};
    for dtype in [DType::BF16, DType::F16] {
        for format in [StateFormat::F32, StateFormat::Bf16, StateFormat::F16] {
            let config = Config::new(Adam::adamw()).state_format(format);
            same_bits(config, dtype, CNN, 3);
        }
        same_bits(Config::new(NAdam::default()), dtype, CNN, 3);
        same_bits(
            Config::new(Sgd {
                momentum: 0.9,
                ..Sgd::default()
            }),
            dtype,
            CNN,
            3,
        );
    }
}

#[test]
fn bf16_stochastic_rounding_and_kahan() {
    use fused_optim::Adam;
    // A small lr, so most updates are below half a bf16 ulp: the modes differ from nearest.
    let adam = Adam {
        lr: 1e-4,
        ..Adam::adamw()
    };
    for rounding in [Rounding::Stochastic { seed: 42 }, Rounding::Kahan] {
        let config = Config::new(adam)
            .rounding(rounding)
            .state_format(StateFormat::Bf16);
        same_bits(config, DType::BF16, CNN, 4);
    }
    // The three modes really differ on bf16 (the options reach the kernel).
    let run = |rounding| {
        let vs = vars(CNN, DType::BF16, 7);
        let mut opt =
            FusedOptimizer::from_named(vs.clone(), Config::new(adam).rounding(rounding)).unwrap();
        for t in 1..=4 {
            opt.step(&backward(&vs, t)).unwrap();
        }
        vs.iter().flat_map(|(_, v)| bits(v)).collect::<Vec<_>>()
    };
    let nearest = run(Rounding::Nearest);
    assert_ne!(nearest, run(Rounding::Stochastic { seed: 42 }));
    assert_ne!(nearest, run(Rounding::Kahan));
    // f32 vars ignore the bf16 rounding modes.
    same_bits(
        Config::new(adam).rounding(Rounding::Kahan),
        DType::F32,
        CNN,
        2,
    );
}

#[test]
fn block_state_formats() {
    use fused_optim::{Adam, TorchaoAdam};
    // torchao's rule: Int8 on the 4096-value tensor, f32 on the small ones.
    let shapes: &[&[usize]] = &[&[64, 64], &[64], &[3, 5]];
    for opt in [
        TorchaoAdam::adamw8bit(),
        TorchaoAdam::adamw4bit(),
        TorchaoAdam::adamw_fp8(),
    ] {
        same_bits(Config::torchao(opt), DType::F32, shapes, 3);
        same_bits(Config::torchao(opt), DType::BF16, shapes, 3);
    }
    // A block format everywhere (partial last blocks included), on another optimizer.
    same_bits(
        Config::new(Adam::default()).state_format(StateFormat::Int8),
        DType::F32,
        shapes,
        3,
    );
}

#[test]
fn the_common_constructor_names_parameters_by_index() {
    let vs = vars(CNN, DType::F32, 1);
    let plain: Vec<Var> = vs.iter().map(|(_, v)| v.clone()).collect();
    let opt =
        fused_optim_candle::Adam::new(plain, Config::new(fused_optim::Adam::default())).unwrap();
    let names: Vec<&str> = opt.names().collect();
    assert_eq!(names, ["0", "1", "2", "3", "4", "5"]);
}

#[test]
fn vars_without_a_gradient_are_skipped() {
    let vs = vars(CNN, DType::F32, 3);
    let config = Config::new(fused_optim::Adam::default());
    let mut opt = FusedOptimizer::from_named(vs.clone(), config).unwrap();
    // Gradients for vars 0..3 only.
    let mut grads = backward(&vs, 1);
    let before: Vec<Vec<u32>> = vs.iter().map(|(_, v)| bits(v)).collect();
    for (_, v) in &vs[3..] {
        grads.remove(v).unwrap();
    }
    opt.step(&grads).unwrap();
    for (i, (name, v)) in vs.iter().enumerate() {
        assert_eq!(bits(v) == before[i], i >= 3, "{name}");
        assert_eq!(opt.step_count(name), Some(u64::from(i < 3)));
    }
    // The skipped vars start their own count: their first step is step 1 (torch's per-
    // parameter `step`), which the raw crate reproduces with a fresh state.
    let mut raw = Raw::new(&vs[3..], &config);
    let grads = backward(&vs, 2);
    raw.step(&config.optimizer, &vs[3..], &grads);
    opt.step(&grads).unwrap();
    for (i, (name, v)) in vs[3..].iter().enumerate() {
        assert_eq!(bits(v), raw.bits(i), "{name}");
        assert_eq!(opt.step_count(name), Some(1));
    }
    assert_eq!(opt.step_count("p0"), Some(2));
}

#[test]
fn a_non_contiguous_gradient_gives_the_same_bits() {
    let make = || {
        let v = Var::from_tensor(
            &Tensor::from_vec(common::values(5, 12), (3, 4), &Device::Cpu).unwrap(),
        )
        .unwrap();
        let opt = FusedOptimizer::from_named(
            vec![("w".into(), v.clone())],
            Config::new(fused_optim::Adam::default()),
        )
        .unwrap();
        (v, opt)
    };
    let g = Tensor::from_vec(common::values(6, 12), (4, 3), &Device::Cpu).unwrap();
    let transposed = g.t().unwrap();
    assert!(!transposed.is_contiguous());
    let (v1, mut o1) = make();
    let (v2, mut o2) = make();
    let mut s1 = candle_core::backprop::GradStore::default();
    s1.insert(&v1, transposed.clone());
    let mut s2 = candle_core::backprop::GradStore::default();
    s2.insert(&v2, transposed.contiguous().unwrap());
    o1.step(&s1).unwrap();
    o2.step(&s2).unwrap();
    assert_eq!(bits(&v1), bits(&v2));
    assert_ne!(bits(&v1), bits(&make().0));
}

#[test]
fn learning_rate_and_schedules() {
    use fused_optim::schedule::CosineAnnealingLr;
    let sched = CosineAnnealingLr {
        base_lr: 1e-2,
        t_max: 5,
        eta_min: 1e-4,
    };
    let vs = vars(CNN, DType::F32, 9);
    let mut adam = fused_optim::Adam::adamw();
    let mut raw = Raw::new(&vs, &Config::new(adam));
    let mut opt = fused_optim_candle::AdamW::from_named(vs.clone(), Config::new(adam)).unwrap();
    for epoch in 0..5 {
        let lr = sched.lr(epoch).unwrap();
        opt.set_learning_rate(lr);
        assert_eq!(opt.learning_rate(), lr);
        adam.lr = lr;
        let grads = backward(&vs, epoch + 1);
        raw.step(&adam, &vs, &grads);
        opt.step(&grads).unwrap();
        for (i, (_, v)) in vs.iter().enumerate() {
            assert_eq!(bits(v), raw.bits(i), "epoch {epoch}");
        }
    }
}

fn message(e: candle_core::Error) -> String {
    e.to_string()
}

#[test]
fn unsupported_dtypes_are_refused_with_a_clear_error() {
    for dtype in [DType::F64, DType::U8, DType::U32, DType::I64] {
        let v = Var::zeros((2, 2), dtype, &Device::Cpu).unwrap();
        let e = FusedOptimizer::from_named(
            vec![("w".into(), v)],
            Config::new(fused_optim::Adam::default()),
        )
        .unwrap_err();
        let expected = fused_optim_candle::Error::UnsupportedVarDtype {
            name: "w".into(),
            dtype,
        }
        .to_string();
        assert!(message(e).contains(&expected), "{dtype:?}");
    }
    // Kahan and stochastic rounding are for bf16 only: f16 is refused.
    let v = Var::zeros(4, DType::F16, &Device::Cpu).unwrap();
    let e = FusedOptimizer::from_named(
        vec![("h".into(), v)],
        Config::new(fused_optim::Adam::default()).rounding(Rounding::Kahan),
    )
    .unwrap_err();
    assert!(message(e).contains("need bf16 parameters; 'h' is F16"));
}

#[test]
fn bad_gradients_and_hyperparameters_fail_before_any_write() {
    let vs = vars(CNN, DType::F32, 4);
    let mut opt =
        FusedOptimizer::from_named(vs.clone(), Config::new(fused_optim::Adam::default())).unwrap();
    let before: Vec<Vec<u32>> = vs.iter().map(|(_, v)| bits(v)).collect();
    let unchanged = |opt: &FusedOptimizer<fused_optim::Adam>| {
        for (i, (name, v)) in vs.iter().enumerate() {
            assert_eq!(bits(v), before[i], "{name}");
            assert_eq!(opt.step_count(name), Some(0));
        }
    };
    // The last var's gradient has the wrong shape.
    let mut grads = backward(&vs, 1);
    let last = &vs[5].1;
    grads.insert(last, Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
    let e = message(opt.step(&grads).unwrap_err());
    assert!(
        e.contains("gradient of parameter 'p5': shape [3], expected [10]"),
        "{e}"
    );
    unchanged(&opt);
    // An integer gradient.
    let mut grads = backward(&vs, 1);
    grads.insert(last, Tensor::zeros(10, DType::U32, &Device::Cpu).unwrap());
    let e = message(opt.step(&grads).unwrap_err());
    assert!(e.contains("dtype U32"), "{e}");
    unchanged(&opt);
    // A negative learning rate.
    opt.set_learning_rate(-1.0);
    let e = message(opt.step(&backward(&vs, 1)).unwrap_err());
    assert!(e.contains("invalid lr: -1"), "{e}");
    unchanged(&opt);
    // Invalid hyperparameters are refused at construction too.
    let bad = fused_optim::Adam {
        betas: (1.5, 0.999),
        ..Default::default()
    };
    assert!(
        message(FusedOptimizer::from_named(vs.clone(), Config::new(bad)).unwrap_err())
            .contains("betas[0]")
    );
    // Two vars with one name.
    let twice = vec![vs[0].clone(), vs[0].clone()];
    assert!(
        message(
            FusedOptimizer::from_named(twice, Config::new(fused_optim::Adam::default()))
                .unwrap_err()
        )
        .contains("two parameters are named 'p0'")
    );
    // One Var under two names.
    let aliased = vec![vs[0].clone(), ("again".to_string(), vs[0].1.clone())];
    let e = FusedOptimizer::from_named(aliased, Config::new(fused_optim::Adam::default()));
    assert!(message(e.unwrap_err()).contains("parameter 'again' is a Var already given"));
}

#[test]
fn from_varmap_orders_by_name() {
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    for name in ["c", "a", "b"] {
        vb.get_with_hints(3, name, candle_nn::Init::Const(1.0))
            .unwrap();
    }
    let opt =
        FusedOptimizer::from_varmap(&varmap, Config::new(fused_optim::Lion::default())).unwrap();
    assert_eq!(opt.names().collect::<Vec<_>>(), ["a", "b", "c"]);
}
