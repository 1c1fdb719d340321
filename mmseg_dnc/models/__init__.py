from .backbones import EfficientNetLite
from .dnc_head import DNCDecodeHead
from .losses import ClassWeightedCrossEntropyLoss

__all__ = ['ClassWeightedCrossEntropyLoss', 'DNCDecodeHead', 'EfficientNetLite']
