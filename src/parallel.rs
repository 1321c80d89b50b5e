//! Steps on several cores (feature `rayon`): one plan over many tensors, balanced by element
//! count across rayon's threads, with the same bits as one thread.

use crate::{Backend, Error, StepPlan, TensorStep};

/// Below this many elements a piece of work is not split further: it runs on the thread that
/// holds it (a whole step below it is not split at all). Chosen with `bench/threshold.py` on a
/// 2-core AMD EPYC (Zen 4) VM, where splitting plain SGD, the cheapest update, stops losing at
/// 16 Ki elements and Adam gains from 8 Ki (see `docs/threads.md`).
pub const MIN_PARALLEL: usize = 1 << 14;

/// Applies `plan` to every tensor on the current rayon pool's threads
/// ([`rayon::current_num_threads`]; run it inside [`rayon::ThreadPool::install`] to choose
/// the count). The work is cut by element count, not by tensor: a large tensor is split into
/// pieces (at [`TensorStep::alignment`]), small ones are grouped, and each thread gets about
/// the same number of elements. Any thread count gives the bits of a one-thread step.
///
/// ```
/// use fused_optim::{Adam, Backend, Grads, Params, State, TensorStep, parallel};
/// let adam = Adam::adamw();
/// let plan = adam.plan(1)?;
/// let (mut a, mut b) = (vec![1.0f32; 100_000], vec![2.0f32; 3]);
/// let (ga, gb) = (vec![0.1f32; 100_000], vec![0.1f32; 3]);
/// let (mut sa, mut sb) = (vec![0.0f32; 200_000], vec![0.0f32; 6]);
/// let mut tensors = [
///     TensorStep::new(Params::F32(&mut a), Grads::F32(&ga), State::F32(&mut sa), 2)?,
///     TensorStep::new(Params::F32(&mut b), Grads::F32(&gb), State::F32(&mut sb), 2)?,
/// ];
/// parallel::apply(&plan, Backend::best(), &mut tensors)?;
/// assert!(a[0] < 1.0 && b[0] < 2.0);
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// [`Error::BackendUnavailable`], or any tensor's error from [`TensorStep::apply`] (a plan for
/// an optimizer with another number of state planes, a misaligned piece); every tensor is
/// checked before anything is written, so nothing is written on error.
#[inline]
pub fn apply<P: StepPlan>(
    plan: &P,
    backend: Backend,
    tensors: &mut [TensorStep<'_>],
) -> Result<(), Error> {
    apply_with_threshold(plan, backend, tensors, MIN_PARALLEL)
}

/// [`apply`] with another threshold than [`MIN_PARALLEL`]: work below `min_parallel` elements
/// is not split further (`0` splits down to one piece per thread, whatever the size). For a
/// machine whose thread wake-up cost or cache sizes differ from the one `MIN_PARALLEL` was
/// measured on; the bits do not depend on it.
///
/// ```
/// use fused_optim::{Adam, Backend, Grads, Params, State, TensorStep, parallel};
/// let adam = Adam::default();
/// let plan = adam.plan(1)?;
/// let (mut p, g, mut s) = (vec![1.0f32; 4096], vec![0.5f32; 4096], vec![0.0f32; 8192]);
/// let mut t = [TensorStep::new(Params::F32(&mut p), Grads::F32(&g), State::F32(&mut s), 2)?];
/// parallel::apply_with_threshold(&plan, Backend::best(), &mut t, 0)?;
/// assert!(p.iter().all(|&x| x < 1.0));
/// # Ok::<(), fused_optim::Error>(())
/// ```
///
/// # Errors
/// As [`apply`].
#[inline]
pub fn apply_with_threshold<P: StepPlan>(
    plan: &P,
    backend: Backend,
    tensors: &mut [TensorStep<'_>],
    min_parallel: usize,
) -> Result<(), Error> {
    if !backend.is_available() {
        return Err(Error::BackendUnavailable(backend));
    }
    // The plan runs every check on a tensor's empty first piece, and writes nothing there.
    for t in tensors.iter_mut() {
        let (empty, _) = t.reborrow().split_at(0)?;
        empty.apply(plan, backend)?;
    }
    let work = Work {
        head: None,
        mid: tensors,
        tail: None,
    };
    run(
        plan,
        backend,
        work,
        rayon::current_num_threads(),
        min_parallel,
    )
}

/// A contiguous run of the step's work: a piece of a tensor, whole tensors, a piece of a tensor.
struct Work<'s, 'a> {
    head: Option<TensorStep<'s>>,
    mid: &'s mut [TensorStep<'a>],
    tail: Option<TensorStep<'s>>,
}

impl<'s> Work<'s, '_> {
    fn len(&self) -> usize {
        let ends = self.head.as_ref().map_or(0, TensorStep::len)
            + self.tail.as_ref().map_or(0, TensorStep::len);
        self.mid
            .iter()
            .map(TensorStep::len)
            .fold(ends, usize::saturating_add)
    }

    /// Cuts after about `target` elements (rounded down to the alignment of the tensor cut).
    fn split(self, target: usize) -> (Self, Self) {
        let Work { head, mid, tail } = self;
        let mut acc = 0usize;
        let mut head = head;
        if let Some(h) = head.take() {
            if h.len() >= target {
                let (a, b) = cut(h, target);
                let left = Work {
                    head: a,
                    mid: &mut [],
                    tail: None,
                };
                return (left, Work { head: b, mid, tail });
            }
            acc = h.len();
            head = Some(h);
        }
        let k = mid.iter().position(|t| {
            acc = acc.saturating_add(t.len());
            acc > target
        });
        match k {
            Some(k) => {
                let (left, rest) = mid.split_at_mut(k);
                let Some((t, right)) = rest.split_first_mut() else {
                    return (
                        Work {
                            head,
                            mid: left,
                            tail: None,
                        },
                        Work {
                            head: None,
                            mid: &mut [],
                            tail,
                        },
                    );
                };
                let before = acc.saturating_sub(t.len());
                let (a, b) = cut(t.reborrow(), target.saturating_sub(before));
                (
                    Work {
                        head,
                        mid: left,
                        tail: a,
                    },
                    Work {
                        head: b,
                        mid: right,
                        tail,
                    },
                )
            }
            None => match tail {
                Some(t) => {
                    let (a, b) = cut(t, target.saturating_sub(acc));
                    (
                        Work { head, mid, tail: a },
                        Work {
                            head: b,
                            mid: &mut [],
                            tail: None,
                        },
                    )
                }
                None => (
                    Work {
                        head,
                        mid,
                        tail: None,
                    },
                    Work {
                        head: None,
                        mid: &mut [],
                        tail: None,
                    },
                ),
            },
        }
    }
}

