"""Where a checkpoint's data is checked before mmengine acts on it.

``Runner.resume`` loads a checkpoint, hands it to every hook's
``after_load_checkpoint``, then reads its meta, message hub, optimizer and
scheduler state (every field: ``docs/security.md``). Importing
``mmseg_dnc`` wraps ``Runner.resume`` so that the checkpoint it loads is
checked by :func:`~.resume_checks.check_resume_checkpoint` right after
loading, before any hook or mmengine reads it, for every way a resume is
reached (``--resume`` through ``last_checkpoint`` or ``load_from``, ``mim
train``, a direct ``runner.resume(path)``) and every file scheme.

mmengine's ``BaseInferencer`` (``MMSegInferencer``) given weights but no
config executes the config text stored in the checkpoint; that is refused too.
"""
import contextvars
import functools

from mmengine.infer.infer import BaseInferencer
from mmengine.runner import Runner
from mmengine.runner import runner as runner_module

from .takeovers import enabled
from .resume_checks import check_resume_checkpoint, optimizer_layout, scheduler_states

# what the checkpoint being resumed must fit; None outside Runner.resume
_RESUMING = contextvars.ContextVar('mmseg_dnc_resuming', default=None)


def is_resuming() -> bool:
    """True inside ``Runner.resume`` (its ``after_load_checkpoint`` hooks included)."""
    return _RESUMING.get() is not None


def _expectations(runner, resume_optimizer: bool, resume_param_scheduler: bool) -> dict:
    """The run's optimizer and scheduler layout, built as ``Runner.resume``
    builds them (a no-op inside ``train()``, where they are built already)."""
    optimizer = schedulers = None
    wants_schedulers = resume_param_scheduler and runner.param_schedulers is not None
    if runner.optim_wrapper is not None and (resume_optimizer or wants_schedulers):
        runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
        if resume_optimizer:
            optimizer = optimizer_layout(runner.optim_wrapper)
        if wants_schedulers:
            runner.param_schedulers = runner.build_param_scheduler(runner.param_schedulers)
            schedulers = scheduler_states(runner.param_schedulers)
    return dict(optimizer=optimizer, schedulers=schedulers)


_mmengine_resume = Runner.resume
_mmengine_load_checkpoint = runner_module._load_checkpoint


@functools.wraps(_mmengine_resume)
def _checked_resume(self, filename, resume_optimizer=True, resume_param_scheduler=True,
                    map_location='default'):
    # what the checkpoint must fit; {} (no checks) when MMSEG_DNC_OPT_OUT names
    # resume: SafeCheckpointHook still needs to know that a resume is under way
    token = _RESUMING.set(_expectations(self, resume_optimizer, resume_param_scheduler)
                          if enabled('resume') else {})
    try:
        return _mmengine_resume(self, filename, resume_optimizer, resume_param_scheduler,
                                map_location)
    finally:
        _RESUMING.reset(token)


@functools.wraps(_mmengine_load_checkpoint)
def _checked_load_checkpoint(filename, map_location=None, logger=None):
    checkpoint = _mmengine_load_checkpoint(filename, map_location=map_location, logger=logger)
    expectations = _RESUMING.get()
    if expectations is not None and enabled('resume'):
        check_resume_checkpoint(checkpoint, filename, **expectations)
    return checkpoint


_mmengine_init_model = BaseInferencer._init_model


@functools.wraps(_mmengine_init_model)
def _init_model_with_config(self, cfg, weights=None, device='cpu'):
    if not cfg and weights is not None:
        raise ValueError(
            f'{type(self).__name__} was given weights ({weights}) without a config: mmengine '
            "would then execute the config text stored in the checkpoint (message_hub "
            "runtime_info['cfg'] or meta['cfg']) as Python, and a checkpoint is untrusted "
            'input. Pass the config it was trained with, e.g. '
            'MMSegInferencer(model=CONFIG_FILE, weights=CHECKPOINT).')
    return _mmengine_init_model(self, cfg, weights, device)


if not callable(getattr(runner_module, '_load_checkpoint', None)):  # pragma: no cover
    raise ImportError('mmseg_dnc needs mmengine 0.10.x: mmengine.runner.runner has no '
                      '_load_checkpoint, where resumed checkpoints are checked.')
Runner.resume = _checked_resume  # marks the resume for SafeCheckpointHook, opted out or not
if enabled('resume'):
    runner_module._load_checkpoint = _checked_load_checkpoint
if enabled('inferencer'):
    BaseInferencer._init_model = _init_model_with_config
