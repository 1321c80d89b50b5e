//! Backend selection. This module (with `x86.rs` below it) is the only place in the crate that
//! contains `unsafe` code: CPU feature detection and the x86 intrinsics.
#![allow(
    unsafe_code,
    reason = "runtime dispatch to AVX2/AVX-512F needs intrinsics"
)]

use core::fmt;

use crate::Error;
use crate::kernel::{Fold, Kernel, drive, drive_fold, drive_fold_mut};

#[cfg(target_arch = "x86_64")]
mod x86;

/// A code path that runs the kernels. Every backend gives results identical to the bit.
///
/// Plans run on [`Backend::best`] unless a backend is named with an `apply_on`-style method.
/// Forcing a backend is meant for tests, benchmarks and for reproducing a result on the scalar
/// reference; it never changes the numbers, only the speed.
///
/// | backend | registers | where |
/// |---|---|---|
/// | [`Scalar`](Backend::Scalar) | one `f32` at a time | everywhere; the reference |
/// | [`Portable`](Backend::Portable) | `wide::f32x8`: SSE2 on x86_64, NEON on aarch64, simd128 on wasm, plain arrays elsewhere | everywhere; chosen at compile time |
/// | [`Avx2`](Backend::Avx2) | 256-bit AVX | x86_64, detected at run time |
/// | [`Avx512`](Backend::Avx512) | 512-bit AVX-512F | x86_64, detected at run time |
///
/// Detection runs CPUID once and caches the answer; it works without `std`.
///
/// # Example
/// ```
/// use fused_optim::Backend;
/// assert!(Backend::Scalar.is_available());
/// assert!(Backend::best().is_available());
/// for b in Backend::available() {
///     println!("{b}");
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The scalar reference: the kernel body on one `f32` at a time, `libm::sqrtf` for √.
    Scalar,
    /// `wide::f32x8`, vectorised with whatever SIMD the build targets at compile time.
    Portable,
    /// x86_64 AVX2 (256-bit), selected at run time.
    Avx2,
    /// x86_64 AVX-512F (512-bit), selected at run time.
    Avx512,
}

impl Backend {
    /// Every backend this crate knows, available here or not, slowest first.
    pub const ALL: [Backend; 4] = [
        Backend::Scalar,
        Backend::Portable,
        Backend::Avx2,
        Backend::Avx512,
    ];

    /// A short lowercase name: `scalar`, `portable`, `avx2`, `avx512`.
    ///
    /// ```
    /// assert_eq!(fused_optim::Backend::Avx512.name(), "avx512");
    /// ```
    #[inline]
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Portable => "portable",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
        }
    }

    /// Whether this CPU (and build) can run the backend.
    ///
    /// ```
    /// use fused_optim::Backend;
    /// assert!(Backend::Portable.is_available());
    /// ```
    #[inline]
    pub fn is_available(self) -> bool {
        match self {
            Backend::Scalar | Backend::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => x86::has_avx512(),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Avx512 => false,
        }
    }

    /// The fastest available backend: AVX-512F, then AVX2, then portable.
    ///
    /// ```
    /// let b = fused_optim::Backend::best();
    /// assert!(b.is_available());
    /// ```
    #[inline]
    pub fn best() -> Backend {
        #[cfg(target_arch = "x86_64")]
        {
            if x86::has_avx512() {
                return Backend::Avx512;
            }
            if x86::has_avx2() {
                return Backend::Avx2;
            }
        }
        Backend::Portable
    }

    /// The backends this CPU can run, slowest first.
    ///
    /// ```
    /// let n = fused_optim::Backend::available().count();
    /// assert!(n >= 2); // scalar and portable are always there
    /// ```
    #[inline]
    pub fn available() -> impl Iterator<Item = Backend> {
        Backend::ALL.into_iter().filter(|b| b.is_available())
    }
}

impl fmt::Display for Backend {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs kernel `k` over buffers whose lengths the caller has already checked to be equal.
#[inline]
pub(crate) fn run<K: Kernel<S>, const S: usize>(
    backend: Backend,
    k: &K,
    p: &mut [f32],
    g: &[f32],
    s: [&mut [f32]; S],
) -> Result<(), Error> {
    match backend {
        Backend::Scalar => drive::<f32, K, S>(k, p, g, s),
        Backend::Portable => drive::<wide::f32x8, K, S>(k, p, g, s),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 if x86::has_avx2() => {
            // SAFETY: AVX2 support was just confirmed by CPUID/XGETBV.
            unsafe { x86::run_avx2(k, p, g, s) }
        }
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 if x86::has_avx512() => {
            // SAFETY: AVX-512F support was just confirmed by CPUID/XGETBV.
            unsafe { x86::run_avx512(k, p, g, s) }
        }
        Backend::Avx2 | Backend::Avx512 => return Err(Error::BackendUnavailable(backend)),
    }
    Ok(())
}

/// Runs the in-place fold `k` over `x` (see [`Fold`]) and returns the accumulator combined
/// with `acc`.
#[inline]
pub(crate) fn run_fold_mut<K: Fold>(
    backend: Backend,
    k: &K,
    x: &mut [f32],
    acc: f32,
) -> Result<f32, Error> {
    Ok(match backend {
        Backend::Scalar => drive_fold_mut::<f32, K>(k, x, acc),
        Backend::Portable => drive_fold_mut::<wide::f32x8, K>(k, x, acc),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 if x86::has_avx2() => {
            // SAFETY: AVX2 support was just confirmed by CPUID/XGETBV.
            unsafe { x86::fold_mut_avx2(k, x, acc) }
        }
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 if x86::has_avx512() => {
            // SAFETY: AVX-512F support was just confirmed by CPUID/XGETBV.
            unsafe { x86::fold_mut_avx512(k, x, acc) }
        }
        Backend::Avx2 | Backend::Avx512 => return Err(Error::BackendUnavailable(backend)),
    })
}

/// Runs the read-only fold `k` over `x` (see [`Fold`]) and returns the accumulator combined
/// with `acc`.
#[inline]
pub(crate) fn run_fold<K: Fold>(
    backend: Backend,
    k: &K,
    x: &[f32],
    acc: f32,
) -> Result<f32, Error> {
    Ok(match backend {
        Backend::Scalar => drive_fold::<f32, K>(k, x, acc),
        Backend::Portable => drive_fold::<wide::f32x8, K>(k, x, acc),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 if x86::has_avx2() => {
            // SAFETY: AVX2 support was just confirmed by CPUID/XGETBV.
            unsafe { x86::fold_avx2(k, x, acc) }
        }
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 if x86::has_avx512() => {
            // SAFETY: AVX-512F support was just confirmed by CPUID/XGETBV.
            unsafe { x86::fold_avx512(k, x, acc) }
        }
        Backend::Avx2 | Backend::Avx512 => return Err(Error::BackendUnavailable(backend)),
    })
}
