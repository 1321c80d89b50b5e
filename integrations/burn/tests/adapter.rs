//! The adapter against the raw crate: same bits, the failure paths, dtypes, zero copy and
//! checkpoints through burn's optimizer record.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)]

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{GradientsParams, ModuleOptimizer, Optimizer as BurnOptimizer};
use burn::tensor::{DType, Device, Tensor, TensorCreationOptions, TensorData};
use fused_optim::{
    Adam, Grads, Lion, NAdam, Optimizer, Params, RMSprop, Sgd, State, StepPlan, bf16, f16,
};
use fused_optim_burn::{Fused, FusedOptimizer, Skip};

/// Deterministic values in [-1, 1).
fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn tensor_f32<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn read(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// `steps` steps of `fused` through burn's per-tensor `step` and of the raw crate on a Vec,
/// compared bit for bit after every step.
fn same_bits_as_raw<O: FusedOptimizer>(fused: Fused<O>, device: &Device, lrs: &[f64]) {
    let shape = [7, 37]; // 259 elements: full SIMD blocks and a tail
    let n = shape[0] * shape[1];
    let mut raw_p = values(1, n);
    let mut raw_s = vec![0.0f32; fused.optimizer().state_len(n)];
    fused.optimizer().init_state(&mut raw_s).unwrap();
    let mut scalars = O::Scalars::default();

    let mut tensor = tensor_f32(raw_p.clone(), shape, device);
    let mut state = None;
    for (i, &lr) in lrs.iter().enumerate() {
        let g = values(100 + i as u64, n);
        let plan = fused
            .optimizer()
            .with_lr(lr)
            .plan(i as u64 + 1, &scalars)
            .unwrap();
        plan.apply(&mut raw_p, &g, &mut raw_s).unwrap();
        scalars = plan.scalars_after();

        let grad = tensor_f32(g, shape, device);
        let (t, s) = fused.step(lr, tensor, grad, state);
        tensor = t;
        state = s;
        assert_eq!(bits(&read(tensor.clone())), bits(&raw_p), "step {}", i + 1);
        let st = state.as_ref().unwrap();
        assert_eq!(bits(&st.buffer), bits(&raw_s));
        assert_eq!(st.step, i as u64 + 1);
        assert_eq!(st.scalars, scalars);
    }
    assert_eq!(fused.diagnostics().skipped(), 0);
}

/// Flex (burn's default CPU device) and NdArray (deprecated in burn 0.22, still shipped).
#[allow(deprecated)]
fn cpu_devices() -> [Device; 2] {
    [Device::flex(), Device::ndarray()]
}

#[test]
fn every_optimizer_matches_the_raw_crate_bitwise_on_both_cpu_backends() {
    // A changing learning rate, as a schedule gives.
    let lrs = [1e-2, 5e-3, 2.5e-3, 1e-3, 1e-3];
    for device in cpu_devices() {
        same_bits_as_raw(fused_optim_burn::adamw(), &device, &lrs);
        same_bits_as_raw(fused_optim_burn::adam(), &device, &lrs);
        same_bits_as_raw(
            Fused::new(Adam {
                amsgrad: true,
                ..Adam::adamw()
            })
            .unwrap(),
            &device,
            &lrs,
        );
        same_bits_as_raw(fused_optim_burn::nadam(), &device, &lrs);
        same_bits_as_raw(fused_optim_burn::radam(), &device, &lrs);
        same_bits_as_raw(fused_optim_burn::sgd(), &device, &lrs);
        same_bits_as_raw(
            Fused::new(Sgd {
                momentum: 0.9,
                nesterov: true,
                ..Sgd::default()
            })
            .unwrap(),
            &device,
            &lrs,
        );
        same_bits_as_raw(fused_optim_burn::adagrad(), &device, &lrs);
        same_bits_as_raw(fused_optim_burn::adadelta(), &device, &lrs);
        same_bits_as_raw(
            Fused::new(RMSprop {
                centered: true,
                momentum: 0.5,
                ..RMSprop::default()
            })
            .unwrap(),
            &device,
            &lrs,
        );
        same_bits_as_raw(fused_optim_burn::adamax(), &device, &lrs);
        same_bits_as_raw(fused_optim_burn::lion(), &device, &lrs);
        same_bits_as_raw(
            Fused::new(NAdam {
                decoupled_weight_decay: true,
                weight_decay: 0.01,
                ..NAdam::default()
            })
            .unwrap(),
            &device,
            &lrs,
        );
    }
}

#[test]
fn invalid_configurations_are_refused_when_built() {
    assert!(
        Fused::new(Adam {
            lr: -1.0,
            ..Adam::adamw()
        })
        .is_err()
    );
    assert!(
        Fused::new(Adam {
            betas: (0.9, 1.0),
            ..Adam::default()
        })
        .is_err()
    );
    assert!(
        Fused::new(Lion {
            betas: (f64::NAN, 0.99),
            ..Lion::default()
        })
        .is_err()
    );
    // torch: Nesterov needs momentum and zero dampening.
    assert!(
        Fused::new(Sgd {
            nesterov: true,
            ..Sgd::default()
        })
        .is_err()
    );
    assert!(
        Fused::new(Sgd {
            momentum: 0.9,
            ..Sgd::default()
        })
        .is_ok()
    );
}

#[test]
fn a_state_of_another_length_leaves_tensor_and_state_unchanged_and_is_counted() {
    let device = Device::flex();
    let fused = fused_optim_burn::adamw();
    // A state for 4 elements (one real step), then offered with a 6-element tensor.
    let (_, state) = fused.step(
        1e-3,
        tensor_f32(vec![1.0; 4], [2, 2], &device),
        tensor_f32(vec![0.5; 4], [2, 2], &device),
        None,
    );
    let state = state.unwrap();
    let p = values(3, 6);
    let (t, after) = fused.step(
        1e-3,
        tensor_f32(p.clone(), [2, 3], &device),
        tensor_f32(vec![0.5; 6], [2, 3], &device),
        Some(state.clone()),
    );
    assert_eq!(bits(&read(t)), bits(&p));
    assert_eq!(after.unwrap(), state);
    assert_eq!(fused.diagnostics().count(Skip::StateMismatch), 1);
    assert_eq!(fused.diagnostics().skipped(), 1);
}

#[test]
fn an_invalid_learning_rate_at_a_step_leaves_everything_unchanged_and_is_counted() {
    let device = Device::flex();
    let fused = fused_optim_burn::adam();
    let p = values(4, 6);
    for lr in [f64::NAN, -1e-3] {
        let (t, s) = fused.step(
            lr,
            tensor_f32(p.clone(), [2, 3], &device),
            tensor_f32(vec![0.5; 6], [2, 3], &device),
            None,
        );
        assert_eq!(bits(&read(t)), bits(&p));
        assert_eq!(s, fused.fresh_state(6));
    }
    assert_eq!(fused.diagnostics().count(Skip::InvalidStep), 2);
    // The clone inside a ModuleOptimizer shares the counters.
    let clone = fused.clone();
    let _ = clone.step(
        f64::NAN,
        tensor_f32(p, [2, 3], &device),
        tensor_f32(vec![0.5; 6], [2, 3], &device),
        None,
    );
    assert_eq!(fused.diagnostics().count(Skip::InvalidStep), 3);
}

#[test]
fn f64_tensors_are_left_unchanged_and_counted() {
    let device = Device::flex();
    let fused = fused_optim_burn::adam();
    let p: Vec<f64> = vec![1.0, 2.0, 3.0];
    let opts = TensorCreationOptions::new(device.clone()).with_dtype(DType::F64);
    let t = Tensor::<1>::from_data(TensorData::new(p.clone(), [3]), opts.clone());
    let g = Tensor::<1>::from_data(TensorData::new(vec![0.5f64; 3], [3]), opts);
    assert_eq!(t.dtype(), DType::F64);
    let (t, s) = fused.step(1e-3, t, g, None);
    assert_eq!(t.into_data().try_into_vec::<f64>().unwrap(), p);
    assert_eq!(s.unwrap().step, 0);
    assert_eq!(fused.diagnostics().count(Skip::UnsupportedTensor), 1);
}

/// bf16 and f16 parameters are updated at their own precision (f32 state), as the crate's
/// `Params::Bf16`/`Params::F16` path does, on Flex; NdArray has no such tensors.
#[test]
fn bf16_and_f16_tensors_on_flex_match_the_crate_in_place_path() {
    let flex = Device::flex();
    assert!(flex.supports_dtype(DType::BF16) && flex.supports_dtype(DType::F16));
    // The documented rejection: burn's NdArray backend has no bf16/f16 tensors at all.
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    assert!(!ndarray.supports_dtype(DType::BF16));
    assert!(!ndarray.supports_dtype(DType::F16));

    let fused = fused_optim_burn::adamw();
    let n = 300;
    let p32 = values(5, n);
    for dtype in [DType::BF16, DType::F16] {
        let opts = TensorCreationOptions::new(flex.clone()).with_dtype(dtype);
        let mut raw_bf: Vec<bf16> = p32.iter().map(|&x| bf16::from_f32(x)).collect();
        let mut raw_f16: Vec<f16> = p32.iter().map(|&x| f16::from_f32(x)).collect();
        let mut raw_s = vec![0.0f32; 2 * n];
        let mut tensor = match dtype {
            DType::BF16 => {
                Tensor::<1>::from_data(TensorData::new(raw_bf.clone(), [n]), opts.clone())
            }
            _ => Tensor::<1>::from_data(TensorData::new(raw_f16.clone(), [n]), opts.clone()),
        };
        assert_eq!(tensor.dtype(), dtype);
        let mut state = None;
        for step in 1..=3u64 {
            let g = values(200 + step, n);
            let plan = Optimizer::plan(&fused.optimizer().with_lr(1e-2), step, &()).unwrap();
            let grad = match dtype {
                DType::BF16 => {
                    let gb: Vec<bf16> = g.iter().map(|&x| bf16::from_f32(x)).collect();
                    plan.apply_to(
                        Params::Bf16(&mut raw_bf),
                        Grads::Bf16(&gb),
                        State::F32(&mut raw_s),
                    )
                    .unwrap();
                    Tensor::<1>::from_data(TensorData::new(gb, [n]), opts.clone())
                }
                _ => {
                    let gh: Vec<f16> = g.iter().map(|&x| f16::from_f32(x)).collect();
                    plan.apply_to(
                        Params::F16(&mut raw_f16),
                        Grads::F16(&gh),
                        State::F32(&mut raw_s),
                    )
                    .unwrap();
                    Tensor::<1>::from_data(TensorData::new(gh, [n]), opts.clone())
                }
            };
            let (t, s) = fused.step(1e-2, tensor, grad, state);
            assert_eq!(t.dtype(), dtype, "the update keeps the dtype");
            tensor = t;
            state = s;
            let data = tensor.to_data();
            match dtype {
                DType::BF16 => assert_eq!(data.as_slice::<bf16>().unwrap(), &raw_bf[..]),
                _ => assert_eq!(data.as_slice::<f16>().unwrap(), &raw_f16[..]),
            }
            assert_eq!(bits(&state.as_ref().unwrap().buffer), bits(&raw_s));
        }
    }
    assert_eq!(fused.diagnostics().skipped(), 0);
}

/// A uniquely owned parameter buffer is updated where it lies: the same allocation comes back.
/// A shared one is copied by burn, and the other handle keeps the old values.
#[test]
fn unique_buffers_are_updated_in_place_shared_ones_are_copied() {
    let fused = fused_optim_burn::adamw();
    for device in cpu_devices() {
        let data = TensorData::new(values(6, 1000), [1000]);
        let before = data.as_bytes().as_ptr();
        let tensor = Tensor::<1>::from_data(data, &device);
        let grad = Tensor::<1>::from_data(TensorData::new(values(7, 1000), [1000]), &device);
        let (tensor, _) = fused.step(1e-2, tensor, grad.clone(), None);
        let out = tensor.into_data();
        assert_eq!(
            out.as_bytes().as_ptr(),
            before,
            "{device:?}: zero-copy path"
        );

        // Shared: `keep` holds the buffer, so the step works on a copy.
        let p = values(8, 1000);
        let tensor = Tensor::<1>::from_data(TensorData::new(p.clone(), [1000]), &device);
        let keep = tensor.clone();
        let (updated, _) = fused.step(1e-2, tensor, grad, None);
        assert_eq!(
            bits(&keep.into_data().try_into_vec::<f32>().unwrap()),
            bits(&p)
        );
        assert_ne!(
            bits(&updated.into_data().try_into_vec::<f32>().unwrap()),
            bits(&p)
        );
    }
}

#[derive(Module, Debug)]
struct Mlp {
    l1: Linear,
    act: Relu,
    l2: Linear,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        Mlp {
            l1: LinearConfig::new(3, 16).init(device),
            act: Relu::new(),
            l2: LinearConfig::new(16, 1).init(device),
        }
    }
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.l2.forward(self.act.forward(self.l1.forward(x)))
    }
}

