//! Runs every op on an accelerator (cuDNN for the convolutions on CUDA, the composed path
//! otherwise) and compares its output and input
//! gradients with Ember's CPU kernels on the same data; prints one line per op and exits 1 if
//! any differs by more than 1e-3. Build with `scripts/build_cuda.sh --example device_check -p
//! ember-ops` and run `device_check cuda` on the GPU machine.

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, Var};
use ember_core::{DeviceChoice, EmberRng};
use ember_ops::sync_batch_norm::{batch_norm_train_synced, RankSum};
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
            "batch_norm (train)",
            vec![randn(&[16, 64, 14, 14]), randn(&[64]), randn(&[64])],
            Box::new(|t| Ok(batch_norm_train(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)?.0)),
        ),
        (
            // --sync-bn's path (the summed-gradient op, the composed normalisation) on one
            // rank, against the fused CPU kernel.
            "batch_norm synced",
            vec![randn(&[16, 64, 14, 14]), randn(&[64]), randn(&[64])],
            Box::new(|t| {
                let alone: RankSum = Arc::new(|t: &Tensor| Ok(t.clone()));
                let (w, b) = (Some(&t[1]), Some(&t[2]));
                Ok(batch_norm_train_synced(&t[0], w, b, 1e-5, &alone)?.0)
            }),
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
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        worst = worst.max(check_adamw(&device, &mut randn)?);
        worst = worst.max(check_sgd(&device, &mut randn)?);
    }
    if worst > 1e-3 {
        eprintln!("device_check: an op differs from the CPU kernels by {worst:.2e}");
        std::process::exit(1);
    }
    Ok(())
}

/// The fused AdamW kernel (three steps of a bf16 parameter with its f32 master) against the
/// same update from candle ops on the CPU; the largest difference in weight, moments or the
/// bf16 copy (relative to its rounding).
#[cfg(feature = "cuda")]
fn check_adamw(device: &Device, randn: &mut impl FnMut(&[usize]) -> Tensor) -> Result<f64> {
    use ember_ops::cuda::optimizer::{adamw_cuda, AdamWStep};
    let shape = [257, 129];
    let (w0, grads) = (randn(&shape), [randn(&shape), randn(&shape), randn(&shape)]);
    let (lr, b1, b2, eps, wd) = (1e-2, 0.9, 0.999, 1e-8, 0.05);
    let (mut w, mut m, mut v) = (w0.clone(), w0.zeros_like()?, w0.zeros_like()?);
    let on = |t: &Tensor| t.to_device(device);
    let (dw, dm, dv) = (on(&w0)?, on(&m)?, on(&v)?);
    let work = on(&w0.to_dtype(DType::BF16)?)?;
    for (i, g) in grads.iter().enumerate() {
        let step = (i + 1) as i32;
        m = ((&m * b1)? + (g * (1.0 - b1))?)?;
        v = ((&v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
        let denom = ((v.sqrt()? / (1.0 - b2.powi(step)).sqrt())? + eps)?;
        let update = ((&m / (1.0 - b1.powi(step)))? / denom)?;
        w = ((&w * (1.0 - lr * wd))? - (update * lr)?)?;
        let settings = AdamWStep {
            lr,
            beta1: b1,
            beta2: b2,
            eps,
            weight_decay: wd,
            step,
        };
        adamw_cuda(&dw, &on(g)?, &dm, &dv, Some(&work), &settings)?;
    }
    let diff = state_and_copy_diff([(&w, &dw), (&m, &dm), (&v, &dv)], &dw, &work)?;
    println!(
        "{:<22} max abs diff {diff:.2e}   (3 steps, bf16 working copy)",
        "fused adamw"
    );
    Ok(diff)
}

/// The fused SGD kernel (Nesterov momentum, weight decay; three steps of a bf16 parameter
/// with its f32 master) against torch's update from candle ops on the CPU.
#[cfg(feature = "cuda")]
fn check_sgd(device: &Device, randn: &mut impl FnMut(&[usize]) -> Tensor) -> Result<f64> {
    use ember_ops::cuda::optimizer::{sgd_cuda, SgdStep};
    let shape = [257, 129];
    let (w0, grads) = (randn(&shape), [randn(&shape), randn(&shape), randn(&shape)]);
    let (lr, momentum, wd) = (0.1, 0.9, 5e-4);
    let (mut w, mut buf) = (w0.clone(), w0.zeros_like()?);
    let on = |t: &Tensor| t.to_device(device);
    let (dw, dbuf) = (on(&w0)?, on(&buf)?);
    let work = on(&w0.to_dtype(DType::BF16)?)?;
    for (i, g) in grads.iter().enumerate() {
        let d = (g + (&w * wd)?)?;
        buf = if i == 0 {
            d.clone()
        } else {
            ((&buf * momentum)? + &d)?
        };
        w = (&w - ((d + (&buf * momentum)?)? * lr)?)?;
        let settings = SgdStep {
            lr,
            momentum,
            nesterov: true,
            weight_decay: wd,
            first: i == 0,
        };
        sgd_cuda(&dw, &on(g)?, Some(&dbuf), Some(&work), &settings)?;
    }
    let diff = state_and_copy_diff([(&w, &dw), (&buf, &dbuf)], &dw, &work)?;
    println!(
        "{:<22} max abs diff {diff:.2e}   (3 steps, Nesterov, bf16 working copy)",
        "fused sgd"
    );
    Ok(diff)
}

/// The largest difference between the CPU reference and the kernel's state, and between the
/// kernel's bf16 copy and its own f32 weight rounded to nearest even (as candle rounds).
#[cfg(feature = "cuda")]
fn state_and_copy_diff<const N: usize>(
    pairs: [(&Tensor, &Tensor); N],
    weight: &Tensor,
    work: &Tensor,
) -> Result<f64> {
    let mut diff = 0f64;
    for (cpu, dev) in pairs {
        diff = diff.max(max_diff(cpu, &dev.to_device(&Device::Cpu)?)?);
    }
    let rounded = weight
        .to_device(&Device::Cpu)?
        .to_dtype(DType::BF16)?
        .to_dtype(DType::F32)?;
    let copy = work.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    Ok(diff.max(max_diff(&rounded, &copy)?))
}
