//! One AdamW step on a large tensor, cut into pieces that plain `std::thread::scope` threads run
//! at once (no rayon): the split API for callers with their own executor (a second MCU core, an
//! RTOS task, a framework's pool). The result is compared, bit for bit, with the one-thread step.
//!
//! ```sh
//! cargo run --release --example threads
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fused_optim::{Adam, Backend, Error, Grads, Params, State, StateFormat, TensorStep, bf16};
use std::time::Instant;

fn main() -> Result<(), Error> {
    let n = 1 << 22;
    let threads = std::thread::available_parallelism().map_or(2, |t| t.get());
    let adam = Adam::adamw();
    let planes = adam.state_len(1);
    // bf16 parameters and gradients, 8-bit state: the pieces start on whole 256-value blocks.
    let params: Vec<bf16> = (0..n)
        .map(|i| bf16::from_f32((i % 97) as f32 * 0.01))
        .collect();
    let grads: Vec<bf16> = (0..n)
        .map(|i| bf16::from_f32((i % 13) as f32 * 1e-3 - 6e-3))
        .collect();
    let layout = StateFormat::Int8.layout(planes, n);
    let plan = adam.plan(1)?;

    // One thread, the whole tensor.
    let (mut p1, mut c1, mut s1) = (
        params.clone(),
        vec![0u8; layout.codes],
        vec![0.0f32; layout.scales],
    );
    let t = Instant::now();
    plan.apply_piece(
        Backend::best(),
        0,
        Params::Bf16(&mut p1),
        Grads::Bf16(&grads),
        State::Int8 {
            codes: &mut c1,
            scales: &mut s1,
        },
    )?;
    let one = t.elapsed();

    // `threads` pieces on scoped threads.
    let (mut pn, mut cn, mut sn) = (params, vec![0u8; layout.codes], vec![0.0f32; layout.scales]);
    let whole = TensorStep::new(
        Params::Bf16(&mut pn),
        Grads::Bf16(&grads),
        State::Int8 {
            codes: &mut cn,
            scales: &mut sn,
        },
        planes,
    )?;
    let t = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = whole
            .pieces(threads)
            .map(|piece| scope.spawn(|| piece.apply(&plan, Backend::best())))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("a piece's thread panicked"))
    })?;
    let many = t.elapsed();

    let same = p1.iter().zip(&pn).all(|(a, b)| a.to_bits() == b.to_bits()) && c1 == cn && s1 == sn;
    println!("AdamW, {n} bf16 parameters, int8 state, one step (a first step: timings are rough)");
    println!("  1 thread:  {one:?}");
    println!("  {threads} threads: {many:?}");
    println!("  same bits: {same}");
    assert!(same, "the pieces must give the one-thread step's bits");
    Ok(())
}
