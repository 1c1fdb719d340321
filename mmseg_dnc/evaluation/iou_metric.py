"""mmseg's ``IoUMetric``, checked: a label value that is not a class is named.

mmseg's ``IoUMetric`` counts pixels in a histogram of ``num_classes`` bins,
so a label value at or past ``num_classes`` (other than the ignore index)
falls outside it and leaves the metrics without a word: a val set with Road
relabelled 200 scores Road IoU 0 and a higher aAcc. The training loss refuses
such values (``learning_step.check_label_range``); val and test data get no loss.

The check sits in the metric rather than the loader because only the metric
knows the classes (``dataset_meta['classes']``, after any class subset) and
the ignore index it counts with, for every mmseg dataset, and it sees the
labels as the metric will, after the loader's ``label_map`` and
``reduce_zero_label``. Importing ``mmseg_dnc`` registers the subclass under
mmseg's own name, ``IoUMetric``, so every config's evaluator gets it.
"""
from typing import Sequence

from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from ..datasets.folders import DataFaultError
from ..checkpointing.takeovers import enabled

SHOWN = 10  # values named per file


@METRICS.register_module()
class CheckedIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric``; every label value must be a class or the ignore
    index, else the batch is refused before it is counted."""

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if not self.format_only:  # format_only: test data without labels
            self.check_labels(data_samples)
        super().process(data_batch, data_samples)

    def check_labels(self, data_samples: Sequence[dict]) -> None:
        """Every ``gt_sem_seg`` value is ``0..num_classes-1`` or ``ignore_index``.

        Raises:
            DataFaultError: naming each label file with other values, and them.
        """
        num_classes = len(self.dataset_meta['classes'])
        lines = []
        for i, data_sample in enumerate(data_samples):
            label = data_sample['gt_sem_seg']['data']  # (1, H, W)
            outside = (label != self.ignore_index) & ((label < 0) | (label >= num_classes))
            if outside.any():
                values = label[outside].unique().tolist()
                more = f' and {len(values) - SHOWN} more' if len(values) > SHOWN else ''
                path = data_sample.get('seg_map_path') or f'sample {i} of the batch'
                lines.append(f'  {path}: values {values[:SHOWN]}{more}')
        if lines:
            raise DataFaultError(
                f'Labels outside the {num_classes} classes (0..{num_classes - 1}, or the '
                f'ignore index {self.ignore_index}), which IoUMetric would leave out of '
                'every metric:\n' + '\n'.join(lines) + '\nThese are the values after the '
                "dataset's label_map and reduce_zero_label. Check the label files hold class "
                "indices, reduce_zero_label (ADE20K), and the dataset's classes.")


if enabled('metrics'):  # every mmseg config's evaluator, under mmseg's own name
    METRICS.register_module(name='IoUMetric', module=CheckedIoUMetric, force=True)
