//! Where this process stands in a data-parallel run: its rank among `size` processes, read
//! once from the environment `ember launch` (or torchrun) sets: `RANK`, `WORLD_SIZE`,
//! `LOCAL_RANK`, and `MASTER_ADDR` / `MASTER_PORT` for the rendezvous. Without them the
//! process is alone (rank 0 of 1), which is every ordinary run.
//!
//! Only rank 0 writes (run folders, checkpoints, plots, stdout results, progress): the other
//! ranks compute the same steps on their shard of each batch and keep identical weights.

use std::sync::OnceLock;

use crate::{EmberError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// The rank among the processes of this machine: which GPU it takes.
    pub local_rank: usize,
    /// `host:port` of rank 0's rendezvous.
    pub master: String,
    /// Started by a launcher (`WORLD_SIZE` set), even as its only rank: the process joins
    /// the collective, so one GPU exercises the whole data-parallel path.
    pub launched: bool,
}

impl World {
    pub fn solo() -> Self {
        Self {
            rank: 0,
            size: 1,
            local_rank: 0,
            master: String::new(),
            launched: false,
        }
    }

    /// The world `var` (an environment lookup) describes.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim().parse::<usize>().map_err(|_| {
                        EmberError::bad_input(format!(
                            "{name}={v}: expected a non-negative integer"
                        ))
                    })
                })
                .transpose()
        };
        let Some(size) = number("WORLD_SIZE")? else {
            return Ok(Self::solo());
        };
        let rank = number("RANK")?.unwrap_or(0);
        if size == 0 || rank >= size {
            return Err(EmberError::bad_input(format!(
                "RANK={rank}, WORLD_SIZE={size}: the rank must be below the world size"
            )));
        }
        let master = format!(
            "{}:{}",
            var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            var("MASTER_PORT").unwrap_or_else(|| "29500".into())
        );
        Ok(Self {
            rank,
            size,
            local_rank: number("LOCAL_RANK")?.unwrap_or(rank),
            master,
            launched: true,
        })
    }

    pub fn is_primary(&self) -> bool {
        self.rank == 0
    }

    pub fn is_distributed(&self) -> bool {
        self.size > 1
    }
}

static WORLD: OnceLock<World> = OnceLock::new();

/// Reads the world from the environment (the first call; later calls return it). A bad
/// variable is bad input.
pub fn init_world() -> Result<&'static World> {
    if let Some(w) = WORLD.get() {
        return Ok(w);
    }
    let world = World::from_vars(|name| std::env::var(name).ok())?;
    Ok(WORLD.get_or_init(|| world))
}

/// This process's world as `init_world` read it; alone before that (and in a tool that never
/// reads it).
pub fn world() -> &'static World {
    static SOLO: OnceLock<World> = OnceLock::new();
    WORLD.get().unwrap_or_else(|| SOLO.get_or_init(World::solo))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world_of(vars: &[(&str, &str)]) -> Result<World> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        World::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn no_variables_is_a_process_alone() {
        let w = world_of(&[]).unwrap();
        assert_eq!(w, World::solo());
        assert!(w.is_primary() && !w.is_distributed());
    }

    #[test]
    fn torchrun_variables_place_the_process() {
        let w = world_of(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.2"),
            ("MASTER_PORT", "1234"),
        ])
        .unwrap();
        assert_eq!((w.rank, w.size, w.local_rank), (3, 4, 1));
        assert_eq!(w.master, "10.0.0.2:1234");
        assert!(!w.is_primary() && w.is_distributed() && w.launched);
    }

    #[test]
    fn impossible_ranks_are_bad_input() {
        for vars in [
            &[("WORLD_SIZE", "2"), ("RANK", "2")][..],
            &[("WORLD_SIZE", "0")][..],
            &[("WORLD_SIZE", "two")][..],
        ] {
            let e = world_of(vars).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
        }
    }
}
