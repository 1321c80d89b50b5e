//! SparseAdam (`torch.optim.SparseAdam`): lazy Adam on the rows of an embedding table that a
//! sparse gradient touches.

use crate::dispatch::{Backend, LaneJob, with_backend};
use crate::error::{Error, beta, positive_f32, step_number};
use crate::kernel::{Kernel, drive};
use crate::lane::Lane;

/// SparseAdam hyperparameters, with `torch.optim.SparseAdam`'s names and defaults.
///
/// The parameter is a `[rows, dim]` table (row-major, `rows·dim` values) and the gradient a
/// [`SparseGrad`]: the rows it touches and their values, as torch's coalesced COO gradient
/// (`nn.Embedding(sparse=True)`). Only those rows of the parameters and of the state are read
/// and written ("lazy" Adam); every other row is left untouched.
///
/// Per element of a touched row, at step `t` (starting at 1), with `g` the gradient value
/// (negated if `maximize`) and `m`, `v` the stored moments, in torch's order (each line one
/// f32 operation per arithmetic sign):
///
/// ```text
/// u1 = (g − m) · (1 − β1)                 exp_avg_update_values
/// u2 = (g·g − v) · (1 − β2)               exp_avg_sq_update_values
/// m' = m + u1                             exp_avg.add_(sparse(u1))
/// v' = v + u2                             exp_avg_sq.add_(sparse(u2))
/// p  = p + ((u1 + m) / (√(u2 + v) + eps)) · (−step_size)
///      with step_size = lr·√(1 − β2^t) / (1 − β1^t)
/// ```
///
/// `u1 + m` and `u2 + v` are torch's `numer` and the square of its `denom`, recomputed from the
/// old moments (torch's "dense addition again"); they are the same sums as `m'` and `v'`, so
/// they equal them to the bit. `1 − β1`, `1 − β2`, `eps` and `−step_size` are computed in f64
/// (Python floats, `step_size` as `(lr·√bc2)/bc1`) and rounded once to f32, as torch does.
///
/// Quirks kept from torch:
/// * the moments move as `old + (1 − β)·(new − old)`, not `β·old + (1 − β)·new` as in
///   [`Adam`](crate::Adam): the bits differ from a dense Adam even on a fully touched table;
/// * `eps` is added to `√v` itself; the bias correction `√(1 − β2^t)` is folded into the step
///   size instead;
/// * the bias corrections use the tensor's step count `t` (torch counts every `step()` in which
///   the tensor has a gradient), not a per-row count: a row touched for the first time at step
///   100 is corrected as if it had been updated 100 times;
/// * a gradient with no rows changes nothing (torch skips it), but its step still counts;
/// * `lr > 0` and `eps > 0` strictly (Adam accepts 0); there is no weight decay or amsgrad.
///
/// **Indices**: strictly increasing (sorted, no duplicate), each `< rows`: torch's coalesced
/// form. A gradient with repeated rows must be coalesced by the caller (sum the values of each
/// row; torch's `coalesce` adds them in order of appearance). Unsorted, duplicate or
/// out-of-range indices are an [`Error`], and nothing is written.
///
/// **State**: `2·rows·dim` values, dense like torch's (`exp_avg`, then `exp_avg_sq`, each
/// `rows·dim` long, row-major); zeros are a fresh state. The step count is the caller's.
///
/// SparseAdam does not implement [`Optimizer`](crate::Optimizer), whose steps take one dense
/// gradient per parameter.
///
/// # Example
/// ```
/// use fused_optim::{SparseAdam, SparseGrad};
///
/// let opt = SparseAdam { lr: 0.1, ..SparseAdam::default() };
/// // A table of 4 rows of 2 values; the gradient touches rows 1 and 3.
/// let mut table = [1.0f32; 8];
/// let mut state = [0.0f32; 16]; // opt.state_len(8)
/// let grad = SparseGrad::new(2, &[1u32, 3], &[0.5, -0.5, 2.0, 0.0]);
/// opt.step(1, &mut table, grad, &mut state)?;
/// // The first step moves each touched value by about lr against its gradient's sign.
/// assert_eq!(&table[..2], &[1.0, 1.0]); // row 0 untouched
/// assert!((table[2] - 0.9).abs() < 1e-6 && (table[3] - 1.1).abs() < 1e-6);
/// assert!((table[6] - 0.9).abs() < 1e-6 && table[7] == 1.0);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseAdam {
    /// Learning rate (default `1e-3`; must be `> 0`).
    pub lr: f64,
    /// `(β1, β2)`, decay rates of the moment estimates (default `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Added to `√v` (default `1e-8`; must be `> 0`).
    pub eps: f64,
    /// Maximize the objective instead of minimizing it (default `false`).
    pub maximize: bool,
}