fn batch(step: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let x = values(1000 + step as u64, 8 * 3);
    let y: Vec<f32> = x.chunks(3).map(|r| r[0] * r[1] - r[2]).collect();
    (tensor_f32(x, [8, 3], device), tensor_f32(y, [8, 1], device))
}

fn grads(model: &Mlp, step: usize, device: &Device) -> GradientsParams {
    let (x, y) = batch(step, device);
    let loss = (model.forward(x) - y).powi_scalar(2).mean();
    GradientsParams::from_grads(loss.backward(), model)
}

fn train(model: Mlp, optim: &mut ModuleOptimizer, steps: core::ops::Range<usize>) -> Mlp {
    let device = model.l1.weight.val().device();
    let mut model = model;
    for step in steps {
        let g = grads(&model, step, &device);
        model = optim.step(1e-2, model, g);
    }
    model
}

fn param_bits(model: &Mlp) -> Vec<u32> {
    let mut out = Vec::new();
    for w in [&model.l1.weight, &model.l2.weight] {
        out.extend(bits(&read(w.val())));
    }
    for b in [&model.l1.bias, &model.l2.bias] {
        let b = b.as_ref().unwrap().val();
        out.extend(bits(&b.into_data().try_into_vec::<f32>().unwrap()));
    }
    out
}

