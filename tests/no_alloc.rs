//! A counting global allocator shows that a step allocates nothing, on every backend, for every
//! optimizer (and that planning, validation and the error paths allocate nothing either).
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
#![allow(
    unsafe_code,
    reason = "a counting global allocator implements an unsafe trait"
)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use std::alloc::System;

use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Asgd, Backend, Grads, Lion, NAdam, Optimizer, Params, RAdam,
    RMSprop, Rprop, Sgd, State, StateFormat, StepPlan, TorchaoAdam, bf16,
};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts calls made on the current thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

/// Runs plan + apply for several steps on every backend and counts allocations.
fn assert_no_alloc<O: Optimizer>(opt: O) {
    let n = 1031;
    let mut p = vec![0.5f32; n];
    let g = vec![0.25f32; n];
    let mut s = vec![0.0f32; opt.state_len(n)];
    let backends: Vec<Backend> = Backend::available().collect();
    // Warm the CPU-feature cache outside the measurement (it does not allocate either, but
    // this keeps the measurement about the step itself).
    let _ = Backend::best();
    let count = allocations_during(|| {
        let mut scalars = O::Scalars::default();
        for t in 1..=7 {
            let plan = opt.plan(t, &scalars).unwrap();
            for &b in &backends {
                plan.apply_on(b, &mut p, &g, &mut s).unwrap();
            }
            plan.apply(&mut p, &g, &mut s).unwrap();
            scalars = plan.scalars_after();
            // Error paths: wrong lengths and step 0.
            assert!(plan.apply(&mut p, &g[1..], &mut s).is_err());
            assert!(opt.plan(0, &scalars).is_err());
        }
    });
    assert_eq!(count, 0, "{opt:?} allocated {count} times");
}

#[test]
fn counting_allocator_sees_allocations() {
    // The harness itself must be able to see an allocation, or the tests below prove nothing.
    let count = allocations_during(|| drop(core::hint::black_box(vec![1u8; 16])));
    assert_eq!(count, 1);
}

#[test]
fn sgd_steps_allocate_nothing() {
    assert_no_alloc(Sgd::default());
    assert_no_alloc(Sgd {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.1,
        ..Sgd::default()
    });
}

#[test]
fn adam_steps_allocate_nothing() {
    assert_no_alloc(Adam::default());
    assert_no_alloc(Adam {
        amsgrad: true,
        maximize: true,
        weight_decay: 0.1,
        ..Adam::default()
    });
    assert_no_alloc(Adam::adamw());
}

#[test]
fn family_steps_allocate_nothing() {
    assert_no_alloc(Adagrad {
        lr_decay: 0.1,
        weight_decay: 0.1,
        initial_accumulator_value: 0.1,
        ..Adagrad::default()
    });
    assert_no_alloc(Adadelta::default());
    assert_no_alloc(RMSprop {
        momentum: 0.9,
        centered: true,
        ..RMSprop::default()
    });
    assert_no_alloc(Adamax::default());
    assert_no_alloc(NAdam {
        decoupled_weight_decay: true,
        weight_decay: 0.1,
        ..NAdam::default()
    });
    assert_no_alloc(RAdam::default()); // 7 steps: past the switch to rectified steps at t = 6
    assert_no_alloc(Lion {
        weight_decay: 0.1,
        ..Lion::default()
    });
}

#[test]
fn rprop_and_asgd_steps_allocate_nothing() {
    assert_no_alloc(Rprop::default());
    assert_no_alloc(Rprop {
        maximize: true,
        etas: (0.3, 1.5),
        step_sizes: (0.0, f64::INFINITY),
        ..Rprop::default()
    });
    assert_no_alloc(Asgd::default());
    // Averaging from step 3 on, with weight decay: both branches of the ax update.
    assert_no_alloc(Asgd {
        t0: 0.0,
        weight_decay: 0.1,
        maximize: true,
        ..Asgd::default()
    });
    // Rprop's fresh state (two planes with different values) in f32 and int8, and its errors.
    let n = 300;
    let mut s = vec![0.0f32; 2 * n];
    let int8 = StateFormat::Int8.layout(2, n);
    let (mut codes, mut scales) = (vec![0u8; int8.codes], vec![0.0f32; int8.scales]);
    let count = allocations_during(|| {
        let opt = Rprop::default();
        opt.init_state(&mut s).unwrap();
        opt.init_state_in(State::Int8 {
            codes: &mut codes,
            scales: &mut scales,
        })
        .unwrap();
        assert!(opt.init_state(&mut s[1..]).is_err());
        assert!(
            Rprop {
                etas: (1.0, 1.2),
                ..opt
            }
            .init_state(&mut s)
            .is_err()
        );
    });
    assert_eq!(count, 0, "Rprop's init_state allocated {count} times");
    assert_eq!(s[n], 0.01);
}

