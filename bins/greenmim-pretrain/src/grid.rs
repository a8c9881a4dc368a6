//! The reconstruction grid: for the first held-out images, one row each of the masked
//! input (masked units grey), the reconstruction (predicted pixels on the masked units, the
//! input on the visible ones) and the original. With the normalised-pixel target the
//! predictions are mapped back through each unit's own mean and spread, as MAE's
//! visualisation does.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use ember_core::mosaic::{write_mosaic, Tile};
use ember_core::{EmberError, Result};
use ember_data::Loader;
use ember_losses::{patchify, unpatchify};
use ember_models::mim::{self, MaskedModel, UnitMask};

use crate::method::mask_rows;

/// Images shown.
const SHOWN: usize = 8;

/// The model runs on `device` in `dtype`.
pub fn write(
    path: &Path,
    model: &MaskedModel,
    cfg: &mim::Config,
    mask: &UnitMask,
    held_out: &Loader,
    (device, dtype): (&Device, DType),
) -> Result<()> {
    let batch = held_out.epoch(0, 0).next().ok_or_else(|| {
        EmberError::Runtime("no held-out images for the reconstruction grid".into())
    })??;
    let images = batch.view(0, device)?.to_dtype(DType::F32)?;
    let images = images.narrow(0, 0, images.dim(0)?.min(SHOWN))?;
    let (n, c, h, w) = images.dims4()?;
    let pred = model
        .forward_t(&images.to_dtype(dtype)?, mask, false)?
        .to_dtype(DType::F32)?;
    let unit = cfg.encoder.mask_unit();
    let units = patchify(&images, unit)?;
    let pred = if cfg.norm_pix_loss {
        let d = units.dim(2)? as f64;
        let mean = units.mean_keepdim(2)?;
        let var = (units.broadcast_sub(&mean)?.sqr()?.sum_keepdim(2)? / (d - 1.0))?;
        pred.broadcast_mul(&(var + 1e-6)?.sqrt()?)?
            .broadcast_add(&mean)?
    } else {
        pred
    };
    // Per unit, 1 where masked: the reconstruction there, the input elsewhere.
    let masked = mask_rows(mask, n, &units)?.unsqueeze(2)?;
    let shown = (pred.broadcast_mul(&masked)? + units.broadcast_mul(&(1.0 - &masked)?)?)?;
    let as_image = |t: &Tensor| unpatchify(t, unit, c)?.flatten_all()?.to_vec1::<f32>();
    let (recon, original) = (as_image(&shown)?, as_image(&units)?);
    let plane = c * h * w;
    let rows: Vec<Vec<Tile>> = (0..n)
        .map(|i| {
            let part = |v: &[f32]| v[i * plane..(i + 1) * plane].to_vec();
            let orig = part(&original);
            let lo = orig.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = orig.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            // Masked units show mid-grey: half-way between the image's extremes.
            let mut input = orig.clone();
            let masked_units = mask.masked();
            for (p, v) in input.iter_mut().enumerate() {
                let (y, x) = ((p % (h * w)) / w, p % w);
                if masked_units[(y / unit) * mask.side + x / unit] > 0.5 {
                    *v = (lo + hi) / 2.0;
                }
            }
            [input, part(&recon), orig]
                .iter()
                .map(|v| Tile::from_chw(v, (c, h, w), (lo, hi)))
                .collect()
        })
        .collect();
    write_mosaic(path, &rows, 4, 2)
}
