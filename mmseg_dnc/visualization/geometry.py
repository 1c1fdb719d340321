"""Where a feature map's cells sit on the image: padding, original size.

Torch only (no plotting). Shape legend: C classes, h, w feature map, H, W the
image's original size.
"""
from typing import Tuple

import torch.nn.functional as F
from torch import Tensor


def unpadded_feature_size(img_shape, input_hw, feature_hw) -> Tuple[int, int]:
    """The feature cells that cover the image itself, not the batch padding.

    Args:
        img_shape: (h, w) of the resized image inside the padded input.
        input_hw: (H', W') of the padded network input.
        feature_hw: (h', w') of the feature map.
    """
    return (max(1, round(img_shape[0] * feature_hw[0] / input_hw[0])),
            max(1, round(img_shape[1] * feature_hw[1] / input_hw[1])))


def to_original_size(logits: Tensor, nearest: Tensor, image: Tensor, ori_shape,
                     align_corners: bool) -> dict:
    """One image's outputs, cropped to the image, at its original size.

    Args:
        logits (Tensor): (C, h, w) class logits of the unpadded image.
        nearest (Tensor): (C, h, w) nearest sub-centroid of each class.
        image (Tensor): (3, h'', w'') BGR uint8 network input (before padding).
        ori_shape: (H, W).

    Returns:
        dict of numpy arrays: ``image`` (H, W, 3) RGB uint8, ``prob`` (C, H, W)
        softmax, ``pred`` (H, W), ``subcentroid`` (H, W) nearest sub-centroid
        of the predicted class.
    """
    size = tuple(ori_shape)
    prob = F.interpolate(logits[None], size=size, mode='bilinear',
                         align_corners=align_corners)[0].softmax(dim=0)
    pred = prob.argmax(dim=0)
    near = F.interpolate(nearest[None].float(), size=size, mode='nearest').long()[0]
    rgb = F.interpolate(image[None].float(), size=size, mode='bilinear')[0].flip(0)
    return dict(image=rgb.permute(1, 2, 0).clamp(0, 255).byte().cpu().numpy(),
                prob=prob.cpu().numpy(), pred=pred.cpu().numpy(),
                subcentroid=near.gather(0, pred[None])[0].cpu().numpy())
