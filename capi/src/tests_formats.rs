//! The storage-format functions (`fo_X_step_ex`, `fo_X_init_state_ex`, `fo_state_layout`,
//! TorchaoAdam) against the Rust API, their errors, and the expected values that
//! tests/c_smoke.c checks (tests/c_smoke_expected.h, computed here through the Rust API).

use super::*;
use fused_optim::{Backend, Grads, Params, State, StateFormat, bf16, f16};
use std::fmt::Write as _;
use std::string::String;
use std::vec;

type StepEx<C> = unsafe extern "C" fn(*const C, u64, *const FoPiece) -> c_int;
type InitEx<C> = unsafe extern "C" fn(*const C, *const FoState) -> c_int;

const PARAM_FORMATS: [i32; 5] = [
    FO_PARAM_F32,
    FO_PARAM_BF16,
    FO_PARAM_F16,
    FO_PARAM_BF16_SR,
    FO_PARAM_BF16_KAHAN,
];
const GRAD_FORMATS: [i32; 3] = [FO_GRAD_F32, FO_GRAD_BF16, FO_GRAD_F16];
const STATE_FORMATS: [i32; 6] = [
    FO_STATE_F32,
    FO_STATE_BF16,
    FO_STATE_F16,
    FO_STATE_INT8,
    FO_STATE_INT4,
    FO_STATE_FP8,
];

fn sf(code: i32) -> StateFormat {
    state_format(code).unwrap()
}

/// A deterministic value of both signs over several magnitudes.
fn value(i: usize, salt: f32) -> f32 {
    let x = ((i as f32 + salt) * 0.7548777).sin();
    x * [1.0f32, 0.01, 3.0, 0.2][i % 4]
}

/// Owned buffers of one piece in one format combination; 16-bit values as bits.
#[derive(Clone, Debug)]
struct Piece {
    pf: i32,
    gf: i32,
    sf: i32,
    seed: u64,
    offset: usize,
    n: usize,
    p32: Vec<f32>,
    p16: Vec<u16>,
    comp: Vec<u16>,
    g32: Vec<f32>,
    g16: Vec<u16>,
    v32: Vec<f32>,
    v16: Vec<u16>,
    codes: Vec<u8>,
    scales: Vec<f32>,
}

fn to16(x: f32, f16_: bool) -> u16 {
    if f16_ {
        f16::from_f32(x).to_bits()
    } else {
        bf16::from_f32(x).to_bits()
    }
}

impl Piece {
    /// A fresh (zeroed) state of `planes` planes, parameters and gradients from [`value`]
    /// (element `offset + i` of the whole tensor).
    fn new(pf: i32, gf: i32, sfc: i32, planes: usize, n: usize, offset: usize) -> Piece {
        let layout = sf(sfc).layout(planes, n);
        let p: Vec<f32> = (offset..offset + n).map(|i| value(i, 0.0) * 4.0).collect();
        let g: Vec<f32> = (offset..offset + n).map(|i| value(i, 1.5)).collect();
        let (p32, p16) = if pf == FO_PARAM_F32 {
            (p, Vec::new())
        } else {
            (
                Vec::new(),
                p.iter().map(|x| to16(*x, pf == FO_PARAM_F16)).collect(),
            )
        };
        let (g32, g16) = if gf == FO_GRAD_F32 {
            (g, Vec::new())
        } else {
            (
                Vec::new(),
                g.iter().map(|x| to16(*x, gf == FO_GRAD_F16)).collect(),
            )
        };
        let (v32, v16) = if sfc == FO_STATE_F32 {
            (vec![0.0; layout.values], Vec::new())
        } else {
            (Vec::new(), vec![0; layout.values])
        };
        Piece {
            pf,
            gf,
            sf: sfc,
            seed: 0x5eed_0000_0000_0001,
            offset,
            n,
            p32,
            p16,
            comp: if pf == FO_PARAM_BF16_KAHAN {
                vec![0; n]
            } else {
                Vec::new()
            },
            g32,
            g16,
            v32,
            v16,
            codes: vec![0; layout.codes],
            scales: vec![0.0; layout.scales],
        }
    }

    fn state_ffi(&mut self) -> FoState {
        let (values, values_len) = if self.sf == FO_STATE_F32 {
            (self.v32.as_mut_ptr().cast::<c_void>(), self.v32.len())
        } else {
            (self.v16.as_mut_ptr().cast::<c_void>(), self.v16.len())
        };
        FoState {
            values,
            values_len,
            codes: self.codes.as_mut_ptr(),
            codes_len: self.codes.len(),
            scales: self.scales.as_mut_ptr(),
            scales_len: self.scales.len(),
            format: self.sf,
        }
    }

