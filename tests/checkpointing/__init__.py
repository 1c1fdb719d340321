"""The checkpoint-safety tests of mmseg_dnc.checkpointing."""
