//! The optimizers: one file each, holding the formula, the per-step scalars, the kernel body and
//! the tests. Their public paths are flat (`fused_optim::Adam`); see the crate root.

mod adadelta;
mod adagrad;
mod adam;
mod adamax;
mod asgd;
mod lion;
mod nadam;
mod radam;
mod rmsprop;
mod rprop;
mod sgd;
mod sparse_adam;
mod torchao_adam;

pub use adadelta::{Adadelta, AdadeltaPlan};
pub use adagrad::{Adagrad, AdagradPlan};
pub use adam::{Adam, AdamPlan};
pub use adamax::{Adamax, AdamaxPlan};
pub use asgd::{Asgd, AsgdPlan, AsgdScalars};
pub use lion::{Lion, LionPlan};
pub use nadam::{NAdam, NAdamPlan, NAdamScalars};
pub use radam::{RAdam, RAdamPlan};
pub use rmsprop::{RMSprop, RMSpropPlan};
pub use rprop::{Rprop, RpropPlan};
pub use sgd::{Sgd, SgdPlan};
pub use sparse_adam::{SparseAdam, SparseAdamPlan, SparseGrad};
pub use torchao_adam::{TorchaoAdam, TorchaoAdamPlan};
