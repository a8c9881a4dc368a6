//! Times one conv shape: forward, forward + each gradient, for tuning (`perf record` it).
use candle_core::{DType, Device, Tensor, Var};
use ember_core::EmberRng;
use ember_ops::Conv2dParams;

fn time(iters: usize, f: impl Fn()) -> f64 {
    f();
    let t = std::time::Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() / iters as f64
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (n, cin, hw, cout, k, s, iters) = (
        args[0], args[1], args[2], args[3], args[4], args[5], args[6],
    );
    let mode = args.get(7).copied().unwrap_or(7);
    let mut rng = EmberRng::new(0);
    let x = rng
        .normal_tensor((n, cin, hw, hw), 0., 1., DType::F32, &Device::Cpu)
        .unwrap();
    let w = rng
        .normal_tensor((cout, cin, k, k), 0., 1., DType::F32, &Device::Cpu)
        .unwrap();
    let p = Conv2dParams::default().stride(s).padding(k / 2);
    let flops = ember_ops::conv::conv2d_flops(x.dims(), w.dims(), p).unwrap();
    let run = |x: &Tensor, w: &Tensor, back: bool| {
        let y = ember_ops::conv2d(x, w, p).unwrap();
        if back {
            y.sum_all().unwrap().backward().unwrap();
        }
    };
    let (xv, wv) = (Var::from_tensor(&x).unwrap(), Var::from_tensor(&w).unwrap());
    if mode & 1 != 0 {
        let f = time(iters, || run(&x, &w, false));
        println!(
            "forward      {:7.2} ms {:6.1} GFLOP/s",
            f * 1e3,
            flops / f / 1e9
        );
    }
    if mode & 2 != 0 {
        let t = time(iters, || run(xv.as_tensor(), &w, true));
        println!(
            "fwd+dx       {:7.2} ms {:6.1} GFLOP/s",
            t * 1e3,
            2.0 * flops / t / 1e9
        );
        let t = time(iters, || run(&x, wv.as_tensor(), true));
        println!(
            "fwd+dw       {:7.2} ms {:6.1} GFLOP/s",
            t * 1e3,
            2.0 * flops / t / 1e9
        );
    }
    if mode & 4 != 0 {
        let t = time(iters, || run(xv.as_tensor(), wv.as_tensor(), true));
        println!(
            "fwd+dx+dw    {:7.2} ms {:6.1} GFLOP/s",
            t * 1e3,
            3.0 * flops / t / 1e9
        );
    }
}
