//! What the adapter needs to know about each optimizer beyond [`fused_optim::Optimizer`]: its
//! learning rate, and torch's names for its state.

use fused_optim::{
    Adadelta, Adagrad, Adam, Adamax, Lion, NAdam, NAdamScalars, Optimizer, RAdam, RMSprop, Sgd,
    TorchaoAdam,
};

/// An optimizer of `fused-optim` the adapter can drive: the learning rate, and the names torch
/// gives its per-parameter state (`state_dict()["state"][i]`), used by checkpoints.
///
/// Implemented for every optimizer of the crate. The plane names follow the crate's plane order
/// (`state_len(n) / n` planes, one after another), which is torch's order.
///
/// ```
/// use fused_optim_candle::TorchOptimizer;
/// let adam = fused_optim::Adam { amsgrad: true, ..Default::default() };
/// assert_eq!(adam.plane_names(), ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
/// assert_eq!(adam.lr(), 1e-3);
/// ```
pub trait TorchOptimizer: Optimizer {
    /// The learning rate.
    fn lr(&self) -> f64;

    /// Sets the learning rate.
    fn set_lr(&mut self, lr: f64);

    /// torch's names of the state planes, in the crate's plane order: as many as
    /// `state_len(n) / n`.
    fn plane_names(&self) -> &'static [&'static str];

    /// torch's name of the per-parameter scalar state and its value (NAdam's `mu_product`), or
    /// `None` for optimizers without one.
    #[inline]
    fn scalar_state(scalars: &Self::Scalars) -> Option<(&'static str, f32)> {
        let _ = scalars;
        None
    }

    /// The scalar state holding `value` (the inverse of [`TorchOptimizer::scalar_state`]).
    #[inline]
    fn scalars_from(value: f32) -> Self::Scalars {
        let _ = value;
        Self::Scalars::default()
    }
}

/// Implements the learning-rate accessors on a struct with a public `lr: f64` field.
macro_rules! lr_field {
    () => {
        #[inline]
        fn lr(&self) -> f64 {
            self.lr
        }
        #[inline]
        fn set_lr(&mut self, lr: f64) {
            self.lr = lr;
        }
    };
}

impl TorchOptimizer for Sgd {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        if self.momentum == 0.0 {
            &[]
        } else {
            &["momentum_buffer"]
        }
    }
}

impl TorchOptimizer for Adam {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        if self.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        }
    }
}

impl TorchOptimizer for TorchaoAdam {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        if self.amsgrad {
            &["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        } else {
            &["exp_avg", "exp_avg_sq"]
        }
    }
}

impl TorchOptimizer for Adagrad {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        &["sum"]
    }
}

impl TorchOptimizer for Adadelta {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        &["square_avg", "acc_delta"]
    }
}

impl TorchOptimizer for RMSprop {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        match (self.momentum > 0.0, self.centered) {
            (false, false) => &["square_avg"],
            (true, false) => &["square_avg", "momentum_buffer"],
            (false, true) => &["square_avg", "grad_avg"],
            (true, true) => &["square_avg", "momentum_buffer", "grad_avg"],
        }
    }
}

impl TorchOptimizer for Adamax {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_inf"]
    }
}

impl TorchOptimizer for NAdam {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }
    #[inline]
    fn scalar_state(scalars: &NAdamScalars) -> Option<(&'static str, f32)> {
        Some(("mu_product", scalars.mu_product))
    }
    #[inline]
    fn scalars_from(value: f32) -> NAdamScalars {
        NAdamScalars { mu_product: value }
    }
}

impl TorchOptimizer for RAdam {
    lr_field!();
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }
}

impl TorchOptimizer for Lion {
    lr_field!();
    /// lion-pytorch's name for Lion's momentum.
    #[inline]
    fn plane_names(&self) -> &'static [&'static str] {
        &["exp_avg"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every configuration's plane names match its state length.
    #[test]
    fn plane_names_count_the_planes() {
        fn check<O: TorchOptimizer>(o: O) {
            assert_eq!(o.plane_names().len() * 7, o.state_len(7), "{o:?}");
        }
        check(Sgd::default());
        check(Sgd {
            momentum: 0.9,
            ..Sgd::default()
        });
        check(Adam::default());
        check(Adam {
            amsgrad: true,
            ..Adam::default()
        });
        check(TorchaoAdam::adamw8bit());
        check(TorchaoAdam {
            amsgrad: true,
            ..TorchaoAdam::adamw4bit()
        });
        check(Adagrad::default());
        check(Adadelta::default());
        for (momentum, centered) in [(0.0, false), (0.9, false), (0.0, true), (0.9, true)] {
            check(RMSprop {
                momentum,
                centered,
                ..RMSprop::default()
            });
        }
        check(Adamax::default());
        check(NAdam::default());
        check(RAdam::default());
        check(Lion::default());
    }
}
