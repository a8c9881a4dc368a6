//! Segmentation through `ember`: FashionSeg previews, `ember train` on data labelled per
//! pixel (mIoU in the result, the best checkpoint chosen by it, `ember eval` agreeing), and
//! the refusals that keep image-level settings away from dense data.

mod common;

use common::*;

/// Small canvases of small items, so a run takes seconds.
const DATA: &str = "fashion-seg:size=32,train=48,test=16,scale=0.5-1";
/// A ResNet backbone with the ImageNet stem (its first stage is at the decoder's stride 4).
const BACKBONE: &str = r#"{"layers":[1,1],"channels":[4,8],"stem_width":4}"#;

fn seg_train(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--data",
        DATA,
        "--arch",
        "resnet",
        "--model-config",
        BACKBONE,
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    run(&args)
}

#[test]
fn trains_and_evaluates_a_segmentation_model() {
    let tmp = tempfile::tempdir().unwrap();
    let result = ok_json(seg_train(&tmp.path().join("seg"), &["--epochs", "2"]));
    assert_eq!(result["task"], "segmentation", "{result}");
    let miou = result["test_miou"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&miou), "{result}");
    let class_iou = result["test_class_iou"].as_array().unwrap();
    assert_eq!(class_iou.len(), 11, "background and the 10 classes");
    assert!(result["best_miou"].as_f64().unwrap() >= miou);

    // The final checkpoint evaluated again gives the mIoU the run reported.
    let last = tmp.path().join("seg/last.safetensors");
    let eval = ok_json(run(&[
        "eval",
        last.to_str().unwrap(),
        "--data",
        DATA,
        "--threads",
        "1",
    ]));
    assert!(
        (eval["miou"].as_f64().unwrap() - miou).abs() < 1e-6,
        "{eval} vs {result}"
    );
}

#[test]
fn previews_canvases_with_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let png = tmp.path().join("preview.png");
    let out = run(&[
        "data",
        "preview",
        "--data",
        DATA,
        "--count",
        "4",
        "--columns",
        "2",
        "--scale",
        "1",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (w, h) = image::image_dimensions(&png).unwrap();
    // Two columns of (image, overlay) pairs, two rows, of 32-pixel canvases.
    assert!(w >= 4 * 32 && h >= 2 * 32, "{w}x{h}");
}

#[test]
fn refuses_image_level_settings_on_dense_data_and_the_reverse() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("refused");
    assert_bad_input(
        &seg_train(&out, &["--epochs", "1", "--mixup", "0.2"]),
        "--mixup",
    );
    assert_bad_input(
        &run(&[
            "train",
            "--data",
            "fashion-mnist-subset",
            "--task",
            "seg",
            "--out",
            out.to_str().unwrap(),
        ]),
        "label per pixel",
    );
    assert_bad_input(
        &run(&[
            "train",
            "--data",
            DATA,
            "--arch",
            "lightvit_nano_32",
            "--out",
            out.to_str().unwrap(),
        ]),
        "--task seg needs a seg_* arch",
    );
    assert_bad_input(
        &run(&["data", "preview", "--data", "fashion-seg:colour=red"]),
        "unknown option",
    );
    assert!(!out.exists(), "nothing written for a refused run");
}
