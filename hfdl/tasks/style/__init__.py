"""Neural style transfer: Gatys et al. optimisation and Johnson et al. fast feed-forward networks."""