    fn ffi(&mut self) -> FoPiece {
        let params = if self.pf == FO_PARAM_F32 {
            self.p32.as_mut_ptr().cast::<c_void>()
        } else {
            self.p16.as_mut_ptr().cast::<c_void>()
        };
        let grads = if self.gf == FO_GRAD_F32 {
            self.g32.as_ptr().cast::<c_void>()
        } else {
            self.g16.as_ptr().cast::<c_void>()
        };
        FoPiece {
            seed: self.seed,
            params,
            compensation: self.comp.as_mut_ptr(),
            grads,
            n: self.n,
            offset: self.offset,
            state: self.state_ffi(),
            param_format: self.pf,
            grad_format: self.gf,
        }
    }

    /// Runs `f` on the Rust API's view of these buffers, then stores the results back.
    fn with_rust<R>(&mut self, f: impl FnOnce(Params<'_>, Grads<'_>, State<'_>) -> R) -> R {
        let mut pb: Vec<bf16> = self.p16.iter().map(|b| bf16::from_bits(*b)).collect();
        let mut ph: Vec<f16> = self.p16.iter().map(|b| f16::from_bits(*b)).collect();
        let mut cb: Vec<bf16> = self.comp.iter().map(|b| bf16::from_bits(*b)).collect();
        let gb: Vec<bf16> = self.g16.iter().map(|b| bf16::from_bits(*b)).collect();
        let gh: Vec<f16> = self.g16.iter().map(|b| f16::from_bits(*b)).collect();
        let mut vb: Vec<bf16> = self.v16.iter().map(|b| bf16::from_bits(*b)).collect();
        let mut vh: Vec<f16> = self.v16.iter().map(|b| f16::from_bits(*b)).collect();
        let params = match self.pf {
            FO_PARAM_F32 => Params::F32(&mut self.p32),
            FO_PARAM_BF16 => Params::Bf16(&mut pb),
            FO_PARAM_F16 => Params::F16(&mut ph),
            FO_PARAM_BF16_SR => Params::Bf16Stochastic {
                params: &mut pb,
                seed: self.seed,
            },
            _ => Params::Bf16Kahan {
                params: &mut pb,
                compensation: &mut cb,
            },
        };
        let grads = match self.gf {
            FO_GRAD_F32 => Grads::F32(&self.g32),
            FO_GRAD_BF16 => Grads::Bf16(&gb),
            _ => Grads::F16(&gh),
        };
        let state = match self.sf {
            FO_STATE_F32 => State::F32(&mut self.v32),
            FO_STATE_BF16 => State::Bf16(&mut vb),
            FO_STATE_F16 => State::F16(&mut vh),
            FO_STATE_INT8 => State::Int8 {
                codes: &mut self.codes,
                scales: &mut self.scales,
            },
            FO_STATE_INT4 => State::Int4 {
                codes: &mut self.codes,
                scales: &mut self.scales,
            },
            _ => State::Fp8 {
                codes: &mut self.codes,
                scales: &mut self.scales,
            },
        };
        let r = f(params, grads, state);
        if self.pf == FO_PARAM_F16 {
            self.p16 = ph.iter().map(|x| x.to_bits()).collect();
        } else if self.pf != FO_PARAM_F32 {
            self.p16 = pb.iter().map(|x| x.to_bits()).collect();
        }
        self.comp = cb.iter().map(|x| x.to_bits()).collect();
        if self.sf == FO_STATE_F16 {
            self.v16 = vh.iter().map(|x| x.to_bits()).collect();
        } else if self.sf == FO_STATE_BF16 {
            self.v16 = vb.iter().map(|x| x.to_bits()).collect();
        }
        r
    }

    /// Every written buffer as bits, NaN as a class (f32 NaN canonical).
    fn bits(&self) -> Vec<u32> {
        let f = |x: &f32| if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() };
        let h = |x: &u16| u32::from(*x);
        self.p32
            .iter()
            .map(f)
            .chain(self.p16.iter().map(h))
            .chain(self.comp.iter().map(h))
            .chain(self.v32.iter().map(f))
            .chain(self.v16.iter().map(h))
            .chain(self.codes.iter().map(|c| u32::from(*c)))
            .chain(self.scales.iter().map(f))
            .collect()
    }
}

