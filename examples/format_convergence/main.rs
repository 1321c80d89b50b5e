//! Training quality in every storage format: an MLP classifier (2 → 128 → 128 → 4) on
//! generated spirals, trained by AdamW with its state in f32, bf16, int8, int4 or fp8 and its
//! parameters in f32 or bf16 (round to nearest, stochastic rounding, Kahan compensation).
//!
//! ```sh
//! cargo run --release --example format_convergence
//! cargo run --release --example format_convergence -- --seed 2 --steps 4000
//! ```
//!
//! Prints, per combination, the training loss along the way, the final loss and accuracy on
//! the training and held-out sets, their gap to the all-f32 run, and the share of parameters
//! that still changed in the last quarter of the run. See `convergence.rs` for the set-up.

mod convergence;

use std::process::ExitCode;
use std::time::Instant;

use convergence::{
    BATCH, CLASSES, Config, HIDDEN, Problem, Record, SETUPS, SHAPES, TEST_PER_CLASS,
    TRAIN_PER_CLASS, state_name,
};
use fused_optim::Backend;

const USAGE: &str = "\
Usage: cargo run --release --example format_convergence -- [OPTIONS]

Trains Linear(2->128), ReLU, Linear(128->128), ReLU, Linear(128->4) on four spiral arms with
AdamW (warmup, then cosine annealing), once per storage combination, and prints the results.

Options:
  --seed N        seed of the data, weights, batches and stochastic rounding [default: 1]
  --steps N       optimizer steps, at least 8 [default: 3000]
  --lr X          peak learning rate [default: 0.01]
  --lr-min X      the rate the cosine ends at [default: 0.0001]
  --eps X         AdamW's eps [default: 1e-6; torch's 1e-8 makes fp8 state diverge here]
  --threads N     runs in parallel [default: 2]
  -h, --help      print this help
";

/// Parsed command line: the config and the number of threads.
fn parse_args() -> Result<Option<(Config, usize)>, String> {
    let mut config = Config::default();
    let mut threads = 2;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{name} needs a value")),
        };
        let bad = || format!("{name}: bad value `{value}`");
        match name.as_str() {
            "--seed" => config.seed = value.parse().map_err(|_| bad())?,
            "--steps" => match value.parse() {
                Ok(n) if n >= 8 => config.steps = n,
                _ => return Err(bad()),
            },
            "--lr" | "--lr-min" | "--eps" => match value.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 => match name.as_str() {
                    "--lr" => config.lr = x,
                    "--lr-min" => config.lr_min = x,
                    _ => config.eps = x,
                },
                _ => return Err(bad()),
            },
            "--threads" => match value.parse() {
                Ok(n) if n >= 1 => threads = n,
                _ => return Err(bad()),
            },
            _ => return Err(format!("unknown option `{arg}` (try --help)")),
        }
    }
    config.eval_every = (config.steps / 6).max(1);
    Ok(Some((config, threads)))
}

fn main() -> ExitCode {
    let (config, threads) = match parse_args() {
        Ok(Some(c)) => c,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let problem = Problem::new(config.seed);
    let records = match convergence::train_all(&config, &problem, &SETUPS, threads) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let elapsed = start.elapsed();
    print_report(&config, &records);
    println!(
        "\n{} runs in {:.1} s on {} thread(s), backend {}",
        records.len(),
        elapsed.as_secs_f64(),
        threads,
        Backend::best()
    );
    ExitCode::SUCCESS
}

fn print_report(config: &Config, records: &[Record]) {
    let params: usize = SHAPES.iter().map(|(r, c)| r * c).sum();
    let tensors: Vec<String> = SHAPES.iter().map(|(r, c)| (r * c).to_string()).collect();
    println!(
        "{CLASSES} spiral arms, {} training / {} held-out points; MLP 2-{HIDDEN}-{HIDDEN}-{CLASSES} \
         ({params} parameters in tensors of {})",
        TRAIN_PER_CLASS * CLASSES,
        TEST_PER_CLASS * CLASSES,
        tensors.join(", "),
    );
    println!(
        "AdamW (betas 0.9, 0.999, eps {:e}, weight decay 0.01), {} steps of batches of {BATCH}, \
         lr {} (warmup {} steps from a tenth), cosine down to {}, seed {}",
        config.eps, config.steps, config.lr, config.warmup, config.lr_min, config.seed
    );

    let Some(reference) = records.first() else {
        return;
    };
    println!("\nloss on the whole training set during training:");
    print!("{:<6} {:<11}", "state", "params");
    for (step, _) in &reference.curve {
        print!(" {:>8}", format!("@{step}"));
    }
    println!();
    for r in records {
        print!(
            "{:<6} {:<11}",
            state_name(r.setup.state),
            r.setup.params.name()
        );
        for (_, loss) in &r.curve {
            print!(" {loss:>8.4}");
        }
        println!();
    }

    println!(
        "\nfinal (gap: minus the all-f32 run; moved: parameters changed in the last {} steps):",
        config.steps / 4
    );
    println!(
        "{:<6} {:<11} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "state",
        "params",
        "state KiB",
        "train loss",
        "gap",
        "train acc",
        "test loss",
        "test acc",
        "gap",
        "moved",
    );
    for r in records {
        if r.diverged() {
            println!(
                "{:<6} {:<11} {:>9.1}   diverged (training loss {:.3e}, accuracy {:.2}%)",
                state_name(r.setup.state),
                r.setup.params.name(),
                r.state_bytes as f64 / 1024.0,
                r.train_loss,
                100.0 * r.train_acc,
            );
            continue;
        }
        println!(
            "{:<6} {:<11} {:>9.1} {:>10.4} {:>+9.4} {:>8.2}% {:>9.4} {:>8.2}% {:>+8.2}% {:>6.1}%",
            state_name(r.setup.state),
            r.setup.params.name(),
            r.state_bytes as f64 / 1024.0,
            r.train_loss,
            r.train_loss - reference.train_loss,
            100.0 * r.train_acc,
            r.test_loss,
            100.0 * r.test_acc,
            100.0 * (r.test_acc - reference.test_acc),
            100.0 * r.moved_late,
        );
    }
}
