"""Training the detector from the catalog's 3D models: synthetic data, training, evaluation."""
