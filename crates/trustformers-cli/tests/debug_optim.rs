//! `trustformers debug optim` against torch: the AdamW case of the optimizer fixtures
//! (`tools/gen_optim_fixtures.py`) through the command, with a schedule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

fn fixture() -> HashMap<String, Tensor> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/optim/torch.safetensors");
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

#[test]
fn adamw_steps_as_torch_does() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let pick = |prefix: &str| -> HashMap<String, Tensor> {
        f.iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .map(|rest| (rest.to_string(), v.clone()))
            })
            .collect()
    };
    let (params, grads) = (
        dir.path().join("p.safetensors"),
        dir.path().join("g.safetensors"),
    );
    candle_core::safetensors::save(&pick("adamw_amsgrad/init/"), &params).unwrap();
    candle_core::safetensors::save(&pick("adamw_amsgrad/grad/"), &grads).unwrap();
    let out = dir.path().join("out.safetensors");
    let status = Command::new(env!("CARGO_BIN_EXE_trustformers"))
        .args(["debug", "optim", "--optimizer", "AdamW"])
        .args([
            "--config",
            r#"{"lr": 1e-2, "amsgrad": true, "weight_decay": 0.1}"#,
        ])
        .arg("--params")
        .arg(&params)
        .arg("--grads")
        .arg(&grads)
        .args(["--steps", "20", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let got = candle_core::safetensors::load(&out, &Device::Cpu).unwrap();
    for (key, want) in pick("adamw_amsgrad/param/") {
        let (a, b) = (
            got[&key].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-6 * y.abs().max(1e-2),
                "{key}: {x} against {y}"
            );
        }
    }
    assert_eq!(got["lr"].to_vec1::<f64>().unwrap(), vec![1e-2; 20]);

    // With a linear schedule (warmup 5 of 20 steps): the rates used at each step.
    let status = Command::new(env!("CARGO_BIN_EXE_trustformers"))
        .args([
            "debug",
            "optim",
            "--optimizer",
            "SGD",
            "--config",
            r#"{"lr": 0.1}"#,
        ])
        .arg("--params")
        .arg(&params)
        .arg("--grads")
        .arg(&grads)
        .args(["--steps", "20", "--scheduler", "linear"])
        .args([
            "--num-warmup-steps",
            "5",
            "--num-training-steps",
            "20",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let lrs = candle_core::safetensors::load(&out, &Device::Cpu).unwrap()["lr"]
        .to_vec1::<f64>()
        .unwrap();
    let want: Vec<f64> = (0..20)
        .map(|s| {
            if s < 5 {
                0.1 * s as f64 / 5.0
            } else {
                0.1 * (20 - s) as f64 / 15.0
            }
        })
        .collect();
    for (a, b) in lrs.iter().zip(&want) {
        assert!((a - b).abs() < 1e-12, "{lrs:?} against {want:?}");
    }

    // A bad argument is named.
    let output = Command::new(env!("CARGO_BIN_EXE_trustformers"))
        .args([
            "debug",
            "optim",
            "--optimizer",
            "Adam",
            "--config",
            r#"{"lr": -1}"#,
        ])
        .arg("--params")
        .arg(&params)
        .arg("--grads")
        .arg(&grads)
        .args(["--steps", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Invalid learning rate: -1"), "{stderr}");
}
