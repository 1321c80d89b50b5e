//! Saving and restoring the optimizer state, with torch's names, in safetensors.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, WithDType};
use fused_optim::{StateFormat, bf16};

use crate::state::StateBuf;
use crate::{Error, FusedOptimizer, TorchOptimizer};

/// The largest step count an f32 `step` tensor (torch's dtype for it) holds exactly.
const MAX_EXACT_STEP: u64 = 1 << 24;

fn bad(why: String) -> candle_core::Error {
    Error::Checkpoint(why).into()
}

/// The tensor `key`, checked to be `dtype` with `len` elements, as a flat vector.
fn take<T: WithDType>(
    tensors: &HashMap<String, Tensor>,
    used: &mut usize,
    key: &str,
    dtype: DType,
    len: usize,
) -> candle_core::Result<Vec<T>> {
    let t = tensors
        .get(key)
        .ok_or_else(|| bad(format!("missing tensor '{key}'")))?;
    if t.dtype() != dtype || t.elem_count() != len {
        return Err(bad(format!(
            "'{key}' is {:?} with {} values, expected {dtype:?} with {len}",
            t.dtype(),
            t.elem_count()
        )));
    }
    *used += 1;
    t.flatten_all()?.to_vec1::<T>()
}

/// A checkpoint's `step`: a whole number, exact in f32.
fn step_value(v: f32, key: &str) -> candle_core::Result<u64> {
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= MAX_EXACT_STEP as f32 {
        Ok(v as u64)
    } else {
        Err(bad(format!("'{key}' = {v} is not a step count")))
    }
}

/// Plane `j` of `len` values out of buffers of planes laid one after another.
fn plane<T>(buf: &[T], j: usize, len: usize) -> candle_core::Result<&[T]> {
    buf.get(j * len..(j + 1) * len)
        .ok_or_else(|| Error::Internal("state buffer shorter than its planes").into())
}

fn plane_mut<T>(buf: &mut [T], j: usize, len: usize) -> candle_core::Result<&mut [T]> {
    buf.get_mut(j * len..(j + 1) * len)
        .ok_or_else(|| Error::Internal("state buffer shorter than its planes").into())
}

impl<O: TorchOptimizer> FusedOptimizer<O> {
    /// The optimizer state as named tensors, with torch's `state_dict` names under each
    /// parameter's name (`{name}.{key}`):
    ///
    /// | key | dtype, shape | what |
    /// |---|---|---|
    /// | `step` | f32, scalar | the parameter's step count (torch's dtype: exact up to 2²⁴) |
    /// | `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, `momentum_buffer`, `sum`, `square_avg`, `acc_delta`, `grad_avg`, `exp_inf` | the state format's dtype, the parameter's shape | each state plane, named as torch names it ([`TorchOptimizer::plane_names`]) |
    /// | `mu_product` | f32, scalar | NAdam's scalar state |
    /// | `kahan_comp` | bf16, the parameter's shape | the Kahan compensation (torch-optimi's name) |
    /// | `{plane}.codes`, `{plane}.scale` | u8 and f32, flat | a plane in a block format (torchao's `codes` and `scale`) |
    ///
    /// Like torch, parameters that have not taken a step have no entries. Unlike torch, SGD
    /// and Lion also save `step` (torch's SGD infers the first step from a missing momentum
    /// buffer). Hyperparameters are not saved: restore into an optimizer built with the same
    /// [`Config`](crate::Config).
    ///
    /// # Errors
    /// A step count above 2²⁴ (not exact in torch's f32 `step`), or a tensor candle cannot
    /// build.
    #[inline]
    pub fn state_tensors(&self) -> candle_core::Result<HashMap<String, Tensor>> {
        let cpu = Device::Cpu;
        let names = self.config.optimizer.plane_names();
        let mut out = HashMap::new();
        for e in self.entries.iter().filter(|e| e.step > 0) {
            let key = |k: &str| format!("{}.{k}", e.name);
            if e.step > MAX_EXACT_STEP {
                return Err(bad(format!(
                    "'{}' is at step {}, past the 2^24 an f32 step holds exactly",
                    e.name, e.step
                )));
            }
            out.insert(key("step"), Tensor::new(e.step as f32, &cpu)?);
            if let Some((k, v)) = O::scalar_state(&e.scalars) {
                out.insert(key(k), Tensor::new(v, &cpu)?);
            }
            let shape = e.var.shape();
            let one = e.format.layout(1, e.n);
            for (j, plane_name) in names.iter().enumerate() {
                let t = match &e.state {
                    StateBuf::F32(v) => Tensor::from_slice(plane(v, j, e.n)?, shape, &cpu)?,
                    StateBuf::Bf16(v) => Tensor::from_slice(plane(v, j, e.n)?, shape, &cpu)?,
                    StateBuf::F16(v) => Tensor::from_slice(plane(v, j, e.n)?, shape, &cpu)?,
                    StateBuf::Int8 { codes, scales }
                    | StateBuf::Int4 { codes, scales }
                    | StateBuf::Fp8 { codes, scales } => {
                        let c = plane(codes, j, one.codes)?;
                        let s = plane(scales, j, one.scales)?;
                        out.insert(
                            key(&format!("{plane_name}.codes")),
                            Tensor::from_slice(c, c.len(), &cpu)?,
                        );
                        out.insert(
                            key(&format!("{plane_name}.scale")),
                            Tensor::from_slice(s, s.len(), &cpu)?,
                        );
                        continue;
                    }
                };
                out.insert(key(plane_name), t);
            }
            if !e.comp.is_empty() {
                out.insert(key("kahan_comp"), Tensor::from_slice(&e.comp, shape, &cpu)?);
            }
        }
        Ok(out)
    }

