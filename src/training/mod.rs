//! Training utilities around the optimizers: mixed-precision loss scaling ([`amp`]), gradient
//! clipping ([`clip`]) and learning-rate schedules ([`schedule`]). Each is public at the crate
//! root (`fused_optim::amp`, …).

pub mod amp;
pub mod clip;
pub mod schedule;
