//! What `parallel::apply` allocates per step (feature `rayon`): a counting global allocator
//! over every thread (rayon's workers included) counts the allocations of many steps on pools
//! of 1, 2, 3 and 8 threads, after warm-up. Run by `.ci/parts/25-threads.sh`; the numbers are
//! printed (`--nocapture`) and quoted in `docs/threads.md`.
#![cfg(feature = "rayon")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
#![allow(
    unsafe_code,
    reason = "a counting global allocator implements an unsafe trait"
)]

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::alloc::System;

use fused_optim::{Adam, Backend, Grads, Params, State, TensorStep, bf16, parallel};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only counts the calls, on every thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Tensors of very different sizes (a small CNN's), f32 and bf16 parameters, so the step is
/// split inside tensors and groups small ones.
const LENS: [usize; 6] = [70_000, 37, 4096, 33_001, 300, 150_000];
const STEPS: usize = 500;

/// Allocations (count, bytes) during `STEPS` steps on a pool of `threads`, after warm-up.
fn allocations_per_run(threads: usize) -> (usize, usize) {
    let adam = Adam::adamw();
    let mut params: Vec<Vec<f32>> = LENS.iter().map(|&n| vec![0.5; n]).collect();
    let mut halves: Vec<Vec<bf16>> = LENS.iter().map(|&n| vec![bf16::from_f32(0.5); n]).collect();
    let grads: Vec<Vec<f32>> = LENS.iter().map(|&n| vec![0.25; n]).collect();
    let mut states: Vec<Vec<f32>> = LENS.iter().map(|&n| vec![0.0; 2 * n]).collect();
    let mut bstates: Vec<Vec<f32>> = LENS.iter().map(|&n| vec![0.0; 2 * n]).collect();
    let mut tensors: Vec<TensorStep<'_>> = params
        .iter_mut()
        .zip(&grads)
        .zip(&mut states)
        .map(|((p, g), s)| TensorStep::new(Params::F32(p), Grads::F32(g), State::F32(s), 2))
        .chain(
            halves
                .iter_mut()
                .zip(&grads)
                .zip(&mut bstates)
                .map(|((p, g), s)| {
                    TensorStep::new(Params::Bf16(p), Grads::F32(g), State::F32(s), 2)
                }),
        )
        .collect::<Result<_, _>>()
        .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let backend = Backend::best();
    let mut step = |t: u64| {
        let plan = adam.plan(t).unwrap();
        pool.install(|| parallel::apply(&plan, backend, &mut tensors))
            .unwrap();
    };
    // Warm-up: the pool's threads start, rayon's thread-local latches and queues settle.
    for t in 1..=20 {
        step(t);
    }
    let (a0, b0) = (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    for t in 21..21 + STEPS as u64 {
        step(t);
    }
    let (a1, b1) = (ALLOCS.load(Ordering::SeqCst), BYTES.load(Ordering::SeqCst));
    (a1 - a0, b1 - b0)
}

#[test]
fn counting_allocator_sees_other_threads() {
    // The harness must see an allocation made on a pool thread, or the test below proves
    // nothing.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let before = ALLOCS.load(Ordering::SeqCst);
    let v = pool.install(|| core::hint::black_box(vec![1u8; 100]));
    assert!(ALLOCS.load(Ordering::SeqCst) > before && v.len() == 100);
}

/// The crate allocates nothing; rayon's `install` from outside the pool pushes its job onto the
/// pool's injector queue, a linked list of blocks of 63 slots: one block (about 1.5 KiB) is
/// allocated every 63 jobs. Joins inside the pool use the workers' own deques (allocated once).
/// So the bound is one allocation per 63 steps, plus slack for rayon's internals; anything
/// per step (a `Vec` of pieces, a boxed closure) would exceed it by far.
#[test]
fn parallel_steps_allocate_only_rayons_injector_blocks() {
    for threads in [1usize, 2, 3, 8] {
        let (count, bytes) = allocations_per_run(threads);
        println!(
            "{threads} threads: {count} allocations ({bytes} bytes) in {STEPS} steps of {} tensors \
             = {:.3} per step",
            2 * LENS.len(),
            count as f64 / STEPS as f64
        );
        assert!(
            count <= STEPS / 63 + 4,
            "{threads} threads: {count} allocations in {STEPS} steps"
        );
    }
}
