//! One parameter's state buffers, allocated once.

use fused_optim::{State, StateFormat, bf16, f16};

use crate::Error;

/// The buffers of one tensor's state, in one [`StateFormat`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StateBuf {
    F32(Vec<f32>),
    Bf16(Vec<bf16>),
    F16(Vec<f16>),
    Int8 { codes: Vec<u8>, scales: Vec<f32> },
    Int4 { codes: Vec<u8>, scales: Vec<f32> },
    Fp8 { codes: Vec<u8>, scales: Vec<f32> },
}

impl StateBuf {
    /// Zeroed buffers for `planes` planes of `n` values.
    pub(crate) fn zeros(format: StateFormat, planes: usize, n: usize) -> Result<Self, Error> {
        let l = format.layout(planes, n);
        let block = || (vec![0u8; l.codes], vec![0.0f32; l.scales]);
        Ok(match format {
            StateFormat::F32 => StateBuf::F32(vec![0.0; l.values]),
            StateFormat::Bf16 => StateBuf::Bf16(vec![bf16::ZERO; l.values]),
            StateFormat::F16 => StateBuf::F16(vec![f16::ZERO; l.values]),
            StateFormat::Int8 => {
                let (codes, scales) = block();
                StateBuf::Int8 { codes, scales }
            }
            StateFormat::Int4 => {
                let (codes, scales) = block();
                StateBuf::Int4 { codes, scales }
            }
            StateFormat::Fp8 => {
                let (codes, scales) = block();
                StateBuf::Fp8 { codes, scales }
            }
            other => return Err(Error::UnsupportedStateFormat(other)),
        })
    }

    /// The buffers as the crate's [`State`].
    pub(crate) fn as_state(&mut self) -> State<'_> {
        match self {
            StateBuf::F32(v) => State::F32(v),
            StateBuf::Bf16(v) => State::Bf16(v),
            StateBuf::F16(v) => State::F16(v),
            StateBuf::Int8 { codes, scales } => State::Int8 { codes, scales },
            StateBuf::Int4 { codes, scales } => State::Int4 { codes, scales },
            StateBuf::Fp8 { codes, scales } => State::Fp8 { codes, scales },
        }
    }
}
