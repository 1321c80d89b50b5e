//! proptest strategies over each optimizer's hyperparameter space: the defaults' neighbourhood,
//! the edges torch allows (zero lr, zero eps, β = 0, β just below 1) and every flag.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different part"
)]

use fused_optim::{Adadelta, Adagrad, Adam, Adamax, Asgd, Lion, NAdam, RAdam, RMSprop, Rprop, Sgd};
use proptest::prelude::*;

pub fn lr() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1e-3), Just(1e-2), Just(1.0), 1e-6..10.0f64]
}

pub fn beta() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(0.5),
        Just(0.9),
        Just(0.99),
        Just(0.999),
        Just(0.999_999),
        0.0..1.0f64
    ]
}

pub fn eps() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1e-8), Just(1e-10), Just(1e-3), 0.0..1.0f64]
}

pub fn weight_decay() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1e-2), 0.0..2.0f64]
}

/// A first step number: the first steps (where bias corrections and first-step rules bite)
/// and some late ones.
pub fn step() -> impl Strategy<Value = u64> {
    prop_oneof![
        1..=8u64,
        Just(1_000),
        Just(1 << 24),
        Just(u64::from(u32::MAX))
    ]
}

pub fn sgd() -> impl Strategy<Value = Sgd> {
    (
        lr(),
        prop_oneof![Just(0.0), beta(), 0.0..3.0f64],
        prop_oneof![Just(0.0), -1.0..1.0f64],
        weight_decay(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(lr, momentum, dampening, weight_decay, nesterov, maximize)| {
                let mut s = Sgd {
                    lr,
                    momentum,
                    dampening,
                    weight_decay,
                    nesterov,
                    maximize,
                };
                if s.nesterov && (s.momentum <= 0.0 || s.dampening != 0.0) {
                    s.dampening = 0.0;
                    s.momentum = s.momentum.max(0.5);
                }
                s
            },
        )
}

pub fn adam() -> impl Strategy<Value = Adam> {
    (
        lr(),
        beta(),
        beta(),
        eps(),
        weight_decay(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(lr, b1, b2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay)| Adam {
                lr,
                betas: (b1, b2),
                eps,
                weight_decay,
                amsgrad,
                maximize,
                decoupled_weight_decay,
            },
        )
}

pub fn adagrad() -> impl Strategy<Value = Adagrad> {
    (
        lr(),
        prop_oneof![Just(0.0), Just(1e-2), 0.0..10.0f64],
        weight_decay(),
        prop_oneof![Just(0.0), Just(0.1), 0.0..10.0f64],
        eps(),
        any::<bool>(),
    )
        .prop_map(
            |(lr, lr_decay, weight_decay, initial_accumulator_value, eps, maximize)| Adagrad {
                lr,
                lr_decay,
                weight_decay,
                initial_accumulator_value,
                eps,
                maximize,
            },
        )
}

/// rho over torch's whole closed interval, both ends included.
pub fn adadelta() -> impl Strategy<Value = Adadelta> {
    (
        lr(),
        prop_oneof![Just(0.0), Just(0.9), Just(1.0), 0.0..=1.0f64],
        eps(),
        weight_decay(),
        any::<bool>(),
    )
        .prop_map(|(lr, rho, eps, weight_decay, maximize)| Adadelta {
            lr,
            rho,
            eps,
            weight_decay,
            maximize,
        })
}

/// alpha above 1 is accepted by torch, so it is exercised too.
pub fn rmsprop() -> impl Strategy<Value = RMSprop> {
    (
        lr(),
        prop_oneof![Just(0.0), Just(0.99), Just(1.0), Just(1.5), 0.0..2.0f64],
        eps(),
        weight_decay(),
        prop_oneof![Just(0.0), Just(0.9), 0.0..3.0f64],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(lr, alpha, eps, weight_decay, momentum, centered, maximize)| RMSprop {
                lr,
                alpha,
                eps,
                weight_decay,
                momentum,
                centered,
                maximize,
            },
        )
}

pub fn adamax() -> impl Strategy<Value = Adamax> {
    (lr(), beta(), beta(), eps(), weight_decay(), any::<bool>()).prop_map(
        |(lr, b1, b2, eps, weight_decay, maximize)| Adamax {
            lr,
            betas: (b1, b2),
            eps,
            weight_decay,
            maximize,
        },
    )
}

pub fn nadam() -> impl Strategy<Value = NAdam> {
    (
        lr(),
        beta(),
        beta(),
        eps(),
        weight_decay(),
        prop_oneof![Just(0.0), Just(4e-3), 0.0..1.0f64],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(lr, b1, b2, eps, weight_decay, momentum_decay, decoupled_weight_decay, maximize)| {
                NAdam {
                    lr,
                    betas: (b1, b2),
                    eps,
                    weight_decay,
                    momentum_decay,
                    decoupled_weight_decay,
                    maximize,
                }
            },
        )
}

pub fn radam() -> impl Strategy<Value = RAdam> {
    (
        lr(),
        beta(),
        beta(),
        eps(),
        weight_decay(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(lr, b1, b2, eps, weight_decay, decoupled_weight_decay, maximize)| RAdam {
                lr,
                betas: (b1, b2),
                eps,
                weight_decay,
                decoupled_weight_decay,
                maximize,
            },
        )
}

pub fn lion() -> impl Strategy<Value = Lion> {
    (lr(), beta(), beta(), weight_decay(), any::<bool>()).prop_map(
        |(lr, b1, b2, weight_decay, maximize)| Lion {
            lr,
            betas: (b1, b2),
            weight_decay,
            maximize,
        },
    )
}

/// SparseAdam: lr and eps strictly positive (torch's rule), every beta, both signs.
pub fn sparse_adam() -> impl Strategy<Value = fused_optim::SparseAdam> {
    (
        prop_oneof![
            Just(1e-3),
            Just(1e-2),
            Just(1.0),
            Just(1e-30),
            1e-6..10.0f64
        ],
        beta(),
        beta(),
        prop_oneof![
            Just(1e-8),
            Just(1e-10),
            Just(1e-3),
            Just(1e-45),
            1e-12..1.0f64
        ],
        any::<bool>(),
    )
        .prop_map(|(lr, b1, b2, eps, maximize)| fused_optim::SparseAdam {
            lr,
            betas: (b1, b2),
            eps,
            maximize,
        })
}

/// etas over torch's open ranges, with values whose f32 rounding reaches the quirks (η− to 1
/// or 0, η+ to 1) and an infinite η+; step_sizes in any order, with infinite ends.
pub fn rprop() -> impl Strategy<Value = Rprop> {
    (
        lr(),
        prop_oneof![Just(0.5), Just(0.999_999_99), Just(1e-50), 1e-3..1.0f64],
        prop_oneof![
            Just(1.2),
            Just(1.000_000_01),
            Just(f64::INFINITY),
            1.0001..10.0f64
        ],
        prop_oneof![
            Just((1e-6, 50.0)),
            Just((0.0, f64::INFINITY)),
            Just((f64::NEG_INFINITY, 1e-3)),
            Just((5.0, 2.0)),
            (0.0..1e-2f64, 1e-2..100.0f64)
        ],
        any::<bool>(),
    )
        .prop_map(|(lr, minus, plus, step_sizes, maximize)| Rprop {
            lr,
            etas: (minus, plus),
            step_sizes,
            maximize,
        })
}

/// t0 small enough that averaging starts within the first steps, and torch's default.
pub fn asgd() -> impl Strategy<Value = Asgd> {
    (
        lr(),
        prop_oneof![Just(0.0), Just(1e-4), Just(1.0), 0.0..10.0f64],
        prop_oneof![Just(0.0), Just(0.75), Just(1.0), 0.0..3.0f64],
        prop_oneof![
            Just(1e6),
            Just(0.0),
            Just(f64::NEG_INFINITY),
            -10.0..10.0f64
        ],
        weight_decay(),
        any::<bool>(),
    )
        .prop_map(|(lr, lambd, alpha, t0, weight_decay, maximize)| Asgd {
            lr,
            lambd,
            alpha,
            t0,
            weight_decay,
            maximize,
        })
}
