"""CNN explorer Space: the lectures' CNN chapter to touch. Convolution (preset or hand-edited kernels, stride, padding,
dilation, the output size by the formula beside the measured one), pooling, the inside of a pretrained timm network
(feature maps, first-layer filters, receptive fields) and finetune.py's training augmentations.

Run locally from the repository root:  python spaces/cnn_explorer/app.py   (then open http://127.0.0.1:7860)
API:  Client(url).predict(handle_file("cat.jpg"), "sobel x", api_name="/convolve")  ->  (image, sizes)
      also /pool, /feature_maps, /augment
"""

from __future__ import annotations

import sys
from pathlib import Path

try:  # first: hfdl.hub.space_parts turns off analytics and telemetry before gradio loads
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image, when_given
except ImportError:  # a checkout of the repository: use its hfdl package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from hfdl.hub.space_parts import ImageInput, ModelMenu, check_image, when_given

import gradio as gr  # noqa: E402
import torch  # noqa: E402
from torchvision.transforms.functional import to_pil_image  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from hfdl.core.labelled_images import AugmentConfig  # noqa: E402
from hfdl.errors import HfdlError  # noqa: E402
from hfdl.tasks.classification import explorer  # noqa: E402

HERE = Path(__file__).resolve().parent
EXAMPLES = sorted(str(p) for p in (HERE / "examples").glob("*.*"))
CUSTOM = "custom (edit the grid)"
torch.set_grad_enabled(False)


def _load_backbone(name: str):
    from hfdl.core.backbones import create_backbone

    return create_backbone(name, pretrained=True, features_only=True).eval()


# the offline ImageNet backbones (timm Hub weights where the offline packages are not installed), plus HFDL_EXPLORER_BACKBONES
OFFLINE = {name: name for name in ("tf_efficientnet_lite0", "mobilenetv2_100")}
BACKBONES = ModelMenu("backbone", HERE / "models", "HFDL_EXPLORER_BACKBONES", _load_backbone, first=OFFLINE)


def _error(err: HfdlError) -> gr.Error:
    return gr.Error(str(err), print_exception=False)


