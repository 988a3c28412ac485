"""Object detection: a YOLO-style one-stage detector on timm backbones and transformers detectors, with mAP."""
