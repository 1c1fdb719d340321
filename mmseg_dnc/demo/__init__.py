from .camvid import find_camvid, run_camvid_demo

__all__ = ['find_camvid', 'run_camvid_demo']
