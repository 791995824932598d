"""Re-exports gcmlm's nnU-Net trainers under their own module, so pickles and checkpoints name it."""

from gcmlm.radiology.core.nnunet_trainers import *  # noqa: F401,F403
