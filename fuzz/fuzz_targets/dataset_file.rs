//! Any bytes as a training data file (JSON Lines, CSV, text or Parquet, chosen by the first
//! byte): read into a dataset or refused with an error naming the file, and its columns read
//! as texts, class labels, word lists, word labels and SQuAD answers without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use trustformers_train::dataset::Dataset;

fuzz_target!(
    init: {
        // The parquet crate panics on some malformed metadata; `Dataset` runs its reader
        // under `catch_unwind` and answers an error, so those panics are contained. Every
        // other panic still aborts and is reported, as libfuzzer-sys' own hook does.
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_parquet = info
                .location()
                .is_some_and(|at| at.file().contains("/parquet-"));
            if !in_parquet {
                report(info);
            }
        }));
    },
    |data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let name = ["data.jsonl", "data.csv", "data.txt", "data.parquet"][kind as usize % 4];
    if let Ok(d) = Dataset::from_bytes(Path::new(name), rest.to_vec()) {
        for column in ["text", "label", "sentence", "tokens", "ner_tags", "answers"] {
            let _ = d.texts(column);
            let _ = d.class_labels(column, 3, &["a".into(), "b".into()]);
            let _ = d.word_lists(column);
            let _ = d.word_labels(column, 3, &["O".into()]);
            let _ = d.word_label_names(column);
            let _ = d.answers(column);
        }
    }
}
);
