//! `scalenet-search` end to end on the bundled subset: `train` of the Fashion-MNIST
//! super-supernet (and its resume), `search` with MCEA and with the compound baseline (and
//! its replay), `export` of a member that the registry builds, and the refusals.

#[path = "../../../tests/common/output.rs"]
mod output;
#[path = "../../../tests/common/runs.rs"]
mod runs;

use std::path::Path;
use std::process::{Command, Output};

use output::{assert_bad_input, offline, ok_json};
use runs::{alone_and_launched, with_args};
use serde_json::Value;

fn command() -> Command {
    offline(env!("CARGO_BIN_EXE_scalenet-search"))
}

fn tool(args: &[&str]) -> Output {
    command().args(args).output().unwrap()
}

fn train(out: &Path) -> Output {
    tool(&train_args(out))
}

fn train_args(out: &Path) -> Vec<&str> {
    vec![
        "train",
        "--arch",
        "scalenet_supernet_fashion",
        "--data",
        "fashion-mnist-subset",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--knn-bank",
        "256",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]
}

/// The super-supernet trains as two data-parallel ranks (each step's sub-network drawn
/// alike on both) and follows the one-process run (not to the bit: batch norm sees each
/// rank's half batch, as in DDP).
#[test]
fn trains_as_two_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let run = alone_and_launched(2, tmp.path(), 0.01, |out| {
        with_args(command(), train_args(out))
    });
    assert_eq!(run.launched["method"], "scalenet");
}

fn search(supernet: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "search",
        "--supernet",
        supernet.to_str().unwrap(),
        "--data",
        "fashion-mnist-subset",
        "--holdout",
        "128",
        "--population",
        "4",
        "--generations",
        "2",
        "--top-k",
        "2",
        "--n-basenet",
        "1",
        "--rounds",
        "1",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    tool(&args)
}

fn family(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("family.json")).unwrap()).unwrap()
}

#[test]
fn trains_searches_and_exports_a_family() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("supernet");
    let r = ok_json(train(&run));
    assert_eq!(
        (r["method"].as_str(), r["coupling"].as_str()),
        (Some("scalenet"), Some("bc"))
    );
    let again = ok_json(tool(&[
        "train",
        "--resume",
        run.to_str().unwrap(),
        "--quiet",
    ]));
    assert_eq!(again["knn_top1"], r["knn_top1"]);

    let joint = tmp.path().join("mcea");
    let found = ok_json(search(&run, &joint, &[]));
    assert_eq!(found["method"], "mcea");
    let fam = family(&joint);
    let members = fam["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let base = members[0]["macs"].as_f64().unwrap();
    assert!((base - 300_000.0).abs() <= 30_000.0, "{base}");
    for m in &members[1..] {
        // Each scale within its window: 2^s times the base, +- 2^s x 45k.
        let s = m["stage"].as_u64().unwrap() as i32;
        let gap = (m["macs"].as_f64().unwrap() - 2f64.powi(s) * base).abs();
        assert!(gap <= 45_000.0 * 2f64.powi(s), "stage {s}: {m}");
        assert!((0.0..=100.0).contains(&m["supernet_top1"].as_f64().unwrap()));
    }
    // The recorded scores replay the same search without scoring anything.
    let replay = search(&run, &joint, &[]);
    assert!(String::from_utf8_lossy(&replay.stderr).contains("continuing"));
    ok_json(replay);
    assert_eq!(family(&joint)["members"], fam["members"]);

    let compound = tmp.path().join("compound");
    let c = ok_json(search(&run, &compound, &["--baseline", "compound"]));
    assert_eq!(c["method"], "compound");
    let widths: Vec<f64> = family(&compound)["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["width"].as_f64().unwrap())
        .collect();
    assert_eq!(widths, [1.0, 1.1, 1.1f64 * 1.1]);

    let file = tmp.path().join("arch.json");
    let e = ok_json(tool(&[
        "export",
        "--family",
        joint.to_str().unwrap(),
        "--scale",
        "1",
        "-o",
        file.to_str().unwrap(),
    ]));
    assert_eq!(e["macs"], members[1]["macs"]);
    let arch: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let vars = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(
        &vars,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    );
    assert!(ember_models::build("scalenet", &arch, vb).is_ok());
    assert_eq!(
        ember_models::registry::parameter_count(&vars) as u64,
        members[1]["params"].as_u64().unwrap()
    );

    assert_bad_input(
        &tool(&[
            "export",
            "--family",
            joint.to_str().unwrap(),
            "--scale",
            "7",
        ]),
        "--scale 7",
    );
    assert_bad_input(
        &search(&run, &tmp.path().join("tight"), &["--base-error", "1"]),
        "no base model within",
    );
}

#[test]
fn plots_accuracy_against_flops() {
    let tmp = tempfile::tempdir().unwrap();
    let points = tmp.path().join("points.json");
    let text = r#"{"series": [{"name": "MCEA", "points": [[0.3, 88.1], [0.6, 89.0]]},
                              {"name": "compound", "points": [[0.3, 87.9], [0.6, 88.4]]}]}"#;
    std::fs::write(&points, text).unwrap();
    let png = tmp.path().join("plot.png");
    ok_json(tool(&[
        "plot",
        "--points",
        points.to_str().unwrap(),
        "-o",
        png.to_str().unwrap(),
    ]));
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    std::fs::write(&points, "{}").unwrap();
    assert_bad_input(
        &tool(&[
            "plot",
            "--points",
            points.to_str().unwrap(),
            "-o",
            png.to_str().unwrap(),
        ]),
        "series",
    );
}

#[test]
fn refuses_what_it_cannot_train() {
    assert_bad_input(
        &tool(&[
            "train",
            "--arch",
            "resnet18",
            "--data",
            "fashion-mnist-subset",
        ]),
        "--arch resnet18",
    );
}
