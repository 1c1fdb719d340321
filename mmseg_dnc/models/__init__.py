from .backbones import EfficientNetLite
from .data_preprocessor import ChannelsLastSegDataPreProcessor
from .dnc_head import DNCDecodeHead
from .losses import ClassWeightedCrossEntropyLoss

__all__ = ['ChannelsLastSegDataPreProcessor', 'ClassWeightedCrossEntropyLoss', 'DNCDecodeHead',
           'EfficientNetLite']
