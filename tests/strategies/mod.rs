//! proptest strategies over each optimizer's hyperparameter space: the defaults' neighbourhood,
//! the edges torch allows (zero lr, zero eps, β = 0, β just below 1) and every flag.
#![allow(dead_code, unreachable_pub, reason = "each test file uses a different part")]

use fused_optim::{Adam, Sgd};
use proptest::prelude::*;

pub fn lr() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(1e-3), Just(1e-2), Just(1.0), 1e-6..10.0f64]
}

pub fn beta() -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), Just(0.5), Just(0.9), Just(0.99), Just(0.999), Just(0.999_999), 0.0..1.0f64]
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
    prop_oneof![1..=8u64, Just(1_000), Just(1 << 24), Just(u64::from(u32::MAX))]
}

pub fn sgd() -> impl Strategy<Value = Sgd> {
    (lr(), prop_oneof![Just(0.0), beta(), 0.0..3.0f64], prop_oneof![Just(0.0), -1.0..1.0f64],
        weight_decay(), any::<bool>(), any::<bool>())
        .prop_map(|(lr, momentum, dampening, weight_decay, nesterov, maximize)| {
            let mut s = Sgd { lr, momentum, dampening, weight_decay, nesterov, maximize };
            if s.nesterov && (s.momentum <= 0.0 || s.dampening != 0.0) {
                s.dampening = 0.0;
                s.momentum = s.momentum.max(0.5);
            }
            s
        })
}

pub fn adam() -> impl Strategy<Value = Adam> {
    (lr(), beta(), beta(), eps(), weight_decay(), any::<bool>(), any::<bool>(), any::<bool>())
        .prop_map(|(lr, b1, b2, eps, weight_decay, amsgrad, maximize, decoupled_weight_decay)| {
            Adam { lr, betas: (b1, b2), eps, weight_decay, amsgrad, maximize, decoupled_weight_decay }
        })
}
