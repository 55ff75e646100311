//! Any bytes as the `data.pkl` of a PyTorch checkpoint: the safe interpreter returns a value
//! or an error, and never runs anything.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trustformers_core::pickle::load(data);
});
