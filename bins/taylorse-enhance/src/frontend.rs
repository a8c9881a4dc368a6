//! Waveforms to the network's tensors and back: STFT, power-law compression (outside the
//! network, as officially), and the inverse for enhanced spectra.

use candle_core::{Device, Tensor};
use ember_audio::{Spectrum, Stft};
use ember_core::Result;

/// The official front end: periodic Hann of n_fft samples, hop n_fft / 2, power 0.5.
#[derive(Debug, Clone)]
pub struct FrontEnd {
    pub stft: Stft,
    pub power: f32,
}

impl FrontEnd {
    /// TaylorSENet's front end for `fft_num` (20 ms / 10 ms at 16 kHz with the official 320).
    pub fn new(fft_num: usize) -> Result<Self> {
        Ok(Self {
            stft: Stft::new(fft_num, fft_num / 2, fft_num)?,
            power: 0.5,
        })
    }

    /// Compressed spectra (B, 2, T, F) of equally long waveforms.
    pub fn batch(&self, waves: &[&[f32]], device: &Device) -> Result<Tensor> {
        let mut data = Vec::new();
        let mut frames = 0;
        for wave in waves {
            let s = self.stft.forward(wave)?.powered(self.power);
            frames = s.frames;
            data.extend_from_slice(&s.data);
        }
        Ok(Tensor::from_vec(
            data,
            (waves.len(), 2, frames, self.stft.bins()),
            device,
        )?)
    }

    /// The waveform of `length` samples of one compressed spectrum (2, T, F).
    pub fn waveform(&self, spectrum: &Tensor, length: usize) -> Result<Vec<f32>> {
        let (_, t, f) = spectrum.dims3()?;
        let data: Vec<f32> = spectrum
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        self.stft.inverse(
            &Spectrum::from_channels(t, f, data).powered(1.0 / self.power),
            length,
        )
    }
}
