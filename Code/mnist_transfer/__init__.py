"""Helpers shared by the notebooks of "transfer learning from MNIST to your own handwriting".

One module per stage of the pipeline, in the order the notebooks use them; each imports
only modules above it in this list (no cycles):

* :mod:`.paths`            where everything lives (works from any working directory)
* :mod:`.stats`            Wilson intervals, confusion matrices, per-class metrics, McNemar
* :mod:`.mnist_style`      MNIST normalisation of one digit (20x20 box, centre of mass, stroke width)
* :mod:`.sheet_reading`    photo/scan of a sheet (or a folder of cut digits) -> labelled 28x28 digits
* :mod:`.dataset_writing`  digits -> Training/Validation/Test Set folders (8/2/2) and the manifest
* :mod:`.synth`            synthetic font sheets and the camera simulation (test inputs)
* :mod:`.handwriting`      real writers' pen strokes (UNIPEN) drawn as digits and sheets
* :mod:`.data`             MNIST from the committed IDX files; the own split folders as tensors
* :mod:`.model`            the compact CNN, its named stages, freezing, checkpoint I/O
* :mod:`.parameters`       every notebook's parameters cell checked in one place, each wrong value named
* :mod:`.evaluation`       predictions, evaluation records, the sealed test set
* :mod:`.sheet_check`      the pre-trained model's plausibility check of a sheet's labels before writing
* :mod:`.heldout`          the sample writer's other digits, evaluated once per final model
* :mod:`.training`         seeding, augmentation, pre-training, one fine-tuning run
* :mod:`.tuning`           grid search on the validation set, ranking, stability
* :mod:`.writer_study`     the whole protocol repeated for every UNIPEN writer and split seed
* :mod:`.results`          the results files (JSON/CSV) written by notebooks 02-04 and read back
* :mod:`.plots`            every figure
* :mod:`.interactive`      the try panel (one configuration, live curves) and the draw-a-digit canvas
* :mod:`.workbook`         ``Assignment 4 Results.xlsx``
* :mod:`.report`           the report's numbers and facts, and the typst build of the PDF
"""

__version__ = "1.1.0"
