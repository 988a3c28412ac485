"""Generative models: the MLP VAE of pytorch/examples, a convolutional VAE, DCGAN and the (denoising) autoencoder."""
