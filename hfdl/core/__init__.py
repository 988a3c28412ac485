"""What every task shares: the training loop, the run folder, reports, image I/O, timm backbones, metrics, script plumbing."""
