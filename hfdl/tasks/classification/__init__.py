"""Image classification by transfer learning: a timm backbone, feature-based vs fine-tuning vs scratch, side by side."""
