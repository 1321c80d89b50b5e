//! torchao's low-bit Adam and AdamW (`torchao.optim.AdamW8bit`, `Adam8bit`, `AdamW4bit`,
//! `Adam4bit`, `AdamWFp8`, `AdamFp8`, version 0.18), as its compiled CPU graph computes them.

use crate::dispatch::Backend;
use crate::error::{Error, beta, non_negative_f32, step_number};
use crate::format::{self, Grads, Params, State, StateFormat};
use crate::kernel::Kernel;
use crate::lane::{Lane, Lerp, max_nan};
use crate::optimizer::optimizer_traits;

/// torchao's low-bit Adam / AdamW: the hyperparameters of `torchao.optim.AdamW8bit` and its
/// siblings, and their exact arithmetic.
///
/// torchao's update differs from `torch.optim.Adam` in its order of operations and in its
/// scalars, which are **f32** (its compiled graph computes them from an f32 `lr` tensor and an
/// f32 step counter), so it needs its own kernel to give torchao's bits. Per element, at step
/// `t`, with every operation rounded to f32:
///
/// ```text
/// AdamW:  p = p − (lr·wd)·p                  (lr·wd rounded to f32 first)
/// Adam:   g = g + wd·p
/// bc1 = 1 − β1^t,  bc2 = 1 − β2^t            (β^t: f32(β) to the power t, correctly rounded)
/// m = lerp(m, g, 1 − β1)                    (torch.lerp as compiled, no FMA: a + (b − a)·w,
/// v = lerp(v, g·g, 1 − β2)                    or b + (b − a)·f32(−(1 − w)) when w ≥ 0.5)
/// v̂ = amsgrad ? (vmax = max(vmax, v)) : v
/// p = p − (lr·(m / bc1)) / (√v̂ / √bc2 + eps)
/// ```
///
/// The new `m` and `v` are stored (quantized, for block formats) but the step uses their
/// unquantized values, as torchao does. The state format is the caller's choice (any
/// [`StateFormat`]); [`TorchaoAdam::state_format_for`] gives the one torchao itself picks for a
/// tensor: the class's block format for tensors of at least 4096 values that fill whole
/// blocks, plain state otherwise. There is no `maximize` (torchao has none).
///
/// **State**: 2 planes (`exp_avg`, `exp_avg_sq`), 3 with `amsgrad` (`max_exp_avg_sq`); zeroed
/// buffers are a fresh state in every format.
///
/// # Example
/// ```
/// use fused_optim::{Grads, Params, State, StateFormat, TorchaoAdam};
///
/// let opt = TorchaoAdam::adamw8bit();
/// let n = 4096;
/// let (mut p, g) = (vec![1.0f32; n], vec![0.01f32; n]);
/// let layout = StateFormat::Int8.layout(2, n); // 2 planes: 8192 codes, 32 scales
/// let (mut codes, mut scales) = (vec![0u8; layout.codes], vec![0.0f32; layout.scales]);
/// for t in 1..=3 {
///     opt.plan(t)?.apply_to(
///         Params::F32(&mut p),
///         Grads::F32(&g),
///         State::Int8 { codes: &mut codes, scales: &mut scales },
///     )?;
/// }
/// assert!(p[0] < 1.0);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TorchaoAdam {
    /// Learning rate (default `1e-3`).
    pub lr: f64,
    /// `(β1, β2)` (default `(0.9, 0.999)`).
    pub betas: (f64, f64),
    /// Added to the denominator (default `1e-8`).
    pub eps: f64,
    /// Weight decay (default `1e-2` for the `AdamW*` classes, `0` for the `Adam*` ones).
    pub weight_decay: f64,
    /// Use the running maximum of `v` (default `false`).
    pub amsgrad: bool,
    /// Decay the weights (the `AdamW*` classes) rather than the gradient (the `Adam*` ones).
    pub is_adamw: bool,
    /// The class's block format: `Int8`, `Int4` or `Fp8`.
    pub format: StateFormat,
}

