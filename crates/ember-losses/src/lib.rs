//! Losses: cross-entropy with label smoothing, soft-target cross-entropy
