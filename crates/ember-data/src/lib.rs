//! Datasets (Fashion-MNIST idx, image folders), transforms and a threaded, seeded loader
