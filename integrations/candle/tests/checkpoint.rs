//! Checkpoints: train N steps, save, restore into a fresh optimizer and fresh vars, train M
//! more: the same bits as N + M steps straight through. And torch's names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer as _;
use common::{CNN, backward, bits, vars};
use fused_optim_candle::{Config, FusedOptimizer, Rounding, TorchOptimizer};

/// A fresh path in the temp directory for this process and `tag`.
fn temp(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "fused-optim-candle-{}-{tag}.safetensors",
        std::process::id()
    ))
}

fn round_trip<O: TorchOptimizer>(
    tag: &str,
    config: Config<O>,
    dtype: DType,
    shapes: &[&[usize]],
    n: u64,
    m: u64,
) {
    // Straight through.
    let straight = vars(shapes, dtype, 11);
    let mut opt = FusedOptimizer::from_named(straight.clone(), config).unwrap();
    for t in 1..=n + m {
        opt.step(&backward(&straight, t)).unwrap();
    }
    // N steps, then save the parameters and the optimizer state.
    let first = vars(shapes, dtype, 11);
    let mut opt = FusedOptimizer::from_named(first.clone(), config).unwrap();
    for t in 1..=n {
        opt.step(&backward(&first, t)).unwrap();
    }
    let (params_file, state_file) = (
        temp(&format!("{tag}-params")),
        temp(&format!("{tag}-state")),
    );
    let params: HashMap<String, Tensor> = first
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&params, &params_file).unwrap();
    opt.save_state(&state_file).unwrap();
    drop(opt);
    // Restore into fresh vars and a fresh optimizer, then M more steps.
    let loaded = candle_core::safetensors::load(&params_file, &Device::Cpu).unwrap();
    let resumed: Vec<(String, Var)> = first
        .iter()
        .map(|(k, _)| (k.clone(), Var::from_tensor(&loaded[k]).unwrap()))
        .collect();
    let mut opt = FusedOptimizer::from_named(resumed.clone(), config).unwrap();
    opt.load_state(&state_file).unwrap();
    for t in n + 1..=n + m {
        opt.step(&backward(&resumed, t)).unwrap();
    }
    std::fs::remove_file(&params_file).unwrap();
    std::fs::remove_file(&state_file).unwrap();
    for ((name, a), (_, b)) in straight.iter().zip(&resumed) {
        assert_eq!(bits(a), bits(b), "{tag}: {name}");
    }
    // Without the optimizer state the continuation differs (the test can fail).
    let cold_vars = vars(shapes, dtype, 11);
    let mut cold = FusedOptimizer::from_named(cold_vars.clone(), config).unwrap();
    for t in 1..=n {
        cold.step(&backward(&cold_vars, t)).unwrap();
    }
    let mut fresh = FusedOptimizer::from_named(cold_vars.clone(), config).unwrap();
    for t in n + 1..=n + m {
        fresh.step(&backward(&cold_vars, t)).unwrap();
    }
    assert!(
        straight
            .iter()
            .zip(&cold_vars)
            .any(|((_, a), (_, b))| bits(a) != bits(b)),
        "{tag}: restarting the state gives the same bits"
    );
}

#[test]
fn round_trips_are_bitwise() {
    use fused_optim::*;
    round_trip("adam", Config::new(Adam::default()), DType::F32, CNN, 3, 2);
    round_trip(
        "adamw-amsgrad",
        Config::new(Adam {
            amsgrad: true,
            ..Adam::adamw()
        }),
        DType::F32,
        CNN,
        3,
        2,
    );
    round_trip(
        "nadam",
        Config::new(NAdam::default()),
        DType::F32,
        CNN,
        3,
        2,
    );
    round_trip(
        "radam",
        Config::new(RAdam::default()),
        DType::F32,
        CNN,
        5,
        3,
    );
    round_trip(
        "sgd",
        Config::new(Sgd {
            momentum: 0.9,
            ..Sgd::default()
        }),
        DType::F32,
        CNN,
        1,
        2,
    );
    round_trip(
        "adagrad",
        Config::new(Adagrad {
            initial_accumulator_value: 0.25,
            ..Adagrad::default()
        }),
        DType::F32,
        CNN,
        2,
        2,
    );
    round_trip(
        "rmsprop",
        Config::new(RMSprop {
            momentum: 0.9,
            centered: true,
            ..RMSprop::default()
        }),
        DType::F32,
        CNN,
        2,
        2,
    );
    round_trip(
        "adadelta",
        Config::new(Adadelta::default()),
        DType::F32,
        CNN,
        2,
        2,
    );
    round_trip(
        "adamax",
        Config::new(Adamax::default()),
        DType::F32,
        CNN,
        2,
        2,
    );
    round_trip("lion", Config::new(Lion::default()), DType::F32, CNN, 2, 2);
    let small_lr = Adam {
        lr: 1e-4,
        ..Adam::adamw()
    };
    round_trip(
        "bf16-kahan",
        Config::new(small_lr)
            .rounding(Rounding::Kahan)
            .state_format(StateFormat::Bf16),
        DType::BF16,
        CNN,
        3,
        2,
    );
    round_trip(
        "bf16-stochastic",
        Config::new(small_lr).rounding(Rounding::Stochastic { seed: 3 }),
        DType::BF16,
        CNN,
        3,
        2,
    );
    round_trip(
        "f16-f16-state",
        Config::new(NAdam::default()).state_format(StateFormat::F16),
        DType::F16,
        CNN,
        3,
        2,
    );
    let shapes: &[&[usize]] = &[&[64, 64], &[64], &[3, 5]];
    round_trip(
        "torchao-8bit",
        Config::torchao(TorchaoAdam::adamw8bit()),
        DType::F32,
        shapes,
        3,
        2,
    );
    round_trip(
        "torchao-4bit-amsgrad",
        Config::torchao(TorchaoAdam {
            amsgrad: true,
            ..TorchaoAdam::adamw4bit()
        }),
        DType::BF16,
        shapes,
        3,
        2,
    );
}

