"""mmengine's CheckpointHook, made so that no interruption loses a checkpoint.

mmengine 0.10.7's hook, under ``max_keep_ckpts``, deletes the oldest
checkpoint *before* writing the new one, deletes the previous best checkpoint
before writing the new best, and writes every file in place. A run killed
while it saves (``max_keep_ckpts=1`` is a common setting) is left with a
truncated file and nothing to resume from. This hook

- writes checkpoints and ``last_checkpoint`` atomically (:mod:`.fileio`)
  when they go to the local disk;
- deletes old and previous-best checkpoints only once the new one is written,
  and only files that this run wrote: on ``--resume`` mmengine takes the list
  of files to delete from the checkpoint's message hub, and deletes them
  before anything is written (:mod:`.run_files`);
- saves torch's random generators with each checkpoint and restores them on
  ``--resume``, after mmengine has replayed the data already trained on, so a
  resumed run continues the run it resumes (:mod:`.rng_state`);
- refuses to resume into a model whose tensors changed shape (mmengine would
  skip them and go on from their initialisation):
  :func:`.resume_checks.check_resume_shapes`.

Importing ``mmseg_dnc`` registers it under the name ``CheckpointHook``, so
mmseg's ``default_hooks.checkpoint`` picks it up with the same arguments.
"""
import logging
import os.path as osp
from collections import deque

