//! GreenMIM's mask: one random set of visible mask units for the whole batch (per-sample
//! masks would give every sample its own grouping), a unit being a last-stage token
//! (`patch_size * 2^(stages - 1)` pixels a side), drawn as MAE draws it.

use ember_core::EmberRng;

use crate::swin::Coord;

/// Which of the `side x side` mask units (raster order) are visible, and MAE's
/// `ids_restore` (unit `j`'s rank in the draw's keep order; the first `visible.len()` ranks
/// are the visible units).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitMask {
    pub side: usize,
    /// Visible units, raster indices ascending.
    pub visible: Vec<usize>,
    pub ids_restore: Vec<usize>,
}

impl UnitMask {
    /// MAE's draw with one noise row: noise ~ U[0, 1) per unit, the `floor(L (1 - ratio))`
    /// smallest are kept.
    pub fn random(side: usize, ratio: f64, rng: &mut EmberRng) -> Self {
        let units = side * side;
        let noise: Vec<f64> = (0..units).map(|_| rng.uniform(0.0, 1.0)).collect();
        let mut order: Vec<usize> = (0..units).collect();
        order.sort_by(|&a, &b| noise[a].total_cmp(&noise[b]));
        let keep = ((units as f64) * (1.0 - ratio)) as usize;
        Self::from_order(side, &order, keep)
    }

    /// The mask whose keep order is `order` (unit indices, kept ones first) keeping `keep`.
    fn from_order(side: usize, order: &[usize], keep: usize) -> Self {
        let mut ids_restore = vec![0; order.len()];
        for (rank, &unit) in order.iter().enumerate() {
            ids_restore[unit] = rank;
        }
        let mut visible = order[..keep].to_vec();
        visible.sort_unstable();
        Self {
            side,
            visible,
            ids_restore,
        }
    }

    /// The mask with these visible units (raster indices); its keep order lists them first,
    /// ascending, then the masked units.
    pub fn from_visible(side: usize, visible: &[usize]) -> Self {
        let mut order: Vec<usize> = visible.to_vec();
        order.sort_unstable();
        order.extend((0..side * side).filter(|u| !visible.contains(u)));
        Self::from_order(side, &order, visible.len())
    }

    /// The mask given as the official code stores it: `ids_restore` (a permutation of the
    /// units) and the number of masked units. Errors name what is inconsistent.
    pub fn from_restore(ids_restore: &[usize], masked: usize) -> Result<Self, String> {
        let units = ids_restore.len();
        let side = (units as f64).sqrt().round() as usize;
        if side * side != units {
            return Err(format!("{units} mask units do not form a square grid"));
        }
        let mut order = vec![usize::MAX; units];
        for (unit, &rank) in ids_restore.iter().enumerate() {
            if rank >= units || order[rank] != usize::MAX {
                return Err("ids_restore is not a permutation".into());
            }
            order[rank] = unit;
        }
        if masked > units {
            return Err(format!("{masked} masked units of {units}"));
        }
        Ok(Self::from_order(side, &order, units - masked))
    }

    pub fn units(&self) -> usize {
        self.side * self.side
    }

    /// 1 for masked units, 0 for visible ones, raster order (the official `mask`).
    pub fn masked(&self) -> Vec<f32> {
        let mut m = vec![1f32; self.units()];
        for &u in &self.visible {
            m[u] = 0.0;
        }
        m
    }

    /// Coordinates of the visible tokens on a grid of `per_unit` tokens per unit side,
    /// raster order (each visible unit `(i, j)` is the `per_unit x per_unit` block at
    /// `(i per_unit, j per_unit)`).
    pub fn token_coords(&self, per_unit: usize) -> Vec<Coord> {
        let side = self.side * per_unit;
        let mut visible_unit = vec![false; self.units()];
        for &u in &self.visible {
            visible_unit[u] = true;
        }
        (0..side)
            .flat_map(|y| (0..side).map(move |x| [y, x]))
            .filter(|&[y, x]| visible_unit[(y / per_unit) * self.side + x / per_unit])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_floor_and_restores_the_draw() {
        let mut rng = EmberRng::new(3);
        let m = UnitMask::random(7, 0.75, &mut rng);
        assert_eq!(m.visible.len(), 12); // int(49 * 0.25)
        assert!(m.visible.iter().all(|&u| m.ids_restore[u] < 12));
        let again = UnitMask::from_restore(&m.ids_restore, 37).unwrap();
        assert_eq!(again, m);
        assert_eq!(m.masked().iter().filter(|&&x| x == 0.0).count(), 12);
    }

    #[test]
    fn token_coords_cover_visible_units_in_raster_order() {
        let m = UnitMask::from_restore(&[1, 0, 2, 3], 2).unwrap();
        assert_eq!(m.visible, vec![0, 1]);
        assert_eq!(
            m.token_coords(2),
            vec![
                [0, 0],
                [0, 1],
                [0, 2],
                [0, 3],
                [1, 0],
                [1, 1],
                [1, 2],
                [1, 3]
            ]
        );
        assert!(UnitMask::from_restore(&[0, 0, 1, 2], 1).is_err());
    }
}
