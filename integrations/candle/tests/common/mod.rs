//! Shared pieces of the integration tests: deterministic vars, a real backward pass, and the raw
//! crate run on plain vectors beside the adapter.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use fused_optim::{Grads, Optimizer, Params, State, StateFormat, StepPlan, bf16, f16};
use fused_optim_candle::{Config, Rounding, TorchOptimizer};

/// The small CNN's parameter shapes (bench/compare.py's "cnn").
pub const CNN: &[&[usize]] = &[
    &[8, 1, 3, 3],
    &[8],
    &[16, 8, 3, 3],
    &[16],
    &[10, 400],
    &[10],
];

/// Deterministic values in [-1, 1) from a 64-bit LCG.
pub fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Named vars of `dtype` with the given shapes.
pub fn vars(shapes: &[&[usize]], dtype: DType, seed: u64) -> Vec<(String, Var)> {
    shapes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = s.iter().product();
            let t = Tensor::from_vec(values(seed + i as u64, n), *s, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            (format!("p{i}"), Var::from_tensor(&t).unwrap())
        })
        .collect()
}

/// A real forward and backward: `loss = Σ_i sum((v_i − t_i)² · w_i)` with fixed targets and
/// weights per var and step, so gradients differ between vars, elements and steps.
pub fn backward(vars: &[(String, Var)], step: u64) -> GradStore {
    let mut loss: Option<Tensor> = None;
    for (i, (_, v)) in vars.iter().enumerate() {
        let n = v.elem_count();
        let seed = 1000 * step + i as u64;
        let target = Tensor::from_vec(values(seed, n), v.shape(), &Device::Cpu)
            .unwrap()
            .to_dtype(v.dtype())
            .unwrap();
        let weight = (Tensor::from_vec(values(seed + 500, n), v.shape(), &Device::Cpu)
            .unwrap()
            .to_dtype(v.dtype())
            .unwrap()
            + 1.5)
            .unwrap();
        let term = ((v.as_tensor() - target).unwrap().sqr().unwrap() * weight)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        loss = Some(match loss {
            None => term,
            Some(l) => (l + term).unwrap(),
        });
    }
    loss.unwrap().backward().unwrap()
}

/// A flat copy of a tensor's values as raw bits (f32 bits, or the 16 bits of bf16/f16).
pub fn bits(t: &Tensor) -> Vec<u32> {
    let t = t.flatten_all().unwrap();
    match t.dtype() {
        DType::F32 => t
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect(),
        DType::BF16 => t
            .to_vec1::<bf16>()
            .unwrap()
            .iter()
            .map(|x| u32::from(x.to_bits()))
            .collect(),
        DType::F16 => t
            .to_vec1::<f16>()
            .unwrap()
            .iter()
            .map(|x| u32::from(x.to_bits()))
            .collect(),
        d => panic!("unexpected dtype {d:?}"),
    }
}

/// One tensor's parameters for the raw crate.
pub enum RawParams {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
}

/// One tensor's state for the raw crate.
pub enum RawState {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
    Block(StateFormat, Vec<u8>, Vec<f32>),
}

impl RawState {
    fn as_state(&mut self) -> State<'_> {
        match self {
            RawState::F32(v) => State::F32(v),
            RawState::Bf16(v) => State::Bf16(v),
            RawState::F16(v) => State::F16(v),
            RawState::Block(StateFormat::Int8, c, s) => State::Int8 {
                codes: c,
                scales: s,
            },
            RawState::Block(StateFormat::Int4, c, s) => State::Int4 {
                codes: c,
                scales: s,
            },
            RawState::Block(_, c, s) => State::Fp8 {
                codes: c,
                scales: s,
            },
        }
    }
}

/// The raw crate on plain vectors: the reference the adapter must match bit for bit.
pub struct Raw<O: Optimizer> {
    pub params: Vec<RawParams>,
    pub states: Vec<RawState>,
    pub comps: Vec<Vec<bf16>>,
    pub seeds: Vec<Option<u64>>,
    pub step: u64,
    pub scalars: O::Scalars,
}

