//! Every torch validation rule of every optimizer, and the promise that an error writes
//! nothing: parameters, gradients, state, step counter and scalar state keep their bits.
//!
//! The rules are torch 2.15's `__init__` checks (`if not 0.0 <= lr: raise ValueError(...)`
//! and so on), which also reject NaN because every comparison with NaN is false; this crate
//! additionally rejects NaN where torch uses a `<` test that NaN passes (SGD's `lr`, `momentum`,
//! `weight_decay`) and a non-finite SGD `dampening`.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

mod common;

use common::Rng;
use fused_optim::amp::{GradScaler, StepOutcome, step_if_finite, step_if_finite_on};
use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Asgd, AsgdScalars, Backend, Error, Lion, NAdam, NAdamScalars,
    Optimizer, RAdam, RMSprop, Rprop, Sgd, StepPlan,
};

const NAN: f64 = f64::NAN;

/// `opt` is rejected with `InvalidHyperparameter` naming `name` and carrying `value`, by
/// `validate`, by `plan`, and by a whole multi-tensor step, which writes nothing.
fn rejects<O: Optimizer>(opt: O, name: &str, value: f64) {
    let check = |e: Error| match e {
        Error::InvalidHyperparameter {
            name: n, value: v, ..
        } => {
            assert_eq!(n, name, "{opt:?}");
            assert!(
                v.to_bits() == value.to_bits() || (v.is_nan() && value.is_nan()),
                "{opt:?}: {v}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(name) && msg.contains(&format!("{value}")),
                "message {msg:?}"
            );
        }
        other => panic!("{opt:?}: expected InvalidHyperparameter({name}), got {other:?}"),
    };
    check(opt.validate().unwrap_err());
    check(opt.plan(1, &O::Scalars::default()).unwrap_err());
    check(whole_step_untouched(opt, 1));
    // Writing a fresh state checks first, and writes nothing.
    let mut s = vec![7.0f32; opt.state_len(5)];
    check(opt.init_state(&mut s).unwrap_err());
    check(
        opt.init_state_in(fused_optim::State::F32(&mut s))
            .unwrap_err(),
    );
    assert!(s.iter().all(|&x| x == 7.0), "{opt:?}");
}

/// `opt` is rejected with `InvalidCombination`, and a whole step writes nothing.
fn rejects_combination<O: Optimizer>(opt: O) {
    assert!(
        matches!(opt.validate(), Err(Error::InvalidCombination(_))),
        "{opt:?}"
    );
    assert!(matches!(
        opt.plan(1, &O::Scalars::default()),
        Err(Error::InvalidCombination(_))
    ));
    assert!(matches!(
        whole_step_untouched(opt, 1),
        Error::InvalidCombination(_)
    ));
}

/// `opt` is accepted (the boundary values torch allows).
fn accepts<O: Optimizer>(opt: O) {
    assert_eq!(opt.validate(), Ok(()), "{opt:?}");
    assert!(opt.plan(1, &O::Scalars::default()).is_ok(), "{opt:?}");
}

