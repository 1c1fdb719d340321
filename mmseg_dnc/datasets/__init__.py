from .camvid import CamVidDataset
from .folders import DataFaultError, check_image_folder
from .loading import CheckedLoadAnnotations, CheckedLoadImageFromFile

__all__ = ['CamVidDataset', 'CheckedLoadAnnotations', 'CheckedLoadImageFromFile',
           'DataFaultError', 'check_image_folder']
