"""Datasets: the built-in generated set (:mod:`.synthetic`), COCO-format detection data (:mod:`.coco`),
semantic-segmentation data (:mod:`.seg_sources` opens COCO, folder or built-in sources as
:mod:`.seg_dataset` datasets) and the shared transforms and split helpers."""
