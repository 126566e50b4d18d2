"""The CapOnImage2M data contract, in rooms by concern, each importing only the rooms below it:

    record/      the parts of one record: boxes, the image it names, why it is rejected, the vocabulary
    release/     the release format (SPEC 2.1), its Parquet index, its versions, its Table 1 summary
    transforms/  per-record transforms: neighbours, masking, the encoded row, captioning requests
    pipeline/    Ray Data wiring: streaming a split to the trainers, the parallel dataset check
    ingest/      fresh crawls: partitions, OCR, cleaning, fluency, deduplication, a new version
    pictures/    what a person looks at: fonts, contact sheets
    synthetic/   the synthetic crawl that stands in for CapOnImage2M offline
    prepare.py   the one prepared dataset a flow hands down (``release.dataset.PreparedDataset``)

Everything here is plain Python / numpy / Pillow; nothing imports MLflow or torch, and Ray only
lazily where the pipeline runs it.
"""
