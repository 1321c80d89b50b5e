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

/// One 16-bit dtype: its values from bits, to and from `f32` (`half`'s conversions, the
/// independent reference), and one SGD step over its buffers on a backend.
struct Dtype<T> {
    from_bits: fn(u16) -> T,
    to_f32: fn(T) -> f32,
    from_f32: fn(f32) -> T,
    step: fn(&fused_optim::SgdPlan, Backend, &mut [T], &[T]),
}

/// Plain SGD from `p = 0` stores `−lr·g` rounded to the dtype: check the scalar reference
/// against `half`, then every backend against the reference, bit for bit.
fn check<T: Copy + Default>(d: &Dtype<T>) {
    let grads: Vec<T> = (0..=u16::MAX).map(d.from_bits).collect();
    for lr in LRS {
        let plan = Sgd {
            lr,
            ..Sgd::default()
        }
        .plan(1)
        .unwrap();
        let mut reference = vec![T::default(); grads.len()];
        (d.step)(&plan, Backend::Scalar, &mut reference, &grads);
        for (r, g) in reference.iter().zip(&grads) {
            let want = (d.from_f32)(0.0 - (lr as f32) * (d.to_f32)(*g));
            assert!(same((d.to_f32)(*r), (d.to_f32)(want)), "lr {lr}");
        }
        for b in backends() {
            let mut p = vec![T::default(); grads.len()];
            (d.step)(&plan, b, &mut p, &grads);
            for (i, (x, r)) in p.iter().zip(&reference).enumerate() {
                assert!(
                    same((d.to_f32)(*x), (d.to_f32)(*r)),
                    "{b}: lr {lr}, gradient bits {i:#x}"
                );
            }
        }
    }
}

#[test]
fn bf16_parameters_round_alike_on_every_backend() {
    check(&Dtype {
        from_bits: bf16::from_bits,
        to_f32: bf16::to_f32,
        from_f32: bf16::from_f32,
        step: |plan, b, p, g| {
            plan.apply_piece(b, 0, Params::Bf16(p), Grads::Bf16(g), State::Bf16(&mut []))
                .unwrap();
        },
    });
}

#[test]
fn f16_parameters_round_alike_on_every_backend() {
    check(&Dtype {
        from_bits: f16::from_bits,
        to_f32: f16::to_f32,
        from_f32: f16::from_f32,
        step: |plan, b, p, g| {
            plan.apply_piece(b, 0, Params::F16(p), Grads::F16(g), State::F16(&mut []))
                .unwrap();
        },
    });
}