impl Default for SparseAdam {
    #[inline]
    fn default() -> Self {
        SparseAdam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            maximize: false,
        }
    }
}

/// The gradient of a `[rows, dim]` table for [`SparseAdam`]: the rows it touches, and their
/// values, as torch's coalesced sparse COO gradient (`grad._indices()[0]`, `grad._values()`).
///
/// `indices` must be strictly increasing (sorted, no duplicate) and each `< rows`; `values`
/// holds `indices.len()·dim` values, row `k`'s `dim` values for row `indices[k]`, row-major.
/// Any integer type converts (`u32`, `usize`, torch's `i64`, ...); a negative index is out of
/// range.
///
/// ```
/// use fused_optim::SparseGrad;
/// let values = [0.5f32, 0.25, -1.0, 2.0];
/// let grad = SparseGrad::new(2, &[0i64, 7], &values); // rows 0 and 7 of a 2-column table
/// assert_eq!(grad.values.len(), grad.indices.len() * grad.dim);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseGrad<'a, I = usize> {
    /// The row length (the table's number of columns), at least 1.
    pub dim: usize,
    /// The touched rows, strictly increasing.
    pub indices: &'a [I],
    /// Their gradient values, `indices.len()·dim` long.
    pub values: &'a [f32],
}

impl<'a, I> SparseGrad<'a, I> {
    /// A gradient over rows `indices` of a table with rows of `dim` values.
    ///
    /// ```
    /// let g = fused_optim::SparseGrad::new(1, &[3usize], &[0.5]);
    /// assert_eq!(g.dim, 1);
    /// ```
    #[inline]
    pub const fn new(dim: usize, indices: &'a [I], values: &'a [f32]) -> Self {
        SparseGrad {
            dim,
            indices,
            values,
        }
    }
}

impl SparseAdam {
    /// Checks torch's rules: `0 < lr`, `0 < eps`, `0 ≤ β < 1` (NaN fails), and that `lr` and
    /// `eps` fit in f32.
    ///
    /// ```
    /// use fused_optim::SparseAdam;
    /// assert!(SparseAdam::default().validate().is_ok());
    /// assert!(SparseAdam { lr: 0.0, ..SparseAdam::default() }.validate().is_err());
    /// assert!(SparseAdam { betas: (0.9, 1.0), ..SparseAdam::default() }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value (torch's order: `lr`,
    /// `eps`, `betas[0]`, `betas[1]`).
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        positive_f32("lr", self.lr)?;
        positive_f32("eps", self.eps)?;
        beta("betas[0]", self.betas.0)?;
        beta("betas[1]", self.betas.1)
    }

    /// State length for a table of `n` values (`rows·dim`): `2·n`.
    ///
    /// ```
    /// assert_eq!(fused_optim::SparseAdam::default().state_len(10), 20);
    /// ```
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(2)
    }

    /// Validates and computes step `step`'s scalars: `1 − β1`, `1 − β2`, `eps` and
    /// `−lr·√(1 − β2^t)/(1 − β1^t)`, in f64 and rounded once to f32, as torch.
    ///
    /// ```
    /// use fused_optim::{SparseAdam, SparseGrad};
    /// let plan = SparseAdam::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 6], [2.0f32; 4]);
    /// let (mut sa, mut sb) = ([0.0f32; 12], [0.0f32; 8]);
    /// plan.apply(&mut a, SparseGrad::new(3, &[1u32], &[0.1; 3]), &mut sa)?; // many tables
    /// plan.apply(&mut b, SparseGrad::new(1, &[0u32, 2], &[0.1; 2]), &mut sb)?;
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<SparseAdamPlan, Error> {
        self.validate()?;
        let t = step_number(step)?;
        let (b1, b2) = self.betas;
        let bias_correction1 = 1.0 - libm::pow(b1, t);
        let bias_correction2 = 1.0 - libm::pow(b2, t);
        let step_size = self.lr * libm::sqrt(bias_correction2) / bias_correction1;
        Ok(SparseAdamPlan {
            kernel: SparseAdamKernel {
                one_minus_beta1: (1.0 - b1) as f32,
                one_minus_beta2: (1.0 - b2) as f32,
                eps: self.eps as f32,
                neg_step_size: (-step_size) as f32,
                maximize: self.maximize,
            },
        })
    }

    /// One step on one table: [`SparseAdam::plan`] then [`SparseAdamPlan::apply`].
    ///
    /// ```
    /// use fused_optim::{SparseAdam, SparseGrad};
    /// let mut table = [0.5f32; 6]; // 3 rows of 2
    /// let mut state = [0.0f32; 12];
    /// for t in 1..=3 {
    ///     SparseAdam::default().step(t, &mut table, SparseGrad::new(2, &[2u32], &[1.0; 2]), &mut state)?;
    /// }
    /// assert_eq!(&table[..4], &[0.5; 4]);
    /// assert!(table[4] < 0.5 && table[5] < 0.5);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`SparseAdam::plan`] and [`SparseAdamPlan::apply`]; nothing is written on error.
    #[inline]
    pub fn step<I: Copy + TryInto<usize>>(
        &self,
        step: u64,
        params: &mut [f32],
        grad: SparseGrad<'_, I>,
        state: &mut [f32],
    ) -> Result<(), Error> {
        self.plan(step)?.apply(params, grad, state)
    }
}