    /// Restores the state from tensors named as [`FusedOptimizer::state_tensors`] names them.
    /// A parameter without a `{name}.step` gets a fresh state (as in torch). All or nothing:
    /// on an error, nothing is changed.
    ///
    /// # Errors
    /// [`Error::Checkpoint`]: a missing tensor, a dtype or size that does not fit the
    /// parameter and the state format, a step that is not a whole number, or a tensor whose
    /// name this optimizer does not use (e.g. a checkpoint of another configuration).
    #[inline]
    pub fn load_state_tensors(
        &mut self,
        tensors: &HashMap<String, Tensor>,
    ) -> candle_core::Result<()> {
        let opt = self.config.optimizer;
        let names = opt.plane_names();
        let planes = names.len();
        let mut used = 0usize;
        let mut restored = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let key = |k: &str| format!("{}.{k}", e.name);
            let mut state = StateBuf::zeros(e.format, planes, e.n)?;
            let mut comp = vec![bf16::ZERO; e.comp.len()];
            let step_key = key("step");
            if !tensors.contains_key(&step_key) {
                opt.init_state_in(state.as_state()).map_err(Error::Optim)?;
                restored.push((0, O::Scalars::default(), state, comp));
                continue;
            }
            let step = take::<f32>(tensors, &mut used, &step_key, DType::F32, 1)?;
            let step = step_value(step.first().copied().unwrap_or(f32::NAN), &step_key)?;
            let mut scalars = O::Scalars::default();
            if let Some((k, _)) = O::scalar_state(&scalars) {
                let v = take::<f32>(tensors, &mut used, &key(k), DType::F32, 1)?;
                scalars = O::scalars_from(v.first().copied().unwrap_or(f32::NAN));
            }
            let one = e.format.layout(1, e.n);
            for (j, plane_name) in names.iter().enumerate() {
                let k = key(plane_name);
                match &mut state {
                    StateBuf::F32(v) => plane_mut(v, j, e.n)?.copy_from_slice(&take::<f32>(
                        tensors,
                        &mut used,
                        &k,
                        DType::F32,
                        e.n,
                    )?),
                    StateBuf::Bf16(v) => plane_mut(v, j, e.n)?.copy_from_slice(&take::<bf16>(
                        tensors,
                        &mut used,
                        &k,
                        DType::BF16,
                        e.n,
                    )?),
                    StateBuf::F16(v) => plane_mut(v, j, e.n)?.copy_from_slice(&take(
                        tensors,
                        &mut used,
                        &k,
                        DType::F16,
                        e.n,
                    )?),
                    StateBuf::Int8 { codes, scales }
                    | StateBuf::Int4 { codes, scales }
                    | StateBuf::Fp8 { codes, scales } => {
                        plane_mut(codes, j, one.codes)?.copy_from_slice(&take::<u8>(
                            tensors,
                            &mut used,
                            &format!("{k}.codes"),
                            DType::U8,
                            one.codes,
                        )?);
                        plane_mut(scales, j, one.scales)?.copy_from_slice(&take::<f32>(
                            tensors,
                            &mut used,
                            &format!("{k}.scale"),
                            DType::F32,
                            one.scales,
                        )?);
                    }
                }
            }
            if !comp.is_empty() {
                comp = take::<bf16>(tensors, &mut used, &key("kahan_comp"), DType::BF16, e.n)?;
            }
            restored.push((step, scalars, state, comp));
        }
        if used != tensors.len() {
            let mut unknown: Vec<&String> = tensors
                .keys()
                .filter(|k| !self.expects(k.as_str()))
                .collect();
            unknown.sort();
            return Err(bad(format!(
                "{} tensor(s) this optimizer does not use, e.g. {:?} (another optimizer's or configuration's checkpoint?)",
                tensors.len() - used,
                unknown.first()
            )));
        }
        for (e, (step, scalars, state, comp)) in self.entries.iter_mut().zip(restored) {
            e.step = step;
            e.scalars = scalars;
            e.state = state;
            e.comp = comp;
        }
        Ok(())
    }

    /// Whether `key` is a name [`FusedOptimizer::state_tensors`] could write (for the error
    /// message of an unexpected tensor).
    fn expects(&self, key: &str) -> bool {
        let names = self.config.optimizer.plane_names();
        let scalar = O::scalar_state(&O::Scalars::default()).map(|(k, _)| k);
        self.entries.iter().any(|e| {
            let Some(rest) = key
                .strip_prefix(e.name.as_str())
                .and_then(|r| r.strip_prefix('.'))
            else {
                return false;
            };
            let block = !matches!(
                e.format,
                StateFormat::F32 | StateFormat::Bf16 | StateFormat::F16
            );
            rest == "step"
                || Some(rest) == scalar
                || (rest == "kahan_comp" && !e.comp.is_empty())
                || names.iter().any(|p| {
                    if block {
                        rest == format!("{p}.codes") || rest == format!("{p}.scale")
                    } else {
                        rest == *p
                    }
                })
        })
    }

    /// Saves [`FusedOptimizer::state_tensors`] to a safetensors file.
    ///
    /// # Errors
    /// As [`FusedOptimizer::state_tensors`], or an I/O error.
    #[inline]
    pub fn save_state(&self, path: impl AsRef<Path>) -> candle_core::Result<()> {
        candle_core::safetensors::save(&self.state_tensors()?, path)
    }

    /// Restores the state from a safetensors file written by [`FusedOptimizer::save_state`]
    /// (or by any tool, with the same names).
    ///
    /// # Errors
    /// As [`FusedOptimizer::load_state_tensors`], or an I/O or format error.
    #[inline]
    pub fn load_state(&mut self, path: impl AsRef<Path>) -> candle_core::Result<()> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)?;
        self.load_state_tensors(&tensors)
    }
}
