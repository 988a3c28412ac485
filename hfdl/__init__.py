"""hfdl: Hugging Face-native deep-learning course systems (timm, datasets, accelerate, the Hub)."""

__version__ = "0.1.0"