/// SparseAdam's precomputed step: build it with [`SparseAdam::plan`], apply it to each table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SparseAdamPlan {
    kernel: SparseAdamKernel,
}

impl SparseAdamPlan {
    /// Updates the rows of one `[rows, dim]` table that `grad` touches, on [`Backend::best`].
    /// `params` holds `rows·dim` values and `state` holds `exp_avg` then `exp_avg_sq`, each
    /// `rows·dim` long (`rows = params.len() / grad.dim`).
    ///
    /// ```
    /// use fused_optim::{Error, SparseAdam, SparseGrad};
    /// let plan = SparseAdam::default().plan(1)?;
    /// let mut p = [1.0f32; 4];
    /// let mut s = [0.0f32; 8];
    /// // Row 2 of a 2-row table: out of range, nothing written.
    /// let err = plan.apply(&mut p, SparseGrad::new(2, &[0u32, 2], &[0.1; 4]), &mut s);
    /// assert_eq!(err, Err(Error::IndexOutOfRange { position: 1, rows: 2 }));
    /// // Unsorted rows are refused too (coalesce them first).
    /// let err = plan.apply(&mut p, SparseGrad::new(2, &[1u32, 0], &[0.1; 4]), &mut s);
    /// assert_eq!(err, Err(Error::IndicesNotSorted { position: 1 }));
    /// assert_eq!(p, [1.0; 4]);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// Checked in this order, before anything is written:
    /// [`Error::InvalidCombination`] for `dim == 0`; [`Error::LengthMismatch`] unless
    /// `params.len()` is a multiple of `dim` (`"params"`), `state.len() == 2·params.len()`
    /// (`"state"`) and `values.len() == indices.len()·dim` (`"values"`); then, at the first
    /// offending position of `indices`, [`Error::IndexOutOfRange`] (negative or `≥ rows`) or
    /// [`Error::IndicesNotSorted`] (not greater than the index before it).
    #[inline]
    pub fn apply<I: Copy + TryInto<usize>>(
        &self,
        params: &mut [f32],
        grad: SparseGrad<'_, I>,
        state: &mut [f32],
    ) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grad, state)
    }

    /// As [`SparseAdamPlan::apply`], on a named backend (identical results, different speed).
    ///
    /// ```
    /// use fused_optim::{Backend, SparseAdam, SparseGrad};
    /// let plan = SparseAdam::default().plan(1)?;
    /// let (mut a, mut b) = ([1.0f32; 57], [1.0f32; 57]); // 3 rows of 19
    /// let grad = SparseGrad::new(19, &[0u32, 2], &[0.25; 38]);
    /// plan.apply_on(Backend::Scalar, &mut a, grad, &mut [0.0; 114])?;
    /// plan.apply_on(Backend::best(), &mut b, grad, &mut [0.0; 114])?;
    /// assert_eq!(a, b);
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`SparseAdamPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on<I: Copy + TryInto<usize>>(
        &self,
        backend: Backend,
        params: &mut [f32],
        grad: SparseGrad<'_, I>,
        state: &mut [f32],
    ) -> Result<(), Error> {
        check(params.len(), &grad, state.len())?;
        // `state.len() == 2·params.len()` was checked.
        let (exp_avg, exp_avg_sq) = state.split_at_mut_checked(params.len()).unwrap_or_default();
        with_backend(
            backend,
            Rows {
                kernel: &self.kernel,
                dim: grad.dim,
                params,
                indices: grad.indices,
                values: grad.values,
                exp_avg,
                exp_avg_sq,
            },
        )
    }
}

/// The checks of [`SparseAdamPlan::apply`], in its documented order.
#[inline]
fn check<I: Copy + TryInto<usize>>(
    n: usize,
    grad: &SparseGrad<'_, I>,
    state: usize,
) -> Result<(), Error> {
    let dim = grad.dim;
    let Some(rows) = n.checked_div(dim) else {
        return Err(Error::InvalidCombination(
            "SparseAdam needs a row length (dim) of at least 1",
        ));
    };
    // `rows·dim <= n`: no overflow.
    let whole = rows.wrapping_mul(dim);
    if whole != n {
        return Err(Error::LengthMismatch {
            what: "params",
            expected: whole,
            actual: n,
        });
    }
    // Saturating: a buffer of `usize::MAX` floats cannot exist, so no length equals it.
    let expected = n.saturating_mul(2);
    if state != expected {
        return Err(Error::LengthMismatch {
            what: "state",
            expected,
            actual: state,
        });
    }
    let expected = grad.indices.len().saturating_mul(dim);
    if grad.values.len() != expected {
        return Err(Error::LengthMismatch {
            what: "values",
            expected,
            actual: grad.values.len(),
        });
    }
    let mut previous: Option<usize> = None;
    // A range rather than `enumerate`, whose counter would keep an overflow check.
    for (position, &index) in (0..grad.indices.len()).zip(grad.indices) {
        let row = match index.try_into() {
            Ok(row) if row < rows => row,
            _ => return Err(Error::IndexOutOfRange { position, rows }),
        };
        if previous.is_some_and(|p| row <= p) {
            return Err(Error::IndicesNotSorted { position });
        }
        previous = Some(row);
    }
    Ok(())
}

/// The per-element update: the scalars of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
struct SparseAdamKernel {
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    neg_step_size: f32,
    maximize: bool,
}

impl Kernel<2> for SparseAdamKernel {
    const SIGNED: [bool; 2] = [true, false];
    /// The per-element update, in torch's order (see [`SparseAdam`]).
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m, v]: &mut [L; 2]) -> L {
        // `grad if not maximize else -grad`, before `coalesce`.
        let g = if self.maximize { -g } else { g };
        let (old_m, old_v) = (*m, *v);
        let m_update = (g - old_m) * L::splat(self.one_minus_beta1);
        let v_update = (g * g - old_v) * L::splat(self.one_minus_beta2);
        *m = old_m + m_update;
        *v = old_v + v_update;
        // torch adds the old values again ("dense addition again"): the same sums.
        let numer = m_update + old_m;
        let denom = (v_update + old_v).sqrt() + L::splat(self.eps);
        p + (numer / denom) * L::splat(self.neg_step_size)
    }
}

/// How many rows ahead the row loop prefetches, and how many values of each row it prefetches
/// (the driver prefetches further into a long row by itself).
const PREFETCH_ROWS: usize = 2;
const PREFETCH_VALUES: usize = 256;

/// The row loop as a job: [`drive`] on each touched row's slices.
struct Rows<'a, 'k, I> {
    kernel: &'k SparseAdamKernel,
    dim: usize,
    params: &'a mut [f32],
    indices: &'a [I],
    values: &'a [f32],
    exp_avg: &'a mut [f32],
    exp_avg_sq: &'a mut [f32],
}

/// Hints the first values of row `row` of a table into the cache, one hint per 64 bytes.
#[inline(always)]
fn prefetch_row<L: Lane>(table: &[f32], row: usize, dim: usize) {
    let start = table.as_ptr().wrapping_add(row.wrapping_mul(dim));
    for k in (0..dim.min(PREFETCH_VALUES)).step_by(16) {
        L::prefetch(start.wrapping_add(k));
    }
}

impl<I: Copy + TryInto<usize>> LaneJob for Rows<'_, '_, I> {
    type Output = ();
    #[inline(always)]
    fn run<L: Lane>(self) {
        let Rows {
            kernel,
            dim,
            params,
            indices,
            values,
            exp_avg,
            exp_avg_sq,
        } = self;
        // Gradient rows by `get` rather than a zipped `chunks_exact(dim)`: with a run-time
        // chunk length, an out-of-line `size_hint` divides by it, a panic path at opt-level "z".
        for (k, &index) in indices.iter().enumerate() {
            let first = k.wrapping_mul(dim);
            let Some(g) = values.get(first..first.wrapping_add(dim)) else {
                break;
            };
            if let Some(&ahead) = indices.get(k.wrapping_add(PREFETCH_ROWS))
                && let Ok(ahead) = ahead.try_into()
            {
                prefetch_row::<L>(params, ahead, dim);
                prefetch_row::<L>(exp_avg, ahead, dim);
                prefetch_row::<L>(exp_avg_sq, ahead, dim);
            }
            // Every index was checked to be a row of the table.
            let Ok(row) = index.try_into() else { continue };
            let start = row.wrapping_mul(dim);
            let range = start..start.wrapping_add(dim);
            let (Some(p), Some(m), Some(v)) = (
                params.get_mut(range.clone()),
                exp_avg.get_mut(range.clone()),
                exp_avg_sq.get_mut(range),
            ) else {
                continue;
            };
            drive::<L, _, 2, f32, f32, f32>(kernel, p, g, [m, v]);
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_torchs() {
        let a = SparseAdam::default();
        assert_eq!(
            (a.lr, a.betas, a.eps, a.maximize),
            (1e-3, (0.9, 0.999), 1e-8, false)
        );
    }

    #[test]
    fn validation_follows_torch() {
        let d = SparseAdam::default();
        assert!(
            SparseAdam {
                lr: 1e-30,
                eps: 1e-45,
                betas: (0.0, 0.0),
                ..d
            }
            .validate()
            .is_ok()
        );
        for (name, bad) in [
            ("lr", SparseAdam { lr: 0.0, ..d }),
            ("lr", SparseAdam { lr: f64::NAN, ..d }),
            ("lr", SparseAdam { lr: 1e39, ..d }),
            ("eps", SparseAdam { eps: 0.0, ..d }),
            ("eps", SparseAdam { eps: -1e-8, ..d }),
            (
                "betas[0]",
                SparseAdam {
                    betas: (1.0, 0.9),
                    ..d
                },
            ),
            (
                "betas[1]",
                SparseAdam {
                    betas: (0.9, -0.1),
                    ..d
                },
            ),
        ] {
            match bad.plan(1) {
                Err(Error::InvalidHyperparameter { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(d.plan(0), Err(Error::InvalidStep(0)));
    }

    #[test]
    fn state_len_is_two_planes() {
        assert_eq!(SparseAdam::default().state_len(3), 6);
        assert_eq!(SparseAdam::default().state_len(usize::MAX), usize::MAX);
    }

    #[test]
    fn one_step_by_hand() {
        // β = (0.5, 0.75), lr = 0.5, eps = 0.25, step 1: step_size = 0.5·√0.25/0.5 = 0.5.
        // Row 1 of a 3×1 table, m = 1, v = 4, g = 3:
        // u1 = (3 − 1)·0.5 = 1, m = 2; u2 = (9 − 4)·0.25 = 1.25, v = 5.25;
        // p = 1 − 0.5 · 2/(√5.25 + 0.25).
        let opt = SparseAdam {
            lr: 0.5,
            betas: (0.5, 0.75),
            eps: 0.25,
            maximize: false,
        };
        let mut p = [7.0f32, 1.0, 9.0];
        let mut s = [0.5f32, 1.0, 0.5, 8.0, 4.0, 8.0];
        opt.step(1, &mut p, SparseGrad::new(1, &[1u8], &[3.0]), &mut s)
            .unwrap();
        assert_eq!(s, [0.5, 2.0, 0.5, 8.0, 5.25, 8.0]);
        assert_eq!((p[0], p[2]), (7.0, 9.0));
        let d = libm::sqrtf(5.25) + 0.25;
        assert_eq!(p[1], 1.0 + (2.0 / d) * -0.5);
        // maximize negates g: u1 = (−3 − 2)·0.5 = −2.5, m = −0.5.
        let max = SparseAdam {
            maximize: true,
            ..opt
        };
        max.step(2, &mut p, SparseGrad::new(1, &[1u8], &[3.0]), &mut s)
            .unwrap();
        assert_eq!(s[1], -0.5);
    }

    #[test]
    fn moments_use_the_old_plus_difference_form() {
        // (g − m)·(1 − β1) + m rounds differently from β1·m + (1 − β1)·g for some inputs:
        // check the kernel is the former, bit for bit, over a sweep.
        let k = SparseAdam::default().plan(3).unwrap().kernel;
        let mut x = 0.123_456_7f32;
        for _ in 0..1000 {
            let (g, m0, v0) = (x, x * 0.37 - 0.5, x * x * 0.7);
            let mut st = [m0, v0];
            let p = k.update(1.0f32, g, &mut st);
            let u1 = (g - m0) * k.one_minus_beta1;
            let u2 = (g * g - v0) * k.one_minus_beta2;
            assert_eq!(st[0].to_bits(), (m0 + u1).to_bits());
            assert_eq!(st[1].to_bits(), (v0 + u2).to_bits());
            let denom = libm::sqrtf(u2 + v0) + 1e-8f32;
            assert_eq!(
                p.to_bits(),
                (1.0 + ((u1 + m0) / denom) * k.neg_step_size).to_bits()
            );
            x = x * 1.618 + 0.31;
            if x > 10.0 {
                x -= 20.0;
            }
        }
    }

    #[test]
    fn step_size_is_computed_in_f64_as_python() {
        let opt = SparseAdam {
            lr: 0.01,
            betas: (0.8, 0.95),
            ..SparseAdam::default()
        };
        let k = opt.plan(7).unwrap().kernel;
        let (bc1, bc2) = (1.0 - libm::pow(0.8, 7.0), 1.0 - libm::pow(0.95, 7.0));
        assert_eq!(k.neg_step_size, (-(0.01 * libm::sqrt(bc2) / bc1)) as f32);
        assert_eq!(k.one_minus_beta2, (1.0 - 0.95f64) as f32);
    }

    #[test]
    fn empty_gradient_writes_nothing() {
        let plan = SparseAdam::default().plan(1).unwrap();
        let mut p = [1.0f32; 6];
        let mut s = [0.5f32; 12];
        plan.apply(&mut p, SparseGrad::<u32>::new(3, &[], &[]), &mut s)
            .unwrap();
        assert_eq!((p, s), ([1.0; 6], [0.5; 12]));
    }

    #[test]
    fn bad_inputs_write_nothing() {
        let plan = SparseAdam::default().plan(1).unwrap();
        let mut p = [1.0f32; 6];
        let mut s = [0.5f32; 12];
        let g = [0.25f32; 6];
        // (error, dim, indices, values, state length)
        type Case<'a> = (Error, usize, &'a [i64], &'a [f32], usize);
        let cases: [Case<'_>; 7] = [
            (
                Error::InvalidCombination("SparseAdam needs a row length (dim) of at least 1"),
                0,
                &[],
                &[],
                12,
            ),
            (
                Error::LengthMismatch {
                    what: "params",
                    expected: 4,
                    actual: 6,
                },
                4,
                &[0],
                &g[..4],
                12,
            ),
            (
                Error::LengthMismatch {
                    what: "state",
                    expected: 12,
                    actual: 11,
                },
                2,
                &[0],
                &g[..2],
                11,
            ),
            (
                Error::LengthMismatch {
                    what: "values",
                    expected: 4,
                    actual: 6,
                },
                2,
                &[0, 1],
                &g,
                12,
            ),
            (
                Error::IndexOutOfRange {
                    position: 2,
                    rows: 3,
                },
                2,
                &[0, 1, 3],
                &g,
                12,
            ),
            (
                Error::IndexOutOfRange {
                    position: 0,
                    rows: 3,
                },
                2,
                &[-1, 1, 2],
                &g,
                12,
            ),
            (
                Error::IndicesNotSorted { position: 2 },
                2,
                &[0, 2, 2],
                &g,
                12,
            ),
        ];
        for (err, dim, indices, values, state) in cases {
            let r = plan.apply(
                &mut p,
                SparseGrad::new(dim, indices, values),
                &mut s[..state],
            );
            assert_eq!(r, Err(err));
            assert_eq!((p, s), ([1.0; 6], [0.5; 12]), "{err:?}");
        }
    }

    #[test]
    fn nan_gradient_stays_in_its_element() {
        let opt = SparseAdam::default();
        let (mut p, mut s) = ([1.0f32; 4], [0.0f32; 8]);
        opt.step(
            1,
            &mut p,
            SparseGrad::new(2, &[1usize], &[f32::NAN, 1.0]),
            &mut s,
        )
        .unwrap();
        assert!(p[2].is_nan() && s[2].is_nan() && s[6].is_nan());
        assert!(!p[3].is_nan() && p[..2] == [1.0, 1.0]);
    }
}