from mmengine.dist import all_gather_object, get_rank, get_world_size, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from mmseg_dnc.utils.dist import unwrap
from .fileio import AtomicLocalBackend, atomic_write, leftover_parts
from .resume_checks import check_resume_shapes
from .resume_guard import is_resuming
from .rng_state import RNG_KEY, capture_rng_state, restore_rng_state
from .run_files import RUN_KEY, in_directory, new_run_id, run_id_of
from .takeovers import enabled


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic writes, delete-after-write and RNG state.

    Takes exactly mmengine's arguments.
    """

    _rng_states = None  # one per rank, gathered for the checkpoint being saved
    _val_entry_states = None  # one per rank, as they were when validation began
    _resume_rng = None
    _resume_iter = None
    _run_id = None  # written into each checkpoint; kept across --resume
    _written = frozenset()  # the files this process wrote

    # --------------------------------------------------------------- writing
    def before_train(self, runner) -> None:
        # mmengine deletes the resumed keep_ckpt_ids beyond max_keep_ckpts
        # here, before anything is written; they are pruned after the next write
        resumed_ids = runner.message_hub.runtime_info.pop('keep_ckpt_ids', [])
        super().before_train(runner)
        if self._run_id is None:
            self._run_id = new_run_id()
        self._written = set()
        if (self.file_client_args is None and self.backend_args is None
                and type(self.file_backend) is LocalBackend):
            self.backend_args = dict(backend='local_atomic')
            self.file_backend = AtomicLocalBackend()
        if self.max_keep_ckpts > 0:  # unbounded: we prune ourselves, after the write
            self.keep_ckpt_ids = deque(resumed_ids)
            runner.message_hub.update_info('keep_ckpt_ids', list(resumed_ids))
        self._forget_foreign_best(runner)
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            parts = leftover_parts(self.out_dir)
            if parts:
                print_log(f'{len(parts)} partial file(s) left by an interrupted save in '
                          f'{self.out_dir}: {", ".join(parts)}. The checkpoints beside '
                          'them are whole; these can be deleted.', logger='current',
                          level=logging.WARNING)

    def _save_checkpoint_with_step(self, runner, step, meta):
        # every rank is here (the write itself is rank 0's): collect each
        # rank's generators, which differ once the ranks' data differ; inside
        # validation, as they were before it (validation gives them back)
        self._rng_states = (self._val_entry_states if self._val_entry_states is not None
                            else all_gather_object(capture_rng_state()))
        outdated = []
        if self.max_keep_ckpts > 0 and (not self.keep_ckpt_ids
                                        or self.keep_ckpt_ids[-1] != step):
            self.keep_ckpt_ids.append(step)
            while len(self.keep_ckpt_ids) > self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            # what will be kept once this save is through
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir, ckpt_filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        self._written.add(self.last_ckpt)
        if not is_main_process():
            return
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in outdated:
            self._remove(self.file_backend.join_path(self.out_dir,
                                                     self.filename_tmpl.format(old)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best:
            return
        # mmengine removes the previous best only when its path is set: hide
        # the paths while it saves the new best, remove the replaced ones after
        single = len(self.key_indicators) == 1
        previous = ({None: self.best_ckpt_path} if single
                    else dict(self.best_ckpt_path_dict))
        if single:
            self.best_ckpt_path = None
        else:
            self.best_ckpt_path_dict = dict.fromkeys(previous)
        super()._save_best_checkpoint(runner, metrics)
        for key, old in previous.items():
            new = self.best_ckpt_path if single else self.best_ckpt_path_dict[key]
            if new is not None:
                self._written.add(new)
            if new is None:  # not improved: keep the previous best
                if single:
                    self.best_ckpt_path = old
                else:
                    self.best_ckpt_path_dict[key] = old
            elif old and old != new and is_main_process():
                self._remove(old)
                runner.logger.info(f'The previous best checkpoint {old} is removed')

    def _remove(self, path: str) -> None:
        if not (self.file_backend.isfile(path) or self.file_backend.isdir(path)):
            return
        if not self._wrote(path):
            print_log(f'Kept {path}: this run would delete it (max_keep_ckpts or a new best '
                      'checkpoint), but did not write it; it carries another run id or none. '
                      'Delete it yourself if you do not need it.', logger='current',
                      level=logging.WARNING)
            return
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        else:  # deepspeed checkpoints are folders
            self.file_backend.rmtree(path)

    def _wrote(self, path: str) -> bool:
        """This process wrote ``path``, or it is a checkpoint of this run
        (same run id) in this run's checkpoint directory."""
        if path in self._written:
            return True
        return (isinstance(self.file_backend, LocalBackend) and osp.isfile(path)
                and in_directory(path, self.out_dir) and run_id_of(path) == self._run_id)

    def _forget_foreign_best(self, runner) -> None:
        """A resumed best checkpoint that this run did not write is neither
        deleted when a new best comes nor published."""
        if not self.save_best:
            return
        single = len(self.key_indicators) == 1
        paths = {None: self.best_ckpt_path} if single else dict(self.best_ckpt_path_dict)
        for key, path in paths.items():
            if path is None or self._wrote(path):
                continue
            print_log(f'The resumed checkpoint names {path} as the best checkpoint so far, '
                      'and this run did not write it: it will be neither deleted nor '
                      'published.', logger='current', level=logging.WARNING)
            if single:
                self.best_ckpt_path = None
            else:
                self.best_ckpt_path_dict[key] = None

    # ------------------------------------------------------ random generators
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = self._rng_states or [capture_rng_state()]
        checkpoint[RUN_KEY] = self._run_id
        self._rng_states = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not is_resuming():
            return  # load_from: a new run, with its own random streams
        self._run_id = checkpoint.get(RUN_KEY)  # checked by run_files.check_run_id
        model = unwrap(runner.model)
        check_resume_shapes(model.state_dict(), checkpoint.get('state_dict', {}),
                            runner.work_dir)
        states = checkpoint.get(RNG_KEY)
        if not isinstance(states, list) or len(states) != get_world_size():
            why = ('it was not saved with mmseg_dnc imported' if states is None else
                   f'it was saved by {len(states)} processes, this run has {get_world_size()}'
                   if isinstance(states, list) else 'its format is unknown')
            print_log(f'The resumed checkpoint holds no random-generator state for this '
                      f'run ({why}): dropout and the other random draws of the model will '
                      'differ from the interrupted run from here on.', logger='current',
                      level=logging.WARNING)
            return
        self._resume_rng = states[get_rank()]
        self._resume_iter = checkpoint.get('meta', {}).get('iter')

    def before_val(self, runner) -> None:
        # Validation draws from torch's generator (each DataLoader iterator
        # takes a seed from it); a resumed run does not repeat the validation
        # that followed its checkpoint, so validation must leave the
        # generators as it found them.
        self._val_entry_states = all_gather_object(capture_rng_state())

    def after_val(self, runner) -> None:
        if self._val_entry_states is not None:
            restore_rng_state(self._val_entry_states[get_rank()])
            self._val_entry_states = None

    def before_train_epoch(self, runner) -> None:
        # an epoch-based loop makes the epoch's DataLoader iterator (a draw)
        # after this and before the first iteration: restore here
        if not isinstance(runner.train_loop, IterBasedTrainLoop):
            self._restore_rng(runner)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        # an iteration-based loop: here, after mmengine's replay of the batches
        # already trained on
        self._restore_rng(runner)

    def _restore_rng(self, runner) -> None:
        if self._resume_rng is not None and runner.iter == self._resume_iter:
            restored = restore_rng_state(self._resume_rng)
            print_log(f'Restored torch random generators ({", ".join(restored)}) as they '
                      f'were at iteration {runner.iter}.', logger='current')
            self._resume_rng = None


if enabled('checkpoint_hook'):  # mmseg's default_runtime names CheckpointHook
    HOOKS.register_module(name='CheckpointHook', module=SafeCheckpointHook, force=True)
