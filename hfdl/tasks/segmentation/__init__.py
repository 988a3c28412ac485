"""Semantic segmentation: U-Net / FPN / LR-ASPP decoders on timm backbones and transformers segmenters, with mIoU."""