impl TorchaoAdam {
    const fn class(is_adamw: bool, format: StateFormat) -> Self {
        TorchaoAdam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: if is_adamw { 1e-2 } else { 0.0 },
            amsgrad: false,
            is_adamw,
            format,
        }
    }

    /// `torchao.optim.AdamW8bit`'s defaults.
    ///
    /// ```
    /// let o = fused_optim::TorchaoAdam::adamw8bit();
    /// assert!(o.is_adamw && o.weight_decay == 1e-2);
    /// ```
    #[inline]
    pub const fn adamw8bit() -> Self {
        Self::class(true, StateFormat::Int8)
    }

    /// `torchao.optim.Adam8bit`'s defaults.
    #[inline]
    pub const fn adam8bit() -> Self {
        Self::class(false, StateFormat::Int8)
    }

    /// `torchao.optim.AdamW4bit`'s defaults.
    #[inline]
    pub const fn adamw4bit() -> Self {
        Self::class(true, StateFormat::Int4)
    }

    /// `torchao.optim.Adam4bit`'s defaults.
    #[inline]
    pub const fn adam4bit() -> Self {
        Self::class(false, StateFormat::Int4)
    }

    /// `torchao.optim.AdamWFp8`'s defaults.
    #[inline]
    pub const fn adamw_fp8() -> Self {
        Self::class(true, StateFormat::Fp8)
    }

    /// `torchao.optim.AdamFp8`'s defaults.
    #[inline]
    pub const fn adam_fp8() -> Self {
        Self::class(false, StateFormat::Fp8)
    }

    /// The state format torchao uses for a tensor of `n` values whose parameters are stored as
    /// `param_format` (`F32`, `Bf16` or `F16`): [`TorchaoAdam::format`] when `n ≥ 4096` and `n`
    /// fills whole blocks, otherwise the parameters' own format.
    ///
    /// ```
    /// use fused_optim::{StateFormat, TorchaoAdam};
    /// let o = TorchaoAdam::adamw4bit();
    /// assert_eq!(o.state_format_for(4096, StateFormat::F32), StateFormat::Int4);
    /// assert_eq!(o.state_format_for(1000, StateFormat::Bf16), StateFormat::Bf16);
    /// ```
    #[inline]
    pub const fn state_format_for(&self, n: usize, param_format: StateFormat) -> StateFormat {
        self.format.torchao_for(n, param_format)
    }

    /// Checks torchao's rules (`0 ≤ lr`, `0 ≤ eps`, `0 ≤ β < 1`), plus `0 ≤ weight_decay`
    /// and that every value is finite in f32 (torchao turns them into f32).
    ///
    /// ```
    /// use fused_optim::TorchaoAdam;
    /// assert!(TorchaoAdam::adamw8bit().validate().is_ok());
    /// assert!(TorchaoAdam { lr: 1e39, ..TorchaoAdam::adamw8bit() }.validate().is_err());
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidHyperparameter`] naming the first bad value.
    #[inline]
    pub fn validate(&self) -> Result<(), Error> {
        non_negative_f32("lr", self.lr)?;
        non_negative_f32("eps", self.eps)?;
        beta("betas[0]", self.betas.0)?;
        beta("betas[1]", self.betas.1)?;
        non_negative_f32("weight_decay", self.weight_decay)?;
        for (name, v) in [
            ("lr", self.lr),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
        ] {
            if !(v as f32).is_finite() {
                return Err(Error::InvalidHyperparameter {
                    name,
                    value: v,
                    requirement: "must be finite in f32",
                });
            }
        }
        Ok(())
    }

    /// The number of state planes: 2, or 3 with `amsgrad`.
    #[inline]
    pub const fn planes(&self) -> usize {
        if self.amsgrad { 3 } else { 2 }
    }

    /// State length for `n` parameters in `f32` state: `planes()·n`. For other formats see
    /// [`StateFormat::layout`] with [`TorchaoAdam::planes`].
    #[inline]
    pub const fn state_len(&self, n: usize) -> usize {
        n.saturating_mul(self.planes())
    }

    /// Validates and computes step `step`'s f32 scalars, as torchao's compiled graph does.
    ///
    /// # Errors
    /// Invalid hyperparameters, or [`Error::InvalidStep`] for step 0.
    #[inline]
    pub fn plan(&self, step: u64) -> Result<TorchaoAdamPlan, Error> {
        self.validate()?;
        let t = step_number(step)?;
        let (b1, b2) = self.betas;
        let lr = self.lr as f32;
        let wd = self.weight_decay as f32;
        // β^t on f32 β with a correctly rounded result: the f64 power of the f32 value is
        // exact enough that one rounding to f32 gives the correctly rounded f32 power.
        let pow = |b: f64| libm::pow(f64::from(b as f32), t) as f32;
        let bc1 = 1.0 - pow(b1);
        let bc2 = 1.0 - pow(b2);
        Ok(TorchaoAdamPlan {
            step,
            kernel: TorchaoAdamKernel {
                lr,
                lr_wd: lr * wd,
                wd,
                is_adamw: self.is_adamw,
                bc1,
                bc2_sqrt: libm::sqrtf(bc2),
                eps: self.eps as f32,
                m_lerp: Lerp::compiled(1.0 - b1),
                v_lerp: Lerp::compiled(1.0 - b2),
            },
            amsgrad: self.amsgrad,
        })
    }

    /// One step on one `f32` tensor with `f32` state.
    ///
    /// # Errors
    /// As [`TorchaoAdam::plan`] and [`TorchaoAdamPlan::apply`].
    #[inline]
    pub fn step(
        &self,
        step: u64,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        self.plan(step)?.apply(params, grads, state)
    }
}

/// A [`TorchaoAdam`] step: build it with [`TorchaoAdam::plan`], apply it to each tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TorchaoAdamPlan {
    step: u64,
    kernel: TorchaoAdamKernel,
    amsgrad: bool,
}

impl TorchaoAdamPlan {
    /// Updates one `f32` tensor with `f32` state on [`Backend::best`].
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] unless `grads.len() == n` and `state.len() == state_len(n)`.
    #[inline]
    pub fn apply(&self, params: &mut [f32], grads: &[f32], state: &mut [f32]) -> Result<(), Error> {
        self.apply_on(Backend::best(), params, grads, state)
    }

    /// As [`TorchaoAdamPlan::apply`], on a named backend.
    ///
    /// # Errors
    /// As [`TorchaoAdamPlan::apply`], and [`Error::BackendUnavailable`].
    #[inline]
    pub fn apply_on(
        &self,
        backend: Backend,
        params: &mut [f32],
        grads: &[f32],
        state: &mut [f32],
    ) -> Result<(), Error> {
        if self.amsgrad {
            format::run_f32::<_, 3>(backend, &self.kernel, params, grads, state)
        } else {
            format::run_f32::<_, 2>(backend, &self.kernel, params, grads, state)
        }
    }

    /// Updates one piece of a tensor in any storage format; see
    /// [`AdamPlan::apply_piece`](crate::AdamPlan::apply_piece).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`], [`Error::Misaligned`] or [`Error::BackendUnavailable`];
    /// nothing is written on error.
    #[inline]
    pub fn apply_piece(
        &self,
        backend: Backend,
        offset: usize,
        params: Params<'_>,
        grads: Grads<'_>,
        state: State<'_>,
    ) -> Result<(), Error> {
        if self.amsgrad {
            format::run::<_, 3>(
                backend,
                &self.kernel,
                self.step,
                offset,
                params,
                grads,
                state,
            )
        } else {
            format::run::<_, 2>(
                backend,
                &self.kernel,
                self.step,
                offset,
                params,
                grads,
                state,
            )
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct TorchaoAdamKernel {
    lr: f32,
    lr_wd: f32,
    wd: f32,
    is_adamw: bool,
    bc1: f32,
    bc2_sqrt: f32,
    eps: f32,
    m_lerp: Lerp,
    v_lerp: Lerp,
}

impl TorchaoAdamKernel {
    #[inline(always)]
    fn body<L: Lane>(&self, p: L, g: L, m: &mut L, v: &mut L, vmax: Option<&mut L>) -> L {
        let (p, g) = if self.is_adamw {
            (p - L::splat(self.lr_wd) * p, g)
        } else {
            (p, g + L::splat(self.wd) * p)
        };
        *m = self.m_lerp.apply(*m, g);
        *v = self.v_lerp.apply(*v, g * g);
        let vhat = match vmax {
            Some(vmax) => {
                *vmax = max_nan(*vmax, *v);
                *vmax
            }
            None => *v,
        };
        let denom = vhat.sqrt() / L::splat(self.bc2_sqrt) + L::splat(self.eps);
        p - L::splat(self.lr) * (*m / L::splat(self.bc1)) / denom
    }
}

impl Kernel<2> for TorchaoAdamKernel {
    const SIGNED: [bool; 2] = [true, false];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m, v]: &mut [L; 2]) -> L {
        self.body(p, g, m, v, None)
    }
}

