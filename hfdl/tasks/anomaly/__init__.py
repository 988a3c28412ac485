"""One-class anomaly detection: an autoencoder's reconstruction error against kNN on pretrained features, side by side."""
