//! Learning-rate schedules from `torch.optim.lr_scheduler`, as pure functions of the epoch.
//!
//! Each schedule's `lr(epoch)` is the value torch's scheduler reports with `get_last_lr()`
//! after `epoch` calls to `scheduler.step()` (so `lr(0)` is the rate right after construction,
//! used by the first optimizer step). torch computes most of them recursively from the
//! previous rate (the "chainable" form); this module uses the closed forms, in f64 with
//! `libm`, which agree with torch's output up to floating-point rounding (the tests allow a
//! relative difference of 1e-12 of the schedule's peak rate).
//!
//! Schedules do not change the optimizer: set its `lr` (and, for [`OneCycleLr`], its momentum
//! or `betas.0`) from them before each step.
//!
//! # Example
//! ```
//! use fused_optim::{Adam, schedule::CosineAnnealingLr};
//!
//! let sched = CosineAnnealingLr { base_lr: 1e-2, t_max: 100, eta_min: 0.0 };
//! let mut adam = Adam::default();
//! let (mut p, mut s) = ([1.0f32; 4], [0.0f32; 8]);
//! for epoch in 0..100 {
//!     adam.lr = sched.lr(epoch)?;
//!     adam.step(epoch + 1, &mut p, &[0.1; 4], &mut s)?;
//! }
//! # Ok::<(), fused_optim::Error>(())
//! ```

use crate::error::{Error, finite, non_negative};

const PI: f64 = core::f64::consts::PI;

fn at_least_one(name: &'static str, value: u64) -> Result<(), Error> {
    if value == 0 {
        Err(Error::InvalidHyperparameter {
            name,
            value: 0.0,
            requirement: "must be >= 1",
        })
    } else {
        Ok(())
    }
}

fn positive(name: &'static str, value: f64) -> Result<(), Error> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidHyperparameter {
            name,
            value,
            requirement: "must be finite and > 0",
        })
    }
}

/// torch's `LinearLR` rules: `0 < start_factor <= 1`, `0 <= end_factor <= 1`.
fn linear_factors(start: f64, end: f64) -> Result<(), Error> {
    if !(start > 0.0 && start <= 1.0) {
        return Err(Error::InvalidHyperparameter {
            name: "start_factor",
            value: start,
            requirement: "must be in (0, 1]",
        });
    }
    if !(0.0..=1.0).contains(&end) {
        return Err(Error::InvalidHyperparameter {
            name: "end_factor",
            value: end,
            requirement: "must be in [0, 1]",
        });
    }
    Ok(())
}

/// `eta_min + (base_lr − eta_min)·(1 + cos(π·t/T))/2`.
fn cosine(base_lr: f64, eta_min: f64, t_max: u64, epoch: u64) -> f64 {
    eta_min + (base_lr - eta_min) * (1.0 + libm::cos(PI * epoch as f64 / t_max as f64)) / 2.0
}

/// `base_lr·(start + (end − start)·min(total, t)/total)`; `base_lr·start` when `total == 0`
/// (torch then never moves off the start factor).
fn linear(base_lr: f64, start: f64, end: f64, total: u64, epoch: u64) -> f64 {
    if total == 0 {
        return base_lr * start;
    }
    base_lr * (start + (end - start) * epoch.min(total) as f64 / total as f64)
}

/// `StepLR`: decays the rate by `gamma` every `step_size` epochs.
///
/// ```text
/// lr(t) = base_lr · gamma^⌊t / step_size⌋
/// ```
///
/// # Example
/// ```
/// use fused_optim::schedule::StepLr;
/// let s = StepLr { base_lr: 0.1, step_size: 30, gamma: 0.1 };
/// assert_eq!(s.lr(29)?, 0.1);
/// assert!((s.lr(30)? - 0.01).abs() < 1e-15);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepLr {
    /// The optimizer's initial learning rate.
    pub base_lr: f64,
    /// Epochs between decays (at least 1).
    pub step_size: u64,
    /// Multiplicative decay (torch's default `0.1`).
    pub gamma: f64,
}

impl StepLr {
    /// `base_lr >= 0`, `step_size >= 1` (torch divides by it), finite `gamma`.
    ///
    /// ```
    /// use fused_optim::schedule::StepLr;
    /// assert!(StepLr { base_lr: 0.1, step_size: 0, gamma: 0.1 }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("base_lr", self.base_lr)?;
        at_least_one("step_size", self.step_size)?;
        finite("gamma", self.gamma)
    }

    /// The rate after `epoch` scheduler steps.
    ///
    /// ```
    /// let s = fused_optim::schedule::StepLr { base_lr: 1.0, step_size: 2, gamma: 0.5 };
    /// assert_eq!([s.lr(0)?, s.lr(1)?, s.lr(2)?, s.lr(4)?], [1.0, 1.0, 0.5, 0.25]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`StepLr::validate`].
    #[inline]
    pub fn lr(&self, epoch: u64) -> Result<f64, Error> {
        self.validate()?;
        Ok(self.base_lr * libm::pow(self.gamma, (epoch / self.step_size) as f64))
    }
}

