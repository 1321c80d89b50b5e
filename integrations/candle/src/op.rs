//! The in-place custom op: one optimizer step on one `Var`'s storage.

use std::cell::Cell;

use candle_core::backend::BackendStorage as _;
use candle_core::{CpuStorage, InplaceOp2, Layout};
use fused_optim::{Backend, Grads, Params, State, StepPlan, bf16};

use crate::Error;

/// How a bf16 parameter is rounded when stored.
#[derive(Debug)]
pub(crate) enum Store<'a> {
    /// To nearest even (and the only mode for f32 and f16 parameters).
    Nearest,
    /// Stochastically, with this tensor's seed.
    Stochastic(u64),
    /// With this Kahan compensation buffer.
    Kahan(&'a mut [bf16]),
}

/// One step of `plan` on the `Var` it is applied to, with the gradient as the second operand.
/// The state and the rounding are handed over once, through a `Cell`, because candle's op
/// interface takes `&self`.
pub(crate) struct Update<'a, P> {
    pub(crate) plan: &'a P,
    pub(crate) backend: Backend,
    pub(crate) parts: Cell<Option<(State<'a>, Store<'a>)>>,
}

fn err(e: Error) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

impl<P: StepPlan> InplaceOp2 for Update<'_, P> {
    fn name(&self) -> &'static str {
        "fused-optim-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (state, store) = self
            .parts
            .take()
            .ok_or_else(|| err(Error::Internal("the step op ran twice")))?;
        let (ps, pe) = l1
            .contiguous_offsets()
            .ok_or_else(|| err(Error::NonContiguousVar))?;
        let (gs, ge) = l2
            .contiguous_offsets()
            .ok_or_else(|| err(Error::Internal("gradient not made contiguous")))?;
        let range = |len: usize| {
            if gs <= ge && ge <= len {
                Ok(gs..ge)
            } else {
                Err(err(Error::Internal("gradient layout outside its storage")))
            }
        };
        let grads = match s2 {
            CpuStorage::F32(g) => Grads::F32(g.get(range(g.len())?).unwrap_or_default()),
            CpuStorage::BF16(g) => Grads::Bf16(g.get(range(g.len())?).unwrap_or_default()),
            CpuStorage::F16(g) => Grads::F16(g.get(range(g.len())?).unwrap_or_default()),
            other => return Err(err(Error::UnsupportedGradDtype(other.dtype()))),
        };
        let out_of_range = || err(Error::Internal("parameter layout outside its storage"));
        let params = match (s1, store) {
            (CpuStorage::F32(p), _) => Params::F32(p.get_mut(ps..pe).ok_or_else(out_of_range)?),
            (CpuStorage::BF16(p), Store::Nearest) => {
                Params::Bf16(p.get_mut(ps..pe).ok_or_else(out_of_range)?)
            }
            (CpuStorage::BF16(p), Store::Stochastic(seed)) => Params::Bf16Stochastic {
                params: p.get_mut(ps..pe).ok_or_else(out_of_range)?,
                seed,
            },
            (CpuStorage::BF16(p), Store::Kahan(compensation)) => Params::Bf16Kahan {
                params: p.get_mut(ps..pe).ok_or_else(out_of_range)?,
                compensation,
            },
            (CpuStorage::F16(p), _) => Params::F16(p.get_mut(ps..pe).ok_or_else(out_of_range)?),
            (other, _) => return Err(err(Error::UnsupportedDtype(other.dtype()))),
        };
        match (params, grads, state) {
            // All f32: the plain kernel entry, which skips the format driver's dispatch (the
            // same kernel and the same bits; measurably cheaper on tensors of a few values).
            (Params::F32(p), Grads::F32(g), State::F32(s)) => {
                self.plan.apply_on(self.backend, p, g, s)
            }
            (params, grads, state) => self.plan.apply_piece(self.backend, 0, params, grads, state),
        }
        .map_err(|e| err(Error::Optim(e)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use fused_optim::Adam;

    /// The op updates exactly the range a layout with a start offset names, with the raw
    /// crate's bits, and reads the gradient from its own offset. (candle's public API cannot
    /// make a `Var` with an offset, so the op is driven directly.)
    #[test]
    fn layout_offsets_are_honoured() {
        let adam = Adam::default();
        let plan = adam.plan(1).unwrap();
        let n = 5;
        let base: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
        let grad_base: Vec<f32> = (0..9).map(|i| 0.5 - i as f32 * 0.125).collect();
        let (p_off, g_off) = (4, 2);
        let mut storage = CpuStorage::F32(base.clone());
        let grads = CpuStorage::F32(grad_base.clone());
        let mut state = vec![0.0f32; adam.state_len(n)];
        let update = Update {
            plan: &plan,
            backend: Backend::best(),
            parts: Cell::new(Some((State::F32(&mut state), Store::Nearest))),
        };
        update
            .cpu_fwd(
                &mut storage,
                &Layout::contiguous_with_offset(n, p_off),
                &grads,
                &Layout::contiguous_with_offset(n, g_off),
            )
            .unwrap();
        let mut expected = base.clone();
        let mut raw_state = vec![0.0f32; adam.state_len(n)];
        plan.apply(
            &mut expected[p_off..p_off + n],
            &grad_base[g_off..g_off + n],
            &mut raw_state,
        )
        .unwrap();
        let CpuStorage::F32(got) = storage else {
            unreachable!()
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&expected));
        assert_ne!(bits(&got), bits(&base));
        assert_eq!(bits(&state), bits(&raw_state));
    }

    /// A strided parameter layout is refused, and nothing is written.
    #[test]
    fn a_strided_var_is_refused() {
        let plan = Adam::default().plan(1).unwrap();
        let mut storage = CpuStorage::F32(vec![1.0; 6]);
        let grads = CpuStorage::F32(vec![1.0; 6]);
        let mut state = vec![0.0f32; 12];
        let update = Update {
            plan: &plan,
            backend: Backend::best(),
            parts: Cell::new(Some((State::F32(&mut state), Store::Nearest))),
        };
        let transposed = Layout::contiguous((2, 3)).transpose(0, 1).unwrap();
        let e = update
            .cpu_fwd(
                &mut storage,
                &transposed,
                &grads,
                &Layout::contiguous((3, 2)),
            )
            .unwrap_err();
        assert!(e.to_string().contains("not contiguous"), "{e}");
        let CpuStorage::F32(got) = storage else {
            unreachable!()
        };
        assert_eq!(got, vec![1.0; 6]);
    }
}
