from .camvid import find_camvid, run_camvid_demo
from .fetch import CamVidFetchError, fetch_camvid

__all__ = ['CamVidFetchError', 'fetch_camvid', 'find_camvid', 'run_camvid_demo']
