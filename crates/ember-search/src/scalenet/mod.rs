//! ScaleNet (arXiv 2207.07267) on ember-search: hierarchical sub-network sampling, the
//! super-supernet's training pretext and the Markov-chain-based evolution (MCEA) over base
//! models and scaling strategies.

pub mod mcea;
pub mod sampling;
pub mod training;