/// Storage formats: an int8-state step with stochastically rounded bf16 parameters, and an
/// all-bf16 step, on every backend, allocate nothing; nor do pieces, fresh-state writes and the
/// error paths (misaligned piece, wrong lengths).
#[test]
fn storage_format_steps_allocate_nothing() {
    let n = 1031; // four int8 blocks and a partial one
    let adamw = TorchaoAdam::adamw8bit();
    let int8 = StateFormat::Int8.layout(2, n);
    let mut p_sr = vec![bf16::from_f32(0.5); n];
    let (mut codes, mut scales) = (vec![0u8; int8.codes], vec![0.0f32; int8.scales]);
    let mut p_bf = vec![bf16::from_f32(0.5); n];
    let mut s_bf = vec![bf16::ZERO; StateFormat::Bf16.layout(2, n).values];
    let g = vec![bf16::from_f32(0.25); n];
    let backends: Vec<Backend> = Backend::available().collect();
    let _ = Backend::best();
    let count = allocations_during(|| {
        adamw
            .init_state_in(State::Int8 {
                codes: &mut codes,
                scales: &mut scales,
            })
            .unwrap();
        for t in 1..=5 {
            let plan = adamw.plan(t).unwrap();
            for &b in &backends {
                plan.apply_piece(
                    b,
                    0,
                    Params::Bf16Stochastic {
                        params: &mut p_sr,
                        seed: 7,
                    },
                    Grads::Bf16(&g),
                    State::Int8 {
                        codes: &mut codes,
                        scales: &mut scales,
                    },
                )
                .unwrap();
                plan.apply_piece(
                    b,
                    0,
                    Params::Bf16(&mut p_bf),
                    Grads::Bf16(&g),
                    State::Bf16(&mut s_bf),
                )
                .unwrap();
                // A piece (the first block of a one-plane-per-block slice) and the error paths.
                let (mut c1, mut s1) = ([0u8; 512], [0.0f32; 2]);
                plan.apply_piece(
                    b,
                    256,
                    Params::Bf16Stochastic {
                        params: &mut p_sr[256..512],
                        seed: 7,
                    },
                    Grads::Bf16(&g[256..512]),
                    State::Int8 {
                        codes: &mut c1,
                        scales: &mut s1,
                    },
                )
                .unwrap();
                assert!(
                    plan.apply_piece(
                        b,
                        3,
                        Params::Bf16Stochastic {
                            params: &mut p_sr,
                            seed: 7,
                        },
                        Grads::Bf16(&g),
                        State::Int8 {
                            codes: &mut codes,
                            scales: &mut scales,
                        },
                    )
                    .is_err()
                );
                assert!(
                    plan.apply_piece(
                        b,
                        0,
                        Params::Bf16(&mut p_bf),
                        Grads::Bf16(&g[1..]),
                        State::Bf16(&mut s_bf),
                    )
                    .is_err()
                );
            }
            plan.apply_to(
                Params::Bf16(&mut p_bf),
                Grads::Bf16(&g),
                State::Bf16(&mut s_bf),
            )
            .unwrap();
        }
        let plan = Adam::default().plan(1).unwrap();
        plan.apply_to(
            Params::Bf16Stochastic {
                params: &mut p_sr,
                seed: 8,
            },
            Grads::Bf16(&g),
            State::Int8 {
                codes: &mut codes,
                scales: &mut scales,
            },
        )
        .unwrap();
    });
    assert_eq!(count, 0, "storage-format steps allocated {count} times");
    // The steps ran: the parameters and the state moved.
    assert!(p_sr.iter().all(|x| x.to_f32() < 0.5) && p_bf.iter().all(|x| x.to_f32() < 0.5));
    assert!(scales.iter().all(|s| *s > 0.0) && s_bf.iter().any(|s| s.to_f32() > 0.0));
}

/// SparseAdam: steps on every backend over a few rows of a table (rows of 67 values: vector
/// bodies and tails), in several index types, and its error paths, allocate nothing.
#[test]
fn sparse_adam_steps_allocate_nothing() {
    use fused_optim::{Error, SparseAdam, SparseGrad};
    let (rows, dim) = (64, 67);
    let n = rows * dim;
    let mut p = vec![0.5f32; n];
    let mut s = vec![0.0f32; 2 * n];
    let idx_u32: Vec<u32> = vec![0, 5, 6, 40, 63];
    let idx_i64: Vec<i64> = idx_u32.iter().map(|&i| i64::from(i)).collect();
    let values = vec![0.25f32; idx_u32.len() * dim];
    let backends: Vec<Backend> = Backend::available().collect();
    let _ = Backend::best();
    let opts = [
        SparseAdam::default(),
        SparseAdam {
            maximize: true,
            betas: (0.5, 0.9),
            ..SparseAdam::default()
        },
    ];
    let count = allocations_during(|| {
        for opt in opts {
            for t in 1..=5 {
                let plan = opt.plan(t).unwrap();
                for &b in &backends {
                    plan.apply_on(b, &mut p, SparseGrad::new(dim, &idx_u32, &values), &mut s)
                        .unwrap();
                }
                plan.apply(&mut p, SparseGrad::new(dim, &idx_i64, &values), &mut s)
                    .unwrap();
                opt.step(
                    t,
                    &mut p,
                    SparseGrad::new(dim, &idx_u32[1..2], &values[..dim]),
                    &mut s,
                )
                .unwrap();
                // Error paths: unsorted, out of range, wrong lengths, step 0.
                let bad = [6u32, 5];
                assert!(matches!(
                    plan.apply(
                        &mut p,
                        SparseGrad::new(dim, &bad, &values[..2 * dim]),
                        &mut s
                    ),
                    Err(Error::IndicesNotSorted { .. })
                ));
                assert!(matches!(
                    plan.apply(
                        &mut p,
                        SparseGrad::new(dim, &[64u32], &values[..dim]),
                        &mut s
                    ),
                    Err(Error::IndexOutOfRange { .. })
                ));
                assert!(
                    plan.apply(&mut p, SparseGrad::new(dim, &idx_u32, &values[1..]), &mut s)
                        .is_err()
                );
                assert!(opt.plan(0).is_err());
            }
        }
    });
    assert_eq!(count, 0, "SparseAdam allocated {count} times");
    assert!(p[..dim].iter().all(|&x| x < 0.5) && p[dim] == 0.5);
}