impl<O: TorchOptimizer> Raw<O> {
    /// Copies of the vars' values, and fresh state laid out as `config` asks.
    pub fn new(vars: &[(String, Var)], config: &Config<O>) -> Self {
        let planes = config.optimizer.plane_names().len();
        let mut raw = Raw {
            params: vec![],
            states: vec![],
            comps: vec![],
            seeds: vec![],
            step: 0,
            scalars: O::Scalars::default(),
        };
        for (i, (_, v)) in vars.iter().enumerate() {
            let n = v.elem_count();
            let flat = v.flatten_all().unwrap();
            let is_bf16 = v.dtype() == DType::BF16;
            raw.params.push(match v.dtype() {
                DType::F32 => RawParams::F32(flat.to_vec1().unwrap()),
                DType::BF16 => RawParams::Bf16(flat.to_vec1().unwrap()),
                DType::F16 => RawParams::F16(flat.to_vec1().unwrap()),
                d => panic!("{d:?}"),
            });
            let format = if config.torchao_small_tensors {
                let small = if is_bf16 {
                    StateFormat::Bf16
                } else {
                    StateFormat::F32
                };
                config.state_format.torchao_for(n, small)
            } else {
                config.state_format
            };
            let l = format.layout(planes, n);
            let mut state = match format {
                StateFormat::F32 => RawState::F32(vec![0.0; l.values]),
                StateFormat::Bf16 => RawState::Bf16(vec![bf16::ZERO; l.values]),
                StateFormat::F16 => RawState::F16(vec![f16::ZERO; l.values]),
                f => RawState::Block(f, vec![0; l.codes], vec![0.0; l.scales]),
            };
            config.optimizer.init_state_in(state.as_state()).unwrap();
            raw.states.push(state);
            let kahan = is_bf16 && config.rounding == Rounding::Kahan;
            raw.comps
                .push(if kahan { vec![bf16::ZERO; n] } else { vec![] });
            raw.seeds.push(match (is_bf16, config.rounding) {
                (true, Rounding::Stochastic { seed }) => Some(seed.wrapping_add(i as u64)),
                _ => None,
            });
        }
        raw
    }

    /// One step of `opt` with the gradients `grads` holds for `vars`, on every var.
    pub fn step(&mut self, opt: &O, vars: &[(String, Var)], grads: &GradStore) {
        self.step += 1;
        let plan = opt.plan(self.step, &self.scalars).unwrap();
        for (i, (_, v)) in vars.iter().enumerate() {
            let g = grads.get(v).unwrap().flatten_all().unwrap();
            let (g32, g16b, g16h): (Vec<f32>, Vec<bf16>, Vec<f16>) = match g.dtype() {
                DType::F32 => (g.to_vec1().unwrap(), vec![], vec![]),
                DType::BF16 => (vec![], g.to_vec1().unwrap(), vec![]),
                _ => (vec![], vec![], g.to_vec1().unwrap()),
            };
            let grads = match g.dtype() {
                DType::F32 => Grads::F32(&g32),
                DType::BF16 => Grads::Bf16(&g16b),
                _ => Grads::F16(&g16h),
            };
            let params = match &mut self.params[i] {
                RawParams::F32(p) => Params::F32(p),
                RawParams::F16(p) => Params::F16(p),
                RawParams::Bf16(p) => {
                    if !self.comps[i].is_empty() {
                        Params::Bf16Kahan {
                            params: p,
                            compensation: &mut self.comps[i],
                        }
                    } else if let Some(seed) = self.seeds[i] {
                        Params::Bf16Stochastic { params: p, seed }
                    } else {
                        Params::Bf16(p)
                    }
                }
            };
            plan.apply_to(params, grads, self.states[i].as_state())
                .unwrap();
        }
        self.scalars = plan.scalars_after();
    }

    /// The raw parameters of tensor `i` as bits (as [`bits`]).
    pub fn bits(&self, i: usize) -> Vec<u32> {
        match &self.params[i] {
            RawParams::F32(p) => p.iter().map(|x| x.to_bits()).collect(),
            RawParams::Bf16(p) => p.iter().map(|x| u32::from(x.to_bits())).collect(),
            RawParams::F16(p) => p.iter().map(|x| u32::from(x.to_bits())).collect(),
        }
    }
}
