"""Helpers shared by the notebooks of "transfer learning from MNIST to your own handwriting".

One module per stage of the pipeline, in the order the notebooks use them; each imports
only modules above it in this list (no cycles):

* :mod:`.paths`            where everything lives (works from any working directory)
* :mod:`.stats`            Wilson intervals, confusion matrices, per-class metrics, McNemar
* :mod:`.mnist_style`      MNIST normalisation of one digit (20x20 box, centre of mass, stroke width)
* :mod:`.layout`           the sheet's layout (rows, columns, which digit where) and ``SheetError``
* :mod:`.page`             the photo read and the page found in it (rectified, lit evenly)
* :mod:`.ink`              the ink on the page, without table lines, ruling or specks
* :mod:`.rows`             the strokes joined into rows of writing
* :mod:`.table`            a sheet written in a table read by its cells (when its rows do not fit)
* :mod:`.cells`            each row cut into digits (touching digits, strokes of one digit kept together)
* :mod:`.sheet_reading`    the reader's stages composed: photo/scan of a sheet -> labelled 28x28 digits
* :mod:`.dataset_writing`  digits -> Training/Validation/Test Set folders (8/2/2) and the manifest
* :mod:`.synth`            synthetic font sheets and the camera simulation (test inputs)
* :mod:`.handwriting`      real writers' pen strokes (UNIPEN) drawn as digits and sheets
* :mod:`.student_sheets`   sheets as students write them, from the same strokes (test inputs, another author)
* :mod:`.data`             MNIST from the committed IDX files; the own split folders as tensors
* :mod:`.model`            the compact CNN, its named stages, freezing, checkpoint I/O
* :mod:`.parameters`       every notebook's parameters cell checked in one place, each wrong value named
* :mod:`.evaluation`       predictions, evaluation records, the sealed test set
* :mod:`.digit_check`      each digit before writing: crossed out, scribbled, cut off, swapped, misfiled (refused or listed)
* :mod:`.sheet_check`      the pre-trained model's plausibility check of a sheet's labels before writing
* :mod:`.heldout`          the sample writer's other digits, evaluated once per final model
* :mod:`.training`         seeding, augmentation, pre-training, one fine-tuning run
* :mod:`.tuning`           grid search on the validation set, ranking, stability
* :mod:`.writer_study`     the whole protocol repeated for every UNIPEN writer and split seed
* :mod:`.sweeps`           learning-rate and depth sweeps on the writers' held-out digits, and MNIST forgetting
* :mod:`.results`          the results files (JSON/CSV) written by notebooks 02-05 and read back
* :mod:`.plots`            every figure
* :mod:`.interactive`      the try panel (one configuration, live curves) and the draw-a-digit canvas
* :mod:`.workbook`         ``Assignment 4 Results.xlsx``
* :mod:`.report`           the report's numbers and facts, and the typst build of the PDF
"""

__version__ = "1.1.0"
