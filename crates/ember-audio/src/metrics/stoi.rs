//! STOI (Taal et al., 2011) and extended STOI (Jensen & Taal, 2016), step for step as pystoi
//! 0.4 computes them: resample to 10 kHz, drop the frames 40 dB below the loudest clean
//! frame, 512-point STFT of 256-sample Hann frames, 15 one-third-octave bands from 150 Hz,
//! 30-frame segments, then the clipped correlation (STOI) or the row- and column-normalised
//! one (ESTOI).

use realfft::RealFftPlanner;

use super::polyphase::resample_octave;

const FS: u32 = 10_000;
const FRAME: usize = 256;
const HOP: usize = FRAME / 2;
const NFFT: usize = 512;
const BANDS: usize = 15;
const MIN_FREQ: f64 = 150.0;
const SEGMENT: usize = 30;
const BETA_DB: f64 = -15.0;
const DYN_RANGE_DB: f64 = 40.0;
const EPS: f64 = f64::EPSILON;

/// STOI of `degraded` against `clean` (same length, `sample_rate` Hz), in [-1, 1] (1e-5 when
/// fewer than 30 speech frames remain, as pystoi returns).
pub fn stoi(clean: &[f32], degraded: &[f32], sample_rate: u32) -> f64 {
    match band_segments(clean, degraded, sample_rate) {
        Some((x, y)) => clipped_correlation(&x, &y),
        None => 1e-5,
    }
}

/// Extended STOI (ESTOI) of `degraded` against `clean`.
pub fn estoi(clean: &[f32], degraded: &[f32], sample_rate: u32) -> f64 {
    match band_segments(clean, degraded, sample_rate) {
        Some((x, y)) => normalised_correlation(&x, &y),
        None => 1e-5,
    }
}

/// One-third-octave band envelopes, `[frame][band]`, of both signals after resampling and
/// silent-frame removal; None when too few frames remain.
type Envelopes = Vec<[f64; BANDS]>;

fn band_segments(
    clean: &[f32],
    degraded: &[f32],
    sample_rate: u32,
) -> Option<(Envelopes, Envelopes)> {
    assert_eq!(
        clean.len(),
        degraded.len(),
        "STOI needs signals of one length"
    );
    let to_f64 = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let (mut x, mut y) = (to_f64(clean), to_f64(degraded));
    if sample_rate != FS {
        x = resample_octave(&x, sample_rate, FS);
        y = resample_octave(&y, sample_rate, FS);
    }
    let (x, y) = remove_silent_frames(&x, &y);
    let (xb, yb) = (band_envelopes(&x), band_envelopes(&y));
    (xb.len() >= SEGMENT).then_some((xb, yb))
}

/// MATLAB's `hanning(n)`: numpy's `hanning(n + 2)[1:-1]`.
fn hanning(n: usize) -> Vec<f64> {
    (1..=n)
        .map(|i| 0.5 - 0.5 * (std::f64::consts::TAU * i as f64 / (n + 1) as f64).cos())
        .collect()
}

/// Frame starts 0, hop, ... strictly before len - frame (pystoi's `range(0, len - frame, hop)`).
fn frame_starts(len: usize) -> impl Iterator<Item = usize> {
    (0..len.saturating_sub(FRAME)).step_by(HOP)
}

fn remove_silent_frames(x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let w = hanning(FRAME);
    let frame = |s: &[f64], start: usize| -> Vec<f64> {
        w.iter()
            .zip(&s[start..start + FRAME])
            .map(|(a, b)| a * b)
            .collect()
    };
    let starts: Vec<usize> = frame_starts(x.len()).collect();
    let energies: Vec<f64> = starts
        .iter()
        .map(|&s| 20.0 * (frame(x, s).iter().map(|v| v * v).sum::<f64>().sqrt() + EPS).log10())
        .collect();
    let loudest = energies.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let kept: Vec<usize> = starts
        .iter()
        .zip(&energies)
        .filter(|(_, &e)| loudest - DYN_RANGE_DB - e < 0.0)
        .map(|(&s, _)| s)
        .collect();
    let len = kept.len().saturating_sub(1) * HOP + FRAME;
    let (mut xs, mut ys) = (vec![0.0; len], vec![0.0; len]);
    for (i, &s) in kept.iter().enumerate() {
        for (k, (a, b)) in frame(x, s).into_iter().zip(frame(y, s)).enumerate() {
            xs[i * HOP + k] += a;
            ys[i * HOP + k] += b;
        }
    }
    (xs, ys)
}

/// The 1/3-octave band of each FFT bin range: [low, high) bin indices, matched to the nearest
/// bin as pystoi's `thirdoct` does.
fn band_ranges() -> [(usize, usize); BANDS] {
    let freqs: Vec<f64> = (0..=NFFT / 2)
        .map(|k| k as f64 * FS as f64 / NFFT as f64)
        .collect();
    let nearest = |f: f64| {
        let mut best = 0;
        for (i, &g) in freqs.iter().enumerate() {
            if (g - f).powi(2) < (freqs[best] - f).powi(2) {
                best = i;
            }
        }
        best
    };
    std::array::from_fn(|k| {
        let low = MIN_FREQ * 2f64.powf((2.0 * k as f64 - 1.0) / 6.0);
        let high = MIN_FREQ * 2f64.powf((2.0 * k as f64 + 1.0) / 6.0);
        (nearest(low), nearest(high))
    })
}

