# Schedule L (3,600 iterations) of configs/dnc/segformer_efficientnet-lite0_camvid.py.
# Parametric twin: configs/parametric/segformer_efficientnet-lite0_camvid-L.py.
_base_ = '../parametric/segformer_efficientnet-lite0_camvid-L.py'
model = dict(decode_head=dict(type='DNCDecodeHead', decoder='SegformerHead'))