/// `MultiStepLR`: decays the rate by `gamma` at each milestone epoch.
///
/// ```text
/// lr(t) = base_lr · gamma^(number of milestones m with m <= t)
/// ```
///
/// Milestones may be in any order; a repeated milestone decays twice (as torch's `Counter`).
///
/// # Example
/// ```
/// use fused_optim::schedule::MultiStepLr;
/// let s = MultiStepLr { base_lr: 1.0, milestones: &[2, 5], gamma: 0.5 };
/// assert_eq!([s.lr(1)?, s.lr(2)?, s.lr(5)?], [1.0, 0.5, 0.25]);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MultiStepLr<'a> {
    /// The optimizer's initial learning rate.
    pub base_lr: f64,
    /// Epochs at which to decay.
    pub milestones: &'a [u64],
    /// Multiplicative decay (torch's default `0.1`).
    pub gamma: f64,
}

impl MultiStepLr<'_> {
    /// `base_lr >= 0`, finite `gamma`.
    ///
    /// ```
    /// use fused_optim::schedule::MultiStepLr;
    /// assert!(MultiStepLr { base_lr: 0.1, milestones: &[], gamma: f64::NAN }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("base_lr", self.base_lr)?;
        finite("gamma", self.gamma)
    }

    /// The rate after `epoch` scheduler steps.
    ///
    /// ```
    /// let s = fused_optim::schedule::MultiStepLr { base_lr: 1.0, milestones: &[3, 3], gamma: 0.1 };
    /// assert!((s.lr(3)? - 0.01).abs() < 1e-17);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`MultiStepLr::validate`].
    #[inline]
    pub fn lr(&self, epoch: u64) -> Result<f64, Error> {
        self.validate()?;
        let passed = self.milestones.iter().filter(|&&m| m <= epoch).count();
        Ok(self.base_lr * libm::pow(self.gamma, passed as f64))
    }
}

/// `ExponentialLR`: decays the rate by `gamma` every epoch.
///
/// ```text
/// lr(t) = base_lr · gamma^t
/// ```
///
/// # Example
/// ```
/// let s = fused_optim::schedule::ExponentialLr { base_lr: 1.0, gamma: 0.5 };
/// assert_eq!(s.lr(3)?, 0.125);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialLr {
    /// The optimizer's initial learning rate.
    pub base_lr: f64,
    /// Multiplicative decay per epoch.
    pub gamma: f64,
}

impl ExponentialLr {
    /// `base_lr >= 0`, finite `gamma`.
    ///
    /// ```
    /// use fused_optim::schedule::ExponentialLr;
    /// assert!(ExponentialLr { base_lr: -1.0, gamma: 0.9 }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("base_lr", self.base_lr)?;
        finite("gamma", self.gamma)
    }

    /// The rate after `epoch` scheduler steps.
    ///
    /// ```
    /// let s = fused_optim::schedule::ExponentialLr { base_lr: 2.0, gamma: 0.5 };
    /// assert_eq!(s.lr(0)?, 2.0);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`ExponentialLr::validate`].
    #[inline]
    pub fn lr(&self, epoch: u64) -> Result<f64, Error> {
        self.validate()?;
        Ok(self.base_lr * libm::pow(self.gamma, epoch as f64))
    }
}

/// `CosineAnnealingLR`: half a cosine from `base_lr` down to `eta_min` over `t_max` epochs
/// (then back up, periodically, as torch's recursive form does).
///
/// ```text
/// lr(t) = eta_min + (base_lr − eta_min) · (1 + cos(π·t / t_max)) / 2
/// ```
///
/// # Example
/// ```
/// let s = fused_optim::schedule::CosineAnnealingLr { base_lr: 1.0, t_max: 10, eta_min: 0.0 };
/// assert_eq!(s.lr(0)?, 1.0);
/// assert!((s.lr(5)? - 0.5).abs() < 1e-15);
/// assert!(s.lr(10)?.abs() < 1e-15);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineAnnealingLr {
    /// The optimizer's initial learning rate.
    pub base_lr: f64,
    /// Epochs from `base_lr` down to `eta_min` (torch's `T_max`, at least 1).
    pub t_max: u64,
    /// The lowest rate (torch's default `0`).
    pub eta_min: f64,
}

