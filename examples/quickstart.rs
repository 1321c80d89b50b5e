//! Quickstart: fit y = sin(πx) on [−1, 1] with a cubic polynomial, trained by Adam.
//!
//! Parameters, gradients and optimizer state live in fixed-size arrays, the way firmware would
//! hold them; the crate allocates nothing.
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```

use fused_optim::Adam;

const N: usize = 64; // data points
const P: usize = 4; // coefficients of a + b·x + c·x² + d·x³

fn features(x: f32) -> [f32; P] {
    [1.0, x, x * x, x * x * x]
}

/// Mean squared error and its gradient with respect to the coefficients.
fn loss_and_grad(w: &[f32; P], xs: &[f32; N], ys: &[f32; N]) -> (f32, [f32; P]) {
    let mut loss = 0.0;
    let mut grad = [0.0f32; P];
    for (&x, &y) in xs.iter().zip(ys) {
        let phi = features(x);
        let pred: f32 = w.iter().zip(&phi).map(|(a, b)| a * b).sum();
        let err = pred - y;
        loss += err * err;
        for (g, f) in grad.iter_mut().zip(&phi) {
            *g += 2.0 * err * f;
        }
    }
    let scale = 1.0 / N as f32;
    (loss * scale, grad.map(|g| g * scale))
}

fn main() -> Result<(), fused_optim::Error> {
    let xs: [f32; N] = core::array::from_fn(|i| -1.0 + 2.0 * i as f32 / (N - 1) as f32);
    let ys: [f32; N] = xs.map(|x| (core::f32::consts::PI * x).sin());

    let adam = Adam {
        lr: 0.05,
        ..Adam::default()
    };
    let mut w = [0.0f32; P];
    let mut state = [0.0f32; 2 * P]; // adam.state_len(P): first moments, then second moments
    assert_eq!(state.len(), adam.state_len(P));

    println!("fitting sin(pi x) with a cubic, Adam lr = {}", adam.lr);
    println!("{:>6}  {:>10}", "step", "mse");
    let steps = 500;
    for step in 1..=steps {
        let (loss, grad) = loss_and_grad(&w, &xs, &ys);
        if step == 1 || step % 50 == 0 {
            println!("{step:>6}  {loss:>10.6}");
        }
        adam.step(step, &mut w, &grad, &mut state)?;
    }
    let (loss, _) = loss_and_grad(&w, &xs, &ys);
    println!("final mse {loss:.6} with w = {w:.4?}");
    println!("(backend: {})", fused_optim::Backend::best());
    Ok(())
}
