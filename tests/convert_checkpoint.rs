//! `scripts/convert_checkpoint.py` on a file in `torch.save`'s zip format (written by
//! `tests/data/write_torch_checkpoint.py` with the GLOBALs torch emits, wrapped in a training
//! dict under `model` with DataParallel's `module.` prefix): the converted file is an Ember
//! checkpoint with the same tensors that `ember eval` runs, and a file of another model is
//! refused.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use candle_core::{DType, Device, Tensor};
use common::*;
use ember::ember_core::{Checkpoint, SeededVarMap};

const TINY: &str = r#"{"embed_dims": [8, 16, 32], "num_heads": [1, 1, 1], "num_layers": [1, 1, 1], "neck_dim": 32, "img_size": 32, "in_chans": 1, "num_classes": 10}"#;

fn python(script: &str, args: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("python3")
        .arg(root.join(script))
        .args(args)
        .output()
        .expect("python3 runs")
}

#[test]
fn an_official_style_checkpoint_converts_and_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg =
        ember_models::resolve("lightvit_tiny_32", &serde_json::from_str(TINY).unwrap()).unwrap();
    let vars = SeededVarMap::new(3);
    ember_models::build(
        &cfg.family,
        &cfg.config,
        vars.var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    let mut official: HashMap<String, Tensor> = vars
        .named()
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    // The int64 buffers PyTorch keeps alongside.
    let index = Tensor::arange(0i64, 9, &Device::Cpu).unwrap();
    official.insert("stages.0.0.attn.relative_position_index".into(), index);
    official.insert(
        "patch_embed.stem.1.num_batches_tracked".into(),
        Tensor::new(7i64, &Device::Cpu).unwrap(),
    );
    let weights = tmp.path().join("weights.safetensors");
    candle_core::safetensors::save(&official, &weights).unwrap();
    let pth = tmp.path().join("lightvit.pth");
    let out = python(
        "tests/data/write_torch_checkpoint.py",
        &[
            weights.to_str().unwrap(),
            pth.to_str().unwrap(),
            "--wrap",
            "model",
            "--prefix",
            "module.",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let converted = tmp.path().join("lightvit.safetensors");
    let labels = tmp.path().join("labels.txt");
    std::fs::write(&labels, ember_data::fashion::CLASSES.join("\n")).unwrap();
    let ember = env!("CARGO_BIN_EXE_ember");
    let convert = |config: &str| {
        python(
            "scripts/convert_checkpoint.py",
            &[
                pth.to_str().unwrap(),
                converted.to_str().unwrap(),
                "--arch",
                "lightvit_tiny_32",
                "--model-config",
                config,
                "--image-size",
                "32",
                "--labels",
                labels.to_str().unwrap(),
                "--ember",
                ember,
            ],
        )
    };
    let out = convert(TINY);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ckpt = Checkpoint::load(&converted, &Device::Cpu).unwrap();
    assert_eq!(ckpt.meta.arch, "lightvit");
    assert_eq!(
        ckpt.meta.config["embed_dims"],
        serde_json::json!([8, 16, 32])
    );
    assert_eq!(ckpt.meta.labels.len(), 10);
    for (name, t) in &official {
        let got = ckpt
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let values = |t: &Tensor| -> Vec<f64> {
            t.to_dtype(DType::F64)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(values(got), values(t), "{name}");
    }
    let eval = stdout_json(&run(&[
        "eval",
        converted.to_str().unwrap(),
        "--data",
        "fashion-mnist-subset",
    ]));
    assert_eq!(eval["images"], 1000);

    // The weights of another config (here: LightViT-T's widths): the parameter count gives
    // it away.
    let out = convert("{}");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another model or config"), "{stderr}");
}