/// Runs a failing [`step_if_finite`] on three tensors and asserts that nothing changed;
/// returns the error.
fn whole_step_untouched<O: Optimizer>(opt: O, seed: u64) -> Error {
    let mut rng = Rng(seed);
    let lens = [5usize, 0, 37];
    let mut params: Vec<Vec<f32>> = lens.iter().map(|&n| rng.vec_special(n)).collect();
    let grads: Vec<Vec<f32>> = lens.iter().map(|&n| rng.vec_finite(n, 1.0)).collect();
    let mut states: Vec<Vec<f32>> = lens
        .iter()
        .map(|&n| rng.vec_special(opt.state_len(n)))
        .collect();
    let (p0, s0) = (bits2(&params), bits2(&states));
    let mut step = 3u64;
    let mut scalars = O::Scalars::default();
    let err = step_if_finite(
        &opt,
        &mut step,
        &mut scalars,
        &mut params,
        &grads,
        &mut states,
    )
    .unwrap_err();
    assert_eq!(
        (bits2(&params), bits2(&states)),
        (p0, s0),
        "{opt:?}: {err:?}"
    );
    assert_eq!(step, 3);
    assert_eq!(scalars, O::Scalars::default());
    err
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits2(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
    v.iter().map(|x| bits(x)).collect()
}

// ---------------------------------------------------------------------------------------------
// torch's rules, optimizer by optimizer

#[test]
fn sgd_rules() {
    let d = Sgd::default();
    rejects(Sgd { lr: -1e-3, ..d }, "lr", -1e-3);
    rejects(Sgd { lr: NAN, ..d }, "lr", NAN);
    rejects(
        Sgd {
            momentum: -0.5,
            ..d
        },
        "momentum",
        -0.5,
    );
    rejects(Sgd { momentum: NAN, ..d }, "momentum", NAN);
    rejects(
        Sgd {
            weight_decay: -1.0,
            ..d
        },
        "weight_decay",
        -1.0,
    );
    rejects(
        Sgd {
            weight_decay: NAN,
            ..d
        },
        "weight_decay",
        NAN,
    );
    rejects(
        Sgd {
            dampening: NAN,
            ..d
        },
        "dampening",
        NAN,
    );
    rejects(
        Sgd {
            dampening: f64::INFINITY,
            ..d
        },
        "dampening",
        f64::INFINITY,
    );
    // nesterov and (momentum <= 0 or dampening != 0)
    rejects_combination(Sgd {
        nesterov: true,
        ..d
    });
    rejects_combination(Sgd {
        nesterov: true,
        momentum: 0.9,
        dampening: 0.1,
        ..d
    });
    accepts(Sgd {
        nesterov: true,
        momentum: 0.9,
        ..d
    });
    accepts(Sgd {
        lr: 0.0,
        momentum: 0.0,
        dampening: -0.5,
        weight_decay: 0.0,
        ..d
    });
}

#[test]
fn adam_and_adamw_rules() {
    for d in [
        Adam::default(),
        Adam::adamw(),
        Adam {
            amsgrad: true,
            ..Adam::default()
        },
    ] {
        rejects(Adam { lr: -1.0, ..d }, "lr", -1.0);
        rejects(Adam { lr: NAN, ..d }, "lr", NAN);
        rejects(Adam { eps: -1e-8, ..d }, "eps", -1e-8);
        rejects(Adam { eps: NAN, ..d }, "eps", NAN);
        rejects(
            Adam {
                betas: (-0.1, 0.999),
                ..d
            },
            "betas[0]",
            -0.1,
        );
        rejects(
            Adam {
                betas: (1.0, 0.999),
                ..d
            },
            "betas[0]",
            1.0,
        );
        rejects(
            Adam {
                betas: (NAN, 0.999),
                ..d
            },
            "betas[0]",
            NAN,
        );
        rejects(
            Adam {
                betas: (0.9, -1e-3),
                ..d
            },
            "betas[1]",
            -1e-3,
        );
        rejects(
            Adam {
                betas: (0.9, 1.0),
                ..d
            },
            "betas[1]",
            1.0,
        );
        rejects(
            Adam {
                betas: (0.9, NAN),
                ..d
            },
            "betas[1]",
            NAN,
        );
        rejects(
            Adam {
                weight_decay: -1e-2,
                ..d
            },
            "weight_decay",
            -1e-2,
        );
        rejects(
            Adam {
                weight_decay: NAN,
                ..d
            },
            "weight_decay",
            NAN,
        );
        accepts(Adam {
            lr: 0.0,
            eps: 0.0,
            betas: (0.0, 0.0),
            weight_decay: 0.0,
            ..d
        });
    }
}

#[test]
fn adagrad_rules() {
    let d = Adagrad::default();
    for (name, set) in [
        (
            "lr",
            (|o: &mut Adagrad, v| o.lr = v) as fn(&mut Adagrad, f64),
        ),
        ("lr_decay", |o, v| o.lr_decay = v),
        ("weight_decay", |o, v| o.weight_decay = v),
        ("initial_accumulator_value", |o, v| {
            o.initial_accumulator_value = v
        }),
        ("eps", |o, v| o.eps = v),
    ] {
        for v in [-1e-3, NAN, f64::NEG_INFINITY] {
            let mut o = d;
            set(&mut o, v);
            rejects(o, name, v);
        }
        let mut o = d;
        set(&mut o, 0.0);
        accepts(o);
    }
}

#[test]
fn adadelta_rules() {
    let d = Adadelta::default();
    rejects(Adadelta { lr: -1.0, ..d }, "lr", -1.0);
    rejects(Adadelta { lr: NAN, ..d }, "lr", NAN);
    // 0 <= rho <= 1 (closed, unlike the betas)
    rejects(Adadelta { rho: -0.1, ..d }, "rho", -0.1);
    rejects(Adadelta { rho: 1.5, ..d }, "rho", 1.5);
    rejects(Adadelta { rho: NAN, ..d }, "rho", NAN);
    rejects(Adadelta { eps: -1e-6, ..d }, "eps", -1e-6);
    rejects(Adadelta { eps: NAN, ..d }, "eps", NAN);
    rejects(
        Adadelta {
            weight_decay: -1.0,
            ..d
        },
        "weight_decay",
        -1.0,
    );
    rejects(
        Adadelta {
            weight_decay: NAN,
            ..d
        },
        "weight_decay",
        NAN,
    );
    accepts(Adadelta { rho: 1.0, ..d });
    accepts(Adadelta {
        rho: 0.0,
        lr: 0.0,
        eps: 0.0,
        ..d
    });
}

#[test]
fn rmsprop_rules() {
    let d = RMSprop::default();
    rejects(RMSprop { lr: -1.0, ..d }, "lr", -1.0);
    rejects(RMSprop { lr: NAN, ..d }, "lr", NAN);
    rejects(RMSprop { eps: -1.0, ..d }, "eps", -1.0);
    rejects(RMSprop { eps: NAN, ..d }, "eps", NAN);
    rejects(
        RMSprop {
            momentum: -0.9,
            ..d
        },
        "momentum",
        -0.9,
    );
    rejects(RMSprop { momentum: NAN, ..d }, "momentum", NAN);
    rejects(
        RMSprop {
            weight_decay: -1.0,
            ..d
        },
        "weight_decay",
        -1.0,
    );
    rejects(
        RMSprop {
            weight_decay: NAN,
            ..d
        },
        "weight_decay",
        NAN,
    );
    rejects(RMSprop { alpha: -0.01, ..d }, "alpha", -0.01);
    rejects(RMSprop { alpha: NAN, ..d }, "alpha", NAN);
    // torch checks only 0 <= alpha: alpha above 1 is accepted
    accepts(RMSprop { alpha: 1.5, ..d });
    accepts(RMSprop {
        momentum: 0.9,
        centered: true,
        ..d
    });
}

#[test]
fn adamax_rules() {
    let d = Adamax::default();
    rejects(Adamax { lr: -1.0, ..d }, "lr", -1.0);
    rejects(Adamax { lr: NAN, ..d }, "lr", NAN);
    rejects(Adamax { eps: -1.0, ..d }, "eps", -1.0);
    rejects(Adamax { eps: NAN, ..d }, "eps", NAN);
    rejects(
        Adamax {
            betas: (1.0, 0.999),
            ..d
        },
        "betas[0]",
        1.0,
    );
    rejects(
        Adamax {
            betas: (-0.5, 0.999),
            ..d
        },
        "betas[0]",
        -0.5,
    );
    rejects(
        Adamax {
            betas: (NAN, 0.999),
            ..d
        },
        "betas[0]",
        NAN,
    );
    rejects(
        Adamax {
            betas: (0.9, 1.0),
            ..d
        },
        "betas[1]",
        1.0,
    );
    rejects(
        Adamax {
            betas: (0.9, NAN),
            ..d
        },
        "betas[1]",
        NAN,
    );
    rejects(
        Adamax {
            weight_decay: -1.0,
            ..d
        },
        "weight_decay",
        -1.0,
    );
    rejects(
        Adamax {
            weight_decay: NAN,
            ..d
        },
        "weight_decay",
        NAN,
    );
    accepts(Adamax {
        betas: (0.0, 0.0),
        ..d
    });
}

#[test]
fn nadam_rules() {
    let d = NAdam::default();
    rejects(NAdam { lr: -1.0, ..d }, "lr", -1.0);
    rejects(NAdam { lr: NAN, ..d }, "lr", NAN);
    rejects(NAdam { eps: -1.0, ..d }, "eps", -1.0);
    rejects(NAdam { eps: NAN, ..d }, "eps", NAN);
    rejects(
        NAdam {
            betas: (1.0, 0.999),
            ..d
        },
        "betas[0]",
        1.0,
    );
    rejects(
        NAdam {
            betas: (-0.5, 0.999),
            ..d
        },
        "betas[0]",
        -0.5,
    );
    rejects(
        NAdam {
            betas: (NAN, 0.999),
            ..d
        },
        "betas[0]",
        NAN,
    );
    rejects(
        NAdam {
            betas: (0.9, 1.0),
            ..d
        },
        "betas[1]",
        1.0,
    );
    rejects(
        NAdam {
            betas: (0.9, NAN),
            ..d
        },
        "betas[1]",
        NAN,
    );
    rejects(
        NAdam {
            weight_decay: -1.0,
            ..d
        },
        "weight_decay",
        -1.0,
    );
    rejects(
        NAdam {
            weight_decay: NAN,
            ..d
        },
        "weight_decay",
        NAN,
    );
    rejects(
        NAdam {
            momentum_decay: -4e-3,
            ..d
        },
        "momentum_decay",
        -4e-3,
    );
    rejects(
        NAdam {
            momentum_decay: NAN,
            ..d
        },
        "momentum_decay",
        NAN,
    );
    accepts(NAdam {
        momentum_decay: 0.0,
        decoupled_weight_decay: true,
        weight_decay: 0.1,
        ..d
    });
}

#[test]
fn radam_rules() {
    let d = RAdam::default();
    rejects(RAdam { lr: -1.0, ..d }, "lr", -1.0);
    rejects(RAdam { lr: NAN, ..d }, "lr", NAN);
    rejects(RAdam { eps: -1.0, ..d }, "eps", -1.0);
    rejects(RAdam { eps: NAN, ..d }, "eps", NAN);
    rejects(
        RAdam {
            betas: (1.0, 0.999),
            ..d
        },
        "betas[0]",
        1.0,
    );
    rejects(
        RAdam {
            betas: (-0.5, 0.999),
            ..d
        },
        "betas[0]",
        -0.5,
    );
    rejects(
        RAdam {
            betas: (NAN, 0.999),
            ..d
        },
        "betas[0]",
        NAN,
    );
    rejects(
        RAdam {
            betas: (0.9, 1.0),
            ..d
        },
        "betas[1]",
        1.0,
    );
    rejects(
        RAdam {
            betas: (0.9, NAN),
            ..d
        },
        "betas[1]",
        NAN,
    );
    rejects(
        RAdam {
            weight_decay: -1.0,
            ..d
        },
        "weight_decay",
        -1.0,
    );
    rejects(
        RAdam {
            weight_decay: NAN,
            ..d
        },
        "weight_decay",
        NAN,
    );
    accepts(RAdam {
        decoupled_weight_decay: true,
        weight_decay: 0.1,
        ..d
    });
}

#[test]
fn lion_rules() {
    let d = Lion::default();
    rejects(Lion { lr: -1.0, ..d }, "lr", -1.0);
    rejects(Lion { lr: NAN, ..d }, "lr", NAN);
    rejects(
        Lion {
            betas: (1.0, 0.99),
            ..d
        },
        "betas[0]",
        1.0,
    );
    rejects(
        Lion {
            betas: (-0.5, 0.99),
            ..d
        },
        "betas[0]",
        -0.5,
    );
    rejects(
        Lion {
            betas: (NAN, 0.99),
            ..d
        },
        "betas[0]",
        NAN,
    );
    rejects(
        Lion {
            betas: (0.9, 1.0),
            ..d
        },
        "betas[1]",
        1.0,
    );
    rejects(
        Lion {
            betas: (0.9, NAN),
            ..d
        },
        "betas[1]",
        NAN,
    );
    rejects(
        Lion {
            weight_decay: -1.0,
            ..d
        },
        "weight_decay",
        -1.0,
    );
    rejects(
        Lion {
            weight_decay: NAN,
            ..d
        },
        "weight_decay",
        NAN,
    );
    accepts(Lion {
        betas: (0.0, 0.0),
        weight_decay: 0.0,
        ..d
    });
}

/// torch: `0 <= lr` and `0 < etas[0] < 1 < etas[1]`; step_sizes unchecked by torch, NaN
/// rejected here.
#[test]
fn rprop_rules() {
    let d = Rprop::default();
    rejects(Rprop { lr: -1.0, ..d }, "lr", -1.0);
    rejects(Rprop { lr: NAN, ..d }, "lr", NAN);
    for (bad, value) in [(0.0, 0.0), (1.0, 1.0), (-0.5, -0.5), (NAN, NAN)] {
        rejects(
            Rprop {
                etas: (bad, 1.2),
                ..d
            },
            "etas[0]",
            value,
        );
    }
    for (bad, value) in [(1.0, 1.0), (0.5, 0.5), (NAN, NAN)] {
        rejects(
            Rprop {
                etas: (0.5, bad),
                ..d
            },
            "etas[1]",
            value,
        );
    }
    rejects(
        Rprop {
            step_sizes: (NAN, 50.0),
            ..d
        },
        "step_sizes[0]",
        NAN,
    );
    rejects(
        Rprop {
            step_sizes: (1e-6, NAN),
            ..d
        },
        "step_sizes[1]",
        NAN,
    );
    accepts(Rprop {
        lr: 0.0,
        etas: (1e-300, f64::INFINITY),
        step_sizes: (50.0, -1.0),
        maximize: true,
    });
    accepts(Rprop {
        step_sizes: (f64::NEG_INFINITY, f64::INFINITY),
        ..d
    });
}

/// torch: `0 <= lr`, `0 <= lambd`, `0 <= alpha`, `0 <= weight_decay`; t0 unchecked by torch,
/// NaN rejected here; the scalar state must be one torch's formulas can leave.
#[test]
fn asgd_rules() {
    let d = Asgd::default();
    rejects(Asgd { lr: -1.0, ..d }, "lr", -1.0);
    rejects(Asgd { lr: NAN, ..d }, "lr", NAN);
    rejects(Asgd { lambd: -1e-4, ..d }, "lambd", -1e-4);
    rejects(Asgd { lambd: NAN, ..d }, "lambd", NAN);
    rejects(Asgd { alpha: -0.75, ..d }, "alpha", -0.75);
    rejects(Asgd { alpha: NAN, ..d }, "alpha", NAN);
    rejects(
        Asgd {
            weight_decay: -1.0,
            ..d
        },
        "weight_decay",
        -1.0,
    );
    rejects(
        Asgd {
            weight_decay: NAN,
            ..d
        },
        "weight_decay",
        NAN,
    );
    rejects(Asgd { t0: NAN, ..d }, "t0", NAN);
    accepts(Asgd {
        lr: 0.0,
        lambd: 0.0,
        alpha: 0.0,
        t0: f64::NEG_INFINITY,
        weight_decay: 0.0,
        maximize: true,
    });
    accepts(Asgd {
        t0: f64::INFINITY,
        lambd: 1e39, // used in f64 only (torch's `1 - lambd*eta` then rounds to -inf)
        ..d
    });
    // The scalar state: read from step 2 on.
    for (name, scalars) in [
        (
            "eta",
            AsgdScalars {
                eta: -1e-3,
                mu: 1.0,
            },
        ),
        (
            "mu",
            AsgdScalars {
                eta: 1e-2,
                mu: -0.5,
            },
        ),
        ("mu", AsgdScalars { eta: 1e-2, mu: 2.0 }),
        (
            "mu",
            AsgdScalars {
                eta: 1e-2,
                mu: f32::NAN,
            },
        ),
    ] {
        assert!(
            matches!(d.plan(2, &scalars), Err(Error::InvalidHyperparameter { name: n, .. }) if n == name),
            "{scalars:?}"
        );
        assert!(d.plan(1, &scalars).is_ok());
    }
    // (1 + lambd·lr·t)^alpha overflowing from finite values: torch's OverflowError.
    rejects_combination_at(
        Asgd {
            lambd: 1e30,
            lr: 1.0,
            alpha: 20.0,
            ..d
        },
        AsgdScalars::default(),
    );
}

/// `opt` plans fail with `InvalidCombination` (found only when planning), and a whole step
/// writes nothing.
fn rejects_combination_at<O: Optimizer>(opt: O, scalars: O::Scalars) {
    assert!(matches!(
        opt.plan(1, &scalars),
        Err(Error::InvalidCombination(_))
    ));
    assert!(matches!(
        whole_step_untouched(opt, 1),
        Error::InvalidCombination(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// lengths and step 0: errors write nothing, on every backend

/// Asserts that `f` fails with `expected` and leaves every buffer's bits alone.
fn untouched(
    what: &str,
    expected: Error,
    params: &mut [f32],
    grads: &[f32],
    state: &mut [f32],
    f: impl FnOnce(&mut [f32], &[f32], &mut [f32]) -> Result<(), Error>,
) {
    let (p0, g0, s0) = (bits(params), bits(grads), bits(state));
    assert_eq!(f(params, grads, state), Err(expected), "{what}");
    assert_eq!(
        (bits(params), bits(grads), bits(state)),
        (p0, g0, s0),
        "{what}"
    );
}

fn lengths_and_step_zero<O: Optimizer>(opt: O, scalars: O::Scalars) {
    let mut rng = Rng(0x5eed);
    for n in [0usize, 1, 7, 8, 9, 16, 17, 33, 100] {
        let sl = opt.state_len(n);
        let plan = opt.plan(2, &scalars).unwrap();
        for backend in Backend::available() {
            let mut p = rng.vec_special(n);
            let label = format!("{opt:?} n {n} {backend}");
            // gradients one too long / one too short
            for gl in [n + 1, n.wrapping_sub(1)] {
                if gl > n + 1 {
                    continue;
                }
                let g = rng.vec_special(gl);
                let mut s = rng.vec_special(sl);
                let e = Error::LengthMismatch {
                    what: "grads",
                    expected: n,
                    actual: gl,
                };
                untouched(&label, e, &mut p, &g, &mut s, |p, g, s| {
                    plan.apply_on(backend, p, g, s)
                });
            }
            // state one too long / one too short / empty
            for len in [sl + 1, sl.wrapping_sub(1), 0] {
                if len > sl + 1 || len == sl {
                    continue;
                }
                let g = rng.vec_special(n);
                let mut s = rng.vec_special(len);
                let e = Error::LengthMismatch {
                    what: "state",
                    expected: sl,
                    actual: len,
                };
                untouched(&label, e, &mut p, &g, &mut s, |p, g, s| {
                    plan.apply_on(backend, p, g, s)
                });
            }
        }
    }
    // step 0 is refused by the plan, with any scalar state
    assert_eq!(
        opt.plan(0, &scalars).unwrap_err(),
        Error::InvalidStep(0),
        "{opt:?}"
    );
}

/// Multi-tensor errors: a mismatch in the *last* tensor must stop the step before the first
/// tensor is written; mismatched list lengths and an exhausted step counter too. The scalar
/// state and the step counter are untouched.
fn multi_tensor_errors<O: Optimizer>(opt: O, scalars0: O::Scalars) {
    let mut rng = Rng(0xabc);
    let lens = [9usize, 24, 3];
    let fresh = |rng: &mut Rng| {
        let p: Vec<Vec<f32>> = lens.iter().map(|&n| rng.vec_special(n)).collect();
        let g: Vec<Vec<f32>> = lens.iter().map(|&n| rng.vec_finite(n, 1.0)).collect();
        let s: Vec<Vec<f32>> = lens
            .iter()
            .map(|&n| rng.vec_special(opt.state_len(n)))
            .collect();
        (p, g, s)
    };
    type Case = fn(&mut Vec<Vec<f32>>, &mut Vec<Vec<f32>>, &mut Vec<Vec<f32>>, &mut u64);
    let cases: [(&str, Case); 6] = [
        ("last grads too short", |_, g, _, _| {
            g[2].pop();
        }),
        ("last state too long", |_, _, s, _| s[2].push(0.0)),
        ("one grads list short", |_, g, _, _| {
            g.pop();
        }),
        ("one states list short", |_, _, s, _| {
            s.pop();
        }),
        ("one params list short", |p, _, _, _| {
            p.pop();
        }),
        ("step counter exhausted", |_, _, _, t| *t = u64::MAX),
    ];
    for (what, break_it) in cases {
        for backend in Backend::available() {
            let (mut p, mut g, mut s) = fresh(&mut rng);
            let mut step = 4u64;
            break_it(&mut p, &mut g, &mut s, &mut step);
            let (p0, g0, s0, t0) = (bits2(&p), bits2(&g), bits2(&s), step);
            let mut scalars = scalars0;
            let r = step_if_finite_on(backend, &opt, &mut step, &mut scalars, &mut p, &g, &mut s);
            assert!(r.is_err(), "{what}: {opt:?}");
            let before = (p0, g0, s0, t0);
            assert_eq!((bits2(&p), bits2(&g), bits2(&s), step), before, "{what}");
            assert_eq!(scalars, scalars0, "{what}");
            // the same through the loss scaler: gradients and scale untouched as well
            let mut scaler = GradScaler::default();
            let r = scaler.step(&opt, &mut step, &mut scalars, &mut p, &mut g, &mut s);
            assert!(r.is_err(), "{what}: {opt:?}");
            assert_eq!((bits2(&p), bits2(&g), bits2(&s), step), before, "{what}");
            assert_eq!(
                (scalars, scaler),
                (scalars0, GradScaler::default()),
                "{what}"
            );
        }
    }
    // sanity: the unbroken inputs do step
    let (mut p, g, mut s) = fresh(&mut rng);
    let (mut step, mut scalars) = (4u64, scalars0);
    let r = step_if_finite(&opt, &mut step, &mut scalars, &mut p, &g, &mut s).unwrap();
    assert_eq!((r, step), (StepOutcome::Stepped, 5));
}

macro_rules! error_paths {
    ($name:ident, $scalars:expr, [$($opt:expr),+ $(,)?]) => {
        #[test]
        fn $name() {
            $(
                lengths_and_step_zero($opt, $scalars);
                multi_tensor_errors($opt, $scalars);
            )+
        }
    };
}

error_paths!(
    sgd_errors_write_nothing,
    (),
    [
        Sgd::default(),
        Sgd {
            momentum: 0.9,
            nesterov: true,
            ..Sgd::default()
        },
    ]
);
error_paths!(
    adam_errors_write_nothing,
    (),
    [
        Adam::default(),
        Adam {
            amsgrad: true,
            ..Adam::adamw()
        },
    ]
);
error_paths!(adagrad_errors_write_nothing, (), [Adagrad::default()]);
error_paths!(adadelta_errors_write_nothing, (), [Adadelta::default()]);
error_paths!(
    rmsprop_errors_write_nothing,
    (),
    [
        RMSprop::default(),
        RMSprop {
            momentum: 0.9,
            centered: true,
            ..RMSprop::default()
        },
    ]
);
error_paths!(adamax_errors_write_nothing, (), [Adamax::default()]);
error_paths!(
    nadam_errors_write_nothing,
    NAdamScalars { mu_product: 0.37 },
    [
        NAdam::default(),
        NAdam {
            decoupled_weight_decay: true,
            weight_decay: 0.1,
            ..NAdam::default()
        },
    ]
);
error_paths!(radam_errors_write_nothing, (), [RAdam::default()]);
error_paths!(lion_errors_write_nothing, (), [Lion::default()]);
error_paths!(
    rprop_errors_write_nothing,
    (),
    [
        Rprop::default(),
        Rprop {
            maximize: true,
            ..Rprop::default()
        },
    ]
);
error_paths!(
    asgd_errors_write_nothing,
    AsgdScalars {
        eta: 0.005,
        mu: 0.25
    },
    [
        Asgd::default(),
        Asgd {
            t0: 0.0,
            weight_decay: 0.1,
            ..Asgd::default()
        },
    ]
);

/// The inherent one-tensor `step` methods also write nothing on error (a sample per kind of
/// error; they are `plan` followed by `apply`).
#[test]
fn inherent_step_writes_nothing_on_error() {
    let (mut p, g, mut s) = ([1.5f32; 4], [0.5f32; 4], [0.25f32; 8]);
    let e = Adam {
        lr: -1.0,
        ..Adam::default()
    }
    .step(1, &mut p, &g, &mut s)
    .unwrap_err();
    assert!(matches!(e, Error::InvalidHyperparameter { name: "lr", .. }));
    assert_eq!(
        Adam::default().step(0, &mut p, &g, &mut s),
        Err(Error::InvalidStep(0))
    );
    assert!(Adam::default().step(1, &mut p, &g[..3], &mut s).is_err());
    assert_eq!((p, s), ([1.5; 4], [0.25; 8]));

    let mut scalars = NAdamScalars { mu_product: 0.5 };
    assert!(
        NAdam::default()
            .step(0, &mut p, &g, &mut s, &mut scalars)
            .is_err()
    );
    assert!(
        NAdam::default()
            .step(1, &mut p, &g, &mut s[..7], &mut scalars)
            .is_err()
    );
    assert_eq!((p, s, scalars.mu_product), ([1.5; 4], [0.25; 8], 0.5));

    assert!(Rprop::default().step(0, &mut p, &g, &mut s).is_err());
    assert!(Rprop::default().step(1, &mut p, &g, &mut s[..7]).is_err());
    let mut a = AsgdScalars { eta: 0.5, mu: 0.5 };
    assert!(
        Asgd::default()
            .step(2, &mut p, &g, &mut s[..3], &mut a)
            .is_err()
    );
    assert!(
        Asgd {
            t0: NAN,
            ..Asgd::default()
        }
        .step(2, &mut p, &g, &mut s[..4], &mut a)
        .is_err()
    );
    assert_eq!(
        (p, s, a),
        ([1.5; 4], [0.25; 8], AsgdScalars { eta: 0.5, mu: 0.5 })
    );
}

// ---------------------------------------------------------------------------------------------
// non-finite gradients: skipped steps write nothing; by default NaN propagates as in torch

type Tensors = (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<Vec<f32>>);

fn tensors<O: Optimizer>(opt: &O, rng: &mut Rng, lens: &[usize]) -> Tensors {
    let p = lens.iter().map(|&n| rng.vec_finite(n, 2.0)).collect();
    let g = lens.iter().map(|&n| rng.vec_finite(n, 1.0)).collect();
    let s = lens
        .iter()
        .map(|&n| {
            let mut s = vec![0.0; opt.state_len(n)];
            opt.init_state(&mut s).unwrap();
            // a state that has seen a few steps: small non-negative values
            s.iter_mut().for_each(|x| *x += rng.range(0.0, 0.5) as f32);
            s
        })
        .collect();
    (p, g, s)
}

/// For every available backend and every kind of non-finite value, in every tensor position:
/// `step_if_finite` and `GradScaler::step` skip with nothing written; with finite gradients
/// they give exactly the bits of applying the plan tensor by tensor.
fn skip_is_exact<O: Optimizer>(opt: O, scalars0: O::Scalars, seed: u64) {
    let mut rng = Rng(seed);
    let lens = [13usize, 0, 64, 5];
    for backend in Backend::available() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for t in [0usize, 2, 3] {
                let (mut p, mut g, mut s) = tensors(&opt, &mut rng, &lens);
                let i = (rng.next_u64() as usize) % lens[t];
                g[t][i] = bad;
                let before = (bits2(&p), bits2(&g), bits2(&s));
                let (mut step, mut scalars) = (6u64, scalars0);
                let r =
                    step_if_finite_on(backend, &opt, &mut step, &mut scalars, &mut p, &g, &mut s);
                assert_eq!(r, Ok(StepOutcome::Skipped), "{opt:?} {backend}");
                assert_eq!(
                    (bits2(&p), bits2(&g), bits2(&s)),
                    before,
                    "{opt:?} {backend}"
                );
                assert_eq!((step, scalars), (6, scalars0));

                // the loss scaler: unscales the gradients, skips, backs off
                let mut scaler = GradScaler::default();
                let scaled: Vec<Vec<f32>> = g
                    .iter()
                    .map(|v| v.iter().map(|x| x * 65536.0).collect())
                    .collect();
                let mut gs = scaled.clone();
                let r = scaler.step(&opt, &mut step, &mut scalars, &mut p, &mut gs, &mut s);
                assert_eq!(r, Ok(StepOutcome::Skipped));
                assert_eq!(
                    (bits2(&p), bits2(&s), step, scalars),
                    (before.0, before.2, 6, scalars0)
                );
                assert_eq!((scaler.scale(), scaler.growth_tracker()), (32768.0, 0));
                for (a, b) in gs.iter().flatten().zip(scaled.iter().flatten()) {
                    assert!(common::same(*a, b * (1.0 / 65536.0)));
                }
            }
        }
        // finite gradients: the step runs, exactly as applying the plan to each tensor
        let (mut p, g, mut s) = tensors(&opt, &mut rng, &lens);
        let (mut p_ref, mut s_ref) = (p.clone(), s.clone());
        let plan = opt.plan(7, &scalars0).unwrap();
        for ((pp, gg), ss) in p_ref.iter_mut().zip(&g).zip(s_ref.iter_mut()) {
            plan.apply_on(Backend::Scalar, pp, gg, ss).unwrap();
        }
        let (mut step, mut scalars) = (6u64, scalars0);
        let r = step_if_finite_on(backend, &opt, &mut step, &mut scalars, &mut p, &g, &mut s);
        assert_eq!(r, Ok(StepOutcome::Stepped));
        assert_eq!(
            (bits2(&p), bits2(&s)),
            (bits2(&p_ref), bits2(&s_ref)),
            "{opt:?} {backend}"
        );
        assert_eq!((step, scalars), (7, plan.scalars_after()));
    }
}

/// Without the check, a NaN gradient reaches the parameter or the state at its index, as in
/// torch (which has no check outside GradScaler).
fn nan_propagates_by_default<O: Optimizer>(opt: O, scalars: O::Scalars) {
    let mut rng = Rng(99);
    let n = 40;
    let (mut p, mut g, mut s) = tensors(&opt, &mut rng, &[n]);
    g[0][17] = f32::NAN;
    opt.init_state(&mut s[0]).unwrap(); // a fresh state (a random one can be inconsistent, e.g. centered RMSprop)
    opt.plan(1, &scalars)
        .unwrap()
        .apply(&mut p[0], &g[0], &mut s[0])
        .unwrap();
    let planes = opt.state_len(n) / n;
    let hit = p[0][17].is_nan() || (0..planes).any(|j| s[0][j * n + 17].is_nan());
    assert!(hit, "{opt:?}: NaN gradient vanished");
    assert!(
        p[0].iter()
            .enumerate()
            .all(|(i, x)| i == 17 || x.is_finite()),
        "{opt:?}"
    );
}

macro_rules! skip_tests {
    ($name:ident, $scalars:expr, [$($opt:expr),+ $(,)?]) => {
        #[test]
        fn $name() {
            $(
                skip_is_exact($opt, $scalars, 7);
                nan_propagates_by_default($opt, $scalars);
            )+
        }
    };
}

skip_tests!(
    sgd_skips_non_finite_steps,
    (),
    [
        Sgd {
            lr: 0.1,
            ..Sgd::default()
        },
        Sgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
            ..Sgd::default()
        },
    ]
);
skip_tests!(
    adam_skips_non_finite_steps,
    (),
    [
        Adam::default(),
        Adam {
            amsgrad: true,
            ..Adam::adamw()
        },
    ]
);
skip_tests!(
    adagrad_skips_non_finite_steps,
    (),
    [Adagrad {
        lr_decay: 0.01,
        ..Adagrad::default()
    }]
);
skip_tests!(adadelta_skips_non_finite_steps, (), [Adadelta::default()]);
skip_tests!(
    rmsprop_skips_non_finite_steps,
    (),
    [
        RMSprop::default(),
        RMSprop {
            momentum: 0.9,
            centered: true,
            ..RMSprop::default()
        },
    ]
);
skip_tests!(adamax_skips_non_finite_steps, (), [Adamax::default()]);
skip_tests!(
    nadam_skips_non_finite_steps,
    NAdamScalars { mu_product: 0.8 },
    [
        NAdam::default(),
        NAdam {
            decoupled_weight_decay: true,
            weight_decay: 0.1,
            ..NAdam::default()
        },
    ]
);
skip_tests!(radam_skips_non_finite_steps, (), [RAdam::default()]);
skip_tests!(
    lion_skips_non_finite_steps,
    (),
    [Lion {
        weight_decay: 0.1,
        ..Lion::default()
    }]
);

skip_tests!(
    rprop_skips_non_finite_steps,
    (),
    [
        Rprop::default(),
        Rprop {
            maximize: true,
            etas: (0.3, 1.5),
            ..Rprop::default()
        },
    ]
);
skip_tests!(
    asgd_skips_non_finite_steps,
    AsgdScalars {
        eta: 0.008,
        mu: 0.5
    },
    [
        Asgd::default(),
        Asgd {
            t0: 0.0,
            weight_decay: 0.1,
            maximize: true,
            ..Asgd::default()
        },
    ]
);

/// A run of NAdam steps where every third gradient overflows: the scalar state advances only on
/// the steps that ran, so the trajectory equals the run without the bad steps, bit for bit.
#[test]
fn skipped_steps_do_not_disturb_a_trajectory() {
    let opt = NAdam {
        lr: 1e-2,
        ..NAdam::default()
    };
    let mut rng = Rng(3);
    let (mut p, _, mut s) = tensors(&opt, &mut rng, &[50]);
    let (mut p_ref, mut s_ref) = (p.clone(), s.clone());
    let (mut step, mut scalars) = (0u64, NAdamScalars::default());
    let (mut step_ref, mut scalars_ref) = (0u64, NAdamScalars::default());
    for k in 0..30 {
        let g = vec![rng.vec_finite(50, 1.0)];
        if k % 3 == 2 {
            let mut bad = g.clone();
            bad[0][k] = f32::INFINITY;
            let r = step_if_finite(&opt, &mut step, &mut scalars, &mut p, &bad, &mut s).unwrap();
            assert_eq!(r, StepOutcome::Skipped);
            continue;
        }
        let r = step_if_finite(&opt, &mut step, &mut scalars, &mut p, &g, &mut s).unwrap();
        assert_eq!(r, StepOutcome::Stepped);
        step_ref += 1;
        let plan = opt.plan(step_ref, &scalars_ref).unwrap();
        plan.apply(&mut p_ref[0], &g[0], &mut s_ref[0]).unwrap();
        scalars_ref = plan.scalars_after();
    }
    assert_eq!((step, scalars), (step_ref, scalars_ref));
    assert_eq!((bits2(&p), bits2(&s)), (bits2(&p_ref), bits2(&s_ref)));
}

/// A finite hyperparameter beyond `f32`'s range is rejected, as torch rejects it (`value cannot
/// be converted to type float without overflow`); `f32::MAX` itself and infinities (which
/// convert) are not range errors.
#[test]
fn every_hyperparameter_beyond_f32_is_rejected() {
    const BIG: f64 = 1e39;
    macro_rules! each {
        ($d:expr, $($field:ident),+) => {{
            let d = $d;
            $(
                let mut o = d;
                o.$field = BIG;
                rejects(o, stringify!($field), BIG);
                // The largest f32 is a valid hyperparameter; a step's derived scalars may
                // still overflow with it (`derived_scalars_beyond_f32_are_rejected`).
                o.$field = f64::from(f32::MAX);
                assert_eq!(o.validate(), Ok(()), "{o:?}");
            )+
        }};
    }
    each!(
        Sgd {
            momentum: 0.5,
            ..Sgd::default()
        },
        lr,
        momentum,
        weight_decay,
        dampening
    );
    rejects(
        Sgd {
            dampening: -BIG,
            ..Sgd::default()
        },
        "dampening",
        -BIG,
    );
    each!(Adam::default(), lr, eps, weight_decay);
    each!(Adam::adamw(), lr, eps, weight_decay);
    each!(
        Adagrad::default(),
        lr,
        lr_decay,
        weight_decay,
        initial_accumulator_value,
        eps
    );
    each!(Adadelta::default(), lr, eps, weight_decay);
    each!(RMSprop::default(), lr, eps, momentum, weight_decay, alpha);
    each!(Adamax::default(), lr, eps, weight_decay);
    each!(NAdam::default(), lr, eps, weight_decay, momentum_decay);
    each!(RAdam::default(), lr, eps, weight_decay);
    each!(Lion::default(), lr, weight_decay);
    each!(fused_optim::TorchaoAdam::adamw8bit(), lr, eps, weight_decay);
    each!(Rprop::default(), lr);
    each!(Asgd::default(), lr, weight_decay);
    for (etas, step_sizes, name, value) in [
        ((0.5, BIG), (1e-6, 50.0), "etas[1]", BIG),
        ((0.5, 1.2), (-BIG, 50.0), "step_sizes[0]", -BIG),
        ((0.5, 1.2), (1e-6, BIG), "step_sizes[1]", BIG),
    ] {
        let o = Rprop {
            etas,
            step_sizes,
            ..Rprop::default()
        };
        rejects(o, name, value);
    }
    accepts(Rprop {
        etas: (0.5, f64::from(f32::MAX)),
        step_sizes: (-f64::from(f32::MAX), f64::from(f32::MAX)),
        ..Rprop::default()
    });
    // torch converts an infinite learning rate (and steps to ±inf or NaN): not a range error.
    accepts(Sgd {
        lr: f64::INFINITY,
        ..Sgd::default()
    });
}

/// A per-step scalar that torch computes as a Python float and converts to f32 where it meets
/// the tensor (`value cannot be converted to type float without overflow`) is rejected the same
/// way when it lies beyond f32, with nothing written, although every hyperparameter fits.
#[test]
fn derived_scalars_beyond_f32_are_rejected() {
    fn rejects_at<O: Optimizer>(opt: O, step: u64, name: &str) {
        assert_eq!(opt.validate(), Ok(()), "{opt:?}");
        let mut scalars = O::Scalars::default();
        for t in 1..step {
            scalars = opt.plan(t, &scalars).unwrap().scalars_after();
        }
        match opt.plan(step, &scalars) {
            Err(Error::InvalidHyperparameter { name: n, value, .. }) => {
                assert_eq!(n, name, "{opt:?}");
                assert!(
                    value.is_finite() && value.abs() > f64::from(f32::MAX),
                    "{value}"
                );
            }
            other => panic!("{opt:?}: expected an overflow of {name}, got {other:?}"),
        }
        // One step over real buffers writes nothing.
        let (mut p, g) = (vec![0.5f32; 9], vec![0.25f32; 9]);
        let mut s = vec![0.0f32; opt.state_len(9)];
        assert!(
            opt.plan(step, &scalars)
                .and_then(|plan| plan.apply(&mut p, &g, &mut s))
                .is_err()
        );
        assert!(p.iter().all(|&x| x == 0.5) && s.iter().all(|&x| x == 0.0));
    }
    // lr / (1 − β1^t): 3e38 / 0.1 at step 1.
    rejects_at(
        Adam {
            lr: 3e38,
            ..Adam::default()
        },
        1,
        "lr / (1 - beta1^t)",
    );
    rejects_at(
        Adamax {
            lr: 3e38,
            ..Adamax::default()
        },
        1,
        "lr / (1 - beta1^t)",
    );
    // ... but not once the bias correction has grown: 3e38 / (1 − 0.9^100) fits.
    assert!(
        Adam {
            lr: 3e38,
            ..Adam::default()
        }
        .plan(100)
        .is_ok()
    );
    // AdamW's and Lion's 1 − lr·wd: 1 − 1e20·1e20.
    for name in ["adamw", "lion", "nadam", "radam"] {
        let (lr, wd) = (1e20, 1e20);
        match name {
            "adamw" => rejects_at(
                Adam {
                    lr,
                    weight_decay: wd,
                    ..Adam::adamw()
                },
                1,
                "1 - lr * weight_decay",
            ),
            "lion" => rejects_at(
                Lion {
                    lr,
                    weight_decay: wd,
                    ..Lion::default()
                },
                1,
                "1 - lr * weight_decay",
            ),
            "nadam" => rejects_at(
                NAdam {
                    lr,
                    weight_decay: wd,
                    decoupled_weight_decay: true,
                    ..NAdam::default()
                },
                1,
                "1 - lr * weight_decay",
            ),
            _ => rejects_at(
                RAdam {
                    lr,
                    weight_decay: wd,
                    decoupled_weight_decay: true,
                    ..RAdam::default()
                },
                1,
                "1 - lr * weight_decay",
            ),
        }
    }
    // NAdam's coefficient of the averaged term: with momentum_decay = 1e6, mu = β1 from the
    // first step, and 3e38·0.9/(1 − 0.81) overflows.
    rejects_at(
        NAdam {
            lr: 3e38,
            momentum_decay: 1e6,
            ..NAdam::default()
        },
        1,
        "lr * mu_next / (1 - mu_product_next)",
    );
}

// ---------------------------------------------------------------------------------------
// SparseAdam: torch's `0 < lr`, `0 < eps`, `0 <= beta < 1` (NaN fails each), values beyond
// f32, step 0, and the sparse gradient's shape rules; every error writes nothing.

mod sparse_adam {
    use super::*;
    use fused_optim::{SparseAdam, SparseGrad};

    const ROWS: usize = 4;
    const DIM: usize = 3;

    /// Runs `f` on fresh special-valued buffers and checks that it fails with `expected` and
    /// leaves every buffer with its bits. Errors are compared by their `Debug` text, where a
    /// NaN value equals itself.
    fn writes_nothing(
        expected: &Error,
        f: impl FnOnce(&mut [f32], &mut [f32]) -> Result<(), Error>,
    ) {
        let mut rng = Rng(11);
        let p0 = rng.vec_special(ROWS * DIM);
        let s0 = rng.vec_special(2 * ROWS * DIM);
        let (mut p, mut s) = (p0.clone(), s0.clone());
        let got = f(&mut p, &mut s).unwrap_err();
        assert_eq!(format!("{got:?}"), format!("{expected:?}"));
        assert_eq!(bits(&p), bits(&p0), "{expected:?}: params written");
        assert_eq!(bits(&s), bits(&s0), "{expected:?}: state written");
    }

    fn rejects_hyper(opt: SparseAdam, name: &str, value: f64) {
        let e = opt.validate().unwrap_err();
        match e {
            Error::InvalidHyperparameter {
                name: n, value: v, ..
            } => {
                assert_eq!(n, name, "{opt:?}");
                assert!(v.to_bits() == value.to_bits() || (v.is_nan() && value.is_nan()));
            }
            other => panic!("{opt:?}: {other:?}"),
        }
        assert_eq!(format!("{:?}", opt.plan(1).unwrap_err()), format!("{e:?}"));
        let values = [0.5f32; DIM];
        writes_nothing(&e, |p, s| {
            opt.step(1, p, SparseGrad::new(DIM, &[1u32], &values), s)
        });
    }

    #[test]
    fn sparse_adam_rules() {
        let d = SparseAdam::default();
        for lr in [0.0, -0.0, -1.0, NAN, f64::NEG_INFINITY, 3.5e38] {
            rejects_hyper(SparseAdam { lr, ..d }, "lr", lr);
        }
        for eps in [0.0, -1e-8, NAN, 1e39] {
            rejects_hyper(SparseAdam { eps, ..d }, "eps", eps);
        }
        for b in [1.0, -0.1, NAN, f64::INFINITY] {
            rejects_hyper(
                SparseAdam {
                    betas: (b, 0.9),
                    ..d
                },
                "betas[0]",
                b,
            );
            rejects_hyper(
                SparseAdam {
                    betas: (0.9, b),
                    ..d
                },
                "betas[1]",
                b,
            );
        }
        // torch's order: lr, eps, betas[0], betas[1].
        rejects_hyper(
            SparseAdam {
                lr: 0.0,
                eps: 0.0,
                betas: (1.0, 1.0),
                maximize: true,
            },
            "lr",
            0.0,
        );
        rejects_hyper(
            SparseAdam {
                eps: 0.0,
                betas: (1.0, 1.0),
                ..d
            },
            "eps",
            0.0,
        );
        // The edges torch accepts.
        for ok in [
            SparseAdam {
                lr: 1e-300,
                eps: 1e-300,
                betas: (0.0, 0.0),
                maximize: true,
            },
            SparseAdam {
                lr: f64::INFINITY,
                betas: (0.999_999_999, 0.999_999_999),
                ..d
            },
        ] {
            assert_eq!(ok.validate(), Ok(()), "{ok:?}");
            ok.plan(1).unwrap();
        }
        let values = [0.5f32; DIM];
        writes_nothing(&Error::InvalidStep(0), |p, s| {
            d.step(0, p, SparseGrad::new(DIM, &[1u32], &values), s)
        });
    }

    #[test]
    fn sparse_gradient_shape_rules() {
        let plan = SparseAdam::default().plan(3).unwrap();
        let v = [0.25f32; 3 * DIM];
        let n = ROWS * DIM;
        let length = |what, expected, actual| Error::LengthMismatch {
            what,
            expected,
            actual,
        };
        // dim 0 (no rows can be addressed).
        writes_nothing(
            &Error::InvalidCombination("SparseAdam needs a row length (dim) of at least 1"),
            |p, s| plan.apply(p, SparseGrad::<u32>::new(0, &[], &[]), s),
        );
        // params not a whole number of rows.
        writes_nothing(&length("params", n - DIM, n - 1), |p, s| {
            plan.apply(&mut p[1..], SparseGrad::new(DIM, &[0u32], &v[..DIM]), s)
        });
        writes_nothing(&length("params", 10, 12), |p, s| {
            plan.apply(p, SparseGrad::new(5, &[0u32], &[0.25; 5]), s)
        });
        // state not two planes of the table.
        writes_nothing(&length("state", 2 * n, 2 * n - 1), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[0u32], &v[..DIM]), &mut s[1..])
        });
        // values not indices·dim.
        writes_nothing(&length("values", 2 * DIM, 3 * DIM), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[0u32, 1], &v), s)
        });
        writes_nothing(&length("values", 2 * DIM, DIM), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[0u32, 1], &v[..DIM]), s)
        });
        // Out of range: past the last row, negative, huge; in every index type.
        let out = |position| Error::IndexOutOfRange {
            position,
            rows: ROWS,
        };
        writes_nothing(&out(2), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[0u32, 1, 4], &v), s)
        });
        writes_nothing(&out(0), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[-1i64, 1, 2], &v), s)
        });
        writes_nothing(&out(1), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[0i32, i32::MIN, 2], &v), s)
        });
        writes_nothing(&out(2), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[0u64, 1, u64::MAX], &v), s)
        });
        writes_nothing(&out(0), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[usize::MAX, 0, 1], &v), s)
        });
        // Unsorted or repeated rows, anywhere; the first offending position is named.
        let unsorted = |position| Error::IndicesNotSorted { position };
        writes_nothing(&unsorted(1), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[2usize, 1, 3], &v), s)
        });
        writes_nothing(&unsorted(2), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[0usize, 3, 3], &v), s)
        });
        writes_nothing(&unsorted(1), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[1u8, 1], &v[..2 * DIM]), s)
        });
        // An out-of-range index after an unsorted one: the unsorted one is first.
        writes_nothing(&unsorted(1), |p, s| {
            plan.apply(p, SparseGrad::new(DIM, &[3i64, 2, 9], &v), s)
        });
        // The backend check comes after the gradient's (both write nothing).
        for b in Backend::ALL.into_iter().filter(|b| !b.is_available()) {
            writes_nothing(&Error::BackendUnavailable(b), |p, s| {
                plan.apply_on(b, p, SparseGrad::new(DIM, &[0u32], &v[..DIM]), s)
            });
        }
        // The messages name the position.
        assert!(out(2).to_string().contains("indices[2]"));
        assert!(unsorted(2).to_string().contains("indices[1]"));
        // Valid: empty, one row, every row; all rows written only where touched.
        let mut rng = Rng(5);
        let mut p = rng.vec_finite(n, 1.0);
        let mut s = vec![0.0f32; 2 * n];
        let p0 = p.clone();
        plan.apply(&mut p, SparseGrad::<u32>::new(DIM, &[], &[]), &mut s)
            .unwrap();
        assert_eq!(bits(&p), bits(&p0));
        plan.apply(&mut p, SparseGrad::new(DIM, &[3u32], &v[..DIM]), &mut s)
            .unwrap();
        assert_eq!(bits(&p[..3 * DIM]), bits(&p0[..3 * DIM]));
        assert!(p[3 * DIM..].iter().zip(&p0[3 * DIM..]).all(|(a, b)| a < b));
        let all = [0.25f32; ROWS * DIM];
        plan.apply(&mut p, SparseGrad::new(DIM, &[0u32, 1, 2, 3], &all), &mut s)
            .unwrap();
        assert!(p.iter().zip(&p0).all(|(a, b)| a < b));
    }
}