impl CosineAnnealingLr {
    /// `base_lr >= 0`, `t_max >= 1` (torch divides by it), finite `eta_min`.
    ///
    /// ```
    /// use fused_optim::schedule::CosineAnnealingLr;
    /// assert!(CosineAnnealingLr { base_lr: 0.1, t_max: 0, eta_min: 0.0 }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("base_lr", self.base_lr)?;
        at_least_one("T_max", self.t_max)?;
        finite("eta_min", self.eta_min)
    }

    /// The rate after `epoch` scheduler steps.
    ///
    /// ```
    /// let s = fused_optim::schedule::CosineAnnealingLr { base_lr: 1.0, t_max: 2, eta_min: 0.5 };
    /// assert_eq!(s.lr(4)?, 1.0); // one full period later
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`CosineAnnealingLr::validate`].
    #[inline]
    pub fn lr(&self, epoch: u64) -> Result<f64, Error> {
        self.validate()?;
        Ok(cosine(self.base_lr, self.eta_min, self.t_max, epoch))
    }
}

/// `LinearLR`: scales the rate by a factor that moves linearly from `start_factor` to
/// `end_factor` over `total_iters` epochs, then stays.
///
/// ```text
/// lr(t) = base_lr · (start_factor + (end_factor − start_factor) · min(t, total_iters) / total_iters)
/// ```
///
/// With `total_iters == 0` the rate stays at `base_lr · start_factor`, as in torch.
///
/// # Example
/// ```
/// use fused_optim::schedule::LinearLr;
/// let s = LinearLr { base_lr: 1.0, start_factor: 0.5, end_factor: 1.0, total_iters: 4 };
/// assert_eq!([s.lr(0)?, s.lr(2)?, s.lr(4)?, s.lr(9)?], [0.5, 0.75, 1.0, 1.0]);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearLr {
    /// The optimizer's initial learning rate.
    pub base_lr: f64,
    /// The factor at epoch 0, in `(0, 1]` (torch's default `1/3`).
    pub start_factor: f64,
    /// The factor from `total_iters` on, in `[0, 1]` (default `1`).
    pub end_factor: f64,
    /// Epochs of the linear change (default `5`).
    pub total_iters: u64,
}

impl LinearLr {
    /// torch's rules `0 < start_factor <= 1` and `0 <= end_factor <= 1`, and `base_lr >= 0`.
    ///
    /// ```
    /// use fused_optim::schedule::LinearLr;
    /// let bad = LinearLr { base_lr: 0.1, start_factor: 0.0, end_factor: 1.0, total_iters: 5 };
    /// assert!(bad.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("base_lr", self.base_lr)?;
        linear_factors(self.start_factor, self.end_factor)
    }

    /// The rate after `epoch` scheduler steps.
    ///
    /// ```
    /// use fused_optim::schedule::LinearLr;
    /// let s = LinearLr { base_lr: 0.3, start_factor: 1.0 / 3.0, end_factor: 1.0, total_iters: 5 };
    /// assert!((s.lr(0)? - 0.1).abs() < 1e-16);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`LinearLr::validate`].
    #[inline]
    pub fn lr(&self, epoch: u64) -> Result<f64, Error> {
        self.validate()?;
        Ok(linear(
            self.base_lr,
            self.start_factor,
            self.end_factor,
            self.total_iters,
            epoch,
        ))
    }
}

/// How [`OneCycleLr`] interpolates within a phase (torch's `anneal_strategy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Anneal {
    /// `end + (start − end)/2 · (cos(π·pct) + 1)` (`"cos"`, the default).
    #[default]
    Cos,
    /// `(end − start)·pct + start` (`"linear"`).
    Linear,
}

