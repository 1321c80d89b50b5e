//! Replays the fuzz targets on stable, as ordinary tests: every file of the committed corpus
//! (`tests/fuzz/corpus/<target>/`), then a fixed set of pseudo-random inputs per target. The target
//! logic is the same file the cargo-fuzz targets use (`tests/fuzz/logic.rs`).
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

#[path = "fuzz/logic.rs"]
mod logic;

use std::path::PathBuf;

/// Pseudo-random inputs replayed per target on top of the corpus.
const GENERATED: u64 = 300;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

fn replay(target: &str) {
    let (_, run) = logic::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(
            outcome.is_ok(),
            "{target}: corpus file {} fails",
            file.display()
        );
    }
    let mut state = 0x0123_4567_89ab_cdefu64 ^ target.len() as u64;
    for k in 0..GENERATED {
        let len = [0usize, 3, 17, 64, 256, 1024, 4096][(k % 7) as usize];
        let data: Vec<u8> = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 56) as u8
            })
            .collect();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(
            outcome.is_ok(),
            "{target}: generated input {k} fails: {data:02x?}"
        );
    }
}

#[test]
fn every_target_has_a_test() {
    for (name, _) in logic::TARGETS {
        assert!(
            corpus_dir(name).is_dir(),
            "tests/fuzz/corpus/{name} is missing"
        );
    }
}

macro_rules! replay_tests {
    ($($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )+
    };
}

replay_tests!(
    sgd,
    adam,
    adagrad,
    adadelta,
    rmsprop,
    adamax,
    nadam,
    radam,
    lion,
    rprop,
    asgd,
    clip,
    unscale,
    formats,
    sparse_adam,
);
