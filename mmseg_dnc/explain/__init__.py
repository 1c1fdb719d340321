from .casebase import build_case_base, case_base_path, diversity, load_case_base, used_slots
from .data import load_dnc_model, one_by_one, training_set
from .snap_hook import SnapSubcentroidsHook

__all__ = ['SnapSubcentroidsHook', 'build_case_base', 'case_base_path', 'diversity', 'load_case_base', 'load_dnc_model',
           'one_by_one', 'training_set', 'used_slots']