def _shown(x: torch.Tensor, min_side: int = 256):
    """(1, C, H, W) or (C, H, W) in [0, 1] -> PIL, small results upscaled with nearest neighbours (pixels stay visible)."""
    x = x[0] if x.ndim == 4 else x
    scale = max(1, -(-min_side // min(x.shape[-2:])))
    if scale > 1:
        x = torch.nn.functional.interpolate(x[None], scale_factor=scale, mode="nearest")[0]
    return to_pil_image(x.clamp(0, 1))


def _grid(stack: torch.Tensor, nrow: int, min_side: int = 64):
    scale = max(1, -(-min_side // min(stack.shape[-2:])))
    if scale > 1:
        stack = torch.nn.functional.interpolate(stack, scale_factor=scale, mode="nearest")
    return to_pil_image(make_grid(stack, nrow=nrow, padding=2, pad_value=1.0))


def kernel_grid(preset: str):
    """The preset's weights as the editable grid's rows."""
    return [[round(v, 4) for v in row] for row in explorer.KERNELS.get(preset, explorer.KERNELS["identity"])]


def _rows(grid) -> list[list[float]]:
    """The grid component's value (a DataFrame or a list of rows) as lists of floats."""
    rows = grid.values.tolist() if hasattr(grid, "values") else grid
    try:
        return [[float(v) for v in row] for row in rows]
    except (TypeError, ValueError):
        raise gr.Error("Every cell of the kernel must be a number", print_exception=False) from None


def convolve(image, preset="sobel x", stride=1, padding="same", dilation=1, grid=None):
    """The `/convolve` API: an image and a kernel (a preset name, or the grid when the preset is the custom one) ->
    (the output image, sizes: the formula's output size beside the measured one)."""
    check_image(image)
    kernel = _rows(grid) if preset == CUSTOM and grid is not None else explorer.KERNELS.get(preset)
    if kernel is None:
        raise gr.Error(f"Unknown kernel '{preset}': choose one of {', '.join(explorer.KERNELS)} or '{CUSTOM}'", print_exception=False)
    try:
        out, sizes = explorer.convolve(image, kernel, int(stride), padding, int(dilation))
    except HfdlError as err:
        raise _error(err) from None
    return _shown(out, 128), sizes


def pool(image, kind="max", size=2, stride=2):
    """The `/pool` API: (the image as pooled, upscaled back with nearest neighbours so the blocks show, sizes)."""
    check_image(image)
    try:
        out, sizes = explorer.pool(image, kind, int(size), int(stride))
    except HfdlError as err:
        raise _error(err) from None
    return _shown(out, 256), sizes


def feature_maps(image, backbone=BACKBONES.default, stage=2):
    """The `/feature_maps` API: (the 16 most active channels of a stage, the first-layer filters, info with the
    stage's shape, stride and receptive field)."""
    check_image(image)
    name, model = BACKBONES.get(backbone)
    try:
        maps, info = explorer.feature_maps(model, image, int(stage))
        fields = explorer.receptive_fields(model)
    except HfdlError as err:
        raise _error(err) from None
    info["receptive_field"] = fields[int(stage)]["receptive_field"]
    info["receptive_fields_of_every_stage"] = fields
    filters = explorer.first_layer_filters(model)
    return _grid(maps, 4, 96), _grid(filters, 8, 45), info


def augment(image, seed=0, hflip=0.5, rotation=15.0, translate=0.1, scale_min=0.5, noise=0.0, randaugment=False):
    """The `/augment` API: 8 samples of finetune.py's training transform with these settings (the same seed, the same grid)."""
    check_image(image)
    try:
        aug = AugmentConfig(
            hflip=float(hflip), rotation=float(rotation), translate=float(translate), scale_min=float(scale_min),
            gaussian_noise=float(noise), auto_augment="rand-m9-mstd0.5" if randaugment else None,
        )  # fmt: skip
        samples = explorer.augmentation_preview(image, aug, int(seed))
    except HfdlError as err:
        raise _error(err) from None
    return _grid(samples, 4)


def _stages(backbone):
    try:
        _, model = BACKBONES.get(backbone)
    except gr.Error:
        return gr.Slider(0, 4, value=2, step=1)
    return gr.Slider(0, len(model.feature_info) - 1, value=min(2, len(model.feature_info) - 1), step=1)


with gr.Blocks(title="CNN explorer") as demo:
    gr.Markdown(
        "# CNN explorer\n"
        "The convolutional networks chapter, to touch: slide a kernel over an image, pool it, look inside a pretrained "
        "network, and preview the augmentations `finetune.py` trains with. Output size of a convolution: "
        "`floor((n + 2p - k) / s) + 1` (a dilated kernel spans `d (k - 1) + 1` pixels)."
    )
    with gr.Tab("Convolution"):
        with gr.Row():
            conv_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="conv_image", height=260)
            conv_out = gr.Image(label="Output", type="pil", format="png", interactive=False, elem_id="conv_output", height=260)
        with gr.Row():
            preset_in = gr.Dropdown([*explorer.KERNELS, CUSTOM], value="sobel x", label="Kernel", elem_id="preset")
            stride_in = gr.Slider(1, 4, value=1, step=1, label="Stride s", elem_id="stride")
            padding_in = gr.Dropdown(["valid", "same", "0", "1", "2", "3"], value="same", label="Padding p", elem_id="padding", allow_custom_value=True)
            dilation_in = gr.Slider(1, 4, value=1, step=1, label="Dilation d", elem_id="dilation")
        grid_in = gr.Dataframe(
            kernel_grid("sobel x"), label="Kernel weights (pick 'custom' to use your own; 3 x 3 or 5 x 5)", datatype="number", elem_id="grid"
        )
        sizes_out = gr.JSON(label="Sizes: the formula and the measured output", elem_id="conv_sizes")
        gr.Examples([[e] for e in EXAMPLES], [conv_in])
    with gr.Tab("Pooling"):
        with gr.Row():
            pool_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="pool_image", height=260)
            pool_out = gr.Image(label="Pooled (blocks enlarged)", type="pil", format="png", interactive=False, elem_id="pool_output", height=260)
        with gr.Row():
            kind_in = gr.Radio(["max", "average"], value="max", label="Pooling", elem_id="kind")
            size_in = gr.Slider(1, 16, value=4, step=1, label="Size", elem_id="pool_size")
            pool_stride_in = gr.Slider(1, 16, value=4, step=1, label="Stride", elem_id="pool_stride")
        pool_sizes_out = gr.JSON(label="Sizes", elem_id="pool_sizes")
        gr.Examples([[e] for e in EXAMPLES], [pool_in])
    with gr.Tab("Inside a network"):
        with gr.Row():
            net_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="net_image", height=260)
            with gr.Column():
                backbone_in = gr.Dropdown(BACKBONES.choices, value=BACKBONES.default, label="Pretrained backbone (ImageNet)", elem_id="backbone")
                stage_in = gr.Slider(0, 4, value=2, step=1, label="Stage (0: first, higher: deeper, coarser, more abstract)", elem_id="stage")
                show_btn = gr.Button("Show", variant="primary", elem_id="show")
        with gr.Row():
            maps_out = gr.Image(label="The stage's 16 most active channels", type="pil", format="png", interactive=False, elem_id="maps", height=420)
            filters_out = gr.Image(label="First-layer filters", type="pil", format="png", interactive=False, elem_id="filters", height=420)
        net_info_out = gr.JSON(label="Stage shape, stride and receptive field (pixels of the input one unit sees)", elem_id="net_info")
        gr.Examples([[e] for e in EXAMPLES], [net_in])
    with gr.Tab("Augmentation"):
        with gr.Row():
            aug_in = ImageInput(label="Image", type="pil", image_mode=None, sources=["upload", "clipboard", "webcam"], elem_id="aug_image", height=260)
            aug_out = gr.Image(
                label="8 training samples (finetune.py's transform)", type="pil", format="png", interactive=False, elem_id="aug_output", height=420
            )
        with gr.Row():
            seed_in = gr.Number(0, precision=0, label="Seed", elem_id="seed")
            hflip_in = gr.Slider(0, 1, value=0.5, step=0.05, label="Horizontal flip probability", elem_id="hflip")
            rotation_in = gr.Slider(0, 45, value=15, step=1, label="Rotation (degrees)", elem_id="rotation")
        with gr.Row():
            translate_in = gr.Slider(0, 0.4, value=0.1, step=0.02, label="Translation (fraction)", elem_id="translate")
            scale_in = gr.Slider(0.08, 1.0, value=0.5, step=0.02, label="Random crop: smallest area", elem_id="scale_min")
            noise_in = gr.Slider(0, 1, value=0.0, step=0.05, label="Gaussian noise (std, normalised units)", elem_id="noise")
            randaug_in = gr.Checkbox(False, label="RandAugment (rand-m9-mstd0.5)", elem_id="randaugment")
        augment_btn = gr.Button("Sample", variant="primary", elem_id="augment")
        gr.Examples([[e] for e in EXAMPLES], [aug_in])

    conv_inputs = [conv_in, preset_in, stride_in, padding_in, dilation_in, grid_in]
    conv_events = [conv_in.change, preset_in.change, stride_in.release, padding_in.change, dilation_in.release, grid_in.input]
    gr.on(conv_events, when_given(convolve, 2), conv_inputs, [conv_out, sizes_out], api_name=False)
    preset_in.change(lambda p: gr.Dataframe(value=kernel_grid(p)) if p != CUSTOM else gr.Dataframe(), preset_in, grid_in, api_name=False)
    gr.Button("Convolve", elem_id="convolve", visible=False).click(convolve, conv_inputs, [conv_out, sizes_out], api_name="convolve")
    pool_inputs = [pool_in, kind_in, size_in, pool_stride_in]
    gr.on(
        [pool_in.change, kind_in.change, size_in.release, pool_stride_in.release], when_given(pool, 2), pool_inputs, [pool_out, pool_sizes_out], api_name=False
    )
    gr.Button("Pool", visible=False).click(pool, pool_inputs, [pool_out, pool_sizes_out], api_name="pool")
    backbone_in.change(_stages, backbone_in, stage_in, api_name=False)
    show_btn.click(feature_maps, [net_in, backbone_in, stage_in], [maps_out, filters_out, net_info_out], api_name="feature_maps")
    augment_btn.click(augment, [aug_in, seed_in, hflip_in, rotation_in, translate_in, scale_in, noise_in, randaug_in], aug_out, api_name="augment")


if __name__ == "__main__":
    demo.queue().launch(share=False)
