//! Cutting one tensor's step into disjoint pieces, for several cores or any executor.
//!
//! Optimizer state lives plane after plane in the caller's buffers (`m` for the whole tensor,
//! then `v`), so a piece of a tensor owns a sub-slice of every plane: [`StatePlanes`]. A
//! [`TensorStep`] holds one piece (parameters, gradients, state planes, and where the piece
//! starts in the whole tensor) and splits at block-aligned points. Every element sees the same
//! arithmetic whatever the split (the crate's chunk invariance), and stochastic rounding is keyed
//! by the absolute index, so any split on any number of threads gives the same bits.

use super::{BlockKind, Grads, Params, State, StateFormat, StateLayout, bf16, f16};
use crate::{Backend, Error, StepPlan};

/// The most state planes an optimizer has (Adam with AMSGrad, centered RMSprop with momentum).
pub(crate) const MAX_PLANES: usize = 3;

/// One piece of a tensor's optimizer state, plane by plane: each plane's values, or codes and
/// block scales, for the piece's elements. Made by [`TensorStep`] (it cuts the plane-after-plane
/// buffers of a [`State`]); passed back as [`State::Planes`].
#[derive(Debug)]
pub struct StatePlanes<'a> {
    /// Elements per plane.
    len: usize,
    /// Planes in use (the rest are empty).
    count: usize,
    pub(super) inner: PlanesInner<'a>,
}

