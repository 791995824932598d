"""The folder gcmlm puts on nnUNet_extTrainer: it holds only a shim re-exporting gcmlm's trainers.

nnU-Net imports each module of an nnUNet_extTrainer folder as a top-level module while looking
for a trainer class, so this folder contains nothing else. Point nnUNetv2_train/predict at it with
``export nnUNet_extTrainer=$(python -c "import gcmlm.radiology.nnunet_ext as m; print(m.__path__[0])")``.
"""
