//! Bare-metal runtime pieces: semihosting output and exit, a text line without `core::fmt`,
//! stack painting, the footprint harness, and the panic handler that makes any panic path a
//! link error.
//!
//! Nothing here uses `core::fmt`: its machinery contains panic paths of its own, which would
//! hide whether the optimizer kernels have any.
#![allow(
    unsafe_code,
    reason = "semihosting and stack painting need inline assembly"
)]

use core::arch::asm;
use core::panic::PanicInfo;

use fused_optim::{
    Grads, Optimizer, Params, SparseAdam, SparseGrad, State, StateFormat, StepPlan, bf16,
};

use crate::{MAX_PLANES, N, param0};

/// The panic handler refers to a symbol that no object defines. Release builds with LTO drop
/// the handler when nothing can reach it; if any panic path survives (a bounds check, an
/// `unwrap`, an overflow check, a `core::fmt` call), the linker reports this name as undefined
/// and the build fails.
#[cfg(not(feature = "locate-panics"))]
#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    unsafe extern "C" {
        fn fused_optim_firmware_has_a_panic_path() -> !;
    }
    // SAFETY: never runs: the symbol is undefined, so a firmware that could call this does not
    // link at all.
    unsafe { fused_optim_firmware_has_a_panic_path() }
}

/// With `locate-panics` the handler is an ordinary endless loop, so that a build with a panic
/// path links and the calls into `core::panicking` can be found in the disassembly (the CI
/// script does this when the panic check fails, and prints file and line of each).
#[cfg(feature = "locate-panics")]
#[panic_handler]
fn panic(_: &PanicInfo<'_>) -> ! {
    exit(false)
}

const SYS_WRITE0: usize = 0x04;
const SYS_EXIT: usize = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: usize = 0x2_0026;
const ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN: usize = 0x2_0023;

/// One ARM semihosting call (`BKPT 0xAB`, operation in r0, argument in r1).
///
/// # Safety
/// `arg` must be what operation `op` expects (for SYS_WRITE0, a NUL-terminated string).
#[cfg(target_arch = "arm")]
#[inline(always)]
unsafe fn semihost(op: usize, arg: usize) -> usize {
    let ret;
    // SAFETY: the debugger (here QEMU) services the breakpoint; the caller vouches for `arg`.
    unsafe { asm!("bkpt #0xab", inout("r0") op => ret, in("r1") arg, options(nostack)) };
    ret
}

/// One RISC-V semihosting call: `ebreak` between the two marker instructions the RISC-V
/// semihosting specification defines (`slli x0, x0, 0x1f` before, `srai x0, x0, 7` after, all
/// three uncompressed and in one page), operation in a0, argument in a1.
///
/// # Safety
/// `arg` must be what operation `op` expects (for SYS_WRITE0, a NUL-terminated string).
#[cfg(target_arch = "riscv32")]
#[inline(always)]
unsafe fn semihost(op: usize, arg: usize) -> usize {
    let ret;
    // SAFETY: the debugger (here QEMU) services the marked breakpoint; the caller vouches for
    // `arg`. The 16-byte alignment keeps the three instructions in one page.
    unsafe {
        asm!(
            ".option push",
            ".option norvc",
            ".balign 16",
            "slli x0, x0, 0x1f",
            "ebreak",
            "srai x0, x0, 7",
            ".option pop",
            inout("a0") op => ret,
            in("a1") arg,
            options(nostack)
        )
    };
    ret
}

/// Makes `main` (a `fn() -> !`) the firmware's entry point: cortex-m-rt's `entry` on the
/// Cortex-M, the symbol that [`crate::rt_riscv`]'s start-up code calls on RISC-V.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[cfg(target_arch = "arm")]
        #[::cortex_m_rt::entry]
        fn cortex_m_entry() -> ! {
            $main()
        }

        #[cfg(target_arch = "riscv32")]
        #[unsafe(no_mangle)]
        extern "C" fn fused_optim_firmware_entry() -> ! {
            $main()
        }
    };
}

/// Ends the program: QEMU exits with status 0 when `ok`, 1 otherwise.
pub fn exit(ok: bool) -> ! {
    let reason = if ok {
        ADP_STOPPED_APPLICATION_EXIT
    } else {
        ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN
    };
    // SAFETY: on 32-bit ARM and RV32, SYS_EXIT takes the reason code itself as its argument.
    unsafe { semihost(SYS_EXIT, reason) };
    #[allow(clippy::empty_loop)]
    loop {}
}

