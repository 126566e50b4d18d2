"""Fresh crawls into a dataset: the crawl's partitions, OCR, the released cleaning and fluency
filters, deduplication, and the ingest that publishes a new version (``partitions``)."""
