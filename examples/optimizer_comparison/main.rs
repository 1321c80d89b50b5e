//! The seed experiment: SGD, Momentum, RMSprop and Adam racing on a tiny regression, after the
//! well-known PyTorch tutorial on `torch.optim` ("the newest optimizer is not always the best").
//!
//! ```sh
//! cargo run --release --example optimizer_comparison
//! cargo run --release --example optimizer_comparison -- --optimizers all --epochs 20
//! cargo run --release --example optimizer_comparison -- --state int8 --params bf16-sr
//! ```
//!
//! Prints the mean loss of every epoch for each optimizer and a summary, and writes
//! `optimizer_comparison.svg`: the batch loss at every step, y axis 0 to 0.2 as in the tutorial.
//! See `experiment.rs` for the set-up and `--help` for the options.

mod experiment;

use std::process::ExitCode;

use experiment::{Command, Config, Curve, Outcome, STEPS_PER_EPOCH, USAGE};
use plotters::prelude::*;

/// The tutorial's y range.
const Y_MAX: f64 = 0.2;
/// "Converged": the loss level the summary measures the time to.
const TARGET: f64 = 0.02;

/// Distinct colours (Tableau 10 and one more), in legend order.
const PALETTE: [RGBColor; 11] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
];

fn main() -> ExitCode {
    let config = match experiment::parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            eprintln!("Run with --help for the options.");
            return ExitCode::from(2);
        }
    };
    let outcome = match experiment::run(&config) {
        Ok(outcome) => outcome,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    print_table(&config, &outcome);
    print_summary(&outcome);
    match plot(&config, &outcome) {
        Ok(()) => {
            println!("\nwrote {}", config.out);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: cannot write {}: {err}", config.out);
            ExitCode::FAILURE
        }
    }
}

fn print_table(config: &Config, outcome: &Outcome) {
    println!(
        "seed {}, {} epochs of {} steps (batches of {}), backend {}, {} initial weights",
        config.seed,
        config.epochs,
        STEPS_PER_EPOCH,
        experiment::BATCH,
        outcome.backend,
        if config.same_init {
            "shared"
        } else {
            "independent"
        },
    );
    if !config.all_f32() {
        println!(
            "optimizer state: {}; parameters: {} (forward and backward on them widened to f32)",
            experiment::state_name(config.state),
            config.params.describe(),
        );
    }
    println!(
        "noise floor (MSE of the true curve x^2 on this data): {:.4}\n",
        outcome.noise_floor
    );
    println!("mean batch loss per epoch:");
    print!("{:>5}", "epoch");
    for c in &outcome.curves {
        print!(" {:>10}", c.kind.name());
    }
    println!();
    print!("{:>5}", "lr");
    for c in &outcome.curves {
        print!(" {:>10}", c.lr);
    }
    println!();
    if !config.all_f32() {
        print!("{:>5}", "bytes");
        for c in &outcome.curves {
            print!(" {:>10}", c.state_bytes);
        }
        println!("   <- bytes of optimizer state per net");
    }
    for epoch in 0..config.epochs {
        print!("{:>5}", epoch + 1);
        for c in &outcome.curves {
            print!(
                " {:>10.4}",
                c.epoch_means.get(epoch).copied().unwrap_or(f64::NAN)
            );
        }
        println!();
    }
}

fn print_summary(outcome: &Outcome) {
    let mut ranked: Vec<&Curve> = outcome.curves.iter().collect();
    ranked.sort_by(|a, b| a.final_loss().total_cmp(&b.final_loss()));
    println!("\nlast epoch, best first (first epoch with mean loss <= {TARGET}):");
    for c in &ranked {
        let reached = match c.first_epoch_below(TARGET) {
            Some(e) => format!("epoch {e}"),
            None => "never".to_owned(),
        };
        println!("  {:<10} {:.4}  ({reached})", c.kind.name(), c.final_loss());
    }
    if let (Some(best), Some(worst)) = (ranked.first(), ranked.last()) {
        println!(
            "{} ends lowest, {} highest ({:.1}x the loss); the noise floor is {:.4}.",
            best.kind.name(),
            worst.kind.name(),
            worst.final_loss() / best.final_loss(),
            outcome.noise_floor,
        );
    }
}

fn plot(config: &Config, outcome: &Outcome) -> Result<(), Box<dyn core::error::Error>> {
    let steps = outcome
        .curves
        .iter()
        .map(|c| c.losses.len())
        .max()
        .unwrap_or(0);
    let root = SVGBackend::new(&config.out, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut caption = format!(
        "Loss per step: y = x² + 0.1·N(0,1), batches of {}, seed {}",
        experiment::BATCH,
        config.seed
    );
    if !config.all_f32() {
        caption.push_str(&format!(
            ", state {}, params {}",
            experiment::state_name(config.state),
            config.params.name()
        ));
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..steps as f64, 0.0..Y_MAX)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (MSE)")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 15))
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    for (i, curve) in outcome.curves.iter().enumerate() {
        let color = PALETTE.get(i % PALETTE.len()).copied().unwrap_or(BLACK);
        // Thinner lines when many optimizers race, so that the curves stay apart.
        let stroke_width = if outcome.curves.len() <= 4 { 2 } else { 1 };
        let style = ShapeStyle {
            color: color.to_rgba(),
            filled: false,
            stroke_width,
        };
        let points: Vec<(f64, f64)> = curve
            .losses
            .iter()
            .enumerate()
            .map(|(s, &l)| ((s + 1) as f64, f64::from(l)))
            .collect();
        let label = format!("{} (lr {})", curve.kind.name(), curve.lr);
        let mut pieces = experiment::clip_to_range(&points, Y_MAX).into_iter();
        // The first piece (possibly empty, if the whole curve is off the chart) carries the
        // legend entry.
        let first = pieces.next().unwrap_or_default();
        chart
            .draw_series(LineSeries::new(first, style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        for piece in pieces {
            chart.draw_series(LineSeries::new(piece, style))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 18))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