impl Kernel<3> for TorchaoAdamKernel {
    const SIGNED: [bool; 3] = [true, false, false];
    #[inline(always)]
    fn update<L: Lane>(&self, p: L, g: L, [m, v, vmax]: &mut [L; 3]) -> L {
        self.body(p, g, m, v, Some(vmax))
    }
}

optimizer_traits!(TorchaoAdam, TorchaoAdamPlan);

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_torchaos_f32_ones() {
        let plan = TorchaoAdam::adamw8bit().plan(4).unwrap();
        let k = plan.kernel;
        // 1 − β1 is the f32 of the f64 difference: 0x3dcccccd for β1 = 0.9.
        assert_eq!(k.m_lerp, Lerp::new(f32::from_bits(0x3dcc_cccd)));
        // lr·wd is an f32 product of f32 values.
        assert_eq!(k.lr_wd, 1e-3f32 * 1e-2f32);
        // bc1 = 1 − 0.9f^4 in f32.
        let p = (f64::from(0.9f32).powi(4)) as f32;
        assert_eq!(k.bc1, 1.0 - p);
    }

    #[test]
    fn hyperparameters_that_overflow_f32_are_rejected() {
        for bad in [
            TorchaoAdam {
                lr: 1e39,
                ..TorchaoAdam::adamw8bit()
            },
            TorchaoAdam {
                weight_decay: 1e39,
                ..TorchaoAdam::adamw8bit()
            },
            TorchaoAdam {
                betas: (1.0, 0.9),
                ..TorchaoAdam::adamw8bit()
            },
        ] {
            assert!(bad.plan(1).is_err(), "{bad:?}");
        }
    }
}