#[test]
fn state_is_named_as_torch_names_it() {
    let vs = vars(&[&[2, 3], &[3]], DType::F32, 1);
    let mut opt =
        FusedOptimizer::from_named(vs.clone(), Config::new(fused_optim::NAdam::default())).unwrap();
    // Before any step there is no state (torch's state dict is empty too).
    assert!(opt.state_tensors().unwrap().is_empty());
    // Only p0 has a gradient: p1 stays without state.
    let mut grads = backward(&vs, 1);
    grads.remove(&vs[1].1).unwrap();
    opt.step(&grads).unwrap();
    opt.step(&grads).unwrap();
    let state = opt.state_tensors().unwrap();
    let keys: BTreeSet<&str> = state.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["p0.step", "p0.mu_product", "p0.exp_avg", "p0.exp_avg_sq"])
    );
    assert_eq!(state["p0.step"].dims(), [0usize; 0]);
    assert_eq!(state["p0.step"].dtype(), DType::F32);
    assert_eq!(state["p0.step"].to_scalar::<f32>().unwrap(), 2.0);
    assert_eq!(state["p0.exp_avg"].dims(), [2, 3]);
    // NAdam's mu_product after two steps is below 1.
    assert!(state["p0.mu_product"].to_scalar::<f32>().unwrap() < 1.0);
    // bf16 state is saved as bf16, block state as codes and scales.
    let vs = vars(&[&[64, 64]], DType::BF16, 1);
    let mut opt = FusedOptimizer::from_named(
        vs.clone(),
        Config::torchao(fused_optim::TorchaoAdam::adamw8bit()).rounding(Rounding::Kahan),
    )
    .unwrap();
    opt.step(&backward(&vs, 1)).unwrap();
    let state = opt.state_tensors().unwrap();
    let keys: BTreeSet<&str> = state.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "p0.step",
            "p0.exp_avg.codes",
            "p0.exp_avg.scale",
            "p0.exp_avg_sq.codes",
            "p0.exp_avg_sq.scale",
            "p0.kahan_comp"
        ])
    );
    assert_eq!(state["p0.exp_avg.codes"].dtype(), DType::U8);
    assert_eq!(state["p0.exp_avg.scale"].dims(), [16]);
    assert_eq!(state["p0.kahan_comp"].dtype(), DType::BF16);
}

#[test]
fn a_checkpoint_of_another_configuration_is_refused_and_changes_nothing() {
    let vs = vars(CNN, DType::F32, 2);
    let mut adam =
        FusedOptimizer::from_named(vs.clone(), Config::new(fused_optim::Adam::default())).unwrap();
    adam.step(&backward(&vs, 1)).unwrap();
    let saved = adam.state_tensors().unwrap();
    let amsgrad = fused_optim::Adam {
        amsgrad: true,
        ..Default::default()
    };
    let mut other = FusedOptimizer::from_named(vs.clone(), Config::new(amsgrad)).unwrap();
    other.step(&backward(&vs, 1)).unwrap();
    other.step(&backward(&vs, 2)).unwrap();
    let before = other.state_tensors().unwrap();
    let e = other.load_state_tensors(&saved).unwrap_err().to_string();
    assert!(e.contains("missing tensor 'p0.max_exp_avg_sq'"), "{e}");
    let after = other.state_tensors().unwrap();
    for (k, t) in &before {
        assert_eq!(bits(t), bits(&after[k]), "{k} changed");
    }
    // The other way: tensors this optimizer does not use.
    let e = adam.load_state_tensors(&before).unwrap_err().to_string();
    assert!(e.contains("does not use"), "{e}");
    // A wrong dtype.
    let mut wrong = saved.clone();
    let t = wrong["p2.exp_avg"].to_dtype(DType::BF16).unwrap();
    wrong.insert("p2.exp_avg".into(), t);
    let e = adam.load_state_tensors(&wrong).unwrap_err().to_string();
    assert!(e.contains("'p2.exp_avg' is BF16"), "{e}");
    // A step that is not a whole number.
    let mut wrong = saved.clone();
    wrong.insert("p1.step".into(), Tensor::new(1.5f32, &Device::Cpu).unwrap());
    let e = adam.load_state_tensors(&wrong).unwrap_err().to_string();
    assert!(e.contains("'p1.step' = 1.5 is not a step count"), "{e}");
}

#[test]
fn varmap_names_reach_the_checkpoint() {
    let varmap = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let lin = candle_nn::linear(3, 2, vb.pp("fc")).unwrap();
    let mut opt =
        FusedOptimizer::from_varmap(&varmap, Config::new(fused_optim::Adam::adamw())).unwrap();
    let x = Tensor::new(&[[1.0f32, 2.0, 3.0]], &Device::Cpu).unwrap();
    let loss = candle_nn::Module::forward(&lin, &x)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    opt.backward_step(&loss).unwrap();
    let keys: BTreeSet<String> = opt.state_tensors().unwrap().into_keys().collect();
    assert!(keys.contains("fc.weight.exp_avg_sq"), "{keys:?}");
    assert!(keys.contains("fc.bias.step"), "{keys:?}");
}
