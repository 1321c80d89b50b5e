//! The C ABI against the header, the Rust API and values derived by hand.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::panic,
    clippy::vec_init_then_push
)]
// SAFETY (every `unsafe` block below): each call passes pointers to live local arrays or
// vectors of exactly the lengths given (or NULL / misaligned / overlapping pointers on purpose,
// which the functions reject before dereferencing), and hyperparameter structs by reference.
#![allow(
    clippy::undocumented_unsafe_blocks,
    reason = "one safety argument for every call, above"
)]

use super::*;
use core::mem::{offset_of, size_of};
use std::collections::BTreeSet;
use std::vec::Vec;

const HEADER: &str = include_str!("../include/fused_optim.h");

/// Every exported function, each coerced to the exact prototype the header declares: a
/// signature change on the Rust side stops this from compiling, and the name list is compared
/// with the header below (the C side takes the same prototypes in tests/c_abi_check.c).
fn exported() -> Vec<(&'static str, usize)> {
    type Step<C> =
        unsafe extern "C" fn(*const C, u64, *mut f32, *const f32, usize, *mut f32, usize) -> c_int;
    type Validate<C> = unsafe extern "C" fn(*const C) -> c_int;
    type StateLen<C> = unsafe extern "C" fn(*const C, usize) -> usize;
    type Init<C> = unsafe extern "C" fn(*const C, *mut f32, usize) -> c_int;
    type Default<C> = extern "C" fn() -> C;
    type NadamStep = unsafe extern "C" fn(
        *const FoNadam,
        u64,
        *const FoNadamScalars,
        *mut FoNadamScalars,
        *mut f32,
        *const f32,
        usize,
        *mut f32,
        usize,
    ) -> c_int;
    type InitEx<C> = unsafe extern "C" fn(*const C, *const FoState) -> c_int;
    type StepEx<C> = unsafe extern "C" fn(*const C, u64, *const FoPiece) -> c_int;
    macro_rules! four {
        ($v:ident, $c:ty, $d:ident, $val:ident, $len:ident, $init:ident) => {
            $v.push((stringify!($d), $d as Default<$c> as usize));
            $v.push((stringify!($val), $val as Validate<$c> as usize));
            $v.push((stringify!($len), $len as StateLen<$c> as usize));
            $v.push((stringify!($init), $init as Init<$c> as usize));
        };
    }
    macro_rules! ex {
        ($v:ident, $c:ty, $init_ex:ident $(, $step_ex:ident)?) => {
            $v.push((stringify!($init_ex), $init_ex as InitEx<$c> as usize));
            $($v.push((stringify!($step_ex), $step_ex as StepEx<$c> as usize));)?
        };
    }
    let mut v: Vec<(&'static str, usize)> = Vec::new();
    v.push((
        "fo_status_message",
        fo_status_message as extern "C" fn(c_int) -> *const core::ffi::c_char as usize,
    ));
    four!(
        v,
        FoSgd,
        fo_sgd_default,
        fo_sgd_validate,
        fo_sgd_state_len,
        fo_sgd_init_state
    );
    v.push(("fo_sgd_step", fo_sgd_step as Step<FoSgd> as usize));
    four!(
        v,
        FoAdam,
        fo_adam_default,
        fo_adam_validate,
        fo_adam_state_len,
        fo_adam_init_state
    );
    v.push(("fo_adam_step", fo_adam_step as Step<FoAdam> as usize));
    v.push((
        "fo_adamw_default",
        fo_adamw_default as Default<FoAdam> as usize,
    ));
    four!(
        v,
        FoAdagrad,
        fo_adagrad_default,
        fo_adagrad_validate,
        fo_adagrad_state_len,
        fo_adagrad_init_state
    );
    v.push((
        "fo_adagrad_step",
        fo_adagrad_step as Step<FoAdagrad> as usize,
    ));
    four!(
        v,
        FoAdadelta,
        fo_adadelta_default,
        fo_adadelta_validate,
        fo_adadelta_state_len,
        fo_adadelta_init_state
    );
    v.push((
        "fo_adadelta_step",
        fo_adadelta_step as Step<FoAdadelta> as usize,
    ));
    four!(
        v,
        FoRmsprop,
        fo_rmsprop_default,
        fo_rmsprop_validate,
        fo_rmsprop_state_len,
        fo_rmsprop_init_state
    );
    v.push((
        "fo_rmsprop_step",
        fo_rmsprop_step as Step<FoRmsprop> as usize,
    ));
    four!(
        v,
        FoAdamax,
        fo_adamax_default,
        fo_adamax_validate,
        fo_adamax_state_len,
        fo_adamax_init_state
    );
    v.push(("fo_adamax_step", fo_adamax_step as Step<FoAdamax> as usize));
    four!(
        v,
        FoNadam,
        fo_nadam_default,
        fo_nadam_validate,
        fo_nadam_state_len,
        fo_nadam_init_state
    );
    v.push(("fo_nadam_step", fo_nadam_step as NadamStep as usize));
    v.push((
        "fo_nadam_scalars_default",
        fo_nadam_scalars_default as Default<FoNadamScalars> as usize,
    ));
    four!(
        v,
        FoRadam,
        fo_radam_default,
        fo_radam_validate,
        fo_radam_state_len,
        fo_radam_init_state
    );
    v.push(("fo_radam_step", fo_radam_step as Step<FoRadam> as usize));
    four!(
        v,
        FoLion,
        fo_lion_default,
        fo_lion_validate,
        fo_lion_state_len,
        fo_lion_init_state
    );
    v.push(("fo_lion_step", fo_lion_step as Step<FoLion> as usize));
    four!(
        v,
        FoRprop,
        fo_rprop_default,
        fo_rprop_validate,
        fo_rprop_state_len,
        fo_rprop_init_state
    );
    v.push(("fo_rprop_step", fo_rprop_step as Step<FoRprop> as usize));
    four!(
        v,
        FoAsgd,
        fo_asgd_default,
        fo_asgd_validate,
        fo_asgd_state_len,
        fo_asgd_init_state
    );
    type AsgdStep = unsafe extern "C" fn(
        *const FoAsgd,
        u64,
        *const FoAsgdScalars,
        *mut FoAsgdScalars,
        *mut f32,
        *const f32,
        usize,
        *mut f32,
        usize,
    ) -> c_int;
    v.push(("fo_asgd_step", fo_asgd_step as AsgdStep as usize));
    v.push((
        "fo_asgd_scalars_default",
        fo_asgd_scalars_default as Default<FoAsgdScalars> as usize,
    ));
    ex!(v, FoSgd, fo_sgd_init_state_ex, fo_sgd_step_ex);
    ex!(v, FoAdam, fo_adam_init_state_ex, fo_adam_step_ex);
    ex!(v, FoAdagrad, fo_adagrad_init_state_ex, fo_adagrad_step_ex);
    ex!(
        v,
        FoAdadelta,
        fo_adadelta_init_state_ex,
        fo_adadelta_step_ex
    );
    ex!(v, FoRmsprop, fo_rmsprop_init_state_ex, fo_rmsprop_step_ex);
    ex!(v, FoAdamax, fo_adamax_init_state_ex, fo_adamax_step_ex);
    ex!(v, FoNadam, fo_nadam_init_state_ex);
    ex!(v, FoRadam, fo_radam_init_state_ex, fo_radam_step_ex);
    ex!(v, FoLion, fo_lion_init_state_ex, fo_lion_step_ex);
    ex!(v, FoRprop, fo_rprop_init_state_ex, fo_rprop_step_ex);
    ex!(v, FoAsgd, fo_asgd_init_state_ex);
    type AsgdStepEx = unsafe extern "C" fn(
        *const FoAsgd,
        u64,
        *const FoAsgdScalars,
        *mut FoAsgdScalars,
        *const FoPiece,
    ) -> c_int;
    v.push(("fo_asgd_step_ex", fo_asgd_step_ex as AsgdStepEx as usize));
    type NadamStepEx = unsafe extern "C" fn(
        *const FoNadam,
        u64,
        *const FoNadamScalars,
        *mut FoNadamScalars,
        *const FoPiece,
    ) -> c_int;
    v.push(("fo_nadam_step_ex", fo_nadam_step_ex as NadamStepEx as usize));
    v.push((
        "fo_state_layout",
        fo_state_layout as unsafe extern "C" fn(i32, usize, usize, *mut FoStateLayout) -> c_int
            as usize,
    ));
    // TorchaoAdam: six class defaults instead of one.
    for (name, f) in [
        (
            "fo_torchao_adamw8bit_default",
            fo_torchao_adamw8bit_default as Default<FoTorchaoAdam>,
        ),
        ("fo_torchao_adam8bit_default", fo_torchao_adam8bit_default),
        ("fo_torchao_adamw4bit_default", fo_torchao_adamw4bit_default),
        ("fo_torchao_adam4bit_default", fo_torchao_adam4bit_default),
        ("fo_torchao_adamw_fp8_default", fo_torchao_adamw_fp8_default),
        ("fo_torchao_adam_fp8_default", fo_torchao_adam_fp8_default),
    ] {
        v.push((name, f as usize));
    }
    v.push((
        "fo_torchao_adam_validate",
        fo_torchao_adam_validate as Validate<FoTorchaoAdam> as usize,
    ));
    v.push((
        "fo_torchao_adam_state_len",
        fo_torchao_adam_state_len as StateLen<FoTorchaoAdam> as usize,
    ));
    v.push((
        "fo_torchao_adam_init_state",
        fo_torchao_adam_init_state as Init<FoTorchaoAdam> as usize,
    ));
    v.push((
        "fo_torchao_adam_step",
        fo_torchao_adam_step as Step<FoTorchaoAdam> as usize,
    ));
    ex!(
        v,
        FoTorchaoAdam,
        fo_torchao_adam_init_state_ex,
        fo_torchao_adam_step_ex
    );
    four!(
        v,
        FoSparseAdam,
        fo_sparse_adam_default,
        fo_sparse_adam_validate,
        fo_sparse_adam_state_len,
        fo_sparse_adam_init_state
    );
    type SparseStep = unsafe extern "C" fn(
        *const FoSparseAdam,
        u64,
        *mut f32,
        usize,
        usize,
        *const i64,
        usize,
        *const f32,
        *mut f32,
        usize,
    ) -> c_int;
    v.push((
        "fo_sparse_adam_step",
        fo_sparse_adam_step as SparseStep as usize,
    ));
    v.push((
        "fo_torchao_adam_state_format_for",
        fo_torchao_adam_state_format_for
            as unsafe extern "C" fn(*const FoTorchaoAdam, usize, i32) -> i32 as usize,
    ));
    v
}

/// Function names declared in the header: identifiers `fo_…` directly followed by `(`.
fn header_functions() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in HEADER.lines() {
        let line = line.trim_start();
        if line.starts_with("//")
            || line.starts_with('*')
            || line.starts_with("/*")
            || line.starts_with('#')
        {
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while let Some(pos) = line[i..].find("fo_") {
            let start = i + pos;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = start
                + line[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(line.len() - start);
            if boundary && line[end..].starts_with('(') {
                out.insert(line[start..end].to_string());
            }
            i = end;
        }
    }
    out
}

use std::string::{String, ToString};

#[test]
fn header_declares_exactly_the_exported_functions() {
    let rust: BTreeSet<String> = exported().iter().map(|(n, _)| n.to_string()).collect();
    let header = header_functions();
    assert!(rust.len() >= 40, "{} exported functions", rust.len());
    assert_eq!(rust, header, "Rust exports vs header declarations");
    // Distinct addresses: no two names bound to one function by mistake.
    let addrs: BTreeSet<usize> = exported().iter().map(|(_, a)| *a).collect();
    assert_eq!(addrs.len(), rust.len());
}

#[test]
fn header_format_codes_match() {
    for (name, value) in [
        ("FO_PARAM_F32", FO_PARAM_F32),
        ("FO_PARAM_BF16", FO_PARAM_BF16),
        ("FO_PARAM_F16", FO_PARAM_F16),
        ("FO_PARAM_BF16_SR", FO_PARAM_BF16_SR),
        ("FO_PARAM_BF16_KAHAN", FO_PARAM_BF16_KAHAN),
        ("FO_GRAD_F32", FO_GRAD_F32),
        ("FO_GRAD_BF16", FO_GRAD_BF16),
        ("FO_GRAD_F16", FO_GRAD_F16),
        ("FO_STATE_F32", FO_STATE_F32),
        ("FO_STATE_BF16", FO_STATE_BF16),
        ("FO_STATE_F16", FO_STATE_F16),
        ("FO_STATE_INT8", FO_STATE_INT8),
        ("FO_STATE_INT4", FO_STATE_INT4),
        ("FO_STATE_FP8", FO_STATE_FP8),
    ] {
        let want = std::format!("{name} = {value}");
        assert!(HEADER.contains(&want), "header lacks `{want}`");
    }
}

#[test]
fn header_status_codes_match() {
    for (name, value) in [
        ("FO_OK", FO_OK),
        ("FO_ERR_POINTER", FO_ERR_POINTER),
        (
            "FO_ERR_INVALID_HYPERPARAMETER",
            FO_ERR_INVALID_HYPERPARAMETER,
        ),
        ("FO_ERR_INVALID_COMBINATION", FO_ERR_INVALID_COMBINATION),
        ("FO_ERR_INVALID_STEP", FO_ERR_INVALID_STEP),
        ("FO_ERR_LENGTH", FO_ERR_LENGTH),
        ("FO_ERR_OVERLAP", FO_ERR_OVERLAP),
        ("FO_ERR_OTHER", FO_ERR_OTHER),
        ("FO_ERR_MISALIGNED", FO_ERR_MISALIGNED),
        ("FO_ERR_FORMAT", FO_ERR_FORMAT),
        ("FO_ERR_INDEX", FO_ERR_INDEX),
    ] {
        let want = std::format!("#define {name} ({value})");
        assert!(HEADER.contains(&want), "header lacks `{want}`");
    }
}

/// The struct layouts the header's `_Static_assert`s pin (tests/c_abi_check.c compiles them):
/// `f64` fields first, then `int32_t` flags, padded to 8.
#[test]
fn struct_layouts_match_the_header() {
    assert_eq!(
        (
            size_of::<FoSgd>(),
            offset_of!(FoSgd, nesterov),
            offset_of!(FoSgd, maximize)
        ),
        (40, 32, 36)
    );
    assert_eq!(
        (
            size_of::<FoAdam>(),
            offset_of!(FoAdam, amsgrad),
            offset_of!(FoAdam, decoupled_weight_decay)
        ),
        (56, 40, 48)
    );
    assert_eq!(
        (size_of::<FoAdagrad>(), offset_of!(FoAdagrad, maximize)),
        (48, 40)
    );
    assert_eq!(
        (size_of::<FoAdadelta>(), offset_of!(FoAdadelta, maximize)),
        (40, 32)
    );
    assert_eq!(
        (
            size_of::<FoRmsprop>(),
            offset_of!(FoRmsprop, centered),
            offset_of!(FoRmsprop, maximize)
        ),
        (48, 40, 44)
    );
    assert_eq!(
        (size_of::<FoAdamax>(), offset_of!(FoAdamax, maximize)),
        (48, 40)
    );
    assert_eq!(
        (
            size_of::<FoNadam>(),
            offset_of!(FoNadam, decoupled_weight_decay),
            offset_of!(FoNadam, maximize)
        ),
        (56, 48, 52)
    );
    assert_eq!(size_of::<FoNadamScalars>(), 4);
    assert_eq!(
        (
            size_of::<FoRadam>(),
            offset_of!(FoRadam, decoupled_weight_decay),
            offset_of!(FoRadam, maximize)
        ),
        (48, 40, 44)
    );
    assert_eq!(
        (size_of::<FoLion>(), offset_of!(FoLion, maximize)),
        (40, 32)
    );
    assert_eq!(
        (size_of::<FoRprop>(), offset_of!(FoRprop, maximize)),
        (48, 40)
    );
    assert_eq!(
        (size_of::<FoAsgd>(), offset_of!(FoAsgd, maximize)),
        (48, 40)
    );
    assert_eq!(
        (size_of::<FoAsgdScalars>(), offset_of!(FoAsgdScalars, mu)),
        (8, 4)
    );
    assert_eq!(
        (
            size_of::<FoTorchaoAdam>(),
            offset_of!(FoTorchaoAdam, amsgrad),
            offset_of!(FoTorchaoAdam, is_adamw),
            offset_of!(FoTorchaoAdam, format)
        ),
        (56, 40, 44, 48)
    );
    assert_eq!(
        (
            size_of::<FoSparseAdam>(),
            offset_of!(FoSparseAdam, maximize)
        ),
        (40, 32)
    );
    // The pointer-sized structs, as the header's assertions and tests/c_abi_check.c state
    // them in terms of sizeof(size_t).
    let w = size_of::<usize>();
    assert_eq!(size_of::<FoStateLayout>(), 4 * w);
    assert_eq!(offset_of!(FoState, format), 6 * w);
    assert_eq!(size_of::<FoState>(), 6 * w + if w == 8 { 8 } else { 4 });
    assert_eq!(
        (
            offset_of!(FoPiece, params),
            offset_of!(FoPiece, compensation),
            offset_of!(FoPiece, grads),
            offset_of!(FoPiece, n),
            offset_of!(FoPiece, offset),
            offset_of!(FoPiece, state),
        ),
        (8, 8 + w, 8 + 2 * w, 8 + 3 * w, 8 + 4 * w, 8 + 5 * w)
    );
    assert_eq!(
        offset_of!(FoPiece, param_format),
        8 + 5 * w + size_of::<FoState>()
    );
    assert_eq!(size_of::<FoPiece>(), 8 + 5 * w + size_of::<FoState>() + 8);
    for (s, n) in [
        ("sizeof(FoSgd) == 40", 0),
        ("sizeof(FoAdam) == 56", 0),
        ("sizeof(FoAdagrad) == 48", 0),
        ("sizeof(FoAdadelta) == 40", 0),
        ("sizeof(FoRmsprop) == 48", 0),
        ("sizeof(FoAdamax) == 48", 0),
        ("sizeof(FoNadam) == 56", 0),
        ("sizeof(FoRadam) == 48", 0),
        ("sizeof(FoLion) == 40", 0),
        ("sizeof(FoRprop) == 48", 0),
        ("sizeof(FoAsgd) == 48", 0),
        ("sizeof(FoAsgdScalars) == 8", 0),
        ("sizeof(FoTorchaoAdam) == 56", 0),
        ("sizeof(FoSparseAdam) == 40", 0),
    ] {
        let _ = n;
        assert!(
            HEADER.contains(s),
            "header lacks the static assertion `{s}`"
        );
    }
}

/// Hand-derived SGD values, the same inputs and bits as tests/c_smoke.c. lr = 0.25,
/// momentum = 0.5, every value a short binary fraction, so every operation is exact:
/// step 1: b = g1, p = p0 − 0.25·b; step 2: b = 0.5·b + g2, p = p1 − 0.25·b.
#[test]
fn sgd_by_hand() {
    let opt = FoSgd {
        lr: 0.25,
        momentum: 0.5,
        ..fo_sgd_default()
    };
    let mut p = [1.0f32, -2.0, 0.5, 3.0];
    let mut b = [9.0f32; 4]; // step 1 ignores the buffer's contents, as torch does
    assert_eq!(unsafe { fo_sgd_state_len(&opt, 4) }, 4);
    let g1 = [0.5f32, 1.0, -2.0, 0.0];
    let g2 = [1.0f32, -1.0, 0.5, 4.0];
    assert_eq!(
        unsafe { fo_sgd_step(&opt, 1, p.as_mut_ptr(), g1.as_ptr(), 4, b.as_mut_ptr(), 4) },
        FO_OK
    );
    assert_eq!(p, [0.875, -2.25, 1.0, 3.0]);
    assert_eq!(
        unsafe { fo_sgd_step(&opt, 2, p.as_mut_ptr(), g2.as_ptr(), 4, b.as_mut_ptr(), 4) },
        FO_OK
    );
    assert_eq!(b, [1.25, -0.5, -0.5, 4.0]);
    assert_eq!(p, [0.5625, -2.125, 1.125, 2.0]);
}

/// Hand-derived Adam values, the same as tests/c_smoke.c. lr = 0.75, β = (0.5, 0), eps = 1:
/// with β2 = 0, v = g² and √(1 − β2ᵗ) = 1, so the denominator is |g| + 1; the step sizes
/// lr/(1 − β1ᵗ) are 1.5 then 1; m = lerp(m, g, 0.5) = g − 0.5·(g − m). Every value is a short
/// binary fraction, so every operation is exact.
#[test]
fn adam_by_hand() {
    let opt = FoAdam {
        lr: 0.75,
        beta1: 0.5,
        beta2: 0.0,
        eps: 1.0,
        ..fo_adam_default()
    };
    let mut p = [1.0f32, -2.0, 0.5, 3.0];
    let mut s = [0.0f32; 8];
    assert_eq!(unsafe { fo_adam_state_len(&opt, 4) }, 8);
    let g1 = [1.0f32, -3.0, 0.0, 7.0];
    let g2 = [-1.0f32, 1.0, 3.0, 7.0];
    assert_eq!(
        unsafe { fo_adam_step(&opt, 1, p.as_mut_ptr(), g1.as_ptr(), 4, s.as_mut_ptr(), 8) },
        FO_OK
    );
    // m = g/2; p −= 1.5·m/(|g| + 1)
    assert_eq!(p, [0.625, -1.4375, 0.5, 2.34375]);
    assert_eq!(s, [0.5, -1.5, 0.0, 3.5, 1.0, 9.0, 0.0, 49.0]);
    assert_eq!(
        unsafe { fo_adam_step(&opt, 2, p.as_mut_ptr(), g2.as_ptr(), 4, s.as_mut_ptr(), 8) },
        FO_OK
    );
    assert_eq!(s, [-0.25, -0.25, 1.5, 5.25, 1.0, 1.0, 9.0, 49.0]);
    assert_eq!(p, [0.75, -1.3125, 0.125, 1.6875]);
}

#[test]
fn defaults_are_torchs() {
    let a = fo_adam_default();
    assert_eq!(
        (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay),
        (1e-3, 0.9, 0.999, 1e-8, 0.0)
    );
    assert_eq!((a.amsgrad, a.maximize, a.decoupled_weight_decay), (0, 0, 0));
    let w = fo_adamw_default();
    assert_eq!((w.weight_decay, w.decoupled_weight_decay), (1e-2, 1));
    let s = fo_sgd_default();
    assert_eq!(
        (s.lr, s.momentum, s.dampening, s.weight_decay, s.nesterov),
        (1e-3, 0.0, 0.0, 0.0, 0)
    );
    assert_eq!(fo_nadam_scalars_default().mu_product, 1.0);
    assert_eq!(fo_rmsprop_default().alpha, 0.99);
    assert_eq!(fo_adagrad_default().eps, 1e-10);
    assert_eq!(fo_adadelta_default().rho, 0.9);
    let r = fo_rprop_default();
    assert_eq!(
        (
            r.lr,
            r.eta_minus,
            r.eta_plus,
            r.step_size_min,
            r.step_size_max,
            r.maximize
        ),
        (1e-2, 0.5, 1.2, 1e-6, 50.0, 0)
    );
    let a = fo_asgd_default();
    assert_eq!(
        (a.lr, a.lambd, a.alpha, a.t0, a.weight_decay, a.maximize),
        (1e-2, 1e-4, 0.75, 1e6, 0.0, 0)
    );
    assert_eq!(
        fo_asgd_scalars_default(),
        FoAsgdScalars { eta: 0.01, mu: 1.0 }
    );
}

/// Rprop through the C ABI: the fresh state has step_size = lr (init_state and init_state_ex),
/// and a sign change shrinks the step and zeroes the gradient.
#[test]
fn rprop_by_hand() {
    let opt = FoRprop {
        lr: 0.5,
        ..fo_rprop_default()
    };
    let mut s = [9.0f32; 4];
    assert_eq!(unsafe { fo_rprop_state_len(&opt, 2) }, 4);
    assert_eq!(
        unsafe { fo_rprop_init_state(&opt, s.as_mut_ptr(), 4) },
        FO_OK
    );
    assert_eq!(s, [0.0, 0.0, 0.5, 0.5]);
    // An odd state length is not two planes: refused, nothing written.
    assert_eq!(
        unsafe { fo_rprop_init_state(&opt, s.as_mut_ptr(), 3) },
        FO_ERR_LENGTH
    );
    let mut p = [1.0f32, 1.0];
    let g1 = [1.0f32, -1.0];
    let g2 = [2.0f32, 1.0];
    assert_eq!(
        unsafe { fo_rprop_step(&opt, 1, p.as_mut_ptr(), g1.as_ptr(), 2, s.as_mut_ptr(), 4) },
        FO_OK
    );
    assert_eq!(p, [0.5, 1.5]);
    assert_eq!(
        unsafe { fo_rprop_step(&opt, 2, p.as_mut_ptr(), g2.as_ptr(), 2, s.as_mut_ptr(), 4) },
        FO_OK
    );
    assert_eq!(s, [2.0, 0.0, 0.5f32 * 1.2f32, 0.25]);
    assert_eq!(p, [0.5 - 0.5f32 * 1.2f32, 1.5]);
    // init_state_ex in bf16.
    let mut v = [0xffffu16; 4];
    let st = FoState {
        values: v.as_mut_ptr().cast(),
        values_len: 4,
        codes: core::ptr::null_mut(),
        codes_len: 0,
        scales: core::ptr::null_mut(),
        scales_len: 0,
        format: FO_STATE_BF16,
    };
    assert_eq!(unsafe { fo_rprop_init_state_ex(&opt, &st) }, FO_OK);
    assert_eq!(v, [0, 0, 0x3f00, 0x3f00]);
    let bad = FoRprop {
        eta_plus: 1.0,
        ..opt
    };
    assert_eq!(
        unsafe { fo_rprop_validate(&bad) },
        FO_ERR_INVALID_HYPERPARAMETER
    );
}

#[test]
fn asgd_carries_its_scalars() {
    let c = FoAsgd {
        lr: 0.05,
        t0: 1.0,
        weight_decay: 0.1,
        ..fo_asgd_default()
    };
    let opt = c.to_rust().unwrap();
    let n = 11;
    let mut pc = std::vec![0.5f32; n];
    let mut pr = pc.clone();
    let (mut sc, mut sr) = (std::vec![0.0f32; n], std::vec![0.0f32; n]);
    let mut scalars = fo_asgd_scalars_default();
    let mut rs = AsgdScalars::default();
    for t in 1..=6u64 {
        let g: Vec<f32> = (0..n).map(|i| (i as f32 - 5.0) * 0.1 * t as f32).collect();
        let mut after = FoAsgdScalars {
            eta: f32::NAN,
            mu: f32::NAN,
        };
        let st = unsafe {
            fo_asgd_step(
                &c,
                t,
                &scalars,
                &mut after,
                pc.as_mut_ptr(),
                g.as_ptr(),
                n,
                sc.as_mut_ptr(),
                n,
            )
        };
        assert_eq!(st, FO_OK);
        let plan = opt.plan(t, &rs).unwrap();
        plan.apply(&mut pr, &g, &mut sr).unwrap();
        rs = plan.scalars_after();
        assert_eq!(
            (after.eta.to_bits(), after.mu.to_bits()),
            (rs.eta.to_bits(), rs.mu.to_bits())
        );
        scalars = after;
        assert_eq!(pc, pr);
        assert_eq!(sc, sr);
    }
    assert!(scalars.mu < 1.0);
    // NULL scalars are refused; an invalid scalar state too, with nothing written.
    let g = std::vec![0.1f32; n];
    let (p0, s0) = (pc.clone(), sc.clone());
    let bad = FoAsgdScalars { eta: -1.0, mu: 0.5 };
    for (ptr, want) in [
        (core::ptr::null(), FO_ERR_POINTER),
        (&bad as *const FoAsgdScalars, FO_ERR_INVALID_HYPERPARAMETER),
    ] {
        let st = unsafe {
            fo_asgd_step(
                &c,
                2,
                ptr,
                core::ptr::null_mut(),
                pc.as_mut_ptr(),
                g.as_ptr(),
                n,
                sc.as_mut_ptr(),
                n,
            )
        };
        assert_eq!(st, want);
        assert_eq!((&pc, &sc), (&p0, &s0));
    }
    // scalars_after inside the state: an overlap, with nothing written (also through _ex).
    let out: *mut FoAsgdScalars = sc[2..].as_mut_ptr().cast();
    let st = unsafe {
        fo_asgd_step(
            &c,
            2,
            &scalars,
            out,
            pc.as_mut_ptr(),
            g.as_ptr(),
            n,
            sc.as_mut_ptr(),
            n,
        )
    };
    assert_eq!(st, FO_ERR_OVERLAP);
    let piece = piece_f32(&mut pc, &g, &mut sc);
    let st = unsafe { fo_asgd_step_ex(&c, 2, &scalars, out, &piece) };
    assert_eq!(st, FO_ERR_OVERLAP);
    assert_eq!((&pc, &sc), (&p0, &s0));
    let mut after = scalars;
    let st = unsafe { fo_asgd_step_ex(&c, 7, &scalars, &mut after, &piece) };
    assert_eq!(st, FO_OK);
    assert_ne!(after, scalars);
}

/// Runs `steps` steps through the C ABI and through the Rust API on the same inputs and
/// asserts identical bits (NaN as a class).
fn same_as_rust<C: CConfig>(
    c: C,
    step: unsafe extern "C" fn(
        *const C,
        u64,
        *mut f32,
        *const f32,
        usize,
        *mut f32,
        usize,
    ) -> c_int,
    init: unsafe extern "C" fn(*const C, *mut f32, usize) -> c_int,
) {
    let opt = c.to_rust().unwrap();
    for n in [0usize, 1, 7, 19, 64] {
        let len = opt.state_len(n);
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let (mut pc, mut pr) = (p0.clone(), p0);
        let (mut sc, mut sr) = (std::vec![7.0f32; len], std::vec![0.0f32; len]);
        assert_eq!(unsafe { init(&c, sc.as_mut_ptr(), len) }, FO_OK);
        opt.init_state(&mut sr).unwrap();
        for t in 1..=4u64 {
            let g: Vec<f32> = (0..n)
                .map(|i| ((i as f32 + t as f32) * 1.3).cos())
                .collect();
            assert_eq!(
                unsafe { step(&c, t, pc.as_mut_ptr(), g.as_ptr(), n, sc.as_mut_ptr(), len) },
                FO_OK
            );
            opt.plan(t, &Default::default())
                .unwrap()
                .apply(&mut pr, &g, &mut sr)
                .unwrap();
            for (a, b) in pc.iter().chain(&sc).zip(pr.iter().chain(&sr)) {
                assert!(
                    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                    "{opt:?} n {n} t {t}"
                );
            }
        }
    }
}

#[test]
fn every_step_function_gives_the_rust_bits() {
    same_as_rust(
        FoSgd {
            momentum: 0.9,
            nesterov: 1,
            ..fo_sgd_default()
        },
        fo_sgd_step,
        fo_sgd_init_state,
    );
    same_as_rust(
        FoAdam {
            amsgrad: 1,
            ..fo_adamw_default()
        },
        fo_adam_step,
        fo_adam_init_state,
    );
    same_as_rust(
        FoAdagrad {
            initial_accumulator_value: 0.5,
            ..fo_adagrad_default()
        },
        fo_adagrad_step,
        fo_adagrad_init_state,
    );
    same_as_rust(
        fo_adadelta_default(),
        fo_adadelta_step,
        fo_adadelta_init_state,
    );
    same_as_rust(
        FoRmsprop {
            centered: 1,
            momentum: 0.5,
            ..fo_rmsprop_default()
        },
        fo_rmsprop_step,
        fo_rmsprop_init_state,
    );
    same_as_rust(fo_adamax_default(), fo_adamax_step, fo_adamax_init_state);
    same_as_rust(
        FoRadam {
            decoupled_weight_decay: 1,
            weight_decay: 0.1,
            ..fo_radam_default()
        },
        fo_radam_step,
        fo_radam_init_state,
    );
    same_as_rust(
        FoRprop {
            maximize: 1,
            eta_minus: 0.3,
            ..fo_rprop_default()
        },
        fo_rprop_step,
        fo_rprop_init_state,
    );
    same_as_rust(
        FoLion {
            weight_decay: 0.1,
            ..fo_lion_default()
        },
        fo_lion_step,
        fo_lion_init_state,
    );
}

#[test]
fn nadam_carries_its_scalars() {
    let c = fo_nadam_default();
    let opt = c.to_rust().unwrap();
    let n = 11;
    let mut pc = std::vec![0.5f32; n];
    let mut pr = pc.clone();
    let (mut sc, mut sr) = (std::vec![0.0f32; 2 * n], std::vec![0.0f32; 2 * n]);
    let mut scalars = fo_nadam_scalars_default();
    let mut rs = NAdamScalars::default();
    for t in 1..=5u64 {
        let g: Vec<f32> = (0..n).map(|i| (i as f32 - 5.0) * 0.1 * t as f32).collect();
        let mut after = FoNadamScalars {
            mu_product: f32::NAN,
        };
        let st = unsafe {
            fo_nadam_step(
                &c,
                t,
                &scalars,
                &mut after,
                pc.as_mut_ptr(),
                g.as_ptr(),
                n,
                sc.as_mut_ptr(),
                2 * n,
            )
        };
        assert_eq!(st, FO_OK);
        let plan = opt.plan(t, &rs).unwrap();
        plan.apply(&mut pr, &g, &mut sr).unwrap();
        rs = plan.scalars_after();
        assert_eq!(after.mu_product.to_bits(), rs.mu_product.to_bits());
        assert_ne!(after.mu_product, 1.0);
        scalars = after;
        assert_eq!(pc, pr);
        assert_eq!(sc, sr);
    }
    // NULL scalars are refused; NULL scalars_after is allowed.
    let g = std::vec![0.1f32; n];
    assert_eq!(
        unsafe {
            fo_nadam_step(
                &c,
                1,
                core::ptr::null(),
                core::ptr::null_mut(),
                pc.as_mut_ptr(),
                g.as_ptr(),
                n,
                sc.as_mut_ptr(),
                2 * n,
            )
        },
        FO_ERR_POINTER
    );
    assert_eq!(
        unsafe {
            fo_nadam_step(
                &c,
                1,
                &scalars,
                core::ptr::null_mut(),
                pc.as_mut_ptr(),
                g.as_ptr(),
                n,
                sc.as_mut_ptr(),
                2 * n,
            )
        },
        FO_OK
    );
    // scalars_after inside params, grads or state: an overlap, with nothing written.
    let (p0, s0) = (pc.clone(), sc.clone());
    let gm = g.clone();
    for (target, offset) in [(0usize, 3usize), (1, 0), (2, 2 * n - 1)] {
        let mut gm = gm.clone();
        let out: *mut FoNadamScalars = match target {
            0 => pc[offset..].as_mut_ptr().cast(),
            1 => gm[offset..].as_mut_ptr().cast(),
            _ => sc[offset..].as_mut_ptr().cast(),
        };
        let st = unsafe {
            fo_nadam_step(
                &c,
                1,
                &scalars,
                out,
                pc.as_mut_ptr(),
                gm.as_ptr(),
                n,
                sc.as_mut_ptr(),
                2 * n,
            )
        };
        assert_eq!(st, FO_ERR_OVERLAP, "scalars_after in buffer {target}");
        assert_eq!((&pc, &sc, &gm), (&p0, &s0, &g));
    }
    // The same through fo_nadam_step_ex.
    let out: *mut FoNadamScalars = sc[5..].as_mut_ptr().cast();
    let mut piece = piece_f32(&mut pc, &g, &mut sc);
    piece.state.format = FO_STATE_F32;
    let st = unsafe { fo_nadam_step_ex(&c, 1, &scalars, out, &piece) };
    assert_eq!(st, FO_ERR_OVERLAP);
    assert_eq!((&pc, &sc), (&p0, &s0));
}

/// An all-`f32` piece over whole buffers.
fn piece_f32(params: &mut [f32], grads: &[f32], state: &mut [f32]) -> FoPiece {
    let mut piece: FoPiece = unsafe { core::mem::zeroed() };
    piece.params = params.as_mut_ptr().cast();
    piece.grads = grads.as_ptr().cast();
    piece.n = params.len();
    piece.param_format = FO_PARAM_F32;
    piece.grad_format = FO_GRAD_F32;
    piece.state.values = state.as_mut_ptr().cast();
    piece.state.values_len = state.len();
    piece
}

#[test]
fn errors_have_their_codes_and_write_nothing() {
    let adam = fo_adam_default();
    let mut p = [1.0f32; 4];
    let g = [0.5f32; 4];
    let mut s = [0.0f32; 8];
    let null_f = core::ptr::null_mut::<f32>();
    let call = |opt: &FoAdam, step, p: *mut f32, g: *const f32, n, s: *mut f32, sl| unsafe {
        fo_adam_step(opt, step, p, g, n, s, sl)
    };
    assert_eq!(
        unsafe {
            fo_adam_step(
                core::ptr::null(),
                1,
                p.as_mut_ptr(),
                g.as_ptr(),
                4,
                s.as_mut_ptr(),
                8,
            )
        },
        FO_ERR_POINTER
    );
    assert_eq!(
        call(&adam, 1, null_f, g.as_ptr(), 4, s.as_mut_ptr(), 8),
        FO_ERR_POINTER
    );
    assert_eq!(
        call(
            &adam,
            1,
            p.as_mut_ptr(),
            core::ptr::null(),
            4,
            s.as_mut_ptr(),
            8
        ),
        FO_ERR_POINTER
    );
    assert_eq!(
        call(&adam, 1, p.as_mut_ptr(), g.as_ptr(), 4, null_f, 8),
        FO_ERR_POINTER
    );
    let misaligned = (p.as_mut_ptr() as usize + 1) as *mut f32;
    assert_eq!(
        call(&adam, 1, misaligned, g.as_ptr(), 2, s.as_mut_ptr(), 4),
        FO_ERR_POINTER
    );
    assert_eq!(
        call(&adam, 0, p.as_mut_ptr(), g.as_ptr(), 4, s.as_mut_ptr(), 8),
        FO_ERR_INVALID_STEP
    );
    assert_eq!(
        call(&adam, 1, p.as_mut_ptr(), g.as_ptr(), 4, s.as_mut_ptr(), 7),
        FO_ERR_LENGTH
    );
    assert_eq!(
        call(
            &adam,
            1,
            p.as_mut_ptr(),
            g.as_ptr(),
            usize::MAX,
            s.as_mut_ptr(),
            8
        ),
        FO_ERR_LENGTH
    );
    let bad = FoAdam { lr: -1.0, ..adam };
    assert_eq!(
        call(&bad, 1, p.as_mut_ptr(), g.as_ptr(), 4, s.as_mut_ptr(), 8),
        FO_ERR_INVALID_HYPERPARAMETER
    );
    assert_eq!(
        unsafe { fo_adam_validate(&bad) },
        FO_ERR_INVALID_HYPERPARAMETER
    );
    assert_eq!(
        unsafe {
            fo_adam_validate(&FoAdam {
                beta2: f64::NAN,
                ..adam
            })
        },
        FO_ERR_INVALID_HYPERPARAMETER
    );
    assert_eq!(unsafe { fo_adam_validate(&adam) }, FO_OK);
    // Overlaps: params with state, grads with params.
    let mut buf = [0.0f32; 12];
    let base = buf.as_mut_ptr();
    assert_eq!(
        call(&adam, 1, base, g.as_ptr(), 4, unsafe { base.add(3) }, 8),
        FO_ERR_OVERLAP
    );
    assert_eq!(
        call(&adam, 1, p.as_mut_ptr(), p.as_ptr(), 4, s.as_mut_ptr(), 8),
        FO_ERR_OVERLAP
    );
    // Adjacent buffers are fine.
    assert_eq!(
        call(&adam, 1, base, g.as_ptr(), 4, unsafe { base.add(4) }, 8),
        FO_OK
    );
    assert_eq!(p, [1.0; 4]);
    assert_eq!(s, [0.0; 8]);
    // Empty tensors with NULL pointers are a no-op.
    assert_eq!(
        call(&adam, 1, null_f, core::ptr::null(), 0, null_f, 0),
        FO_OK
    );
    // SGD: Nesterov without momentum.
    let sgd = FoSgd {
        nesterov: 1,
        ..fo_sgd_default()
    };
    assert_eq!(unsafe { fo_sgd_validate(&sgd) }, FO_ERR_INVALID_COMBINATION);
    assert_eq!(unsafe { fo_sgd_state_len(core::ptr::null(), 5) }, 0);
    // Every code has a message.
    for code in [
        FO_OK,
        FO_ERR_POINTER,
        FO_ERR_INVALID_HYPERPARAMETER,
        FO_ERR_INVALID_COMBINATION,
        FO_ERR_INVALID_STEP,
        FO_ERR_LENGTH,
        FO_ERR_OVERLAP,
        FO_ERR_OTHER,
        FO_ERR_MISALIGNED,
        FO_ERR_FORMAT,
        42,
    ] {
        let m = unsafe { core::ffi::CStr::from_ptr(fo_status_message(code)) };
        assert!(!m.to_bytes().is_empty());
    }
}

#[path = "tests_formats.rs"]
mod formats;

#[test]
fn init_state_validates_first_and_writes_nothing_on_error() {
    for bad in [-1.0, f64::NAN, 1e39] {
        let c = FoAdagrad {
            initial_accumulator_value: bad,
            ..fo_adagrad_default()
        };
        let mut s = [7.0f32; 5];
        assert_eq!(
            unsafe { fo_adagrad_init_state(&c, s.as_mut_ptr(), 5) },
            FO_ERR_INVALID_HYPERPARAMETER,
            "initial_accumulator_value {bad}"
        );
        assert_eq!(s, [7.0; 5]);
        let mut codes = [9u8; 256];
        let mut scales = [3.0f32; 1];
        let mut st: FoState = unsafe { core::mem::zeroed() };
        st.codes = codes.as_mut_ptr();
        st.codes_len = codes.len();
        st.scales = scales.as_mut_ptr();
        st.scales_len = 1;
        st.format = FO_STATE_INT8;
        assert_eq!(
            unsafe { fo_adagrad_init_state_ex(&c, &st) },
            FO_ERR_INVALID_HYPERPARAMETER
        );
        assert_eq!((codes, scales), ([9u8; 256], [3.0]));
    }
}

/// SparseAdam through the C ABI, by hand: β = (0.5, 0.75), lr = 0.5, eps = 0.25, step 1
/// (step size 0.5·√0.25/0.5 = 0.5). Row 1 of a 3×2 table, from a zero state, g = (2, −4):
/// u1 = 0.5·g = (1, −2) = m; u2 = 0.25·g² = (1, 4) = v; p −= 0.5·m/(√v + 0.25), i.e.
/// p = (1 − 0.5/1.25, −2 + 1/2.25). Then the errors, each writing nothing.
#[test]
fn sparse_adam_by_hand() {
    let opt = FoSparseAdam {
        lr: 0.5,
        beta1: 0.5,
        beta2: 0.75,
        eps: 0.25,
        maximize: 0,
    };
    assert_eq!(unsafe { fo_sparse_adam_validate(&opt) }, FO_OK);
    assert_eq!(unsafe { fo_sparse_adam_state_len(&opt, 6) }, 12);
    let mut p = [3.0f32, 3.0, 1.0, -2.0, 5.0, 5.0];
    let mut s = [7.0f32; 12];
    assert_eq!(
        unsafe { fo_sparse_adam_init_state(&opt, s.as_mut_ptr(), 12) },
        FO_OK
    );
    assert_eq!(s, [0.0; 12]);
    let idx = [1i64];
    let g = [2.0f32, -4.0, 0.0, 0.0]; // room for the `dim = 4` error case's values
    let step = |p: &mut [f32; 6], s: &mut [f32; 12], idx: &[i64], dim: usize, t: u64| unsafe {
        fo_sparse_adam_step(
            &opt,
            t,
            p.as_mut_ptr(),
            6,
            dim,
            idx.as_ptr(),
            idx.len(),
            g.as_ptr(),
            s.as_mut_ptr(),
            12,
        )
    };
    assert_eq!(step(&mut p, &mut s, &idx, 2, 1), FO_OK);
    assert_eq!(
        p,
        [
            3.0,
            3.0,
            1.0 + (1.0 / 1.25) * -0.5,
            -2.0 + (-2.0 / 2.25) * -0.5,
            5.0,
            5.0
        ]
    );
    assert_eq!(
        s,
        [0.0, 0.0, 1.0, -2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 4.0, 0.0, 0.0]
    );
    let (p1, s1) = (p, s);
    assert_eq!(step(&mut p, &mut s, &[3], 2, 2), FO_ERR_INDEX);
    assert_eq!(step(&mut p, &mut s, &[-1], 2, 2), FO_ERR_INDEX);
    assert_eq!(step(&mut p, &mut s, &[1], 4, 2), FO_ERR_LENGTH);
    assert_eq!(step(&mut p, &mut s, &[1], 0, 2), FO_ERR_INVALID_COMBINATION);
    assert_eq!(step(&mut p, &mut s, &[1], 2, 0), FO_ERR_INVALID_STEP);
    let bad = FoSparseAdam { lr: 0.0, ..opt };
    assert_eq!(
        unsafe { fo_sparse_adam_validate(&bad) },
        FO_ERR_INVALID_HYPERPARAMETER
    );
    assert_eq!(
        unsafe { fo_sparse_adam_validate(core::ptr::null()) },
        FO_ERR_POINTER
    );
    // The table as its own state: overlapping buffers.
    let r = unsafe {
        fo_sparse_adam_step(
            &opt,
            2,
            p.as_mut_ptr(),
            6,
            2,
            idx.as_ptr(),
            1,
            g.as_ptr(),
            p.as_mut_ptr(),
            12,
        )
    };
    assert_eq!(r, FO_ERR_OVERLAP);
    assert_eq!((p, s), (p1, s1));
    let d = fo_sparse_adam_default();
    assert_eq!(
        (d.lr, d.beta1, d.beta2, d.eps, d.maximize),
        (1e-3, 0.9, 0.999, 1e-8, 0)
    );
}
