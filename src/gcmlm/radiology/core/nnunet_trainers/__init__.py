"""nnU-Net trainers that ship with gcmlm, found by nnU-Net through ``nnUNet_extTrainer``.

``nnUNetTrainer_gcmlmShort`` is nnU-Net's default trainer with a configurable run length (nnU-Net's
own ``nnUNetTrainer_5epochs`` and friends fix it in the class name); ``nnUNetTrainerNoDA_gcmlmShort``
is the same for nnU-Net's ``nnUNetTrainerNoDA``. Network, loss, augmentation and inference are
exactly those of the nnU-Net class, so its checkpoints predict like any nnU-Net model; only
the class must be importable, which ``gcmlm nnunet-predict`` arranges, and nnUNetv2_predict does
with ``nnUNet_extTrainer`` pointing at this package's folder:
``export nnUNet_extTrainer=$(python -c "import gcmlm.radiology.core.nnunet_trainers as m; print(m.__path__[0])")``.
nnU-Net imports every module of that folder as a top-level module while it looks for a trainer class
(``__init__`` excepted), so the folder holds only this file and ``gcmlm_nnunet_trainers``, a re-export.

``gcmlm nnunet-train`` sets the run length on the instance; under ``nnUNetv2_train`` the
environment variables GCMLM_NNUNET_EPOCHS, GCMLM_NNUNET_ITERATIONS and GCMLM_NNUNET_VAL_ITERATIONS
do it.
"""

from __future__ import annotations

import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoDA import nnUNetTrainerNoDA

__all__ = ["nnUNetTrainer_gcmlmShort", "nnUNetTrainerNoDA_gcmlmShort"]


class _ShortRun:
    """Mixin for an nnU-Net trainer: epochs, iterations per epoch and validation iterations set at run time."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):  # noqa: B008 (nnU-Net's signature)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.set_run_length(
            epochs=_env_int("GCMLM_NNUNET_EPOCHS", self.num_epochs),
            iterations_per_epoch=_env_int("GCMLM_NNUNET_ITERATIONS", self.num_iterations_per_epoch),
            val_iterations=_env_int("GCMLM_NNUNET_VAL_ITERATIONS", self.num_val_iterations_per_epoch),
        )

    def set_run_length(self, epochs: int, iterations_per_epoch: int, val_iterations: int) -> None:
        """Must be called before training starts: the learning-rate schedule is built from num_epochs."""
        self.num_epochs = int(epochs)
        self.num_iterations_per_epoch = int(iterations_per_epoch)
        self.num_val_iterations_per_epoch = int(val_iterations)
        # a latest-checkpoint at least every 50 epochs as in nnU-Net, and before the end of short runs
        self.save_every = max(1, min(50, self.num_epochs // 2))


class nnUNetTrainer_gcmlmShort(_ShortRun, nnUNetTrainer):  # noqa: N801 (nnU-Net's naming)
    """nnUNetTrainer with a settable run length."""


class nnUNetTrainerNoDA_gcmlmShort(_ShortRun, nnUNetTrainerNoDA):  # noqa: N801
    """nnU-Net's nnUNetTrainerNoDA (no data augmentation, hence no mirroring TTA) with a settable run length.

    Learns a simple task in far fewer iterations; meant for tests and demos, not for patients.
    """


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default