impl Anneal {
    fn apply(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * (libm::cos(PI * pct) + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// `OneCycleLR`: warm up from `max_lr / div_factor` to `max_lr`, then anneal to
/// `max_lr / div_factor / final_div_factor`, cycling the momentum the other way.
///
/// With `T = total_steps`, `p = pct_start`, `initial = max_lr/div_factor` and
/// `min = initial/final_div_factor`, the phases end at epochs (as torch computes them, in f64):
///
/// ```text
/// two phases:    p·T − 1: initial → max_lr (momentum max → base);  T − 1: max_lr → min (base → max)
/// three_phase:   p·T − 1: initial → max_lr;  2·p·T − 2: max_lr → initial;  T − 1: initial → min
///                (momentum max → base, base → max, then stays at max)
/// in the phase (start, end] holding t (the last phase also takes every later t):
///     pct = (t − start) / (end − start);   lr(t) = anneal(from, to, pct)
/// ```
///
/// Valid epochs are `0..=total_steps` (torch raises past that; the last one extrapolates).
///
/// # Example
/// ```
/// use fused_optim::schedule::OneCycleLr;
/// let s = OneCycleLr { max_lr: 0.1, total_steps: 100, ..OneCycleLr::default() };
/// assert!((s.lr(0)? - 0.1 / 25.0).abs() < 1e-15);   // starts at max_lr / div_factor
/// assert!((s.lr(29)? - 0.1).abs() < 1e-15);         // peaks at pct_start·T − 1
/// assert!((s.momentum(29)? - 0.85).abs() < 1e-15);  // where the momentum is lowest
/// assert!(s.lr(101).is_err());
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OneCycleLr {
    /// The peak learning rate.
    pub max_lr: f64,
    /// Number of steps in the cycle (at least 1); torch's `epochs · steps_per_epoch`.
    pub total_steps: u64,
    /// Fraction of the cycle spent increasing the rate, in `[0, 1]` (default `0.3`).
    pub pct_start: f64,
    /// Cosine or linear annealing (default cosine).
    pub anneal_strategy: Anneal,
    /// The lowest momentum (or `betas.0`), reached at the peak rate (default `0.85`).
    pub base_momentum: f64,
    /// The highest momentum, at the start and end (default `0.95`).
    pub max_momentum: f64,
    /// `initial_lr = max_lr / div_factor` (default `25`).
    pub div_factor: f64,
    /// `min_lr = initial_lr / final_div_factor` (default `1e4`).
    pub final_div_factor: f64,
    /// Use the three-phase schedule (default `false`).
    pub three_phase: bool,
}

impl Default for OneCycleLr {
    /// torch's defaults, with `max_lr = 0.1` and `total_steps = 100` (torch requires both).
    #[inline]
    fn default() -> Self {
        OneCycleLr {
            max_lr: 0.1,
            total_steps: 100,
            pct_start: 0.3,
            anneal_strategy: Anneal::Cos,
            base_momentum: 0.85,
            max_momentum: 0.95,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
        }
    }
}

impl OneCycleLr {
    /// torch's rules `total_steps >= 1` and `0 <= pct_start <= 1`; also `max_lr >= 0`, finite
    /// positive division factors and finite momenta.
    ///
    /// ```
    /// use fused_optim::schedule::OneCycleLr;
    /// assert!(OneCycleLr { pct_start: 1.5, ..OneCycleLr::default() }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("max_lr", self.max_lr)?;
        at_least_one("total_steps", self.total_steps)?;
        if !(0.0..=1.0).contains(&self.pct_start) {
            return Err(Error::InvalidHyperparameter {
                name: "pct_start",
                value: self.pct_start,
                requirement: "must be in [0, 1]",
            });
        }
        finite("base_momentum", self.base_momentum)?;
        finite("max_momentum", self.max_momentum)?;
        positive("div_factor", self.div_factor)?;
        positive("final_div_factor", self.final_div_factor)
    }

    /// The learning rate after `epoch` scheduler steps.
    ///
    /// ```
    /// use fused_optim::schedule::{Anneal, OneCycleLr};
    /// let s = OneCycleLr { max_lr: 1.0, total_steps: 10, pct_start: 0.5,
    ///     anneal_strategy: Anneal::Linear, div_factor: 5.0, ..OneCycleLr::default() };
    /// assert!((s.lr(2)? - 0.6).abs() < 1e-15); // 0.2 → 1.0 over epochs 0..=4
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`OneCycleLr::validate`]; [`Error::StepOutOfRange`] past `total_steps`;
    /// [`Error::InvalidCombination`] at a phase of zero length (where torch divides by zero).
    #[inline]
    pub fn lr(&self, epoch: u64) -> Result<f64, Error> {
        Ok(self.both(epoch)?.0)
    }

    /// The momentum (SGD's `momentum`, or `betas.0` for Adam-like optimizers) after `epoch`
    /// scheduler steps; torch's `cycle_momentum = True`.
    ///
    /// ```
    /// use fused_optim::schedule::OneCycleLr;
    /// let s = OneCycleLr::default();
    /// assert_eq!(s.momentum(0)?, 0.95);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`OneCycleLr::lr`].
    #[inline]
    pub fn momentum(&self, epoch: u64) -> Result<f64, Error> {
        Ok(self.both(epoch)?.1)
    }

    /// `(lr, momentum)` after `epoch` steps.
    fn both(&self, epoch: u64) -> Result<(f64, f64), Error> {
        self.validate()?;
        if epoch > self.total_steps {
            return Err(Error::StepOutOfRange {
                step: epoch,
                last: self.total_steps,
            });
        }
        let total = self.total_steps as f64;
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let (lo, hi) = (self.base_momentum, self.max_momentum);
        // (end_step, lr from, lr to, momentum from, momentum to), torch's `_schedule_phases`.
        let two = [
            (self.pct_start * total - 1.0, initial, self.max_lr, hi, lo),
            (total - 1.0, self.max_lr, min, lo, hi),
        ];
        let three = [
            (self.pct_start * total - 1.0, initial, self.max_lr, hi, lo),
            (
                2.0 * self.pct_start * total - 2.0,
                self.max_lr,
                initial,
                lo,
                hi,
            ),
            (total - 1.0, initial, min, hi, hi),
        ];
        let phases: &[(f64, f64, f64, f64, f64)] = if self.three_phase { &three } else { &two };
        let t = epoch as f64;
        let mut start = 0.0;
        for (i, &(end, lr0, lr1, m0, m1)) in phases.iter().enumerate() {
            if t <= end || i + 1 == phases.len() {
                if end == start {
                    return Err(Error::InvalidCombination(
                        "OneCycleLR reached a phase of zero length (pct_start·total_steps too small or too large)",
                    ));
                }
                let pct = (t - start) / (end - start);
                let a = self.anneal_strategy;
                return Ok((a.apply(lr0, lr1, pct), a.apply(m0, m1, pct)));
            }
            start = end;
        }
        Err(Error::InvalidCombination("OneCycleLR has no phase"))
    }
}

/// Linear warmup then cosine annealing: torch's
/// `SequentialLR([LinearLR(start_factor, 1.0, warmup_iters), CosineAnnealingLR(T_max, eta_min)],
/// milestones=[warmup_iters])`.
///
/// ```text
/// t <  warmup_iters:  lr(t) = base_lr · (start_factor + (1 − start_factor) · t / warmup_iters)
/// t >= warmup_iters:  lr(t) = eta_min + (base_lr − eta_min) · (1 + cos(π·(t − warmup_iters)/t_max)) / 2
/// ```
///
/// # Example
/// ```
/// use fused_optim::schedule::WarmupCosine;
/// let s = WarmupCosine { base_lr: 1.0, start_factor: 0.1, warmup_iters: 10, t_max: 90, eta_min: 0.0 };
/// assert!((s.lr(0)? - 0.1).abs() < 1e-15);
/// assert_eq!(s.lr(10)?, 1.0);            // the cosine starts at the milestone
/// assert!(s.lr(100)?.abs() < 1e-15);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarmupCosine {
    /// The optimizer's initial (peak) learning rate.
    pub base_lr: f64,
    /// The warmup's factor at epoch 0, in `(0, 1]`.
    pub start_factor: f64,
    /// Warmup epochs (the milestone).
    pub warmup_iters: u64,
    /// The cosine's `T_max` (at least 1).
    pub t_max: u64,
    /// The cosine's lowest rate.
    pub eta_min: f64,
}

