from .backbones import EfficientNetLite
from .dnc_head import DNCDecodeHead

__all__ = ['DNCDecodeHead', 'EfficientNetLite']
