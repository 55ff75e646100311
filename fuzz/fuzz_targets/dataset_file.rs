//! Any bytes as a training data file (JSON Lines, CSV or text, chosen by the first byte):
//! read into a dataset or refused with an error naming the file, and its columns read as
//! texts and class labels without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use trustformers_train::dataset::Dataset;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let name = ["data.jsonl", "data.csv", "data.txt"][kind as usize % 3];
    let text = String::from_utf8_lossy(rest);
    if let Ok(d) = Dataset::parse(Path::new(name), &text) {
        for column in ["text", "label", "sentence"] {
            let _ = d.texts(column);
            let _ = d.class_labels(column, 3, &["a".into(), "b".into()]);
        }
    }
});
