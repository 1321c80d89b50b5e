//! The in-register bf16/f16 conversions of every backend round exactly like the scalar
//! reference: every 16-bit gradient value, scaled by learning rates that make the products
//! rounding cases (ties, subnormals, overflow to infinity), stored as bf16 or f16 parameters.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use fused_optim::{Backend, Grads, Params, Sgd, State, bf16, f16};

/// Every backend this CPU runs; the unavailable ones are named on stderr.
fn backends() -> Vec<Backend> {
    for b in Backend::ALL {
        if !b.is_available() {
            eprintln!("backend {b} not available on this CPU: not run");
        }
    }
    Backend::available().collect()
}

const LRS: [f64; 6] = [1.0, 0.1, 1.0 / 3.0, 1e-3, 7.7, 3e-6];

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn bf16_parameters_round_alike_on_every_backend() {
    let grads: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
    for lr in LRS {
        let plan = Sgd {
            lr,
            ..Sgd::default()
        }
        .plan(1)
        .unwrap();
        let mut reference = vec![bf16::ZERO; grads.len()];
        let mut state: [bf16; 0] = [];
        plan.apply_piece(
            Backend::Scalar,
            0,
            Params::Bf16(&mut reference),
            Grads::Bf16(&grads),
            State::Bf16(&mut state),
        )
        .unwrap();
        // The reference itself rounds p − lr·g to nearest even.
        for (r, g) in reference.iter().zip(&grads) {
            let want = bf16::from_f32(0.0 - (lr as f32) * g.to_f32());
            assert!(same(r.to_f32(), want.to_f32()), "lr {lr} g {g}");
        }
        for b in backends() {
            let mut p = vec![bf16::ZERO; grads.len()];
            plan.apply_piece(
                b,
                0,
                Params::Bf16(&mut p),
                Grads::Bf16(&grads),
                State::Bf16(&mut state),
            )
            .unwrap();
            for (i, (x, r)) in p.iter().zip(&reference).enumerate() {
                assert!(
                    same(x.to_f32(), r.to_f32()),
                    "{b}: lr {lr}, gradient bits {i:#x}"
                );
            }
        }
    }
}

#[test]
fn f16_parameters_round_alike_on_every_backend() {
    let grads: Vec<f16> = (0..=u16::MAX).map(f16::from_bits).collect();
    for lr in LRS {
        let plan = Sgd {
            lr,
            ..Sgd::default()
        }
        .plan(1)
        .unwrap();
        let mut reference = vec![f16::ZERO; grads.len()];
        let mut state: [f16; 0] = [];
        plan.apply_piece(
            Backend::Scalar,
            0,
            Params::F16(&mut reference),
            Grads::F16(&grads),
            State::F16(&mut state),
        )
        .unwrap();
        for (r, g) in reference.iter().zip(&grads) {
            let want = f16::from_f32(0.0 - (lr as f32) * g.to_f32());
            assert!(same(r.to_f32(), want.to_f32()), "lr {lr} g {g}");
        }
        for b in backends() {
            let mut p = vec![f16::ZERO; grads.len()];
            plan.apply_piece(
                b,
                0,
                Params::F16(&mut p),
                Grads::F16(&grads),
                State::F16(&mut state),
            )
            .unwrap();
            for (i, (x, r)) in p.iter().zip(&reference).enumerate() {
                assert!(
                    same(x.to_f32(), r.to_f32()),
                    "{b}: lr {lr}, gradient bits {i:#x}"
                );
            }
        }
    }
}