/// Gradients from a real backward(): a module step through burn's ModuleOptimizer gives the
/// raw crate's bits for those gradients.
#[test]
fn module_steps_with_real_gradients_match_the_raw_crate() {
    let device = Device::flex().autodiff();
    let fused = fused_optim_burn::nadam();
    let mut optim = fused.init();
    let mut model = Mlp::new(&device);
    let mut raw_w = read(model.l1.weight.val());
    let mut raw_s = fused.fresh_state(raw_w.len()).unwrap();
    for step in 0..4 {
        let g = grads(&model, step, &device);
        let gw = read(g.get::<2>(model.l1.weight.id).unwrap());
        let plan = fused
            .optimizer()
            .with_lr(1e-2)
            .plan(step as u64 + 1, &raw_s.scalars)
            .unwrap();
        plan.apply(&mut raw_w, &gw, &mut raw_s.buffer).unwrap();
        raw_s.scalars = plan.scalars_after();
        model = optim.step(1e-2, model, g);
        assert_eq!(
            bits(&read(model.l1.weight.val())),
            bits(&raw_w),
            "step {step}"
        );
    }
    assert_eq!(fused.diagnostics().skipped(), 0);
}

fn checkpoint_round_trip<O: FusedOptimizer>(fused: Fused<O>) {
    let device = Device::flex().autodiff();
    let initial = Mlp::new(&device);
    let (n, m) = (5, 4);

    let mut straight_optim = fused.init();
    let straight = train(initial.clone(), &mut straight_optim, 0..n + m);

    let mut first = fused.init();
    let half = train(initial.clone(), &mut first, 0..n);
    let bytes = first.into_bytes().unwrap();
    let mut resumed_optim = fused.init().from_bytes(bytes).unwrap();
    let resumed = train(half.clone(), &mut resumed_optim, n..n + m);
    assert_eq!(param_bits(&resumed), param_bits(&straight));

    // Through a file as well.
    let dir = std::env::temp_dir().join(format!("fused-optim-burn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("optim.bpk");
    first.save(&path).unwrap();
    let mut from_file = fused.init().load(&path).unwrap();
    let resumed_file = train(half.clone(), &mut from_file, n..n + m);
    assert_eq!(param_bits(&resumed_file), param_bits(&straight));
    let _ = std::fs::remove_dir_all(&dir);

    // The test can fail: without the saved state the run differs.
    let mut fresh = fused.init();
    let restarted = train(half, &mut fresh, n..n + m);
    assert_ne!(param_bits(&restarted), param_bits(&straight));
    assert_eq!(fused.diagnostics().skipped(), 0);
}

#[test]
fn checkpoints_through_burns_record_resume_bitwise() {
    checkpoint_round_trip(fused_optim_burn::adamw());
    checkpoint_round_trip(fused_optim_burn::nadam()); // carries mu_product
    checkpoint_round_trip(fused_optim_burn::radam());
    checkpoint_round_trip(
        Fused::new(Sgd {
            momentum: 0.9,
            ..Sgd::default()
        })
        .unwrap(),
    );
}

/// The lean driver gives burn's ModuleOptimizer path's bits, keeps the parameters trainable
/// (else the later steps would find no gradients and the bits would differ), and its states can
/// be moved to a fresh driver to resume.
#[test]
fn the_lean_driver_matches_module_optimizer_bitwise() {
    let device = Device::flex().autodiff();
    let fused = fused_optim_burn::nadam();
    let initial = Mlp::new(&device);
    let mut optim = fused.init();
    let straight = train(initial.clone(), &mut optim, 0..6);

    let mut lean = fused.lean();
    let mut model = initial;
    for step in 0..3 {
        let g = grads(&model, step, &device);
        model = lean.step(1e-2, model, g);
    }
    assert_eq!(lean.states().len(), 4);
    let mut resumed = fused.lean().with_states(lean.states().clone());
    for step in 3..6 {
        let g = grads(&model, step, &device);
        model = resumed.step(1e-2, model, g);
    }
    assert!(model.l1.weight.val().is_require_grad());
    assert_eq!(param_bits(&model), param_bits(&straight));
    assert_eq!(fused.diagnostics().skipped(), 0);
}