fn band_envelopes(x: &[f64]) -> Envelopes {
    let w = hanning(FRAME);
    let ranges = band_ranges();
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(NFFT);
    let mut input = fft.make_input_vec();
    let mut output = fft.make_output_vec();
    frame_starts(x.len())
        .map(|s| {
            input.fill(0.0);
            for (k, v) in input.iter_mut().take(FRAME).enumerate() {
                *v = w[k] * x[s + k];
            }
            fft.process(&mut input, &mut output)
                .expect("fixed FFT sizes");
            std::array::from_fn(|b| {
                let (lo, hi) = ranges[b];
                output[lo..hi]
                    .iter()
                    .map(|c| c.norm_sqr())
                    .sum::<f64>()
                    .sqrt()
            })
        })
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

fn centred(v: &[f64]) -> Vec<f64> {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    v.iter().map(|a| a - mean).collect()
}

/// One band's envelope over the segment ending before frame `end`.
fn band_row(e: &Envelopes, end: usize, band: usize) -> Vec<f64> {
    e[end - SEGMENT..end].iter().map(|f| f[band]).collect()
}

fn clipped_correlation(x: &Envelopes, y: &Envelopes) -> f64 {
    let clip = 1.0 + 10f64.powf(-BETA_DB / 20.0);
    let mut total = 0.0;
    let segments = x.len() - SEGMENT + 1;
    for end in SEGMENT..=x.len() {
        for band in 0..BANDS {
            let (xr, yr) = (band_row(x, end, band), band_row(y, end, band));
            let scale = norm(&xr) / (norm(&yr) + EPS);
            let yc: Vec<f64> = yr
                .iter()
                .zip(&xr)
                .map(|(b, a)| (b * scale).min(a * clip))
                .collect();
            let (xc, yc) = (centred(&xr), centred(&yc));
            let (nx, ny) = (norm(&xc) + EPS, norm(&yc) + EPS);
            total += xc
                .iter()
                .zip(&yc)
                .map(|(a, b)| (a / nx) * (b / ny))
                .sum::<f64>();
        }
    }
    total / (segments * BANDS) as f64
}

/// A segment (bands x frames) with each band row, then each frame column, made zero-mean and
/// unit-norm (pystoi adds 1e-16-scale noise first, which we leave out).
fn row_column_normalised(e: &Envelopes, end: usize) -> Vec<[f64; SEGMENT]> {
    let mut m: Vec<[f64; SEGMENT]> = (0..BANDS)
        .map(|b| {
            let row = centred(&band_row(e, end, b));
            let n = norm(&row);
            std::array::from_fn(|t| row[t] / n)
        })
        .collect();
    for t in 0..SEGMENT {
        let col = centred(&m.iter().map(|r| r[t]).collect::<Vec<_>>());
        let n = norm(&col);
        for (r, v) in m.iter_mut().zip(col) {
            r[t] = v / n;
        }
    }
    m
}

fn normalised_correlation(x: &Envelopes, y: &Envelopes) -> f64 {
    let segments = x.len() - SEGMENT + 1;
    let total: f64 = (SEGMENT..=x.len())
        .map(|end| {
            let (xn, yn) = (row_column_normalised(x, end), row_column_normalised(y, end));
            xn.iter()
                .zip(&yn)
                .map(|(a, b)| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>())
                .sum::<f64>()
        })
        .sum();
    total / (SEGMENT * segments) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_edges_are_pystois() {
        // pystoi's thirdoct(10000, 512, 15, 150), as its nonzero column ranges.
        let r = band_ranges();
        assert_eq!(&r[..4], &[(7, 9), (9, 11), (11, 14), (14, 17)]);
        assert_eq!(r[14], (174, 219));
    }

    #[test]
    fn identical_signals_score_one_and_noise_lowers_it() {
        let clean: Vec<f32> = (0..32_000)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                (std::f32::consts::TAU * 220.0 * t).sin()
                    * (std::f32::consts::TAU * 3.0 * t).sin().max(0.0)
            })
            .collect();
        assert!((stoi(&clean, &clean, 16_000) - 1.0).abs() < 1e-9);
        assert!((estoi(&clean, &clean, 16_000) - 1.0).abs() < 1e-9);
        let noisy: Vec<f32> = clean
            .iter()
            .enumerate()
            .map(|(i, c)| c + 0.3 * (((i * 7919) % 2001) as f32 / 1000.0 - 1.0))
            .collect();
        let (s, e) = (stoi(&clean, &noisy, 16_000), estoi(&clean, &noisy, 16_000));
        assert!(s < 0.99 && s > 0.0 && e < s, "{s} {e}");
    }
}