/// The planes, by format.
#[derive(Debug)]
pub(super) enum PlanesInner<'a> {
    F32([&'a mut [f32]; MAX_PLANES]),
    Bf16([&'a mut [bf16]; MAX_PLANES]),
    F16([&'a mut [f16]; MAX_PLANES]),
    Block {
        kind: BlockKind,
        codes: [&'a mut [u8]; MAX_PLANES],
        scales: [&'a mut [f32]; MAX_PLANES],
    },
}

/// `count` consecutive pieces of `each` values from `buf` (the caller checked the length),
/// then empty ones.
fn cut<T>(buf: &mut [T], count: usize, each: usize) -> [&mut [T]; MAX_PLANES] {
    let mut rest = buf;
    let mut k = 0usize;
    core::array::from_fn(|_| {
        k = k.wrapping_add(1);
        if k > count {
            return <&mut [T]>::default();
        }
        let (head, tail) = core::mem::take(&mut rest)
            .split_at_mut_checked(each)
            .unwrap_or_default();
        rest = tail;
        head
    })
}

/// Splits every plane at `mid` (clamped to each plane's length).
fn split_planes<T>(
    planes: [&mut [T]; MAX_PLANES],
    mid: usize,
) -> ([&mut [T]; MAX_PLANES], [&mut [T]; MAX_PLANES]) {
    let mut right: [&mut [T]; MAX_PLANES] = core::array::from_fn(|_| <&mut [T]>::default());
    let mut k = 0usize;
    let left = planes.map(|p| {
        let (a, b) = p.split_at_mut(mid.min(p.len()));
        if let Some(r) = right.get_mut(k) {
            *r = b;
        }
        k = k.wrapping_add(1);
        a
    });
    (left, right)
}

impl<'a> StatePlanes<'a> {
    /// Cuts a whole tensor's state (`planes` planes of `n` values) into its planes, after
    /// checking every buffer's length.
    pub(super) fn of(state: State<'a>, planes: usize, n: usize) -> Result<Self, Error> {
        if let State::Planes(p) = state {
            return if p.count == planes && p.len == n {
                Ok(p)
            } else if p.count != planes {
                Err(Error::LengthMismatch {
                    what: "state planes",
                    expected: planes,
                    actual: p.count,
                })
            } else {
                Err(Error::LengthMismatch {
                    what: "state",
                    expected: n,
                    actual: p.len,
                })
            };
        }
        if planes > MAX_PLANES {
            return Err(Error::LengthMismatch {
                what: "state planes",
                expected: MAX_PLANES,
                actual: planes,
            });
        }
        let format = state.format();
        let want = format.layout(planes, n);
        let have = state.layout();
        for (what, expected, actual) in [
            ("state", want.values, have.values),
            ("state codes", want.codes, have.codes),
            ("state scales", want.scales, have.scales),
        ] {
            if expected != actual {
                return Err(Error::LengthMismatch {
                    what,
                    expected,
                    actual,
                });
            }
        }
        let plane: StateLayout = format.layout(usize::from(planes > 0), n);
        let block = |kind, codes: &'a mut [u8], scales: &'a mut [f32]| PlanesInner::Block {
            kind,
            codes: cut(codes, planes, plane.codes),
            scales: cut(scales, planes, plane.scales),
        };
        let inner = match state {
            State::F32(v) => PlanesInner::F32(cut(v, planes, n)),
            State::Bf16(v) => PlanesInner::Bf16(cut(v, planes, n)),
            State::F16(v) => PlanesInner::F16(cut(v, planes, n)),
            State::Int8 { codes, scales } => block(BlockKind::Int8, codes, scales),
            State::Int4 { codes, scales } => block(BlockKind::Int4, codes, scales),
            State::Fp8 { codes, scales } => block(BlockKind::Fp8, codes, scales),
            State::Planes(p) => p.inner,
        };
        Ok(StatePlanes {
            len: n,
            count: planes,
            inner,
        })
    }

    /// The storage format.
    #[inline]
    #[must_use]
    pub fn format(&self) -> StateFormat {
        match &self.inner {
            PlanesInner::F32(_) => StateFormat::F32,
            PlanesInner::Bf16(_) => StateFormat::Bf16,
            PlanesInner::F16(_) => StateFormat::F16,
            PlanesInner::Block { kind, .. } => match kind {
                BlockKind::Int8 => StateFormat::Int8,
                BlockKind::Int4 => StateFormat::Int4,
                BlockKind::Fp8 => StateFormat::Fp8,
            },
        }
    }

    /// Elements per plane.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the planes hold no element.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of planes.
    #[inline]
    #[must_use]
    pub fn planes(&self) -> usize {
        self.count
    }

    /// The planes of the first `S`.
    pub(super) fn first<const S: usize>(self) -> PlanesInnerS<'a, S> {
        fn take<T, const S: usize>(a: [&mut [T]; MAX_PLANES]) -> [&mut [T]; S] {
            let mut it = a.into_iter();
            core::array::from_fn(|_| it.next().unwrap_or_default())
        }
        match self.inner {
            PlanesInner::F32(v) => PlanesInnerS::F32(take(v)),
            PlanesInner::Bf16(v) => PlanesInnerS::Bf16(take(v)),
            PlanesInner::F16(v) => PlanesInnerS::F16(take(v)),
            PlanesInner::Block {
                kind,
                codes,
                scales,
            } => PlanesInnerS::Block {
                kind,
                codes: take(codes),
                scales: take(scales),
            },
        }
    }

    /// Splits at element `mid`, a multiple of the format's block (checked by the caller).
    fn split_at(self, mid: usize) -> (Self, Self) {
        let mid = mid.min(self.len);
        let (l, r) = match self.inner {
            PlanesInner::F32(v) => {
                let (a, b) = split_planes(v, mid);
                (PlanesInner::F32(a), PlanesInner::F32(b))
            }
            PlanesInner::Bf16(v) => {
                let (a, b) = split_planes(v, mid);
                (PlanesInner::Bf16(a), PlanesInner::Bf16(b))
            }
            PlanesInner::F16(v) => {
                let (a, b) = split_planes(v, mid);
                (PlanesInner::F16(a), PlanesInner::F16(b))
            }
            PlanesInner::Block {
                kind,
                codes,
                scales,
            } => {
                // `mid` is a block boundary or the end; at the end a last partial block (and an
                // odd 4-bit code's byte) stays on the left.
                let code_mid = if kind == BlockKind::Int4 {
                    mid.div_ceil(2)
                } else {
                    mid
                };
                let (ca, cb) = split_planes(codes, code_mid);
                let (sa, sb) = split_planes(scales, mid.div_ceil(kind.size()));
                (
                    PlanesInner::Block {
                        kind,
                        codes: ca,
                        scales: sa,
                    },
                    PlanesInner::Block {
                        kind,
                        codes: cb,
                        scales: sb,
                    },
                )
            }
        };
        let count = self.count;
        (
            StatePlanes {
                len: mid,
                count,
                inner: l,
            },
            StatePlanes {
                len: self.len.wrapping_sub(mid),
                count,
                inner: r,
            },
        )
    }

    /// The same planes, borrowed for a shorter time.
    fn reborrow(&mut self) -> StatePlanes<'_> {
        fn re<'s, T>(a: &'s mut [&mut [T]; MAX_PLANES]) -> [&'s mut [T]; MAX_PLANES] {
            let mut it = a.iter_mut();
            core::array::from_fn(|_| match it.next() {
                Some(p) => &mut **p,
                None => <&mut [T]>::default(),
            })
        }
        let inner = match &mut self.inner {
            PlanesInner::F32(v) => PlanesInner::F32(re(v)),
            PlanesInner::Bf16(v) => PlanesInner::Bf16(re(v)),
            PlanesInner::F16(v) => PlanesInner::F16(re(v)),
            PlanesInner::Block {
                kind,
                codes,
                scales,
            } => PlanesInner::Block {
                kind: *kind,
                codes: re(codes),
                scales: re(scales),
            },
        };
        StatePlanes {
            len: self.len,
            count: self.count,
            inner,
        }
    }

    /// Every plane as in [`State::fill`].
    pub(super) fn fill(&mut self, value: f32) {
        let count = self.count;
        match &mut self.inner {
            PlanesInner::F32(v) => v
                .iter_mut()
                .take(count)
                .for_each(|p| State::F32(p).fill(value)),
            PlanesInner::Bf16(v) => {
                v.iter_mut()
                    .take(count)
                    .for_each(|p| State::Bf16(p).fill(value));
            }
            PlanesInner::F16(v) => v
                .iter_mut()
                .take(count)
                .for_each(|p| State::F16(p).fill(value)),
            PlanesInner::Block {
                kind,
                codes,
                scales,
            } => {
                for (c, s) in codes.iter_mut().zip(scales.iter_mut()).take(count) {
                    let mut one = match kind {
                        BlockKind::Int8 => State::Int8 {
                            codes: c,
                            scales: s,
                        },
                        BlockKind::Int4 => State::Int4 {
                            codes: c,
                            scales: s,
                        },
                        BlockKind::Fp8 => State::Fp8 {
                            codes: c,
                            scales: s,
                        },
                    };
                    one.fill(value);
                }
            }
        }
    }
}

impl StatePlanes<'_> {
    /// Plane `j` as in [`State::fill`] with `values[j]` (planes beyond `values` untouched).
    pub(super) fn fill_each(&mut self, values: &[f32]) {
        let count = self.count;
        match &mut self.inner {
            PlanesInner::F32(v) => {
                for (p, &x) in v.iter_mut().take(count).zip(values) {
                    State::F32(p).fill(x);
                }
            }
            PlanesInner::Bf16(v) => {
                for (p, &x) in v.iter_mut().take(count).zip(values) {
                    State::Bf16(p).fill(x);
                }
            }
            PlanesInner::F16(v) => {
                for (p, &x) in v.iter_mut().take(count).zip(values) {
                    State::F16(p).fill(x);
                }
            }
            PlanesInner::Block {
                kind,
                codes,
                scales,
            } => {
                for ((c, s), &x) in codes
                    .iter_mut()
                    .zip(scales.iter_mut())
                    .take(count)
                    .zip(values)
                {
                    let mut one = match kind {
                        BlockKind::Int8 => State::Int8 {
                            codes: c,
                            scales: s,
                        },
                        BlockKind::Int4 => State::Int4 {
                            codes: c,
                            scales: s,
                        },
                        BlockKind::Fp8 => State::Fp8 {
                            codes: c,
                            scales: s,
                        },
                    };
                    one.fill(x);
                }
            }
        }
    }
}

/// The first `S` planes, by format (the form the drivers take).
pub(super) enum PlanesInnerS<'a, const S: usize> {
    F32([&'a mut [f32]; S]),
    Bf16([&'a mut [bf16]; S]),
    F16([&'a mut [f16]; S]),
    Block {
        kind: BlockKind,
        codes: [&'a mut [u8]; S],
        scales: [&'a mut [f32]; S],
    },
}

impl<'a> Params<'a> {
    /// Splits at element `mid` (clamped to the length).
    fn split_at(self, mid: usize) -> (Params<'a>, Params<'a>) {
        let mid = mid.min(self.len());
        match self {
            Params::F32(p) => {
                let (a, b) = p.split_at_mut(mid);
                (Params::F32(a), Params::F32(b))
            }
            Params::Bf16(p) => {
                let (a, b) = p.split_at_mut(mid);
                (Params::Bf16(a), Params::Bf16(b))
            }
            Params::F16(p) => {
                let (a, b) = p.split_at_mut(mid);
                (Params::F16(a), Params::F16(b))
            }
            Params::Bf16Stochastic { params, seed } => {
                let (a, b) = params.split_at_mut(mid);
                (
                    Params::Bf16Stochastic { params: a, seed },
                    Params::Bf16Stochastic { params: b, seed },
                )
            }
            Params::Bf16Kahan {
                params,
                compensation,
            } => {
                let (a, b) = params.split_at_mut(mid);
                let (c, d) = compensation.split_at_mut(mid.min(compensation.len()));
                (
                    Params::Bf16Kahan {
                        params: a,
                        compensation: c,
                    },
                    Params::Bf16Kahan {
                        params: b,
                        compensation: d,
                    },
                )
            }
        }
    }

    /// The same parameters, borrowed for a shorter time.
    fn reborrow(&mut self) -> Params<'_> {
        match self {
            Params::F32(p) => Params::F32(p),
            Params::Bf16(p) => Params::Bf16(p),
            Params::F16(p) => Params::F16(p),
            Params::Bf16Stochastic { params, seed } => Params::Bf16Stochastic {
                params,
                seed: *seed,
            },
            Params::Bf16Kahan {
                params,
                compensation,
            } => Params::Bf16Kahan {
                params,
                compensation,
            },
        }
    }

    /// Bytes per parameter.
    fn elem_bytes(&self) -> usize {
        match self {
            Params::F32(_) => 4,
            _ => 2,
        }
    }
}

impl<'a> Grads<'a> {
    /// Splits at element `mid` (clamped to the length).
    fn split_at(self, mid: usize) -> (Grads<'a>, Grads<'a>) {
        let mid = mid.min(self.len());
        match self {
            Grads::F32(g) => {
                let (a, b) = g.split_at(mid);
                (Grads::F32(a), Grads::F32(b))
            }
            Grads::Bf16(g) => {
                let (a, b) = g.split_at(mid);
                (Grads::Bf16(a), Grads::Bf16(b))
            }
            Grads::F16(g) => {
                let (a, b) = g.split_at(mid);
                (Grads::F16(a), Grads::F16(b))
            }
        }
    }
}

/// One tensor's step, or a piece of it, ready to hand to any executor: parameters, gradients
/// and state planes in any storage format, and where the piece starts in the whole tensor.
///
/// Build it for a whole tensor with [`TensorStep::new`], cut it with
/// [`split_at`](TensorStep::split_at) or [`pieces`](TensorStep::pieces), and run each piece
/// with [`apply`](TensorStep::apply) wherever you like: a second core of an MCU, an RTOS task,
/// `std::thread::scope`, a framework's pool. The pieces are disjoint borrows, so they can run
/// at the same time, and the result is the same, to the bit, as one
/// [`StepPlan::apply_to`] on the whole tensor.
///
/// ```
/// use fused_optim::{Adam, Backend, Grads, Params, State, TensorStep};
/// let adam = Adam::adamw();
/// let (mut p, g) = (vec![1.0f32; 10_000], vec![0.5f32; 10_000]);
/// let mut s = vec![0.0f32; adam.state_len(p.len())];
/// let plan = adam.plan(1)?;
/// let whole = TensorStep::new(Params::F32(&mut p), Grads::F32(&g), State::F32(&mut s), 2)?;
/// let (a, b) = whole.split_at(4096)?;
/// std::thread::scope(|scope| {
///     let other = scope.spawn(|| a.apply(&plan, Backend::best()));
///     let here = b.apply(&plan, Backend::best());
///     other.join().map_or(Ok(()), |r| r).and(here)
/// })?;
/// assert_eq!(p[0], p[9_999]);
/// # Ok::<(), fused_optim::Error>(())
/// ```
#[derive(Debug)]
pub struct TensorStep<'a> {
    offset: usize,
    params: Params<'a>,
    grads: Grads<'a>,
    state: StatePlanes<'a>,
}

impl<'a> TensorStep<'a> {
    /// A whole tensor's step: `planes` is the optimizer's number of state planes
    /// ([`Optimizer::state_len`](crate::Optimizer::state_len)`(1)`).
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when the gradients, the Kahan compensation or the state do not
    /// fit the parameters, or `planes` is more than 3.
    #[inline]
    pub fn new(
        params: Params<'a>,
        grads: Grads<'a>,
        state: State<'a>,
        planes: usize,
    ) -> Result<Self, Error> {
        let n = super::check_operands(&params, grads)?;
        let state = StatePlanes::of(state, planes, n)?;
        Ok(TensorStep {
            offset: 0,
            params,
            grads,
            state,
        })
    }

    /// Elements in this piece.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the piece is empty.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where the piece starts in the whole tensor.
    #[inline]
    #[must_use]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The step to split at: every piece must start on a block of the state format (256
    /// values for `Int8`/`Fp8`, 128 for `Int4`, 1 otherwise; 1 with no state planes).
    #[inline]
    #[must_use]
    pub fn block(&self) -> usize {
        if self.state.count == 0 {
            1
        } else {
            self.state.format().block()
        }
    }

    /// The alignment [`pieces`](TensorStep::pieces) uses: a multiple of the block and of a
    /// 64-byte cache line of parameters, counted from the tensor's start.
    #[inline]
    #[must_use]
    pub fn alignment(&self) -> usize {
        let line = 64 / self.params.elem_bytes();
        let b = self.block();
        if b.is_multiple_of(line) {
            b
        } else {
            b.wrapping_mul(line)
        }
    }

    /// Splits into the elements before `mid` and from `mid` on.
    ///
    /// # Errors
    /// [`Error::LengthMismatch`] when `mid` is past the end, [`Error::Misaligned`] when the
    /// second piece would start inside a block of block-quantized state (the end of the tensor
    /// is always a valid point); nothing is split then
    /// (the error consumes the step: build it again).
    #[inline]
    pub fn split_at(self, mid: usize) -> Result<(Self, Self), Error> {
        if mid > self.len() {
            return Err(Error::LengthMismatch {
                what: "split point",
                expected: self.len(),
                actual: mid,
            });
        }
        let block = self.block();
        // The end is always a boundary (a last, partial block stays whole).
        if mid != self.len() && !mid.is_multiple_of(block) {
            return Err(Error::Misaligned {
                offset: self.offset.wrapping_add(mid),
                block,
            });
        }
        let (pa, pb) = self.params.split_at(mid);
        let (ga, gb) = self.grads.split_at(mid);
        let (sa, sb) = self.state.split_at(mid);
        Ok((
            TensorStep {
                offset: self.offset,
                params: pa,
                grads: ga,
                state: sa,
            },
            TensorStep {
                offset: self.offset.wrapping_add(mid),
                params: pb,
                grads: gb,
                state: sb,
            },
        ))
    }

    /// `count` pieces of nearly equal length (the last ones may be shorter, or empty for a small
    /// tensor), each starting on a multiple of [`alignment`](TensorStep::alignment).
    ///
    /// ```
    /// use fused_optim::{Grads, Params, State, TensorStep};
    /// let (mut p, g, mut s) = (vec![0.0f32; 1000], vec![0.0f32; 1000], vec![0.0f32; 1000]);
    /// let t = TensorStep::new(Params::F32(&mut p), Grads::F32(&g), State::F32(&mut s), 1)?;
    /// let lens: Vec<usize> = t.pieces(3).map(|piece| piece.len()).collect();
    /// assert_eq!(lens, [336, 336, 328]); // multiples of 16 f32 (one cache line)
    /// # Ok::<(), fused_optim::Error>(())
    /// ```
    #[inline]
    #[must_use]
    pub fn pieces(self, count: usize) -> Pieces<'a> {
        Pieces {
            align: self.alignment(),
            rest: Some(self),
            left: count,
        }
    }

    /// The same piece, borrowed for a shorter time (to split a step kept in a list).
    #[inline]
    pub fn reborrow(&mut self) -> TensorStep<'_> {
        TensorStep {
            offset: self.offset,
            params: self.params.reborrow(),
            grads: self.grads,
            state: self.state.reborrow(),
        }
    }

    /// Runs `plan` on this piece on `backend`: [`StepPlan::apply_piece`] at the piece's offset.
    ///
    /// # Errors
    /// As [`StepPlan::apply_piece`], plus [`Error::LengthMismatch`] when the plan's optimizer
    /// has a different number of state planes; nothing is written on error.
    #[inline]
    pub fn apply<P: StepPlan>(self, plan: &P, backend: Backend) -> Result<(), Error> {
        plan.apply_piece(
            backend,
            self.offset,
            self.params,
            self.grads,
            State::Planes(self.state),
        )
    }
}

/// The pieces of [`TensorStep::pieces`].
#[derive(Debug)]
pub struct Pieces<'a> {
    rest: Option<TensorStep<'a>>,
    left: usize,
    align: usize,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = TensorStep<'a>;

    #[inline]
    fn next(&mut self) -> Option<TensorStep<'a>> {
        let rest = self.rest.take()?;
        if self.left <= 1 {
            self.left = 0;
            return Some(rest);
        }
        let n = rest.len();
        let align = self.align.max(1);
        let share = n.div_ceil(self.left.max(1));
        let cut = share.div_ceil(align).saturating_mul(align).min(n);
        self.left = self.left.wrapping_sub(1);
        match rest.split_at(cut) {
            Ok((a, b)) => {
                self.rest = Some(b);
                Some(a)
            }
            // Unreachable: `cut` is aligned and within the length.
            Err(_) => None,
        }
    }
}