impl WarmupCosine {
    /// `LinearLR`'s rule for `start_factor`, `base_lr >= 0`, `t_max >= 1`, finite `eta_min`.
    ///
    /// ```
    /// use fused_optim::schedule::WarmupCosine;
    /// let bad = WarmupCosine { base_lr: 1.0, start_factor: 2.0, warmup_iters: 5, t_max: 10, eta_min: 0.0 };
    /// assert!(bad.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative("base_lr", self.base_lr)?;
        linear_factors(self.start_factor, 1.0)?;
        at_least_one("T_max", self.t_max)?;
        finite("eta_min", self.eta_min)
    }

    /// The rate after `epoch` scheduler steps.
    ///
    /// ```
    /// use fused_optim::schedule::WarmupCosine;
    /// let s = WarmupCosine { base_lr: 2.0, start_factor: 0.5, warmup_iters: 2, t_max: 4, eta_min: 0.0 };
    /// assert_eq!([s.lr(0)?, s.lr(1)?, s.lr(2)?], [1.0, 1.5, 2.0]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`WarmupCosine::validate`].
    #[inline]
    pub fn lr(&self, epoch: u64) -> Result<f64, Error> {
        self.validate()?;
        Ok(if epoch < self.warmup_iters {
            linear(
                self.base_lr,
                self.start_factor,
                1.0,
                self.warmup_iters,
                epoch,
            )
        } else {
            cosine(
                self.base_lr,
                self.eta_min,
                self.t_max,
                epoch - self.warmup_iters,
            )
        })
    }
}
