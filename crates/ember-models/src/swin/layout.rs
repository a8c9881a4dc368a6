//! Window attention over any set of tokens, GreenMIM's way: a token's window comes from its
//! grid coordinates (the shift is an offset of the window grid, never a roll), and the
//! tokens are packed into groups of whole windows that run as one batched attention each.
//! With every token present this is exactly Swin's (shifted) window attention; with only
//! the visible tokens of a masked image it skips the masked ones.
//!
//! Everything here is host-side integer work, done once per stage and shift for a batch and
//! shared by all blocks of that parity; [`Placed`] holds the device tensors the attention
//! reads.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Result, Tensor};

use super::grouping::group_windows;

/// A token's (row, column) on its stage's grid.
pub type Coord = [usize; 2];

/// The value added to the logits of a pair that may not attend (the official -100: finite,
/// so padded rows give a uniform softmax instead of NaNs that would reach the gradients).
pub const MASKED: f32 = -100.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Whole windows packed into equal groups, one attention per group.
    Grouping,
    /// One attention over every token, pairs from different windows masked (cheaper than
    /// grouping when there are few tokens: the official switch is `N <= 2 ws^2`).
    Masking,
}

/// Which tokens attend together, for one stage and one shift.
#[derive(Debug, Clone)]
pub struct WindowLayout {
    pub mode: Mode,
    pub window: usize,
    /// (row, column) of each non-empty window in the window grid, row-major.
    pub windows: Vec<Coord>,
    /// Per token, its window's index in `windows`.
    pub token_window: Vec<usize>,
    /// Tokens per window (the official `exact_win_sz`).
    pub window_sizes: Vec<usize>,
    /// Slots per group: the largest window in grouping mode, every token in masking mode.
    pub group_size: usize,
    /// Tokens per group and the windows of each group (the official `num_ele_group`,
    /// `grouped_idx`); masking mode has one group of every window.
    pub group_fill: Vec<usize>,
    pub groups: Vec<Vec<usize>>,
    /// `groups * group_size` slots: the token in each (its window's tokens ascending,
    /// windows in group order), `None` for padding. Masking mode lists the tokens in order.
    pub slots: Vec<Option<usize>>,
}

impl WindowLayout {
    /// The layout of tokens at `coords` (any order, no duplicates) for windows of `window`
    /// shifted by `shift`, in the official mode for their number (grouping above `2 ws^2`
    /// tokens): a token at (y, x) is in window `((y + o) / ws, (x + o) / ws)` with
    /// `o = (ws - shift) mod ws`, which puts the window borders at `shift + k ws` as Swin's
    /// cyclic shift and region mask do.
    pub fn new(coords: &[Coord], window: usize, shift: usize) -> Self {
        let mode = if coords.len() > 2 * window * window {
            Mode::Grouping
        } else {
            Mode::Masking
        };
        Self::with_mode(coords, window, shift, mode)
    }

    /// The same with the execution mode chosen by the caller (the outputs do not depend on
    /// it, only the cost).
    pub fn with_mode(coords: &[Coord], window: usize, shift: usize, mode: Mode) -> Self {
        let offset = (window - shift % window) % window;
        let mut members: BTreeMap<Coord, Vec<usize>> = BTreeMap::new();
        for (t, &[y, x]) in coords.iter().enumerate() {
            members
                .entry([(y + offset) / window, (x + offset) / window])
                .or_default()
                .push(t);
        }
        let windows: Vec<Coord> = members.keys().copied().collect();
        let window_sizes: Vec<usize> = members.values().map(Vec::len).collect();
        let mut token_window = vec![0; coords.len()];
        for (w, tokens) in members.values().enumerate() {
            for &t in tokens {
                token_window[t] = w;
            }
        }
        let n = coords.len();
        let (group_size, group_fill, groups, slots) = match mode {
            Mode::Masking => (
                n,
                vec![n],
                vec![(0..windows.len()).collect()],
                (0..n).map(Some).collect(),
            ),
            Mode::Grouping => {
                let size = window_sizes.iter().copied().max().unwrap_or(0);
                let (fill, groups) = group_windows(size, &window_sizes);
                let per_window: Vec<&Vec<usize>> = members.values().collect();
                let mut slots = Vec::with_capacity(groups.len() * size);
                for group in &groups {
                    let start = slots.len();
                    for &w in group {
                        slots.extend(per_window[w].iter().map(|&t| Some(t)));
                    }
                    slots.resize(start + size, None);
                }
                (size, fill, groups, slots)
            }
        };
        Self {
            mode,
            window,
            windows,
            token_window,
            window_sizes,
            group_size,
            group_fill,
            groups,
            slots,
        }
    }

    pub fn num_groups(&self) -> usize {
        self.group_fill.len()
    }

    /// The window of each slot (`None` for padding).
    pub fn slot_windows(&self) -> Vec<Option<usize>> {
        self.slots
            .iter()
            .map(|s| s.map(|t| self.token_window[t]))
            .collect()
    }

