//! Runs every op on an accelerator (cuDNN for the convolutions on CUDA, the composed path
//! otherwise) and compares its output and input
//! gradients with Ember's CPU kernels on the same data; prints one line per op and exits 1 if
//! any differs by more than 1e-3. Build with `scripts/build_cuda.sh --example device_check -p
//! ember-ops` and run `device_check cuda` on the GPU machine.

use candle_core::{DType, Device, Result, Tensor, Var};
use ember_core::{DeviceChoice, EmberRng};
use ember_ops::*;

type Op = Box<dyn Fn(&[Tensor]) -> Result<Tensor>>;

/// Output and input gradients of `sum(op(inputs) * r)` for a fixed random `r`, so that every
/// output element reaches the gradients with its own weight.
fn grads(inputs: &[Tensor], op: &Op, device: &Device) -> Result<(Tensor, Vec<Tensor>, f64)> {
    let vars = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.to_device(device)?))
        .collect::<Result<Vec<_>>>()?;
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let start = std::time::Instant::now();
    let y = op(&ts)?;
    let r = EmberRng::new(1)
        .normal_tensor(y.shape().clone(), 0.0, 1.0, y.dtype(), &Device::Cpu)
        .map_err(candle_core::Error::wrap)?
        .to_device(device)?;
    let g = (&y * &r)?.sum_all()?.backward()?;
    let gs = vars
        .iter()
        .map(|v| {
            g.get(v)
                .cloned()
                .ok_or_else(|| candle_core::Error::Msg("missing gradient".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    device.synchronize()?;
    Ok((
        y.to_device(&Device::Cpu)?,
        gs.iter()
            .map(|g| g.to_device(&Device::Cpu))
            .collect::<Result<_>>()?,
        start.elapsed().as_secs_f64(),
    ))
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    (a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F64)?
        .to_scalar()
}

fn main() -> Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "auto".into());
    let device = name
        .parse::<DeviceChoice>()
        .and_then(|d| d.open())
        .map_err(candle_core::Error::wrap)?;
    println!("device: {device:?}");
    let mut rng = EmberRng::new(0);
    let mut randn = |s: &[usize]| {
        rng.normal_tensor(s.to_vec(), 0.0, 1.0, DType::F32, &Device::Cpu)
            .unwrap()
    };
    let conv = Conv2dParams::default().padding(1).stride((1, 2));
    let cases: Vec<(&str, Vec<Tensor>, Op)> = vec![
        (
            "conv2d",
            vec![randn(&[8, 32, 28, 27]), randn(&[64, 32, 3, 3])],
            Box::new(move |t| conv2d(&t[0], &t[1], conv)),
        ),
        (
            "depthwise",
            vec![randn(&[8, 96, 28, 28]), randn(&[96, 1, 3, 3])],
            Box::new(|t| {
                conv2d(
                    &t[0],
                    &t[1],
                    Conv2dParams::default().padding(1).stride(2).groups(96),
                )
            }),
        ),
        (
            "grouped dilated conv2d",
            vec![randn(&[4, 32, 15, 16]), randn(&[48, 8, 3, 3])],
            Box::new(|t| {
                conv2d(
                    &t[0],
                    &t[1],
                    Conv2dParams::default().padding(2).dilation(2).groups(4),
                )
            }),
        ),
        (
            "conv_transpose2d",
            vec![randn(&[4, 16, 9, 8]), randn(&[16, 8, 2, 3])],
            Box::new(|t| conv_transpose2d(&t[0], &t[1], Conv2dParams::default().stride((1, 2)), 0)),
        ),
        (
            "layer_norm",
            vec![randn(&[64, 197, 192]), randn(&[192]), randn(&[192])],
            Box::new(|t| layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)),
        ),
        (
            "layer_norm_channels",
            vec![randn(&[8, 64, 14, 14]), randn(&[64]), randn(&[64])],
            Box::new(|t| layer_norm_channels(&t[0], Some(&t[1]), Some(&t[2]), 1e-6)),
        ),
        (
            "softmax",
            vec![randn(&[16, 4, 49, 49])],
            Box::new(|t| softmax(&t[0], 3)),
        ),
        (
            "max_pool2d 3/2/1",
            vec![randn(&[8, 64, 56, 56])],
            Box::new(|t| max_pool2d(&t[0], MaxPool2dParams::new(3).stride(2).padding(1))),
        ),
        (
            "avg_pool2d",
            vec![randn(&[8, 64, 28, 28])],
            Box::new(|t| {
                avg_pool2d(
                    &t[0],
                    AvgPool2dParams::new(3)
                        .stride(2)
                        .padding(1)
                        .count_include_pad(false),
                )
            }),
        ),
        (
            "adaptive_avg_pool2d",
            vec![randn(&[8, 64, 7, 7])],
            Box::new(|t| adaptive_avg_pool2d(&t[0], 1)),
        ),
        (
            "upsample_bilinear2d",
            vec![randn(&[4, 16, 14, 14])],
            Box::new(|t| upsample_bilinear2d(&t[0], Resize::Size(56, 56), true)),
        ),
        (
            "upsample_nearest2d",
            vec![randn(&[4, 16, 14, 14])],
            Box::new(|t| upsample_nearest2d(&t[0], Resize::Scale(2.0, 2.0))),
        ),
    ];
    let mut worst: f64 = 0.0;
    for (name, inputs, op) in &cases {
        let (y_cpu, g_cpu, t_cpu) = grads(inputs, op, &Device::Cpu)?;
        grads(inputs, op, &device)?; // warm-up
        let (y_dev, g_dev, t_dev) = grads(inputs, op, &device)?;
        let mut diff = max_diff(&y_cpu, &y_dev)?;
        for (a, b) in g_cpu.iter().zip(&g_dev) {
            diff = diff.max(max_diff(a, b)?);
        }
        worst = worst.max(diff);
        println!(
            "{name:<22} max abs diff {diff:.2e}   fwd+bwd cpu {:.2} ms, device {:.2} ms",
            t_cpu * 1e3,
            t_dev * 1e3
        );
    }
    if worst > 1e-3 {
        eprintln!("device_check: an op differs from the CPU kernels by {worst:.2e}");
        std::process::exit(1);
    }
    Ok(())
}
