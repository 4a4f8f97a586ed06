"""kpbench: how accurate is each pretrained ImageNet model really, in PyTorch and in Keras?"""

__version__ = "0.1.0"