    /// The relative position bias row of query token `i` and key token `j` if they share a
    /// window: Swin's `(dy + ws - 1) (2 ws - 1) + dx + ws - 1`, offsets from the stage
    /// coordinates (query minus key).
    pub fn bias_row(&self, coords: &[Coord], i: usize, j: usize) -> Option<usize> {
        if self.token_window[i] != self.token_window[j] {
            return None;
        }
        let ws = self.window;
        let (dy, dx) = (
            coords[i][0] + ws - 1 - coords[j][0],
            coords[i][1] + ws - 1 - coords[j][1],
        );
        Some(dy * (2 * ws - 1) + dx)
    }

    /// The device tensors of this layout for tokens at `coords`.
    pub fn place(&self, coords: &[Coord], dtype: DType, device: &Device) -> Result<Placed> {
        let (g, gs) = (self.num_groups(), self.group_size);
        let ws = self.window;
        let no_bias = ((2 * ws - 1) * (2 * ws - 1)) as u32;
        let mut mask = Vec::with_capacity(g * gs * gs);
        let mut bias_rows = Vec::with_capacity(g * gs * gs);
        for group in self.slots.chunks(gs) {
            for &qi in group {
                for &kj in group {
                    let row = match (qi, kj) {
                        (Some(i), Some(j)) => self.bias_row(coords, i, j),
                        _ => None,
                    };
                    mask.push(if row.is_some() { 0f32 } else { MASKED });
                    bias_rows.push(row.map_or(no_bias, |r| r as u32));
                }
            }
        }
        let identity = self.slots.len() == coords.len()
            && self.slots.iter().enumerate().all(|(s, t)| *t == Some(s));
        let (gather, scatter) = if identity {
            (None, None)
        } else {
            let gather: Vec<u32> = self.slots.iter().map(|t| t.unwrap_or(0) as u32).collect();
            let mut scatter = vec![0u32; coords.len()];
            for (s, t) in self.slots.iter().enumerate() {
                if let Some(t) = t {
                    scatter[*t] = s as u32;
                }
            }
            (
                Some(Tensor::new(gather, device)?),
                Some(Tensor::new(scatter, device)?),
            )
        };
        Ok(Placed {
            groups: g,
            group_size: gs,
            window: ws,
            gather,
            scatter,
            mask: Tensor::from_vec(mask, (g, 1, gs, gs), device)?.to_dtype(dtype)?,
            bias_rows: Tensor::new(bias_rows, device)?,
        })
    }
}

/// A layout on the device: how to gather tokens into group slots and back, the additive
/// mask, and which bias-table row each slot pair reads.
#[derive(Debug, Clone)]
pub struct Placed {
    pub groups: usize,
    pub group_size: usize,
    pub window: usize,
    /// `[groups * group_size]` token per slot (padding reads token 0); `None` when the
    /// slots are the tokens in order.
    pub gather: Option<Tensor>,
    /// `[tokens]` slot of each token; `None` with `gather`.
    pub scatter: Option<Tensor>,
    /// `[groups, 1, gs, gs]`: 0 where the pair shares a window, [`MASKED`] elsewhere.
    pub mask: Tensor,
    /// `[groups * gs * gs]` bias-table rows; pairs that may not attend read the row just
    /// past the table, which the attention appends as zeros.
    pub bias_rows: Tensor,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(h: usize, w: usize) -> Vec<Coord> {
        (0..h).flat_map(|y| (0..w).map(move |x| [y, x])).collect()
    }

    #[test]
    fn a_full_grid_packs_swins_shifted_windows_without_padding() {
        // 8 x 8 tokens, windows of 4 shifted by 2: border strips of 2 rows/cols, packed
        // pairwise into full groups of 16.
        let layout = WindowLayout::new(&grid(8, 8), 4, 2);
        assert_eq!(layout.mode, Mode::Grouping);
        assert_eq!(layout.windows.len(), 9);
        assert_eq!(layout.group_size, 16);
        assert_eq!(layout.num_groups(), 4);
        assert!(layout.slots.iter().all(Option::is_some));
        // Tokens (0, 0) and (7, 7) sit in different windows (no wrap-around as with a roll).
        assert_ne!(layout.token_window[0], layout.token_window[63]);
        assert_eq!(layout.token_window[0], layout.token_window[9]);
        assert_ne!(layout.token_window[0], layout.token_window[2]);
    }

    #[test]
    fn few_tokens_use_one_masked_attention() {
        let layout = WindowLayout::new(&grid(4, 4), 4, 0);
        assert_eq!(layout.mode, Mode::Masking);
        let placed = layout.place(&grid(4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(placed.gather.is_none());
        let mask: Vec<f32> = placed.mask.flatten_all().unwrap().to_vec1().unwrap();
        assert!(mask.iter().all(|&m| m == 0.0));
    }

    #[test]
    fn bias_rows_are_swins_within_a_window() {
        let coords = grid(2, 2);
        let layout = WindowLayout::new(&coords, 2, 0);
        // The same as the dense window's relative_position_index for ws = 2.
        let rows: Vec<usize> = (0..4)
            .flat_map(|i| (0..4).map(move |j| (i, j)))
            .map(|(i, j)| layout.bias_row(&coords, i, j).unwrap())
            .collect();
        assert_eq!(rows, vec![4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]);
    }
}
