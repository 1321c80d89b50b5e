//! Every backend this CPU supports gives results identical to the bit to the scalar reference,
//! for every optimizer, over the hyperparameter space, every tail length and special values;
//! and splitting a tensor into pieces never changes a bit.
//!
//! Tests are grouped by backend, so the test names say which backends ran; a backend this CPU
//! lacks is reported on stderr and checked to be refused.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

mod common;
mod strategies;

use common::{assert_backend_matches_scalar, assert_chunk_invariant};
use fused_optim::{Backend, Error, Optimizer};
use proptest::prelude::*;
use std::io::Write;

/// Runs `f` if `backend` is available here; otherwise checks that it is refused cleanly and
/// says so on stderr (uncaptured, so it shows in the test output).
fn on(backend: Backend, f: impl FnOnce()) {
    if backend.is_available() {
        f();
    } else {
        let plan = fused_optim::Sgd::default().plan(1).unwrap();
        let err = plan
            .apply_on(backend, &mut [1.0], &[1.0], &mut [])
            .unwrap_err();
        assert_eq!(err, Error::BackendUnavailable(backend));
        let _ = writeln!(
            std::io::stderr(),
            "backend {backend} not available on this CPU: refused, as it should be"
        );
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

macro_rules! backend_tests {
    // Every backend but the scalar reference is compared with the scalar reference; the
    // scalar module has only the tests that do not compare a backend with itself.
    ($modname:ident, $backend:expr) => {
        backend_tests!(@module $modname, $backend, {
            fn bitwise<O: Optimizer>(opt: O, step: u64, seed: u64) {
                on($backend, || assert_backend_matches_scalar($backend, opt, step, 3, seed));
            }

            proptest! {
                #![proptest_config(config())]
                #[test]
                fn sgd_matches_scalar(opt in strategies::sgd(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adam_matches_scalar(opt in strategies::adam(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adagrad_matches_scalar(opt in strategies::adagrad(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adadelta_matches_scalar(opt in strategies::adadelta(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn rmsprop_matches_scalar(opt in strategies::rmsprop(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn adamax_matches_scalar(opt in strategies::adamax(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn nadam_matches_scalar(opt in strategies::nadam(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn radam_matches_scalar(opt in strategies::radam(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn lion_matches_scalar(opt in strategies::lion(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn rprop_matches_scalar(opt in strategies::rprop(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
                #[test]
                fn asgd_matches_scalar(opt in strategies::asgd(), step in strategies::step(), seed: u64) {
                    bitwise(opt, step, seed);
                }
            }
        });
    };
    ($modname:ident, $backend:expr, reference) => {
        backend_tests!(@module $modname, $backend, {});
    };
    (@module $modname:ident, $backend:expr, { $($bitwise:tt)* }) => {
        mod $modname {
            use super::*;

            $($bitwise)*

            fn chunks<O: Optimizer>(opt: O, step: u64, n: usize, cuts: &[usize], seed: u64) {
                on($backend, || assert_chunk_invariant($backend, opt, step, n, cuts, seed));
            }

            proptest! {
                #![proptest_config(config())]
                #[test]
                fn sgd_chunk_invariant(opt in strategies::sgd(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn adam_chunk_invariant(opt in strategies::adam(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn adagrad_chunk_invariant(opt in strategies::adagrad(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn adadelta_chunk_invariant(opt in strategies::adadelta(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn rmsprop_chunk_invariant(opt in strategies::rmsprop(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn adamax_chunk_invariant(opt in strategies::adamax(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn nadam_chunk_invariant(opt in strategies::nadam(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn radam_chunk_invariant(opt in strategies::radam(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn lion_chunk_invariant(opt in strategies::lion(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn rprop_chunk_invariant(opt in strategies::rprop(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
                #[test]
                fn asgd_chunk_invariant(opt in strategies::asgd(), step in strategies::step(),
                    n in 0..300usize, cuts in prop::collection::vec(any::<usize>(), 0..6), seed: u64) {
                    chunks(opt, step, n, &cuts, seed);
                }
            }
        }
    };
}

backend_tests!(scalar, Backend::Scalar, reference);
backend_tests!(portable, Backend::Portable);
backend_tests!(avx2, Backend::Avx2);
backend_tests!(avx512, Backend::Avx512);

#[test]
fn best_backend_is_the_widest_available() {
    let best = Backend::best();
    let widest = Backend::available().last().unwrap();
    assert_eq!(best, widest);
    let names: Vec<&str> = Backend::available().map(Backend::name).collect();
    let _ = writeln!(
        std::io::stderr(),
        "backends exercised: {}",
        names.join(", ")
    );
}

/// SparseAdam: every backend against the scalar reference, on tables whose rows have every
/// length 1..=67 (every tail of every lane width) and a few long ones (the driver's alignment
/// head), with special values everywhere and gradients touching a random sorted set of rows;
/// untouched rows must keep their bits.
mod sparse_adam {
    use super::common::{Rng, first_difference};
    use super::*;
    use fused_optim::{SparseAdam, SparseGrad};

    const ROWS: usize = 5;

    /// A random strictly increasing subset of `0..rows` (possibly empty, possibly all).
    fn touched(rng: &mut Rng, rows: usize) -> Vec<u32> {
        let keep = rng.next_u64() % 4; // 0: few rows .. 3: most rows
        (0..rows as u32)
            .filter(|_| rng.next_u64() % 4 <= keep)
            .collect()
    }

    fn matches_scalar(backend: Backend, opt: SparseAdam, first_step: u64, seed: u64) {
        let mut rng = Rng(seed);
        for dim in (1..=67).chain([127, 128, 300]) {
            let n = ROWS * dim;
            let p0 = rng.vec_special(n);
            let s0 = rng.vec_special(2 * n);
            let (mut p_ref, mut s_ref) = (p0.clone(), s0.clone());
            let (mut p, mut s) = (p0.clone(), s0.clone());
            for t in first_step..first_step + 3 {
                let rows = touched(&mut rng, ROWS);
                let values = rng.vec_special(rows.len() * dim);
                let grad = SparseGrad::new(dim, &rows, &values);
                let plan = opt.plan(t).unwrap();
                let (before, before_s) = (p_ref.clone(), s_ref.clone());
                plan.apply_on(Backend::Scalar, &mut p_ref, grad, &mut s_ref)
                    .unwrap();
                plan.apply_on(backend, &mut p, grad, &mut s).unwrap();
                if let Some(i) = first_difference(&p_ref, &p) {
                    panic!(
                        "{backend} params differ from scalar: {opt:?} step {t} dim {dim} i {i}: \
                         {} vs {} (seed {seed})",
                        p_ref[i], p[i]
                    );
                }
                if let Some(i) = first_difference(&s_ref, &s) {
                    panic!(
                        "{backend} state differs from scalar: {opt:?} step {t} dim {dim} i {i}: \
                         {} vs {} (seed {seed})",
                        s_ref[i], s[i]
                    );
                }
                for r in (0..ROWS as u32).filter(|r| !rows.contains(r)) {
                    let span = r as usize * dim..(r as usize + 1) * dim;
                    assert_eq!(
                        first_difference(&before[span.clone()], &p[span.clone()]),
                        None,
                        "untouched row {r} moved"
                    );
                    for plane in [0, n] {
                        let span = plane + span.start..plane + span.end;
                        assert_eq!(
                            first_difference(&before_s[span.clone()], &s[span]),
                            None,
                            "untouched row {r}'s state moved"
                        );
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(config())]
        #[test]
        fn sparse_adam_matches_scalar_on_every_backend(
            opt in strategies::sparse_adam(), step in strategies::step(), seed: u64,
        ) {
            for backend in Backend::ALL.into_iter().filter(|b| *b != Backend::Scalar) {
                on(backend, || matches_scalar(backend, opt, step, seed));
            }
        }
    }
}
