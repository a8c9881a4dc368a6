//! Folding a block into one convolution (`get_actual_kernel` and `dbb_transforms.py`), with
//! eval-mode BN statistics. Every function works on detached tensors.

use candle_core::{Device, Result, Tensor};

use super::{Branch, DiverseBranchBlock};
use crate::layers::BatchNorm2d;

/// A convolution kernel `[cout, cin / groups, k, k]` and its bias `[cout]`.
pub type Kernel = (Tensor, Tensor);

/// Conv then BN as one conv (transI): `W t` per output channel and `beta + (b - mu) t`.
pub fn fuse_bn(w: &Tensor, bias: Option<&Tensor>, bn: &BatchNorm2d) -> Result<Kernel> {
    let (scale, shift) = bn.eval_affine()?;
    let w = w.detach().broadcast_mul(&scale.reshape(((), 1, 1, 1))?)?;
    let b = match bias {
        Some(b) => (shift + (b.detach() * &scale)?)?,
        None => shift,
    };
    Ok((w, b))
}

/// Centre-pads a kernel with zeros to `k x k` (transVI).
pub fn pad_to(w: &Tensor, k: usize) -> Result<Tensor> {
    let (_, _, kh, kw) = w.dims4()?;
    let (ph, pw) = ((k - kh) / 2, (k - kw) / 2);
    w.pad_with_zeros(2, ph, ph)?.pad_with_zeros(3, pw, pw)
}

/// A 1x1 conv `(w1, b1)` followed by a kxk conv `(w2, b2)` as one kxk conv, per group
/// (transIII). Exact because the intermediate map is padded with `b1`, the value a zero
/// input gives.
pub fn compose_1x1_kxk(first: &Kernel, second: &Kernel, groups: usize) -> Result<Kernel> {
    let (w1, b1) = first;
    let (w2, b2) = second;
    let (m, cin_g, _, _) = w1.dims4()?;
    let (cout, m_g, k, _) = w2.dims4()?;
    let cout_g = cout / groups;
    let mut ws = Vec::with_capacity(groups);
    let mut bs = Vec::with_capacity(groups);
    for g in 0..groups {
        let w1g = w1.narrow(0, g * m_g, m_g)?.reshape((m_g, cin_g))?;
        let w2g = w2.narrow(0, g * cout_g, cout_g)?;
        let b1g = b1.narrow(0, g * m_g, m_g)?;
        // W[o, i, y, x] = sum_m W2[o, m, y, x] W1[m, i]
        let w = w2g
            .permute((0, 2, 3, 1))?
            .reshape((cout_g * k * k, m_g))?
            .matmul(&w1g)?
            .reshape((cout_g, k, k, cin_g))?
            .permute((0, 3, 1, 2))?;
        let b = w2g
            .sum((2, 3))?
            .matmul(&b1g.reshape((m_g, 1))?)?
            .reshape(cout_g)?;
        ws.push(w);
        bs.push(b);
    }
    debug_assert_eq!(m, m_g * groups);
    let w = Tensor::cat(&ws, 0)?.contiguous()?;
    let b = (Tensor::cat(&bs, 0)? + b2)?;
    Ok((w, b))
}

/// Average pooling as a kxk conv (transV): `1 / k^2` on each channel's own input within its
/// group.
pub fn avg_kernel(channels: usize, k: usize, groups: usize, device: &Device) -> Result<Tensor> {
    let per_group = channels / groups;
    let mut v = vec![0f32; channels * per_group * k * k];
    for o in 0..channels {
        let i = o % per_group;
        let start = (o * per_group + i) * k * k;
        v[start..start + k * k].fill(1.0 / (k * k) as f32);
    }
    Tensor::from_vec(v, (channels, per_group, k, k), device)
}

/// The identity as a 3x3 conv (transIX): 1 at the centre of each channel's own input.
pub fn identity_kernel(channels: usize, groups: usize, device: &Device) -> Result<Tensor> {
    let per_group = channels / groups;
    let mut v = vec![0f32; channels * per_group * 9];
    for c in 0..channels {
        v[(c * per_group + c % per_group) * 9 + 4] = 1.0;
    }
    Tensor::from_vec(v, (channels, per_group, 3, 3), device)
}

