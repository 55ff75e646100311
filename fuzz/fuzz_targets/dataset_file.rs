//! Any bytes as a training data file (JSON Lines, CSV, text or Parquet, chosen by the first
//! byte): read into a dataset or refused with an error naming the file, and its columns read
//! as texts, class labels, word lists, word labels and SQuAD answers without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use trustformers_train::dataset::Dataset;

fuzz_target!(
    init: {
        // The parquet crate panics on some malformed files (in its own code and in std's,
        // e.g. a capacity overflow); `Dataset` runs its reader under `catch_unwind` and
        // answers an error. libfuzzer-sys' hook aborts at any panic, contained or not, so
        // this one stays quiet: a panic that escapes `Dataset` still reaches libfuzzer-sys'
        // own `catch_unwind`, which aborts and reports it.
        std::panic::set_hook(Box::new(|_| {}));
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
