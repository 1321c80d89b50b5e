"""The seed experiment in PyTorch, on exactly the example's data, initial weights and batches.

Rebuilds the example's SplitMix64 streams (data, initial weights, shuffles; see experiment.rs),
trains the tutorial's four optimizers with torch.optim and prints the same per-epoch table
(mean batch loss), to compare with `cargo run --release --example optimizer_comparison`:

    python3 -m venv venv && venv/bin/pip install torch
    venv/bin/python examples/optimizer_comparison/torch_reference.py --seed 1
"""

import argparse
import math

import torch

MASK = (1 << 64) - 1
N_POINTS, HIDDEN, BATCH = 1000, 20, 32


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next_u64() >> 11) / float(1 << 53)

    def symmetric(self, bound):
        return bound * (2.0 * self.uniform() - 1.0)

    def normal(self):
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def below(self, n):
        return (self.next_u64() * n) >> 64


def f32(v):
    return torch.tensor(v, dtype=torch.float32).item()


def make_net(rng):
    """nn.Linear's initialisation drawn from `rng` in the example's order."""
    w1 = [rng.symmetric(1.0) for _ in range(HIDDEN)]
    b1 = [rng.symmetric(1.0) for _ in range(HIDDEN)]
    bound = 1.0 / math.sqrt(HIDDEN)
    w2 = [rng.symmetric(bound) for _ in range(HIDDEN)]
    b2 = rng.symmetric(bound)
    net = torch.nn.Sequential(torch.nn.Linear(1, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(w1).view(HIDDEN, 1))
        net[0].bias.copy_(torch.tensor(b1))
        net[2].weight.copy_(torch.tensor(w2).view(1, HIDDEN))
        net[2].bias.fill_(b2)
    return net


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()

    master = SplitMix64(args.seed)
    data_rng = SplitMix64(master.next_u64())
    init_rng = SplitMix64(master.next_u64())
    shuffle_rng = SplitMix64(master.next_u64())
    x = [f32(-1.0 + 2.0 * i / (N_POINTS - 1)) for i in range(N_POINTS)]
    y = [f32(xi * xi + 0.1 * data_rng.normal()) for xi in x]

    names = ["SGD", "Momentum", "RMSprop", "Adam"]
    nets = [make_net(init_rng) for _ in names]
    opts = [
        torch.optim.SGD(nets[0].parameters(), lr=0.01),
        torch.optim.SGD(nets[1].parameters(), lr=0.01, momentum=0.8),
        torch.optim.RMSprop(nets[2].parameters(), lr=0.01, alpha=0.9),
        torch.optim.Adam(nets[3].parameters(), lr=0.01, betas=(0.9, 0.99)),
    ]
    print(f"{'epoch':>5}" + "".join(f" {n:>10}" for n in names))
    for epoch in range(args.epochs):
        for i in range(N_POINTS - 1, 0, -1):  # Fisher-Yates, as Data::shuffle
            j = shuffle_rng.below(i + 1)
            x[i], x[j] = x[j], x[i]
            y[i], y[j] = y[j], y[i]
        sums = [0.0] * len(names)
        steps = 0
        for start in range(0, N_POINTS, BATCH):
            bx = torch.tensor(x[start : start + BATCH]).view(-1, 1)
            by = torch.tensor(y[start : start + BATCH]).view(-1, 1)
            for k, (net, opt) in enumerate(zip(nets, opts)):
                loss = torch.nn.functional.mse_loss(net(bx), by)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sums[k] += loss.item()
            steps += 1
        print(f"{epoch + 1:>5}" + "".join(f" {s / steps:>10.4f}" for s in sums))


if __name__ == "__main__":
    main()
