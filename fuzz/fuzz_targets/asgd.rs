#![no_main]

#[path = "../../tests/fuzz/logic.rs"]
mod logic;

libfuzzer_sys::fuzz_target!(|data: &[u8]| logic::asgd(data));
