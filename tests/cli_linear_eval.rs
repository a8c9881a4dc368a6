//! `ember linear-eval` end to end on the bundled subset: a frozen backbone (any checkpoint;
//! here a tiny trained ResNet) is probed, the probe written with `--out` scores the same
//! under `ember eval`, `--fraction` keeps that share of each class, and bad input is refused.

mod common;

use std::process::Output;

use common::*;

fn linear_eval(backbone: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "linear-eval",
        "--data",
        "fashion-mnist-subset",
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--backbone", backbone]);
    run(&args)
}

#[test]
fn probes_a_backbone_and_writes_a_usable_classifier() {
    let backbone = shared_checkpoint();
    let backbone = backbone.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let probe = tmp.path().join("probe.safetensors");
    let probe = probe.to_str().unwrap();
    let out = linear_eval(backbone, &["--epochs", "5", "--out", probe]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lin = stdout_json(&out);
    assert_eq!(lin["train_images"], 4000);
    let top1 = lin["top1"].as_f64().unwrap();
    assert!(
        top1 > 30.0,
        "a trained backbone probes well above chance: {lin}"
    );
    assert!(lin["best_top1"].as_f64().unwrap() >= top1);
    let eval = stdout_json(&run(&["eval", probe, "--data", "fashion-mnist-subset"]));
    assert_eq!(eval["top1"].as_f64().unwrap(), top1, "{eval} vs {lin}");

    let few = stdout_json(&linear_eval(
        backbone,
        &["--epochs", "2", "--fraction", "0.1"],
    ));
    let n = few["train_images"].as_u64().unwrap();
    assert!((380..=420).contains(&n), "{few}");

    assert_bad_input(&linear_eval(backbone, &["--fraction", "0"]), "--fraction");

    // The random-initialisation baseline needs no checkpoint.
    let net = r#"{"stem_type":"small","layers":[1],"channels":[4],"stem_width":4}"#;
    let args = [
        "linear-eval",
        "--data",
        "fashion-mnist-subset",
        "--epochs",
        "2",
        "--random-arch",
        "resnet",
        "--model-config",
        net,
    ];
    let random = stdout_json(&run(&args));
    assert!(
        random["backbone"]
            .as_str()
            .unwrap()
            .starts_with("random resnet"),
        "{random}"
    );
    assert!(random["top1"].as_f64().unwrap() > 0.0);
}
