"""DNC on mmseg's own model zoo: for every decode head in mmseg's registry,
its base model shrunk to CPU size, with DNC swapped in as README says
(``models``), and one training step and one ``predict`` on real CamVid crops
(``check``)."""
from .check import ZooResult, check_head, check_zoo, format_table
from .models import ZOO, decode_heads_in_registry, tiny_dnc_model_cfg

__all__ = ['ZOO', 'ZooResult', 'check_head', 'check_zoo', 'decode_heads_in_registry',
           'format_table', 'tiny_dnc_model_cfg']