/// A line of text built without `core::fmt`, printed through semihosting. Text that does not
/// fit is cut, never a panic.
#[derive(Debug)]
pub struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }
}

impl Line {
    fn byte(&mut self, b: u8) -> &mut Self {
        // Keep two bytes for the newline and the terminating NUL.
        let len = self.len;
        if len < self.buf.len() - 2
            && let Some(slot) = self.buf.get_mut(len)
        {
            *slot = b;
            self.len = len + 1;
        }
        self
    }

    /// Appends text.
    pub fn str(&mut self, s: &str) -> &mut Self {
        for b in s.bytes() {
            self.byte(b);
        }
        self
    }

    /// Appends `x` in decimal.
    pub fn dec(&mut self, x: usize) -> &mut Self {
        // Least significant digit first; a usize has at most 20.
        let mut digits = [0u8; 20];
        let mut x = x;
        let mut count = 0;
        for (k, d) in digits.iter_mut().enumerate() {
            *d = b'0' + (x % 10) as u8;
            x /= 10;
            count = k;
            if x == 0 {
                break;
            }
        }
        for d in digits.iter().take(count.saturating_add(1)).rev() {
            self.byte(*d);
        }
        self
    }

    /// Appends `x` as `0x` and eight hex digits.
    pub fn hex(&mut self, x: u32) -> &mut Self {
        self.str("0x");
        for shift in (0..8).rev() {
            let d = ((x >> (4 * shift)) & 0xf) as u8;
            self.byte(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        }
        self
    }

    /// Prints the line (with a newline) and clears it.
    pub fn print(&mut self) {
        self.byte(b'\n');
        if let Some(end) = self.buf.get_mut(self.len) {
            *end = 0;
        }
        // SAFETY: the buffer is NUL-terminated (a byte is always kept free for it).
        unsafe { semihost(SYS_WRITE0, self.buf.as_ptr() as usize) };
        self.len = 0;
    }
}

/// The stack pointer.
#[inline(always)]
pub fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register, touches no memory.
    #[cfg(target_arch = "arm")]
    unsafe {
        asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: as above.
    #[cfg(target_arch = "riscv32")]
    unsafe {
        asm!("mv {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

const PAINT: u32 = 0xC5AC_CE55;

/// Fills the `bytes` below `sp` (the caller's stack pointer) with a pattern. The stack grows
/// down from the top of RAM and nothing lives below the stack pointer on Cortex-M or RISC-V
/// (no red zone in either ABI, no interrupts enabled here), so this region is free.
#[inline(always)]
pub fn paint_stack(sp: usize, bytes: usize) {
    let mut a = sp.saturating_sub(bytes);
    while a < sp {
        // SAFETY: free stack below the stack pointer (see above), word aligned.
        unsafe { core::ptr::write_volatile(a as *mut u32, PAINT) };
        a = a.wrapping_add(4); // a < sp, both word aligned: no wrap
    }
}

/// How many bytes below `sp` were written since [`paint_stack`]: the deepest word that no
/// longer holds the pattern.
#[inline(always)]
pub fn stack_used(sp: usize, bytes: usize) -> usize {
    let mut a = sp.saturating_sub(bytes);
    while a < sp {
        // SAFETY: the same region `paint_stack` wrote; callees have returned.
        if unsafe { core::ptr::read_volatile(a as *const u32) } != PAINT {
            return sp.wrapping_sub(a); // a < sp
        }
        a = a.wrapping_add(4); // a < sp, both word aligned: no wrap
    }
    0
}

/// The tensor length, read with a volatile load so that the compiler cannot know it.
static LEN: usize = N;

/// `N`, through a volatile read: a run-time length as far as the optimizer can tell.
#[inline(always)]
pub fn runtime_len() -> usize {
    // SAFETY: a plain read of an initialised static.
    unsafe { core::ptr::read_volatile(&LEN) }
}

/// One full step through the public API, as an application calls it: plan, then apply on the
/// best backend.
#[inline(never)]
fn one_step<O: Optimizer>(
    opt: &O,
    step: u64,
    n: usize,
    p: &mut [f32; N],
    g: &[f32; N],
    s: &mut [f32; N * MAX_PLANES],
) -> bool {
    let (Some(p), Some(g), Some(s)) = (p.get_mut(..n), g.get(..n), s.get_mut(..opt.state_len(n)))
    else {
        return false;
    };
    match opt.plan(step, &O::Scalars::default()) {
        Ok(plan) => plan.apply(p, g, s).is_ok(),
        Err(_) => false,
    }
}

/// Links the f64 routines that the per-step scalars of every optimizer with bias corrections
/// share (`libm::pow`, `libm::sqrt`, soft-float add, multiply, divide, compare and conversions),
/// so that in a `footprint-runtime` build the size of a step counts the optimizer's own code.
#[cfg(feature = "footprint-runtime")]
#[inline(never)]
fn link_f64_runtime() {
    use core::hint::black_box;
    let (a, b) = (black_box(0.999f64), black_box(7.0f64));
    let r = libm::pow(a, b) + libm::sqrt(a) * (a / b) - a;
    let r = if r < b && r > 0.0 { r } else { b };
    black_box(r as f32);
    black_box(f64::from(black_box(1.5f32)) + black_box(3u64) as f64);
}

/// Bytes of stack painted before a measured step (a step that reaches the bottom fails the
/// harness: the measurement would be a lower bound only).
const PAINT_BYTES: usize = 16 * 1024;

/// The footprint harness: two steps of the optimizer `config` (passed through a volatile
/// load, so every option stays compiled in), on a run-time length; prints the stack the steps
/// used and exits. With `None`, does everything but the step: the baseline for flash sizes.
#[inline(always)] // so that the baseline's `None` removes the step entirely
pub fn footprint<O: Optimizer>(name: &str, config: Option<O>) -> ! {
    #[cfg(feature = "footprint-runtime")]
    link_f64_runtime();
    let n = runtime_len();
    let mut p = [0.0f32; N];
    let mut g = [0.0f32; N];
    let mut s = [0.0f32; N * MAX_PLANES];
    for (i, (p, g)) in (0..N).zip(p.iter_mut().zip(g.iter_mut())) {
        *p = param0(i);
        *g = crate::grad(i, 0);
    }
    let mut ok = true;
    let sp = stack_pointer();
    paint_stack(sp, PAINT_BYTES);
    if let Some(config) = config {
        // SAFETY: a plain read of a local holding a valid value of a `Copy` type.
        let opt = unsafe { core::ptr::read_volatile(&config) };
        ok = opt.init_state(s.get_mut(..opt.state_len(n)).unwrap_or_default()).is_ok()
            && one_step(&opt, 1, n, &mut p, &g, &mut s)
            && one_step(&opt, 2, n, &mut p, &g, &mut s);
    }
    let used = stack_used(sp, PAINT_BYTES);
    report(name, used, ok)
}

/// One SparseAdam step on rows 0 and 2 of a 3-row table of `dim` values: plan, then `apply`
/// (best backend).
#[inline(never)]
fn one_sparse_step(
    opt: &SparseAdam,
    step: u64,
    dim: usize,
    p: &mut [f32; 3 * N],
    g: &[f32; 2 * N],
    s: &mut [f32; 6 * N],
) -> bool {
    let (Some(p), Some(g), Some(s)) = (
        p.get_mut(..dim.wrapping_mul(3)),
        g.get(..dim.wrapping_mul(2)),
        s.get_mut(..dim.wrapping_mul(6)),
    ) else {
        return false;
    };
    match opt.plan(step) {
        Ok(plan) => plan
            .apply(p, SparseGrad::new(dim, &[0u32, 2], g), s)
            .is_ok(),
        Err(_) => false,
    }
}

/// The footprint harness for SparseAdam: two steps of `config` (read through a volatile load)
/// on two rows of a 3-row table whose row length is the run-time length, the stack they used,
/// then exit. Subtract `footprint_none` as for the `f32` harness.
#[inline(always)]
pub fn footprint_sparse(name: &str, config: Option<SparseAdam>) -> ! {
    #[cfg(feature = "footprint-runtime")]
    link_f64_runtime();
    let dim = runtime_len();
    let mut p = [0.0f32; 3 * N];
    let mut g = [0.0f32; 2 * N];
    let mut s = [0.0f32; 6 * N];
    for (i, p) in (0..3 * N).zip(p.iter_mut()) {
        *p = param0(i);
    }
    for (i, g) in (0..2 * N).zip(g.iter_mut()) {
        *g = crate::grad(i, 0);
    }
    let mut ok = true;
    let sp = stack_pointer();
    paint_stack(sp, PAINT_BYTES);
    if let Some(config) = config {
        // SAFETY: a plain read of a local holding a valid value of a `Copy` type.
        let opt = unsafe { core::ptr::read_volatile(&config) };
        ok = one_sparse_step(&opt, 1, dim, &mut p, &g, &mut s)
            && one_sparse_step(&opt, 2, dim, &mut p, &g, &mut s);
    }
    let used = stack_used(sp, PAINT_BYTES);
    report(name, used, ok)
}

/// Prints the footprint line and exits.
fn report(name: &str, used: usize, ok: bool) -> ! {
    let ok = ok && used < PAINT_BYTES;
    Line::default()
        .str("footprint ")
        .str(name)
        .str(": stack ")
        .dec(used)
        .str(" bytes, ")
        .str(if ok { "steps ok" } else { "steps FAILED" })
        .print();
    exit(ok)
}

/// Tensor length of the storage-format footprint: two blocks of 256 values, two tiles of the
/// staged driver.
const N_FORMATS: usize = 512;

/// The storage-format tensor length, through a volatile read.
static LEN_FORMATS: usize = N_FORMATS;

/// One step of `opt` with bf16 parameters (stochastic rounding), bf16 gradients and 8-bit
/// state, as an application calls it: plan, then `apply_to` (best backend).
#[inline(never)]
#[allow(
    clippy::too_many_arguments,
    reason = "the harness's buffers, passed as they are"
)]
fn one_step_bf16_sr_int8<O: Optimizer>(
    opt: &O,
    step: u64,
    n: usize,
    seed: u64,
    p: &mut [bf16; N_FORMATS],
    g: &[bf16; N_FORMATS],
    codes: &mut [u8; N_FORMATS * MAX_PLANES],
    scales: &mut [f32; 2 * MAX_PLANES],
) -> bool {
    let layout = StateFormat::Int8.layout(opt.state_len(1), n);
    let (Some(p), Some(g), Some(codes), Some(scales)) = (
        p.get_mut(..n),
        g.get(..n),
        codes.get_mut(..layout.codes),
        scales.get_mut(..layout.scales),
    ) else {
        return false;
    };
    match opt.plan(step, &O::Scalars::default()) {
        Ok(plan) => plan
            .apply_to(
                Params::Bf16Stochastic { params: p, seed },
                Grads::Bf16(g),
                State::Int8 { codes, scales },
            )
            .is_ok(),
        Err(_) => false,
    }
}

/// The footprint harness for 8-bit state and bf16 parameters with stochastic rounding: two
/// steps of `config` (read through a volatile load) on 512 values (a run-time length), the
/// stack they used, then exit. Subtract `footprint_none` as for the `f32` harness.
#[inline(always)]
pub fn footprint_bf16_sr_int8<O: Optimizer>(name: &str, config: O) -> ! {
    #[cfg(feature = "footprint-runtime")]
    link_f64_runtime();
    // SAFETY: a plain read of an initialised static.
    let n = unsafe { core::ptr::read_volatile(&LEN_FORMATS) };
    let mut p = [bf16::ZERO; N_FORMATS];
    let mut g = [bf16::ZERO; N_FORMATS];
    let mut codes = [0u8; N_FORMATS * MAX_PLANES];
    let mut scales = [0.0f32; 2 * MAX_PLANES];
    for (i, (p, g)) in (0..N_FORMATS).zip(p.iter_mut().zip(g.iter_mut())) {
        // Inputs from bit patterns (no conversion code in the harness): p in [1, 2), g in
        // [1/64, 1/32) with alternating signs.
        *p = bf16::from_bits(0x3f80 | (i % 128) as u16);
        *g = bf16::from_bits(0x3c80 | (i % 128) as u16 | (((i % 2) as u16) << 15));
    }
    let sp = stack_pointer();
    paint_stack(sp, PAINT_BYTES);
    // SAFETY: a plain read of a local holding a valid value of a `Copy` type.
    let opt = unsafe { core::ptr::read_volatile(&config) };
    // SAFETY: as above.
    let seed = unsafe { core::ptr::read_volatile(&0x5eedu64) };
    let ok = one_step_bf16_sr_int8(&opt, 1, n, seed, &mut p, &g, &mut codes, &mut scales)
        && one_step_bf16_sr_int8(&opt, 2, n, seed, &mut p, &g, &mut codes, &mut scales);
    let used = stack_used(sp, PAINT_BYTES);
    report(name, used, ok)
}
