"""Helpers shared by the notebooks of "transfer learning from MNIST to your own handwriting".

Stages, one module each:

* :mod:`.paths`     where everything lives (works from any working directory)
* :mod:`.data`      MNIST from the committed IDX files, the own dataset as in-memory tensors
* :mod:`.sheet`     photo of a handwritten sheet -> 120 MNIST-style images in three split folders
* :mod:`.synth`     the synthetic sample sheet shipped in place of a real photo
* :mod:`.model`     the compact CNN, its named stages, freezing helpers, checkpoint I/O
* :mod:`.training`  seeding, pre-training, fine-tuning, the validation grid search
* :mod:`.stats`     accuracy with Wilson intervals, confusion matrices, per-class metrics
* :mod:`.reporting` results files, figures, the workbook and the typeset report
"""

__version__ = "1.0.0"
