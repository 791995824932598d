"""Helpers the radiology stages share (not stages): image I/O and geometry checks (``images``),
nnU-Net environment, model zips and folders (``nnunet``), and the trainers gcmlm ships to nnU-Net
(``nnunet_trainers``, also the folder put on ``nnUNet_extTrainer``)."""
