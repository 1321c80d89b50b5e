//! Backend selection. This module (with `x86.rs` below it) is the only place in the crate that
//! contains `unsafe` code: CPU feature detection and the x86 intrinsics.
#![allow(
    unsafe_code,
    reason = "runtime dispatch to AVX2/AVX-512F needs intrinsics"
)]

use core::fmt;

use crate::Error;
use crate::kernel::{Elem, Fold, Kernel, drive, drive_fold, drive_fold_mut};
use crate::lane::{Lane, PortableLane};

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
/// | [`Portable`](Backend::Portable) | `wide::f32x8`: SSE2 on x86_64, NEON on aarch64, simd128 on wasm; the scalar loop where wide has no SIMD | everywhere; chosen at compile time |
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
#[non_exhaustive]
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

/// Work written once, generic over the lane type; [`with_backend`] chooses the lane.
pub(crate) trait LaneJob {
    /// What the job returns.
    type Output;
    /// Runs the job with lane type `L`.
    fn run<L: Lane>(self) -> Self::Output;
}

/// Runs `job` on `backend`: the one place that maps a backend to a lane type and, on x86_64,
/// enters the target-feature functions.
#[inline]
pub(crate) fn with_backend<J: LaneJob>(backend: Backend, job: J) -> Result<J::Output, Error> {
    match backend {
        Backend::Scalar => Ok(job.run::<f32>()),
        Backend::Portable => Ok(job.run::<PortableLane>()),
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 if x86::has_avx2() => {
            // SAFETY: AVX2 support was just confirmed by CPUID/XGETBV.
            Ok(unsafe { x86::with_avx2(job) })
        }
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 if x86::has_avx512() => {
            // SAFETY: AVX-512F support was just confirmed by CPUID/XGETBV.
            Ok(unsafe { x86::with_avx512(job) })
        }
        Backend::Avx2 | Backend::Avx512 => Err(Error::BackendUnavailable(backend)),
    }
}

/// [`drive`] as a job.
struct Drive<'a, 'k, K, const S: usize, P, G, T> {
    k: &'k K,
    p: &'a mut [P],
    g: &'a [G],
    s: [&'a mut [T]; S],
}

impl<K: Kernel<S>, const S: usize, P: Elem, G: Elem, T: Elem> LaneJob
    for Drive<'_, '_, K, S, P, G, T>
{
    type Output = ();
    #[inline(always)]
    fn run<L: Lane>(self) {
        drive::<L, K, S, P, G, T>(self.k, self.p, self.g, self.s);
    }
}

/// Runs kernel `k` over buffers whose lengths the caller has already checked to be equal, each
/// stored as `f32`, bf16 or f16.
#[inline]
pub(crate) fn run<K: Kernel<S>, const S: usize, P: Elem, G: Elem, T: Elem>(
    backend: Backend,
    k: &K,
    p: &mut [P],
    g: &[G],
    s: [&mut [T]; S],
) -> Result<(), Error> {
    with_backend(backend, Drive { k, p, g, s })
}

/// [`drive_fold_mut`] as a job.
struct FoldMut<'a, 'k, K> {
    k: &'k K,
    x: &'a mut [f32],
    acc: f32,
}

impl<K: Fold> LaneJob for FoldMut<'_, '_, K> {
    type Output = f32;
    #[inline(always)]
    fn run<L: Lane>(self) -> f32 {
        drive_fold_mut::<L, K>(self.k, self.x, self.acc)
    }
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
    with_backend(backend, FoldMut { k, x, acc })
}

/// [`drive_fold`] as a job.
struct FoldRead<'a, 'k, K> {
    k: &'k K,
    x: &'a [f32],
    acc: f32,
}

impl<K: Fold> LaneJob for FoldRead<'_, '_, K> {
    type Output = f32;
    #[inline(always)]
    fn run<L: Lane>(self) -> f32 {
        drive_fold::<L, K>(self.k, self.x, self.acc)
    }
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
    with_backend(backend, FoldRead { k, x, acc })
}

/// Correctly rounded `f32` square root for the scalar lane.
///
/// On hard-float Arm (Cortex-M4F/M7, armv7 eabihf) this is the FPU's `VSQRT.F32`, which IEEE 754
/// requires to be correctly rounded; `libm::sqrtf` would run a software routine there. Elsewhere
/// `libm::sqrtf` is exact and already uses the hardware instruction where it has one.
#[inline(always)]
pub(crate) fn sqrt_f32(x: f32) -> f32 {
    #[cfg(all(target_arch = "arm", target_abi = "eabihf"))]
    {
        let bits: u32;
        // SAFETY: eabihf targets have a VFP unit with VSQRT.F32. The block only reads and
        // writes the named integer registers and s0, which it saves and restores, touches no
        // memory, no stack and no flags. (s0 is used through integer moves because Rust only
        // offers the `sreg` class with the double-precision `vfp2` feature.)
        unsafe {
            core::arch::asm!(
                "vmov {saved}, s0",
                "vmov s0, {x}",
                "vsqrt.f32 s0, s0",
                "vmov {r}, s0",
                "vmov s0, {saved}",
                x = in(reg) x.to_bits(),
                r = lateout(reg) bits,
                saved = out(reg) _,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        f32::from_bits(bits)
    }
    #[cfg(not(all(target_arch = "arm", target_abi = "eabihf")))]
    {
        libm::sqrtf(x)
    }
}
