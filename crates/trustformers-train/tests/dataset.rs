//! Datasets from JSON Lines, CSV and text files, and their errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use trustformers_train::dataset::Dataset;

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn json_lines_csv_and_text_read_as_datasets_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = Dataset::from_file(file(
        &dir,
        "a.jsonl",
        "{\"text\": \"good\", \"label\": 1}\n\n{\"text\": \"bad\", \"label\": 0}\n",
    ))
    .unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d.texts("text").unwrap(), ["good", "bad"]);
    assert_eq!(d.class_labels("label", 2, &[]).unwrap(), [1, 0]);
    let d = Dataset::from_file(file(
        &dir,
        "b.csv",
        "sentence,label\n\"a, quoted\",pos\nplain,neg\n",
    ))
    .unwrap();
    assert_eq!(d.texts("sentence").unwrap(), ["a, quoted", "plain"]);
    let names = ["neg".to_owned(), "pos".to_owned()];
    assert_eq!(d.class_labels("label", 2, &names).unwrap(), [1, 0]);
    let d = Dataset::from_file(file(&dir, "c.txt", "one\n\nthree\n")).unwrap();
    assert_eq!(d.texts("text").unwrap(), ["one", "", "three"]);
}

#[test]
fn bad_files_name_the_file_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let err = |name: &str, text: &str| {
        let path = file(&dir, name, text);
        let e = Dataset::from_file(&path).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
        e
    };
    let e = err("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": oops}\n");
    assert!(e.contains("line 2, column"), "{e}");
    assert!(err("array.jsonl", "[1, 2]\n").contains("line 1: expected a JSON object"));
    assert!(err("empty.jsonl", "\n\n").contains("no examples"));
    assert!(err("empty.csv", "a,b\n").contains("no examples"));
    assert!(err("ragged.csv", "a,b\n1,2\n3\n").contains("line 3"));
    assert!(err("data.xml", "<x/>").contains("unknown data format"));
    let path = file(&dir, "latin1.txt", "");
    std::fs::write(&path, [0x66, 0xE9, 0x0A]).unwrap();
    assert!(Dataset::from_file(&path)
        .unwrap_err()
        .to_string()
        .contains("not UTF-8"));
    let missing = dir.path().join("missing.jsonl");
    assert!(Dataset::from_file(&missing)
        .unwrap_err()
        .to_string()
        .contains("missing.jsonl"));

    let d = Dataset::from_file(file(
        &dir,
        "cols.jsonl",
        "{\"text\": \"a\", \"label\": 5}\n{\"label\": 1}\n",
    ))
    .unwrap();
    let e = d.class_labels("label", 2, &[]).unwrap_err().to_string();
    assert!(e.contains("example 1") && e.contains("label 5"), "{e}");
    let e = d.texts("text").unwrap_err().to_string();
    assert!(
        e.contains("example 2") && e.contains("no column `text`"),
        "{e}"
    );
    let e = d.texts("label").unwrap_err().to_string();
    assert!(e.contains("not a string"), "{e}");
}