impl DiverseBranchBlock {
    /// The block as one kxk convolution (eval statistics); without the kxk branch when
    /// `skip_kxk` (what new or kept branches add on top of it).
    pub fn kernel(&self, skip_kxk: bool) -> Result<Kernel> {
        let k = self.shape.k;
        let groups = self.shape.groups;
        let device = self.kxk_bn.weight().device().clone();
        let mut parts: Vec<Kernel> = Vec::new();
        if !skip_kxk {
            let (w, b) = self.kxk.kernel()?;
            parts.push(fuse_bn(&w, Some(&b), &self.kxk_bn)?);
        }
        if let Some(br) = &self.one {
            let (w, b) = fuse_bn(br.conv.weight(), None, &br.bn)?;
            parts.push((pad_to(&w, k)?, b));
        }
        if let Some(br) = &self.one_kxk {
            let (w2, b2) = br.conv2.kernel()?;
            let second = fuse_bn(&w2, Some(&b2), &br.bn2)?;
            let first = fuse_bn(br.conv1.weight(), None, &br.bn1.bn)?;
            parts.push(compose_1x1_kxk(&first, &second, groups)?);
        }
        if let Some(br) = &self.avg {
            let pool = avg_kernel(self.shape.cout, k, groups, &device)?;
            let second = fuse_bn(&pool, None, &br.bn)?;
            parts.push(match &br.first {
                Some((conv, pad_bn)) => {
                    let first = fuse_bn(conv.weight(), None, &pad_bn.bn)?;
                    compose_1x1_kxk(&first, &second, groups)?
                }
                None => second,
            });
        }
        for br in [&self.one_k, &self.k_one].into_iter().flatten() {
            let (w, b) = fuse_bn(br.conv.weight(), None, &br.bn)?;
            parts.push((pad_to(&w, k)?, b));
        }
        if let Some(bn) = &self.id {
            let eye = identity_kernel(self.shape.cin, groups, &device)?;
            let (w, b) = fuse_bn(&eye, None, bn)?;
            parts.push((pad_to(&w, k)?, b));
        }
        let mut parts = parts.into_iter();
        let Some((mut w, mut b)) = parts.next() else {
            candle_core::bail!("a block without the kxk branch and without others has no kernel")
        };
        for (pw, pb) in parts {
            w = (w + pw)?;
            b = (b + pb)?;
        }
        Ok((w, b))
    }

    /// `branch_weights()`: the mean |scale| of each active branch's last BN over that of the
    /// kxk BN, in index order; 1 for kxk and -1 for branches the block lacks.
    pub fn branch_weights(&self) -> Result<[f64; 7]> {
        let l1 = |bn: &BatchNorm2d| -> Result<f64> {
            Ok(bn.weight().detach().abs()?.mean_all()?.to_scalar::<f32>()? as f64)
        };
        let kxk = l1(&self.kxk_bn)?;
        let mut out = [-1.0; 7];
        for b in Branch::ALL {
            out[b.index()] = match (b, self.last_bn(b)) {
                (Branch::Kxk, _) => 1.0,
                (_, Some(bn)) => l1(bn)? / kxk,
                (_, None) => -1.0,
            };
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avg_and_identity_kernels_sit_on_each_channels_own_input() {
        let dev = Device::Cpu;
        let avg = avg_kernel(4, 3, 2, &dev).unwrap();
        assert_eq!(avg.dims(), [4, 2, 3, 3]);
        let v: Vec<f32> = avg
            .sum((2, 3))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(v, [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]);
        let eye = identity_kernel(4, 1, &dev).unwrap();
        let centre: Vec<f32> = eye
            .narrow(2, 1, 1)
            .unwrap()
            .narrow(3, 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let expected: Vec<f32> = (0..16)
            .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(centre, expected);
    }
}
