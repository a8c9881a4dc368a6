//! MAE's fixed 2-D sin-cos position embedding (`get_2d_sincos_pos_embed`), computed in f64
//! as the official numpy code does, then cast.

/// `[side * side, dim]` row-major over the unit grid (raster order). For the unit at (row r,
/// column c) and `k < dim / 4`, `w_k = 10000^(-k / (dim / 4))`: columns `[sin(c w), cos(c w),
/// sin(r w), cos(r w)]`, each `dim / 4` wide (the column index first: MAE builds its grid
/// with w first).
pub fn sincos_2d(dim: usize, side: usize) -> Vec<f32> {
    let quarter = dim / 4;
    let omega: Vec<f64> = (0..quarter)
        .map(|k| 1.0 / 10000f64.powf(k as f64 / quarter as f64))
        .collect();
    let mut out = Vec::with_capacity(side * side * dim);
    for r in 0..side {
        for c in 0..side {
            for pos in [c as f64, r as f64] {
                out.extend(omega.iter().map(|w| (pos * w).sin() as f32));
                out.extend(omega.iter().map(|w| (pos * w).cos() as f32));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::sincos_2d;

    #[test]
    fn column_comes_first() {
        let e = sincos_2d(8, 2);
        // Unit (0, 1): sin(1 * w0) in column 0, sin(0) = 0 at column 4.
        assert!((e[8] - 1f32.sin()).abs() < 1e-7);
        assert_eq!(e[8 + 4], 0.0);
        // Unit (1, 0): row index in the second half.
        assert_eq!(e[16], 0.0);
        assert!((e[16 + 4] - 1f32.sin()).abs() < 1e-7);
    }
}
