//! Bad input ends with one line on stderr naming the problem and exit code 2, never a panic.

mod common;

use common::*;

#[test]
fn a_missing_data_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let result = run(&[
        "train",
        "--data",
        "/nonexistent/images",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_bad_input(&result, "data directory /nonexistent/images does not exist");
}

#[test]
fn truncated_and_foreign_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(shared_checkpoint()).unwrap();
    let cut = tmp.path().join("cut.safetensors");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let text = tmp.path().join("weights.safetensors");
    std::fs::write(&text, "these are not tensors").unwrap();
    for file in [&cut, &text] {
        for cmd in ["info", "eval"] {
            assert_bad_input(
                &run(&[cmd, file.to_str().unwrap()]),
                "not a valid safetensors file",
            );
        }
    }
    assert_bad_input(
        &run(&["info", "/nonexistent/model.safetensors"]),
        "no such file",
    );
}

#[test]
fn a_checkpoint_of_another_arch_or_shape() {
    use candle_core::{Device, Tensor};
    use ember::ember_core::{Checkpoint, CheckpointMeta};
    let tmp = tempfile::tempdir().unwrap();
    let loaded = Checkpoint::load(&shared_checkpoint(), &Device::Cpu).unwrap();
    let tensors: Vec<(String, Tensor)> = loaded
        .model_tensors()
        .map(|(k, t)| (k.clone(), t.clone()))
        .collect();
    let save = |name: &str, meta: &CheckpointMeta, tensors: &[(String, Tensor)]| {
        let path = tmp.path().join(name);
        Checkpoint::save(&path, meta, tensors.iter().map(|(k, t)| (k.as_str(), t))).unwrap();
        path.to_str().unwrap().to_string()
    };
    let mut unknown = loaded.meta.clone();
    unknown.arch = "vgg".into();
    let path = save("vgg.safetensors", &unknown, &tensors);
    assert_bad_input(
        &run(&["eval", &path, "--data", "fashion-mnist-subset"]),
        "arch `vgg`",
    );
    // A ResNet's config and weights labelled as another family.
    let mut vit = loaded.meta.clone();
    vit.arch = "lightvit".into();
    let path = save("vit.safetensors", &vit, &tensors);
    assert_bad_input(
        &run(&["eval", &path, "--data", "fashion-mnist-subset"]),
        "lightvit config: unknown field",
    );
    // Same family, but the config says wider layers than the weights hold.
    let mut wider = loaded.meta.clone();
    wider.config["channels"] = serde_json::json!([4, 16]);
    let path = save("wider.safetensors", &wider, &tensors);
    assert_bad_input(
        &run(&["predict", &path, "x.png"]),
        "does not fit this model",
    );
}

#[test]
fn a_non_image_file_to_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("cat.png");
    std::fs::write(&fake, "plain text pretending to be a PNG").unwrap();
    let ckpt = shared_checkpoint();
    assert_bad_input(
        &run(&["predict", ckpt.to_str().unwrap(), fake.to_str().unwrap()]),
        "not a readable image",
    );
}

#[test]
fn unknown_flag_values() {
    for (args, needle) in [
        (vec!["train", "--device", "tpu"], "tpu"),
        (vec!["train", "--optimizer", "adam"], "adam"),
        (vec!["train", "--arch", "vgg"], "unknown arch `vgg`"),
        (
            vec![
                "train",
                "--model-config",
                "{\"layers\": [1, 1], \"typo\": 3}",
                "--data",
                "fashion-mnist-subset",
            ],
            "unknown field `typo`",
        ),
        (vec!["train", "--epochs", "many"], "many"),
        (vec!["train", "--nesterov", "--momentum", "0"], "--nesterov"),
        (
            vec!["predict", "model.safetensors", "a.png", "--top-k", "-1"],
            "-1",
        ),
        (vec!["pull", "owner/repo/file"], "not a Hub address"),
        (vec!["fly"], "fly"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = args.clone();
        let out = tmp.path().join("run");
        if args[0] == "train" {
            args.extend(["--out", out.to_str().unwrap()]);
        }
        assert_bad_input(&run(&args), needle);
    }
}

#[test]
fn a_used_run_directory_is_not_overwritten() {
    let dir = shared_checkpoint().parent().unwrap().to_path_buf();
    let result = run(&[
        "train",
        "--data",
        "fashion-mnist-subset",
        "--epochs",
        "1",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_bad_input(&result, "--resume");
}
