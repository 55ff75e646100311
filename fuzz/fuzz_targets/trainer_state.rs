//! Any bytes as a checkpoint's `trainer_state.json`: read into a state or refused with an
//! error naming the file, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustformers_train::TrainerState;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let path = std::path::Path::new("checkpoint-1/trainer_state.json");
    if let Ok(state) = TrainerState::from_json(path, &json) {
        let _ = state.log_history.len();
    }
});