/// Splits `t` at `at` rounded down to its alignment; `None` for an empty side.
fn cut(t: TensorStep<'_>, at: usize) -> (Option<TensorStep<'_>>, Option<TensorStep<'_>>) {
    let align = t.alignment().max(1);
    let at = (at / align).saturating_mul(align).min(t.len());
    match t.split_at(at) {
        Ok((a, b)) => (Some(a), Some(b)),
        // Unreachable: `at` is aligned and within the length.
        Err(_) => (None, None),
    }
}

fn run<P: StepPlan>(
    plan: &P,
    backend: Backend,
    work: Work<'_, '_>,
    threads: usize,
    min_parallel: usize,
) -> Result<(), Error> {
    let total = work.len();
    if threads <= 1 || total < min_parallel.max(1) {
        let Work { head, mid, tail } = work;
        if let Some(h) = head {
            h.apply(plan, backend)?;
        }
        for t in mid.iter_mut() {
            t.reborrow().apply(plan, backend)?;
        }
        return tail.map_or(Ok(()), |t| t.apply(plan, backend));
    }
    let left_threads = threads / 2;
    let target = (total / threads).saturating_mul(left_threads);
    let (left, right) = work.split(target);
    let (a, b) = rayon::join(
        || run(plan, backend, left, left_threads, min_parallel),
        || run(plan, backend, right, threads - left_threads, min_parallel),
    );
    a.and(b)
}
