from .casebase import build_case_base, case_base_path, diversity
from .data import load_dnc_model, one_by_one, training_set

__all__ = ['build_case_base', 'case_base_path', 'diversity', 'load_dnc_model',
           'one_by_one', 'training_set']