/// For every format combination and a few lengths: a fresh state through `init_ex` and
/// through `init_state_in`, then steps through `step_ex` and through `apply_piece`; every
/// written bit must agree.
fn same_bits_every_format<C: CConfig>(c: C, step_ex: StepEx<C>, init_ex: InitEx<C>) {
    let opt = c.to_rust().unwrap();
    let planes = opt.state_len(1);
    for pf in PARAM_FORMATS {
        for gf in GRAD_FORMATS {
            for sfc in STATE_FORMATS {
                for (n, offset) in [(0usize, 0usize), (7, 0), (300, 256)] {
                    let mut pc = Piece::new(pf, gf, sfc, planes, n, offset);
                    let mut st = pc.state_ffi();
                    assert_eq!(unsafe { init_ex(&c, &st) }, FO_OK);
                    let _ = &mut st;
                    let mut pr = pc.clone();
                    pr.with_rust(|_, _, s| opt.init_state_in(s)).unwrap();
                    assert_eq!(pc.bits(), pr.bits(), "{opt:?} init {pf} {sfc}");
                    for t in 1..=3u64 {
                        let piece = pc.ffi();
                        assert_eq!(unsafe { step_ex(&c, t, &piece) }, FO_OK, "{opt:?}");
                        let plan = opt.plan(t, &Default::default()).unwrap();
                        pr.with_rust(|p, g, s| {
                            plan.apply_piece(Backend::best(), offset, p, g, s).unwrap()
                        });
                        assert_eq!(
                            pc.bits(),
                            pr.bits(),
                            "{opt:?} formats {pf}/{gf}/{sfc} n {n} step {t}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_format_gives_the_rust_bits() {
    same_bits_every_format(
        FoSgd {
            momentum: 0.9,
            lr: 0.01,
            ..fo_sgd_default()
        },
        fo_sgd_step_ex,
        fo_sgd_init_state_ex,
    );
    same_bits_every_format(
        FoAdam {
            amsgrad: 1,
            lr: 0.01,
            ..fo_adamw_default()
        },
        fo_adam_step_ex,
        fo_adam_init_state_ex,
    );
    same_bits_every_format(
        FoAdagrad {
            initial_accumulator_value: 0.5,
            ..fo_adagrad_default()
        },
        fo_adagrad_step_ex,
        fo_adagrad_init_state_ex,
    );
    same_bits_every_format(
        fo_adadelta_default(),
        fo_adadelta_step_ex,
        fo_adadelta_init_state_ex,
    );
    same_bits_every_format(
        FoRmsprop {
            centered: 1,
            momentum: 0.5,
            ..fo_rmsprop_default()
        },
        fo_rmsprop_step_ex,
        fo_rmsprop_init_state_ex,
    );
    same_bits_every_format(
        fo_adamax_default(),
        fo_adamax_step_ex,
        fo_adamax_init_state_ex,
    );
    same_bits_every_format(fo_radam_default(), fo_radam_step_ex, fo_radam_init_state_ex);
    same_bits_every_format(
        FoLion {
            weight_decay: 0.1,
            ..fo_lion_default()
        },
        fo_lion_step_ex,
        fo_lion_init_state_ex,
    );
    same_bits_every_format(
        FoRprop {
            eta_plus: 1.5,
            ..fo_rprop_default()
        },
        fo_rprop_step_ex,
        fo_rprop_init_state_ex,
    );
    for c in [
        fo_torchao_adamw8bit_default(),
        FoTorchaoAdam {
            amsgrad: 1,
            ..fo_torchao_adam4bit_default()
        },
        fo_torchao_adamw_fp8_default(),
    ] {
        same_bits_every_format(c, fo_torchao_adam_step_ex, fo_torchao_adam_init_state_ex);
    }
}

#[test]
fn nadam_step_ex_carries_its_scalars() {
    let c = fo_nadam_default();
    let opt = c.to_rust().unwrap();
    let mut pc = Piece::new(FO_PARAM_BF16, FO_GRAD_F32, FO_STATE_BF16, 2, 37, 0);
    let mut pr = pc.clone();
    let mut scalars = fo_nadam_scalars_default();
    let mut rs = NAdamScalars::default();
    for t in 1..=4u64 {
        let mut after = FoNadamScalars {
            mu_product: f32::NAN,
        };
        let piece = pc.ffi();
        assert_eq!(
            unsafe { fo_nadam_step_ex(&c, t, &scalars, &mut after, &piece) },
            FO_OK
        );
        let plan = opt.plan(t, &rs).unwrap();
        pr.with_rust(|p, g, s| plan.apply_piece(Backend::best(), 0, p, g, s).unwrap());
        rs = plan.scalars_after();
        assert_eq!(after.mu_product.to_bits(), rs.mu_product.to_bits());
        scalars = after;
        assert_eq!(pc.bits(), pr.bits(), "step {t}");
    }
    let piece = pc.ffi();
    assert_eq!(
        unsafe { fo_nadam_step_ex(&c, 1, core::ptr::null(), core::ptr::null_mut(), &piece) },
        FO_ERR_POINTER
    );
}

/// Stochastic rounding draws element `offset + i`'s bits: a tensor updated as two pieces
/// through the C ABI gets the same parameters and (plane by plane) the same state as the
/// whole tensor through the Rust API.
#[test]
fn pieces_with_offsets_give_the_whole_tensors_bits() {
    let c = FoAdam {
        lr: 0.01,
        ..fo_adamw_default()
    };
    let opt = c.to_rust().unwrap();
    let n = 512;
    let mut whole = Piece::new(FO_PARAM_BF16_SR, FO_GRAD_F32, FO_STATE_INT8, 2, n, 0);
    let mut parts = [
        Piece::new(FO_PARAM_BF16_SR, FO_GRAD_F32, FO_STATE_INT8, 2, 256, 0),
        Piece::new(FO_PARAM_BF16_SR, FO_GRAD_F32, FO_STATE_INT8, 2, 256, 256),
    ];
    for t in 1..=3u64 {
        for part in parts.iter_mut() {
            let piece = part.ffi();
            assert_eq!(unsafe { fo_adam_step_ex(&c, t, &piece) }, FO_OK);
        }
        let plan = Optimizer::plan(&opt, t, &()).unwrap();
        whole.with_rust(|p, g, s| plan.apply_piece(Backend::best(), 0, p, g, s).unwrap());
        let p: Vec<u16> = parts.iter().flat_map(|x| x.p16.clone()).collect();
        assert_eq!(p, whole.p16, "step {t}");
        for plane in 0..2 {
            let codes: Vec<u8> = parts
                .iter()
                .flat_map(|x| x.codes[plane * 256..(plane + 1) * 256].to_vec())
                .collect();
            assert_eq!(codes, whole.codes[plane * n..(plane + 1) * n], "step {t}");
            let scales: Vec<u32> = parts.iter().map(|x| x.scales[plane].to_bits()).collect();
            let want: Vec<u32> = whole.scales[plane * 2..plane * 2 + 2]
                .iter()
                .map(|x| x.to_bits())
                .collect();
            assert_eq!(scales, want);
        }
    }
    // The offset reaches the random stream: the second piece at offset 0 rounds differently.
    let mut wrong = Piece::new(FO_PARAM_BF16_SR, FO_GRAD_F32, FO_STATE_INT8, 2, 256, 256);
    let mut right = wrong.clone();
    wrong.offset = 0;
    for x in [&mut wrong, &mut right] {
        let piece = x.ffi();
        assert_eq!(unsafe { fo_adam_step_ex(&c, 1, &piece) }, FO_OK);
    }
    assert_ne!(wrong.p16, right.p16);
}

#[test]
fn state_layout_is_the_crates() {
    for code in STATE_FORMATS {
        for (planes, n) in [(0, 5), (2, 0), (2, 300), (3, 4096), (1, 1)] {
            let mut l = FoStateLayout::default();
            assert_eq!(unsafe { fo_state_layout(code, planes, n, &mut l) }, FO_OK);
            let want = sf(code).layout(planes, n);
            assert_eq!(
                (l.values, l.codes, l.scales, l.block),
                (want.values, want.codes, want.scales, sf(code).block())
            );
        }
    }
    // By hand: AdamW's 2 planes of 300 values.
    let mut l = FoStateLayout::default();
    assert_eq!(
        unsafe { fo_state_layout(FO_STATE_INT4, 2, 300, &mut l) },
        FO_OK
    );
    assert_eq!(
        l,
        FoStateLayout {
            values: 0,
            codes: 300,
            scales: 6,
            block: 128
        }
    );
    assert_eq!(
        unsafe { fo_state_layout(FO_STATE_INT8, 2, 300, &mut l) },
        FO_OK
    );
    assert_eq!((l.codes, l.scales, l.block), (600, 4, 256));
    assert_eq!(
        unsafe { fo_state_layout(FO_STATE_BF16, 3, 10, &mut l) },
        FO_OK
    );
    assert_eq!((l.values, l.codes, l.scales, l.block), (30, 0, 0, 1));
    let before = l;
    assert_eq!(unsafe { fo_state_layout(6, 2, 10, &mut l) }, FO_ERR_FORMAT);
    assert_eq!(unsafe { fo_state_layout(-1, 2, 10, &mut l) }, FO_ERR_FORMAT);
    assert_eq!(l, before);
    assert_eq!(
        unsafe { fo_state_layout(FO_STATE_F32, 2, 10, core::ptr::null_mut()) },
        FO_ERR_POINTER
    );
}

#[test]
fn torchao_defaults_and_format_choice() {
    let w = fo_torchao_adamw8bit_default();
    assert_eq!(
        (w.lr, w.beta1, w.beta2, w.eps, w.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 1e-2)
    );
    assert_eq!((w.amsgrad, w.is_adamw, w.format), (0, 1, FO_STATE_INT8));
    assert_eq!(
        (
            fo_torchao_adam8bit_default().is_adamw,
            fo_torchao_adam8bit_default().weight_decay
        ),
        (0, 0.0)
    );
    assert_eq!(fo_torchao_adamw4bit_default().format, FO_STATE_INT4);
    assert_eq!(fo_torchao_adam4bit_default().format, FO_STATE_INT4);
    assert_eq!(fo_torchao_adamw_fp8_default().format, FO_STATE_FP8);
    assert_eq!(fo_torchao_adam_fp8_default().format, FO_STATE_FP8);
    let f = |o: &FoTorchaoAdam, n, small| unsafe { fo_torchao_adam_state_format_for(o, n, small) };
    assert_eq!(f(&w, 4096, FO_STATE_F32), FO_STATE_INT8);
    assert_eq!(f(&w, 4000, FO_STATE_F32), FO_STATE_F32);
    assert_eq!(f(&w, 4096 + 128, FO_STATE_BF16), FO_STATE_BF16);
    let w4 = fo_torchao_adamw4bit_default();
    assert_eq!(f(&w4, 4096 + 128, FO_STATE_BF16), FO_STATE_INT4);
    assert_eq!(f(&w, 4096, 17), FO_ERR_FORMAT);
    assert_eq!(
        unsafe { fo_torchao_adam_state_format_for(core::ptr::null(), 4096, FO_STATE_F32) },
        FO_ERR_POINTER
    );
    // A format field that names no format is refused everywhere.
    let bad = FoTorchaoAdam { format: 42, ..w };
    assert_eq!(unsafe { fo_torchao_adam_validate(&bad) }, FO_ERR_FORMAT);
    assert_eq!(unsafe { fo_torchao_adam_state_len(&bad, 10) }, 0);
    assert_eq!(unsafe { fo_torchao_adam_validate(&w) }, FO_OK);
    assert_eq!(unsafe { fo_torchao_adam_state_len(&w, 10) }, 20);
    assert_eq!(
        unsafe { fo_torchao_adam_validate(&FoTorchaoAdam { lr: 1e39, ..w }) },
        FO_ERR_INVALID_HYPERPARAMETER
    );
    // The f32 step is the Rust one.
    same_as_rust_torchao();
}

fn same_as_rust_torchao() {
    let c = FoTorchaoAdam {
        lr: 0.01,
        ..fo_torchao_adamw8bit_default()
    };
    let opt = c.to_rust().unwrap();
    let n = 19;
    let mut pc: Vec<f32> = (0..n).map(|i| value(i, 0.0)).collect();
    let mut pr = pc.clone();
    let (mut sc, mut sr) = (vec![0.0f32; 2 * n], vec![0.0f32; 2 * n]);
    let g: Vec<f32> = (0..n).map(|i| value(i, 3.0)).collect();
    for t in 1..=3 {
        assert_eq!(
            unsafe {
                fo_torchao_adam_step(
                    &c,
                    t,
                    pc.as_mut_ptr(),
                    g.as_ptr(),
                    n,
                    sc.as_mut_ptr(),
                    2 * n,
                )
            },
            FO_OK
        );
        opt.step(t, &mut pr, &g, &mut sr).unwrap();
        assert_eq!(pc, pr);
        assert_eq!(sc, sr);
    }
}

/// Every error of the `_ex` functions has its code and writes nothing.
#[test]
fn format_errors_have_their_codes_and_write_nothing() {
    let c = fo_adamw_default();
    let call = |p: &FoPiece| unsafe { fo_adam_step_ex(&c, 1, p) };
    let fresh = || Piece::new(FO_PARAM_BF16_KAHAN, FO_GRAD_BF16, FO_STATE_INT8, 2, 300, 0);
    let mut x = fresh();
    let untouched = x.bits();
    let ok = x.ffi();
    let mut cases: Vec<(&str, FoPiece, c_int)> = Vec::new();
    cases.push((
        "param format",
        FoPiece {
            param_format: 5,
            ..ok
        },
        FO_ERR_FORMAT,
    ));
    cases.push((
        "grad format",
        FoPiece {
            grad_format: -1,
            ..ok
        },
        FO_ERR_FORMAT,
    ));
    let mut bad_state = ok;
    bad_state.state.format = 6;
    cases.push(("state format", bad_state, FO_ERR_FORMAT));
    cases.push((
        "NULL params",
        FoPiece {
            params: core::ptr::null_mut(),
            ..ok
        },
        FO_ERR_POINTER,
    ));
    cases.push((
        "NULL compensation",
        FoPiece {
            compensation: core::ptr::null_mut(),
            ..ok
        },
        FO_ERR_POINTER,
    ));
    cases.push((
        "misaligned params",
        FoPiece {
            params: (ok.params as usize + 1) as *mut c_void,
            n: 200,
            ..ok
        },
        FO_ERR_POINTER,
    ));
    let mut s = ok;
    s.state.scales = (s.state.scales as usize + 2) as *mut f32;
    s.state.scales_len = 1;
    cases.push(("misaligned scales", s, FO_ERR_POINTER));
    let mut s = ok;
    s.state.codes_len -= 1;
    cases.push(("short codes", s, FO_ERR_LENGTH));
    let mut s = ok;
    s.state.scales_len += 1;
    cases.push(("long scales", s, FO_ERR_LENGTH));
    let mut s = ok;
    s.state.values_len = 1;
    cases.push(("values given to a block format", s, FO_ERR_LENGTH));
    cases.push((
        "misaligned piece",
        FoPiece { offset: 128, ..ok },
        FO_ERR_MISALIGNED,
    ));
    cases.push((
        "huge n",
        FoPiece {
            n: usize::MAX / 2,
            ..ok
        },
        FO_ERR_LENGTH,
    ));
    cases.push((
        "compensation overlaps params",
        FoPiece {
            compensation: ok.params.cast::<u16>().wrapping_add(10),
            ..ok
        },
        FO_ERR_OVERLAP,
    ));
    cases.push((
        "grads are the params",
        FoPiece {
            grads: ok.params,
            grad_format: FO_GRAD_BF16,
            ..ok
        },
        FO_ERR_OVERLAP,
    ));
    let mut s = ok;
    s.state.scales = s.state.codes.wrapping_add(4).cast::<f32>();
    s.state.scales_len = 2;
    cases.push(("scales inside codes", s, FO_ERR_OVERLAP));
    for (what, piece, want) in &cases {
        assert_eq!(call(piece), *want, "{what}");
        assert_eq!(x.bits(), untouched, "{what} wrote");
    }
    assert_eq!(
        unsafe { fo_adam_step_ex(&c, 1, core::ptr::null()) },
        FO_ERR_POINTER
    );
    assert_eq!(unsafe { fo_adam_step_ex(&c, 0, &ok) }, FO_ERR_INVALID_STEP);
    let bad = FoAdam { lr: -1.0, ..c };
    assert_eq!(
        unsafe { fo_adam_step_ex(&bad, 1, &ok) },
        FO_ERR_INVALID_HYPERPARAMETER
    );
    assert_eq!(x.bits(), untouched);
    // A compensation pointer is ignored unless the parameters are Kahan's.
    let mut y = Piece::new(FO_PARAM_BF16, FO_GRAD_F32, FO_STATE_BF16, 2, 10, 0);
    let p = FoPiece {
        compensation: core::ptr::null_mut(),
        ..y.ffi()
    };
    assert_eq!(call(&p), FO_OK);
    // Element formats: codes or scales given are a length error, values are checked.
    let mut s = y.ffi();
    s.state.codes_len = 1;
    assert_eq!(call(&s), FO_ERR_LENGTH);
    let mut s = y.ffi();
    s.state.values_len -= 1;
    assert_eq!(call(&s), FO_ERR_LENGTH);
    // Misaligned 16-bit state values.
    let mut s = y.ffi();
    s.state.values = (s.state.values as usize + 1) as *mut c_void;
    s.state.values_len = 4;
    assert_eq!(call(&s), FO_ERR_POINTER);
    // Empty pieces with NULL pointers are a no-op, in every format.
    for sfc in STATE_FORMATS {
        let empty = FoPiece {
            seed: 0,
            params: core::ptr::null_mut(),
            compensation: core::ptr::null_mut(),
            grads: core::ptr::null(),
            n: 0,
            offset: 0,
            state: FoState {
                values: core::ptr::null_mut(),
                values_len: 0,
                codes: core::ptr::null_mut(),
                codes_len: 0,
                scales: core::ptr::null_mut(),
                scales_len: 0,
                format: sfc,
            },
            param_format: FO_PARAM_BF16_KAHAN,
            grad_format: FO_GRAD_F16,
        };
        assert_eq!(call(&empty), FO_OK);
    }
    // init_state_ex: NULL, unknown format, overlap; nothing written.
    let a = FoAdagrad {
        initial_accumulator_value: 0.5,
        ..fo_adagrad_default()
    };
    let mut z = Piece::new(FO_PARAM_F32, FO_GRAD_F32, FO_STATE_INT4, 1, 256, 0);
    let before = z.bits();
    let st = z.state_ffi();
    assert_eq!(
        unsafe { fo_adagrad_init_state_ex(&a, core::ptr::null()) },
        FO_ERR_POINTER
    );
    assert_eq!(
        unsafe { fo_adagrad_init_state_ex(&a, &FoState { format: 9, ..st }) },
        FO_ERR_FORMAT
    );
    let overlapping = FoState {
        scales: st.codes.cast::<f32>(),
        ..st
    };
    assert_eq!(
        unsafe { fo_adagrad_init_state_ex(&a, &overlapping) },
        FO_ERR_OVERLAP
    );
    assert_eq!(z.bits(), before);
    assert_eq!(unsafe { fo_adagrad_init_state_ex(&a, &st) }, FO_OK);
    assert_ne!(z.bits(), before);
}

// ---------------------------------------------------------------------------------------------
// tests/c_smoke_expected.h: inputs and the Rust API's results for the C smoke test.

/// One case of the C smoke test: the buffers before (inputs) and after `steps` steps.
struct SmokeCase {
    name: &'static str,
    before: Piece,
    after: Piece,
}

fn smoke_steps<O: Optimizer<Scalars = ()>>(opt: &O, piece: &mut Piece, steps: u64) {
    for t in 1..=steps {
        let plan = Optimizer::plan(opt, t, &()).unwrap();
        let offset = piece.offset;
        piece.with_rust(|p, g, s| plan.apply_piece(Backend::best(), offset, p, g, s).unwrap());
    }
}

/// The smoke cases. Each one's optimizer is built the same way in tests/c_smoke.c.
fn smoke_cases() -> Vec<SmokeCase> {
    let mut out = Vec::new();
    let mut case = |name, before: Piece, run: &dyn Fn(&mut Piece)| {
        let mut after = before.clone();
        run(&mut after);
        out.push(SmokeCase {
            name,
            before,
            after,
        });
    };
    // torchao AdamW8bit, lr 1e-2: f32 parameters, bf16 gradients, int8 state, 2 blocks.
    let torchao = TorchaoAdam {
        lr: 1e-2,
        ..TorchaoAdam::adamw8bit()
    };
    case(
        "torchao_adamw8bit",
        Piece::new(FO_PARAM_F32, FO_GRAD_BF16, FO_STATE_INT8, 2, 512, 0),
        &|p| smoke_steps(&torchao, p, 2),
    );
    // AdamW (torch's formula), lr 1e-2: bf16 parameters with stochastic rounding, int8 state,
    // the second half of a 512-value tensor (offset 256).
    let adamw = Adam {
        lr: 1e-2,
        ..Adam::adamw()
    };
    case(
        "adamw_sr_int8_offset256",
        Piece::new(FO_PARAM_BF16_SR, FO_GRAD_F32, FO_STATE_INT8, 2, 256, 256),
        &|p| smoke_steps(&adamw, p, 2),
    );
    // Adam, lr 1e-3: Kahan-compensated bf16 parameters, f16 gradients, bf16 state.
    let adam = Adam::default();
    case(
        "adam_kahan_bf16",
        Piece::new(FO_PARAM_BF16_KAHAN, FO_GRAD_F16, FO_STATE_BF16, 2, 37, 0),
        &|p| smoke_steps(&adam, p, 3),
    );
    // Lion, lr 1e-2: f16 parameters, f32 gradients, float8 state, a partial last block.
    let lion = Lion {
        lr: 1e-2,
        ..Lion::default()
    };
    case(
        "lion_f16_fp8",
        Piece::new(FO_PARAM_F16, FO_GRAD_F32, FO_STATE_FP8, 1, 300, 0),
        &|p| smoke_steps(&lion, p, 2),
    );
    // Adagrad with initial_accumulator_value 0.5 in 4-bit state: init_state_ex, then a step.
    let adagrad = Adagrad {
        initial_accumulator_value: 0.5,
        ..Adagrad::default()
    };
    case(
        "adagrad_int4_init",
        Piece::new(FO_PARAM_F32, FO_GRAD_BF16, FO_STATE_INT4, 1, 256, 0),
        &|p| {
            p.with_rust(|_, _, s| adagrad.init_state_in(s)).unwrap();
            smoke_steps(&adagrad, p, 1);
        },
    );
    out
}

fn c_array<T: Copy>(text: &mut String, ty: &str, name: &str, v: &[T], f: impl Fn(T) -> String) {
    let _ = writeln!(text, "static const {ty} {name}[{}] = {{", v.len().max(1));
    if v.is_empty() {
        let _ = writeln!(text, "    0,");
    }
    for line in v.chunks(8) {
        let words: Vec<String> = line.iter().map(|x| f(*x)).collect();
        let _ = writeln!(text, "    {},", words.join(", "));
    }
    let _ = writeln!(text, "}};");
}

fn smoke_header() -> String {
    let mut t = String::new();
    t.push_str(
        "/* Inputs and expected results of the storage-format cases of tests/c_smoke.c, computed\n \
         * through the Rust API (Plan::apply_piece on the best backend) by the capi test\n \
         * `c_smoke_expected_values_are_current`. Generated: do not edit by hand; after an\n \
         * intended change run `FUSED_OPTIM_BLESS=1 cargo test` in capi/. */\n\
         #include <stdint.h>\n\n",
    );
    let hex32 = |x: u32| std::format!("0x{x:08x}u");
    let hex16 = |x: u16| std::format!("0x{x:04x}u");
    let hex8 = |x: u8| std::format!("0x{x:02x}u");
    for c in smoke_cases() {
        let _ = writeln!(t, "/* {} */", c.name);
        let _ = writeln!(t, "#define {}_N {}", c.name.to_uppercase(), c.before.n);
        let _ = writeln!(
            t,
            "#define {}_OFFSET {}",
            c.name.to_uppercase(),
            c.before.offset
        );
        let _ = writeln!(
            t,
            "#define {}_SEED 0x{:016x}ull",
            c.name.to_uppercase(),
            c.before.seed
        );
        for (tag, p) in [("in", &c.before), ("out", &c.after)] {
            let n = |s: &str| std::format!("{}_{tag}_{s}", c.name);
            let f32s = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            if !p.p32.is_empty() {
                c_array(&mut t, "uint32_t", &n("p32"), &f32s(&p.p32), hex32);
            }
            if !p.p16.is_empty() {
                c_array(&mut t, "uint16_t", &n("p16"), &p.p16, hex16);
            }
            if !p.comp.is_empty() && tag == "out" {
                c_array(&mut t, "uint16_t", &n("comp"), &p.comp, hex16);
            }
            if tag == "in" {
                if !p.g32.is_empty() {
                    c_array(&mut t, "uint32_t", &n("g32"), &f32s(&p.g32), hex32);
                }
                if !p.g16.is_empty() {
                    c_array(&mut t, "uint16_t", &n("g16"), &p.g16, hex16);
                }
            } else {
                if !p.v32.is_empty() {
                    c_array(&mut t, "uint32_t", &n("v32"), &f32s(&p.v32), hex32);
                }
                if !p.v16.is_empty() {
                    c_array(&mut t, "uint16_t", &n("v16"), &p.v16, hex16);
                }
                if !p.codes.is_empty() {
                    c_array(&mut t, "uint8_t", &n("codes"), &p.codes, hex8);
                }
                if !p.scales.is_empty() {
                    c_array(&mut t, "uint32_t", &n("scales"), &f32s(&p.scales), hex32);
                }
            }
        }
        t.push('\n');
    }
    t
}

#[test]
fn c_smoke_expected_values_are_current() {
    let text = smoke_header();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c_smoke_expected.h");
    if std::env::var_os("FUSED_OPTIM_BLESS").is_some() {
        std::fs::write(path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if let Some((i, (a, b))) = committed
        .lines()
        .zip(text.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "tests/c_smoke_expected.h line {}: committed `{a}`, this machine computes `{b}` \
             (after an intended change: FUSED_OPTIM_BLESS=1 cargo test in capi/)",
            i + 1
        );
    }
    assert_eq!(committed.lines().count(), text.lines().count());
}

/// The smoke cases' updates are real: every case changes its parameters and writes state.
#[test]
fn smoke_cases_move_their_parameters() {
    for c in smoke_cases() {
        assert_ne!(c.before.bits(), c.after.bits(), "{}", c.name);
        let (pb, pa) = (&c.before, &c.after);
        let moved = pb.p32.iter().zip(&pa.p32).filter(|(a, b)| a != b).count()
            + pb.p16.iter().zip(&pa.p16).filter(|(a, b)| a != b).count();
        assert!(
            moved > pb.n / 2,
            "{}: {moved} of {} parameters moved",
            c.name,
            pb.n
        );
    }
}
