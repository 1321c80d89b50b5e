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
    Adadelta, Adagrad, Adam, Adamax, Backend, Lion, NAdam, Optimizer, RAdam, RMSprop, Sgd, StepPlan,
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
