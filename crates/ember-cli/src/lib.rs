//! What every Ember tool shares on the command line: argument groups to flatten into a clap
//! parser (runtime, data, training, output) and the edge that runs a command, prints its
//! result as one JSON line on stdout and turns errors into one line on stderr and an exit
//! code (2 for bad input, 1 otherwise).

pub mod alloc;
pub mod data;
pub mod edge;
pub mod preset;
pub mod pretrain;
pub mod run_setup;
pub mod runtime;
pub mod startup;
pub mod supervised;
pub mod teacher;
pub mod train;

/// `eprintln!` on rank 0 only: the set-up notes of a data-parallel run, said once.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if ember_core::dist::world().is_primary() {
            eprintln!($($arg)*);
        }
    };
}

pub use data::DataArgs;
pub use edge::{parse_args, parse_args_from, run};
pub use runtime::RuntimeArgs;
pub use train::TrainArgs;
