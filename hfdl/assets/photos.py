"""Real photos shipped inside scikit-image (CC0 / public domain) and scikit-learn (CC-BY-2.0).

The offline content set of style transfer, and the real backgrounds later image tasks build on.
"""

from __future__ import annotations

import os

OFFLINE_PHOTOS = "photos"
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "motorcycle_left", "motorcycle_right")
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
OFFLINE_PHOTOS_PROVENANCE = {
    "name": OFFLINE_PHOTOS,
    "source": f"scikit-image skimage.data ({', '.join(SKIMAGE_PHOTOS)}) and scikit-learn load_sample_images ({', '.join(SKLEARN_PHOTOS)})",
    "license": "skimage photos: CC0 / public domain / no known copyright restrictions; sklearn china.jpg and flower.jpg: CC-BY-2.0 (Flickr)",
    "hub_equivalent": "any image dataset, e.g. a COCO image subset (--dataset_name)",
}


def offline_photos(limit: int | None = None) -> list[tuple[str, "PIL.Image.Image"]]:  # noqa: F821
    """The real photos shipped by scikit-image and scikit-learn, as (name, RGB image); the first `limit` only if given."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    out = []
    for name in SKIMAGE_PHOTOS[:limit]:
        if name.startswith("motorcycle_"):
            left, right, _ = data.stereo_motorcycle()
            arr = left if name.endswith("left") else right
        else:
            arr = getattr(data, name)()
        out.append((name, Image.fromarray(arr).convert("RGB")))  # camera and coins are grayscale
    if limit is not None and len(out) >= limit:
        return out
    sk = load_sample_images()
    for name, arr in zip(sk.filenames, sk.images):
        out.append((os.path.basename(name), Image.fromarray(arr)))
    return out[:limit]
